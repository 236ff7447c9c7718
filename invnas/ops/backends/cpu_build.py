"""Building the native CPU kernel (``kernels/cpu/``) once per source, flags and PyTorch.

``torch.utils.cpp_extension.load`` writes a ninja file whose compile commands hold the sources'
absolute paths, and ninja rebuilds whenever a command changes. Two processes that import invnas
from different places (a wheel in site-packages and the checkout a Ray worker finds on its
``sys.path``, or two checkouts of the same commit) used to share one build directory, named by a
hash of the source text, but not one command: each rebuilt it over the other. Here the sources
are first copied into the build directory itself, and its name hashes everything that enters a
command (sources, flags, compiler, PyTorch and Python), so one directory means one command
wherever invnas lives, and a different command gets its own directory instead of a rebuild.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from invnas.resources import kernels_dir

logger = logging.getLogger(__name__)

SOURCE_DIR = "cpu"
# Translation units, built in parallel by ninja: the kernels include no torch header, so only the
# bindings pay for PyTorch's headers.
SOURCES = (
    "involution_cpu.cpp",
    "forward.cpp",
    "weight_grad.cpp",
    "input_grad.cpp",
    "stride_pool.cpp",
)
HEADERS = ("simd.h", "lanes.h", "geometry.h")
# No -march=native: the cache may be reused on another machine. The source clones its hot loops
# per instruction set instead. -fopenmp makes at::parallel_for use torch's own OpenMP runtime.
CFLAGS = ("-O3", "-fopenmp", "-Wno-psabi")
LDFLAGS = ("-fopenmp",)


def source_texts() -> dict[str, bytes]:
    """The kernel's sources and headers by file name."""
    root = kernels_dir() / SOURCE_DIR
    return {name: (root / name).read_bytes() for name in (*SOURCES, *HEADERS)}


def _command_inputs() -> list[str]:
    """Everything besides the sources that enters the compile and link commands."""
    return [
        " ".join(CFLAGS + LDFLAGS),
        os.environ.get("CXX", "c++"),
        torch.__version__,
        str(torch.version.git_version),
        str(torch.compiled_with_cxx11_abi()),
        sysconfig.get_paths()["include"],
        f"{sys.version_info.major}.{sys.version_info.minor}{getattr(sys, 'abiflags', '')}",
    ]


def extension_name(texts: dict[str, bytes] | None = None) -> str:
    """The extension's name: a hash of its sources and of its compile and link commands."""
    digest = hashlib.sha256()
    for name, text in sorted((texts or source_texts()).items()):
        digest.update(f"{name}\0{len(text)}\0".encode())
        digest.update(text)
    for item in _command_inputs():
        digest.update(f"{item}\0".encode())
    return f"invnas_involution_cpu_{digest.hexdigest()[:16]}"


def build_root() -> Path:
    """torch's extension cache: ``$TORCH_EXTENSIONS_DIR``, else its default folder."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is not None:
        return Path(root)
    from torch.utils.cpp_extension import get_default_build_root

    accel = f"cu{torch.version.cuda.replace('.', '')}" if torch.version.cuda else "cpu"
    py = f"py{sys.version_info.major}{sys.version_info.minor}{getattr(sys, 'abiflags', '')}"
    return Path(get_default_build_root()) / f"{py}_{accel}"


def is_built() -> bool:
    """Whether this source's kernel is already compiled in the build cache."""
    name = extension_name()
    return (build_root() / name / f"{name}.so").exists()


def _stage(directory: Path, texts: dict[str, bytes]) -> list[str]:
    """Copy the sources into ``directory/src`` (only files that are missing or differ, so that a
    finished build stays up to date for ninja) and return the translation units' paths."""
    src = directory / "src"
    src.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        path = src / name
        if not path.exists() or path.read_bytes() != text:
            partial = path.with_name(f".{name}.{os.getpid()}")
            partial.write_bytes(text)
            os.replace(partial, path)  # readers see the old or the new file, never a part
    return [str(src / name) for name in SOURCES]


def build() -> ModuleType:
    """Compile (or load the already compiled) extension; raises if the build fails."""
    from torch.utils.cpp_extension import load

    texts = source_texts()
    name = extension_name(texts)
    directory = build_root() / name
    if not (directory / f"{name}.so").exists():
        logger.info("compiling the involution CPU kernel (once, about a minute)")
    directory.mkdir(parents=True, exist_ok=True)
    with _building(directory):
        return load(
            name=name,
            sources=_stage(directory, texts),
            extra_cflags=list(CFLAGS),  # load() appends to the lists it is given
            extra_ldflags=list(LDFLAGS),
            build_directory=str(directory),
            verbose=False,
        )


@contextlib.contextmanager
def _building(directory: Path) -> Iterator[None]:
    """Hold an OS lock on ``directory`` (released by the kernel when its holder dies) while
    torch builds or loads there. torch's own lock is a plain file that a killed build leaves
    behind, after which every later process waits for it forever; holding ours, no other
    invnas process is building, so such a file is stale and is removed."""
    with open(directory / "invnas.flock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        stale = directory / "lock"
        if stale.exists():
            logger.warning("%s: removing the lock of a build that was killed", stale)
            stale.unlink(missing_ok=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
