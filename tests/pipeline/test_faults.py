"""Faults a run survives, with the real ``invnas search`` driver: a copied run directory, a
full disk, a killed driver's Ray processes, a deleted phase directory."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from pathlib import Path

import pytest
from optuna.trial import TrialState

from .conftest import (
    completed_search_trials,
    driver_env,
    journal_study,
    resume,
    start_search,
    wait_for,
    write_space,
)


def file_digests(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path) with the SHA-256 of its content."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def interrupt_in_search(space: Path, run: Path, env: dict[str, str]) -> None:
    """Start a search and stop it with SIGTERM once a search trial has completed."""
    driver = start_search(space, run, env)
    try:
        wait_for(driver, lambda: completed_search_trials(run) >= 1, "a search trial", 600)
        driver.send_signal(signal.SIGTERM)
        output, _ = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143, output.decode()[-3000:]


@pytest.mark.slow
def test_a_copied_run_resumes_into_its_own_files_and_leaves_the_original(tmp_path, ray_tmpdir):
    space = write_space(tmp_path, search={"trials": 6, "max_concurrent": 2})
    run = tmp_path / "runs" / "r"
    env = driver_env(ray_tmpdir)
    interrupt_in_search(space, run, env)
    copy = tmp_path / "moved" / "r"
    shutil.copytree(run, copy, symlinks=True)
    original = file_digests(run)
    journal_size = (copy / "optuna.journal").stat().st_size

    resumed = resume(copy, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    assert file_digests(run) == original
    results = json.loads((copy / "results.json").read_text())
    assert [p["status"] for p in results["phases"].values()] == ["completed"] * 3
    assert results["phases"]["search"]["trials_completed"] == 6
    assert (copy / "optuna.journal").stat().st_size > journal_size
    study = journal_study(copy)
    run_ones = [
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    ]
    assert sorted(t.user_attrs["tune_trial_id"] for t in run_ones) == sorted(
        t["trial_id"] for t in results["trials"]
    )
    searcher = max((copy / "search").glob("searcher-state-*.pkl")).read_bytes()
    assert str(run).encode() not in searcher  # the snapshot names no journal path

