"""A small finished run directory, built by hand after the run-directory contract (a file
format): ``space.yaml``, ``run.json`` and a ``results.json`` with completed, failed and
infeasible search trials, a Pareto front, six retrained architectures (one failed) and failures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SPACE = """\
name: reportfixture
input: {channels: 1, size: 8}
num_classes: 10
stem: {kind: conv, channels: 8}
stages:
  - name: first
    depth: [1, 2]
    width: [8, 16]
    block: basic
    granularity: stage
    ops:
      conv: {kernel_size: [3]}
      involution: {kernel_size: [3], group_channels: [4], reduction: [2]}
  - name: second
    depth: [1, 2]
    width: [16, 24]
    stride: 2
    block: basic
    granularity: block
    ops:
      conv: {kernel_size: [3]}
      involution: {kernel_size: [3], group_channels: [4], reduction: [2]}
data: {dataset: digits}
search: {objectives: [accuracy, macs], trials: 12, max_macs: 900000}
retrain: {top_k: 6}
"""

# (arch, accuracy, macs); None accuracy = failed trial. MACs over 900000 are infeasible.
TRIALS = [
    ("d1w8:conv3g1|d1w16:conv3g1", 0.62, 100_000),
    ("d1w8:inv3c4r2|d1w16:inv3c4r2", 0.58, 90_000),
    ("d2w16:conv3g1,conv3g1|d2w24:conv3g1,inv3c4r2", 0.91, 800_000),
    ("d2w16:inv3c4r2,inv3c4r2|d1w24:inv3c4r2", None, None),
    ("d1w16:conv3g1|d1w24:inv3c4r2", 0.80, 300_000),
    ("d2w16:conv3g1,conv3g1|d2w24:conv3g1,conv3g1", 0.95, 1_200_000),  # infeasible
    ("d1w16:inv3c4r2|d2w16:inv3c4r2,conv3g1", 0.85, 450_000),
    ("d1w8:conv3g1|d2w16:conv3g1,conv3g1", 0.70, 150_000),
    ("d2w8:conv3g1,conv3g1|d1w24:conv3g1", 0.75, 320_000),  # dominated by the 0.80 one
    ("d1w16:conv3g1|d2w24:inv3c4r2,inv3c4r2", 0.88, 600_000),
    ("d2w8:inv3c4r2,inv3c4r2|d1w16:conv3g1", None, None),
    ("d1w8:inv3c4r2|d2w16:conv3g1,inv3c4r2", 0.66, 120_000),
]
PARETO = ["t02", "t09", "t06", "t04", "t07", "t11", "t00", "t01"]
# rank -> (trial index, val accuracy, test accuracy); supernet accuracy is the trial's.
RETRAINED = {
    1: (2, 0.94, 0.93),
    2: (9, 0.93, 0.93),
    3: (6, 0.90, 0.91),
    4: (4, 0.91, 0.89),
    5: (7, 0.86, 0.87),
    6: (11, 0.87, 0.85),
}
FAILED_RANK = 7, 0  # rank 7 retrains trial 0 and fails


def _search_trials() -> list[dict]:
    records = []
    for number, (arch, accuracy, macs) in enumerate(TRIALS):
        failed = accuracy is None
        records.append(
            {
                "trial_id": f"t{number:02d}",
                "number": number,
                "arch": arch,
                "status": "failed" if failed else "completed",
                "metrics": None
                if failed
                else {
                    "accuracy": accuracy,
                    "params": macs // 10,
                    "macs": macs,
                    "latency_ms": macs / 1e5,
                },
                "feasible": not failed and macs <= 900_000,
                "error": "RuntimeError: out of memory" if failed else None,
            }
        )
    return records


def results_of(trials: list[dict]) -> dict:
    retrained = []
    for rank, (index, val, test) in RETRAINED.items():
        trial = trials[index]
        retrained.append(
            {
                "rank": rank,
                "trial_id": trial["trial_id"],
                "arch": trial["arch"],
                "status": "completed",
                "metrics": {
                    "supernet_accuracy": trial["metrics"]["accuracy"],
                    "val_accuracy": val,
                    "test_accuracy": test,
                    "params": trial["metrics"]["params"],
                    "macs": trial["metrics"]["macs"],
                    "latency_ms": 1.0,
                },
                "weights": f"weights/retrain/{rank}.pt",
                "error": None,
            }
        )
    rank, index = FAILED_RANK
    retrained.append(
        {
            "rank": rank,
            "trial_id": trials[index]["trial_id"],
            "arch": trials[index]["arch"],
            "status": "failed",
            "metrics": None,
            "weights": None,
            "error": "NonFiniteLossError: non-finite training loss (nan) at epoch 0, step 3",
        }
    )
    failures = [
        {"phase": "search", "trial_id": t["trial_id"], "arch": t["arch"], "error": t["error"]}
        for t in trials
        if t["status"] == "failed"
    ] + [{"phase": "retrain", "trial_id": "r7", "arch": trials[index]["arch"], "error": "nan"}]
    best = trials[2]
    return {
        "name": "reportfixture",
        "seed": 3,
        "space_file": "space.yaml",
        "phases": {
            "supernet": {
                "status": "completed",
                "epochs": 2,
                "val_accuracy": 0.71,
                "weights": "weights/supernet.pt",
                "error": None,
            },
            "search": {
                "status": "completed",
                "trials_requested": 12,
                "trials_completed": 10,
                "trials_failed": 2,
                "repeats_skipped": 3,
                "sampler": "nsga2",
                "error": None,
            },
            "retrain": {"status": "completed", "mode": "scratch", "error": None},
        },
        "objectives": [{"metric": "accuracy", "mode": "max"}, {"metric": "macs", "mode": "min"}],
        "trials": trials,
        "pareto": PARETO,
        "best": {"trial_id": best["trial_id"], "arch": best["arch"], "metrics": best["metrics"]},
        "retrained": retrained,
        "failures": failures,
    }


def write_run(path: Path, results: dict) -> Path:
    path.mkdir(parents=True)
    (path / "space.yaml").write_text(SPACE)
    run_info = {"name": path.name, "created": "2025-01-01T00:00:00", "seed": results["seed"]}
    (path / "run.json").write_text(json.dumps(run_info))
    (path / "results.json").write_text(json.dumps(results, indent=2))
    return path


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A finished run directory: 12 search trials, 8 on the Pareto front, 6 retrained."""
    return write_run(tmp_path / "runs" / "reportfixture", results_of(_search_trials()))


@pytest.fixture
def results() -> dict:
    return results_of(_search_trials())
