"""The native CPU kernel is compiled once per source, flags and PyTorch, whatever process (and
whichever copy of invnas) needs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import invnas
from invnas.ops.backends import cpu as cpu_backend
from invnas.ops.backends import cpu_build
from invnas.resources import kernels_dir

_PROBE = """
import json, invnas
from invnas.ops.backends import cpu
ext = cpu.load_extension()
print(json.dumps({"package": invnas.__file__, "extension": getattr(ext, "__file__", None)}))
"""


def _probe(pythonpath: Path, cwd: Path, **env: str) -> dict[str, str]:
    environ = {**os.environ, "PYTHONPATH": str(pythonpath), **env}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_extension_name_hashes_sources_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = cpu_build.source_texts()
    name = cpu_build.extension_name(texts)
    assert name == cpu_build.extension_name(dict(texts))
    changed = {**texts, "forward.cpp": texts["forward.cpp"] + b"\n"}
    assert cpu_build.extension_name(changed) != name
    monkeypatch.setenv("CXX", "some-other-c++")
    assert cpu_build.extension_name(texts) != name
    # environment that does not enter the commands leaves the name alone
    monkeypatch.delenv("CXX")
    unrelated = {"MAX_JOBS": "1", "TORCH_CUDA_ARCH_LIST": "8.0", "OMP_NUM_THREADS": "1"}
    for key, value in unrelated.items():
        monkeypatch.setenv(key, value)
    assert cpu_build.extension_name(texts) == name


def test_processes_importing_invnas_from_different_places_share_one_build(
    tmp_path: Path,
) -> None:
    """A second copy of invnas (as a Ray worker finding the checkout beside a wheel, or another
    checkout) with a different environment and working directory loads the same build without
    running the compiler: the build's ninja log and library stay untouched."""
    if not cpu_backend.is_available():
        pytest.skip("the native CPU kernel cannot be built here")
    name = cpu_build.extension_name()
    directory = cpu_build.build_root() / name
    library = directory / f"{name}.so"
    log_before = (directory / ".ninja_log").read_text()
    mtime_before = library.stat().st_mtime_ns

    copy = tmp_path / "elsewhere"
    package = Path(invnas.__file__).parent
    shutil.copytree(package, copy / "invnas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(kernels_dir(), copy / "kernels")
    other = _probe(copy, tmp_path, MAX_JOBS="1", OMP_NUM_THREADS="1", TORCH_CUDA_ARCH_LIST="8.0")
    same = _probe(package.parent, package.parent, MAX_JOBS="3")

    assert Path(other["package"]).is_relative_to(copy)
    assert Path(same["package"]).is_relative_to(package.parent)
    assert other["extension"] == same["extension"] == str(library)
    assert (directory / ".ninja_log").read_text() == log_before
    assert library.stat().st_mtime_ns == mtime_before


def test_a_lock_left_by_a_killed_build_does_not_hang_the_next_process(tmp_path: Path) -> None:
    """torch marks a build in progress with a plain ``lock`` file; a build killed midway leaves
    it, and torch alone would wait for it forever. The next load removes it and goes on."""
    if not cpu_backend.is_available():
        pytest.skip("the native CPU kernel cannot be built here")
    directory = cpu_build.build_root() / cpu_build.extension_name()
    stale = directory / "lock"
    stale.touch()
    package = Path(invnas.__file__).parent
    loaded = _probe(package.parent, tmp_path)  # times out (fails) if it waits on the lock
    assert loaded["extension"] is not None
    assert not stale.exists()
