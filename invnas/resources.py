"""Where invnas's shipped files live, in a source checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped_dir(name: str) -> Path:
    installed = _PACKAGE_DIR / name  # wheels carry the folder inside the package
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent / name  # editable install / source checkout
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"invnas installation is missing its {name}/ folder")


def kernels_dir() -> Path:
    """Folder holding the native sources (CUDA kernels, C++ CPU kernels, host shim)."""
    return _shipped_dir("kernels")


def search_spaces_dir() -> Path:
    """Folder holding the example and reference search-space YAML files."""
    return _shipped_dir("search_spaces")
