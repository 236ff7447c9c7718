"""``kill -9`` of the real ``invnas search`` driver during the search phase, then
``invnas resume``: the run finishes with exactly the trials asked for, none twice. And a Tune
experiment that returns early although nobody asked the run to stop is carried on."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from .conftest import (
    completed_search_trials,
    driver_env,
    journal_study,
    journal_trial_ids,
    kill_9_in_search,
    resume,
    start_search,
    wait_for,
    write_space,
)

TRIALS = 10


def assert_search_done(run: Path, trials: int) -> dict:
    """The run's results.json, after asserting that every phase completed with exactly
    ``trials`` distinct search trials, each one told to the journal once."""
    results = json.loads((run / "results.json").read_text())
    assert [e["status"] for e in results["phases"].values()] == ["completed"] * 3
    search = results["phases"]["search"]
    assert search["trials_completed"] == trials and search["trials_failed"] == 0
    ids = [t["trial_id"] for t in results["trials"]]
    assert len(ids) == trials and len(set(ids)) == trials
    assert [t["number"] for t in results["trials"]] == list(range(trials))
    assert journal_trial_ids(run) == sorted(ids)
    repeats = [t for t in journal_study(run).trials if "duplicate_of" in t.user_attrs]
    assert {t.user_attrs["duplicate_of"] for t in repeats} <= set(ids)
    return results


@pytest.mark.slow
def test_kill_during_search_then_resume_completes_exactly_the_trials(tmp_path, ray_tmpdir):
    space = write_space(tmp_path, search={"trials": TRIALS, "max_concurrent": 2})
    run = tmp_path / "runs" / "k"
    env = driver_env(ray_tmpdir)
    kill_9_in_search(space, run, env, timeout_s=240)
    interrupted = json.loads((run / "results.json").read_text())
    assert interrupted["phases"]["search"]["status"] == "running"

    resumed = resume(run, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    results = assert_search_done(run, TRIALS)
    assert len(list((run / "search").glob("experiment_state-*.json"))) >= 2  # restored, not redone
    (retrained,) = results["retrained"]
    assert retrained["status"] == "completed" and (run / retrained["weights"]).is_file()


def _supernet_epochs_done(run: Path) -> int:
    return len(list(run.glob("supernet/trial_*/checkpoint_*")))


def _retrain_epochs_done(run: Path) -> int:
    return len(list(run.glob("retrain/trial_*/checkpoint_*")))


STOPS = {
    "SIGTERM in the search": (signal.SIGTERM, completed_search_trials, 143),
    "SIGINT in the supernet": (signal.SIGINT, _supernet_epochs_done, 130),
    "SIGHUP in the retraining": (signal.SIGHUP, _retrain_epochs_done, 129),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", STOPS, ids=list(STOPS))
def test_a_stop_signal_interrupts_cleanly_and_resume_finishes(case, tmp_path, ray_tmpdir):
    stop, progress, code = STOPS[case]
    space = write_space(
        tmp_path,
        search={"trials": 4, "max_concurrent": 2},
        supernet={"epochs": 3},
        retrain={"epochs": 30},  # still training when the signal is handled
    )
    run = tmp_path / "runs" / "s"
    env = driver_env(ray_tmpdir)
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

    resumed = resume(run, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    results = assert_search_done(run, 4)
    assert len({t["arch"] for t in results["trials"]}) == 4


@pytest.mark.slow
def test_tune_returning_early_unasked_is_carried_on(tmp_path, ray_tmpdir):
    """SIGUSR1 makes Tune end its loop early (its own handler) while the run's stop handler
    saw nothing: the driver restores the experiment and the run completes in one go. (Python
    runs the handler only when the driver's main thread is back from Ray's C calls, a second or
    so later: enough trials are asked that the search is still on then.)"""
    trials = 16
    space = write_space(tmp_path, search={"trials": trials, "max_concurrent": 2})
    run = tmp_path / "runs" / "u"
    driver = start_search(space, run, driver_env(ray_tmpdir))
    try:
        wait_for(driver, lambda: completed_search_trials(run) >= 1, "a search trial", 600)
        driver.send_signal(signal.SIGUSR1)
        output = driver.communicate(timeout=600)[0].decode()
    finally:
        driver.kill()
    assert driver.returncode == 0, output[-3000:]
    assert "restoring the experiment" in output
    assert_search_done(run, trials)
