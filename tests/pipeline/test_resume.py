"""``kill -9`` of the real ``invnas search`` driver during the search phase, then
``invnas resume``: the run finishes with exactly the trials asked for, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import load_study
from optuna.trial import TrialState

from .conftest import (
    completed_search_trials,
    kill_9_in_search,
    start_search,
    wait_for,
    write_space,
)

TRIALS = 10


@pytest.mark.slow
def test_kill_during_search_then_resume_completes_exactly_the_trials(tmp_path, ray_tmpdir):
    space = write_space(tmp_path, search={"trials": TRIALS, "max_concurrent": 2})
    run = tmp_path / "runs" / "k"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmpdir))
    kill_9_in_search(space, run, env, timeout_s=240)
    interrupted = json.loads((run / "results.json").read_text())
    assert interrupted["phases"]["search"]["status"] == "running"

    resumed = subprocess.run(
        ["invnas", "resume", str(run)], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    results = json.loads((run / "results.json").read_text())
    assert [e["status"] for e in results["phases"].values()] == ["completed"] * 3
    search = results["phases"]["search"]
    assert search["trials_completed"] == TRIALS and search["trials_failed"] == 0
    ids = [t["trial_id"] for t in results["trials"]]
    assert len(ids) == TRIALS and len(set(ids)) == TRIALS
    assert [t["number"] for t in results["trials"]] == list(range(TRIALS))
    assert len(list((run / "search").glob("experiment_state-*.json"))) == 2  # restored, not redone
    study = load_study(
        study_name="search", storage=JournalStorage(JournalFileBackend(str(run / "optuna.journal")))
    )
    told = [t for t in study.trials if t.state == TrialState.COMPLETE]
    run_ones = [t for t in told if "duplicate_of" not in t.user_attrs]
    assert sorted(t.user_attrs["tune_trial_id"] for t in run_ones) == sorted(ids)
    assert {t.user_attrs["duplicate_of"] for t in told if t not in run_ones} <= set(ids)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    (retrained,) = results["retrained"]
    assert retrained["status"] == "completed" and (run / retrained["weights"]).is_file()


def _supernet_epochs_done(run: Path) -> int:
    return len(list(run.glob("supernet/trial_*/checkpoint_*")))


STOPS = {
    "SIGTERM in the search": (signal.SIGTERM, completed_search_trials, 143),
    "SIGINT in the supernet": (signal.SIGINT, _supernet_epochs_done, 130),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", STOPS, ids=list(STOPS))
def test_a_stop_signal_interrupts_cleanly_and_resume_finishes(case, tmp_path, ray_tmpdir):
    stop, progress, code = STOPS[case]
    space = write_space(tmp_path, search={"trials": 4, "max_concurrent": 2}, supernet={"epochs": 3})
    run = tmp_path / "runs" / "s"
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmpdir))
    driver = start_search(space, run, env)
    try:
        wait_for(driver, lambda: progress(run) >= 1, "progress to interrupt", 600)
        driver.send_signal(stop)
        err, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == code, err.decode()[-3000:]
    assert f"interrupted; resume with: invnas resume {run}" in err.decode()
    stopped = json.loads((run / "results.json").read_text())
    assert "failed" not in [p["status"] for p in stopped["phases"].values()]
    assert stopped["failures"] == []
    assert not (run / "driver.json").exists()

    resumed = subprocess.run(
        ["invnas", "resume", str(run)], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert [p["status"] for p in results["phases"].values()] == ["completed"] * 3
    assert results["phases"]["search"]["trials_completed"] == 4
    assert len({t["arch"] for t in results["trials"]}) == 4
    study = load_study(
        study_name="search", storage=JournalStorage(JournalFileBackend(str(run / "optuna.journal")))
    )
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
