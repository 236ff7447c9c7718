"""Searches whose supernet and retrained architecture train on 2 Ray Train workers: a whole run
of the tiny space, and ``kill -9`` of the driver during the 2-worker supernet phase followed by
``invnas resume``, which continues from the last epoch's checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from invnas.cli import main
from invnas.nn.supernet import Supernet
from invnas.pipeline.driver import SearchOptions, run_search
from invnas.pipeline.workers import TRAIN_DIR, checkpoint_epoch
from invnas.rundir import PhaseStatus, TrainingScale
from invnas.space.loader import load_space

from .conftest import start_search, wait_for, write_space


def _train_checkpoints(run: Path, phase: str) -> list[Path]:
    return sorted(run.glob(f"{phase}/{TRAIN_DIR}/*/checkpoint_*/training.pt"))


def _complete_epochs(run: Path) -> int:
    return max((checkpoint_epoch(p) for p in _train_checkpoints(run, "supernet")), default=0)


def _epochs_reported(run: Path, phase: str) -> list[int]:
    lines = next(run.glob(f"{phase}/trial_*/result.json")).read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines if line.strip()]


@pytest.mark.slow
def test_a_search_with_two_workers_trains_supernet_and_winner_on_both(local_ray, tmp_path, capsys):
    space_file = write_space(tmp_path, supernet={"epochs": 2}, search={"trials": 2})
    options = SearchOptions(name="w2", storage=str(tmp_path / "runs"), train_workers=2)
    run, results = run_search(space_file, options)
    assert results.succeeded, results.failures
    assert run.read_info().overrides.train_workers == 2
    for phase in (results.phases.supernet, results.phases.retrain):
        scale = phase.scale
        assert isinstance(scale, TrainingScale) and scale.workers == 2
        assert len(scale.nodes) == 1 and scale.images_per_s > 0
    assert _epochs_reported(run.path, "supernet") == [1, 2]
    assert len(_train_checkpoints(run.path, "supernet")) == 2
    assert len(_train_checkpoints(run.path, "retrain")) == 1
    supernet = Supernet(load_space(space_file))
    supernet.load_state_dict(torch.load(run.supernet_weights, weights_only=True))
    assert results.retrained[0].status == "completed"
    assert run.retrain_weights(1).is_file()

    assert main(["report", str(run.path), "--json", "--no-plots"]) == 0
    phases = json.loads(capsys.readouterr().out)["phases"]
    assert phases["supernet"]["scale"]["workers"] == 2
    assert phases["retrain"]["scale"]["nodes"] == list(results.phases.retrain.scale.nodes)
    assert main(["report", str(run.path), "--no-plots"]) == 0
    assert "2 workers on" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_during_a_two_worker_supernet_then_resume_continues_from_its_epoch(
    tmp_path,
    ray_tmpdir,  # noqa: F811
):
    space = write_space(
        tmp_path,
        supernet={"epochs": 3},
        search={"trials": 2},
        retrain={"top_k": 1, "epochs": 1},
        resources={"train_workers": 2, "cpus_per_trial": 1},
    )
    run = tmp_path / "runs" / "k2"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmpdir))
    driver = start_search(space, run, env)
    try:
        wait_for(driver, lambda: _complete_epochs(run) >= 1, "a supernet epoch", 420)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    done_before = len(_train_checkpoints(run, "supernet"))
    assert done_before < 3
    assert json.loads((run / "results.json").read_text())["phases"]["supernet"]["status"] == (
        PhaseStatus.RUNNING.value
    )

    resumed = subprocess.run(
        ["invnas", "resume", str(run)], env=env, capture_output=True, text=True, timeout=900
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert [p["status"] for p in results["phases"].values()] == ["completed"] * 3
    assert results["phases"]["supernet"]["scale"]["workers"] == 2
    # one checkpoint per epoch: the resumed workers went on after the last one (even one
    # that Ray Train had not recorded when the driver died)
    saved = _train_checkpoints(run, "supernet")
    assert sorted(checkpoint_epoch(path) for path in saved) == [1, 2, 3]
    epochs = _epochs_reported(run, "supernet")
    assert epochs[-1] == 3 and epochs == sorted(set(epochs))
