"""Fixtures for export tests: a tiny fixed space file and a hand-built finished run directory.

The run directory follows the run-directory contract (a file format): ``space.yaml``,
``run.json``, ``results.json``, a real :class:`Supernet` state dict in ``weights/supernet.pt``
and a real retrained :class:`ArchNet` state dict in ``weights/retrain/1.pt``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from invnas.nn import build_model
from invnas.nn.supernet import Supernet
from invnas.space.arch import Arch
from invnas.space.cost import cost
from invnas.space.loader import load_space

FIXED_SPACE = """\
name: tiny
input: {channels: 3, size: 16}
num_classes: 5
stem: {kind: rednet, channels: 32}
stages:
  - name: s1
    depth: 2
    width: 32
    granularity: block
    ops:
      conv: {kernel_size: 3}
      involution: {kernel_size: 5, group_channels: 4, reduction: 2}
    blocks: [inv5c4r2, conv3g1]
  - name: s2
    depth: 1
    width: 24
    stride: 2
    block: basic
    ops: {involution: {kernel_size: 3, groups: 2, reduction: 2}}
data: {dataset: synthetic, synthetic_samples: 64, batch_size: 16}
"""

SEARCH_SPACE = """\
name: tinysearch
input: {channels: 3, size: 12}
num_classes: 4
stem: {kind: conv, channels: 16}
stages:
  - name: s1
    depth: [1, 2]
    width: [16, 32]
    granularity: block
    ops:
      conv: {kernel_size: 3}
      involution: {kernel_size: 3, group_channels: 4, reduction: 2}
  - name: s2
    depth: [1]
    width: [32]
    stride: 2
    block: basic
    ops:
      conv: {kernel_size: 3}
      involution: {kernel_size: 5, groups: 2, reduction: 4}
data: {dataset: synthetic, synthetic_samples: 80, batch_size: 8}
search: {bn_batches: 3, objectives: [accuracy, macs]}
"""

BEST_ARCH = "d2w32:inv3c4r2,conv3g1|d1w32:inv5g2r4"
OTHER_ARCH = "d1w16:conv3g1|d1w32:conv3g1"
FAILED_ARCH = "d1w32:inv3c4r2|d1w32:inv5g2r4"


def randomize_batchnorm(model: nn.Module, seed: int, batches_tracked: int = 500) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
                module.num_batches_tracked.fill_(batches_tracked)


@pytest.fixture
def fixed_space_file(tmp_path: Path) -> Path:
    path = tmp_path / "spaces" / "tiny.yaml"
    path.parent.mkdir()
    path.write_text(FIXED_SPACE)
    return path


def _trial(space, trial_id: str, number: int, arch: str, accuracy: float, status="completed"):
    completed = status == "completed"
    counted = cost(space, Arch.decode(arch))
    return {
        "trial_id": trial_id,
        "number": number,
        "arch": arch,
        "status": status,
        "metrics": (
            {
                "accuracy": accuracy,
                "params": counted.params,
                "macs": counted.macs,
                "latency_ms": 1.5,
            }
            if completed
            else None
        ),
        "feasible": completed,
        "error": None if completed else "RuntimeError: boom",
    }


def make_run(root: Path, search_status: str = "completed") -> Path:
    """A finished run directory: supernet trained (weights saved), search over three trials
    (one failed), the best one retrained as rank 1 and a second retraining that failed."""
    run = root / "run"
    (run / "weights" / "retrain").mkdir(parents=True)
    (run / "space.yaml").write_text(SEARCH_SPACE)
    (run / "run.json").write_text(
        json.dumps({"name": "run", "created": "2025-01-01T00:00:00", "seed": 0})
    )
    space = load_space(run / "space.yaml")
    torch.manual_seed(1)
    supernet = Supernet(space)
    randomize_batchnorm(supernet, seed=2)
    torch.save(supernet.state_dict(), run / "weights" / "supernet.pt")
    torch.manual_seed(3)
    retrained = build_model(space, Arch.decode(BEST_ARCH))
    randomize_batchnorm(retrained, seed=4)
    torch.save(retrained.state_dict(), run / "weights" / "retrain" / "1.pt")
    best_trial = _trial(space, "t_best", 0, BEST_ARCH, 0.5)
    results = {
        "name": "run",
        "seed": 0,
        "space_file": "space.yaml",
        "phases": {
            "supernet": {
                "status": "completed",
                "epochs": 1,
                "val_accuracy": 0.3,
                "weights": "weights/supernet.pt",
                "error": None,
            },
            "search": {
                "status": search_status,
                "trials_requested": 3,
                "trials_completed": 2,
                "trials_failed": 1,
                "sampler": "tpe",
                "error": None,
            },
            "retrain": {"status": "completed", "mode": "scratch", "error": None},
        },
        "objectives": [{"metric": "accuracy", "mode": "max"}, {"metric": "macs", "mode": "min"}],
        "trials": [
            best_trial,
            _trial(space, "t_other", 1, OTHER_ARCH, 0.4),
            _trial(space, "t_failed", 2, FAILED_ARCH, 0.0, status="failed"),
        ],
        "pareto": ["t_best", "t_other"],
        "best": {"trial_id": "t_best", "arch": BEST_ARCH, "metrics": best_trial["metrics"]},
        "retrained": [
            {
                "rank": 1,
                "trial_id": "t_best",
                "arch": BEST_ARCH,
                "status": "completed",
                "metrics": {
                    "supernet_accuracy": 0.5,
                    "val_accuracy": 0.6,
                    "test_accuracy": 0.55,
                    "params": cost(space, Arch.decode(BEST_ARCH)).params,
                    "macs": cost(space, Arch.decode(BEST_ARCH)).macs,
                    "latency_ms": 1.25,
                },
                "weights": "weights/retrain/1.pt",
                "error": None,
            },
            {
                "rank": 2,
                "trial_id": "t_other",
                "arch": OTHER_ARCH,
                "status": "failed",
                "metrics": None,
                "weights": None,
                "error": "RuntimeError: out of memory",
            },
        ],
        "failures": [],
    }
    (run / "results.json").write_text(json.dumps(results, indent=2))
    return run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path)


# Runs in a fresh interpreter (-I: no user site, no PYTHON* variables, no script dir on the
# path; -B: no __pycache__ left in the export directory) where importing invnas fails, as
# in an environment with only torch.
WITHOUT_INVNAS = """
import importlib.abc, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "invnas":
            raise ImportError("not installed here: " + name)
        return None

sys.meta_path.insert(0, Blocked())
sys.path.insert(0, ".")
"""
FRESH_CHECK = """
import torch
import model

sample = torch.load("sample.pt", weights_only=True)
net = model.load()
with torch.no_grad():
    output = net(sample["input"])
assert not [m for m in sys.modules if m.split(".")[0] == "invnas"]
print(float((output - sample["output"]).abs().max()))
"""


def run_without_invnas(export_dir: Path, script: str, *args: str) -> str:
    """The last line ``script`` prints, run in ``export_dir`` where only torch is importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [sys.executable, "-I", "-B", "-c", WITHOUT_INVNAS + script, *args],
        cwd=export_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def fresh_environment_max_error(export_dir: Path) -> float:
    """Max |model.load()(sample input) - sample output| computed without invnas importable."""
    return float(run_without_invnas(export_dir, FRESH_CHECK))
