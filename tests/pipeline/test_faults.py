"""Faults a run survives, with the real ``invnas search`` driver: a copied run directory, a
full disk, a killed driver's Ray processes, a deleted phase directory."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import (
    _pids_using,
    completed_search_trials,
    driver_env,
    journal_trial_ids,
    kill_9_in_search,
    resume,
    running,
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
    assert journal_trial_ids(copy) == sorted(t["trial_id"] for t in results["trials"])
    searcher = max((copy / "search").glob("searcher-state-*.pkl")).read_bytes()
    assert str(run).encode() not in searcher  # the snapshot names no journal path


@pytest.fixture()
def small_disk(tmp_path):
    """A 256 MB tmpfs of its own (mounting one needs root, as in CI; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is made with a tmpfs mount, which needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to its last byte with one file; returns it."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (2**20, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


@pytest.mark.slow
def test_a_full_disk_fails_the_phase_in_one_line_and_keeps_what_was_written(
    small_disk, tmp_path, ray_tmpdir
):
    space = write_space(tmp_path, search={"trials": 6, "max_concurrent": 2})
    run = small_disk / "runs" / "d"
    env = driver_env(ray_tmpdir)
    driver = start_search(space, run, env)
    try:
        wait_for(driver, lambda: completed_search_trials(run) >= 1, "a search trial", 600)
        supernet = file_digests(run / "weights")
        filler = fill(small_disk)
        output, _ = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.kill()
    text = output.decode()
    assert driver.returncode == 1, text[-3000:]
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"invnas: {small_disk}") and "out of disk space" in last, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["phases"]["supernet"]["status"] == "completed"
    search = results["phases"]["search"]
    assert search["status"] == "failed" and "out of disk space" in search["error"]
    assert file_digests(run / "weights") == supernet
    assert not (run / "driver.json").exists()

    filler.unlink()
    resumed = resume(run, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert [p["status"] for p in results["phases"].values()] == ["completed"] * 3


@pytest.mark.slow
def test_resume_after_kill_9_stops_what_is_left_of_the_dead_drivers_ray(tmp_path, ray_tmpdir):
    space = write_space(tmp_path, search={"trials": 4, "max_concurrent": 2})
    run = tmp_path / "runs" / "k"
    env = driver_env(ray_tmpdir)
    kill_9_in_search(space, run, env)
    (session,) = (ray_tmpdir / "ray").glob("session_2*")
    assert json.loads((run / "driver.json").read_text())["ray_session"] == str(session)
    time.sleep(3)  # what goes down with the driver has gone by now
    left = [pid for pid in _pids_using(str(session)) if running(pid)]
    assert left  # Ray's agents outlive a killed driver

    resumed = resume(run, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert not [pid for pid in left if running(pid)]
    deadline = time.monotonic() + 30  # the resumed run's own Ray goes down as it exits
    while [p for p in _pids_using(str(ray_tmpdir)) if running(p)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in _pids_using(str(ray_tmpdir)) if running(p)]


@pytest.mark.slow
def test_resume_redoes_a_phase_whose_directory_was_deleted(tmp_path, ray_tmpdir):
    space = write_space(tmp_path, search={"trials": 4, "max_concurrent": 2})
    run = tmp_path / "runs" / "p"
    env = driver_env(ray_tmpdir)
    interrupt_in_search(space, run, env)
    shutil.rmtree(run / "search")

    resumed = resume(run, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert [p["status"] for p in results["phases"].values()] == ["completed"] * 3
    assert results["phases"]["search"]["trials_completed"] == 4
    assert len({t["arch"] for t in results["trials"]}) == 4
    assert len(list((run / "search").glob("experiment_state-*.json"))) == 1  # started afresh
    assert journal_trial_ids(run) == sorted(t["trial_id"] for t in results["trials"])
