"""Before a local run's trials start, the driver compiles the native involution kernel itself,
saying so, instead of leaving the first trials to wait on the build silently; and only when a
trial could use it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from invnas.space.loader import load_space

ROOT = Path(__file__).resolve().parents[2]
SPACES = ROOT / "search_spaces"

BUILD = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from rich.console import Console
from invnas.ops.backends import cpu
from invnas.pipeline.driver import build_involution_kernel
from invnas.pipeline.progress import ProgressDisplay, showing
from invnas.space.loader import load_space_file
space, config = load_space_file(sys.argv[1])
with showing(ProgressDisplay(Console(file=sys.stdout, width=200))):
    build_involution_kernel(space, config.resources)
print("built:", cpu.is_built())
"""


def build_in_fresh_cache(space: Path, cache: Path, **env: str) -> str:
    """Run the driver's kernel step, with a progress display, in a new interpreter with an empty
    build cache; returns what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(space)],
        env={**os.environ, "TORCH_EXTENSIONS_DIR": str(cache), **env},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(
    ("name", "expected"),
    [("quickstart", True), ("rednet26", True), ("resnet26", False), ("cifar_hybrid", True)],
)
def test_uses_involution(name: str, expected: bool) -> None:
    assert load_space(SPACES / f"{name}.yaml").uses_involution is expected


def test_a_rednet_stem_alone_uses_involution() -> None:
    resnet = load_space(SPACES / "resnet26.yaml")
    rednet_stem = dataclasses.replace(resnet.stem, kind="rednet")
    assert dataclasses.replace(resnet, stem=rednet_stem).uses_involution


@pytest.mark.slow
def test_compiles_the_missing_kernel_and_says_so(tmp_path: Path) -> None:
    out = build_in_fresh_cache(SPACES / "quickstart.yaml", tmp_path)
    assert "compiling the native involution CPU kernel (once per machine" in out
    assert out.rstrip().endswith("built: True")


def test_skips_the_build_when_no_trial_could_use_it(tmp_path: Path) -> None:
    out = build_in_fresh_cache(SPACES / "resnet26.yaml", tmp_path)
    assert "compiling" not in out and out.rstrip().endswith("built: False")
    out = build_in_fresh_cache(
        SPACES / "quickstart.yaml", tmp_path, INVNAS_INVOLUTION_BACKEND="torch"
    )
    assert "compiling" not in out and out.rstrip().endswith("built: False")
