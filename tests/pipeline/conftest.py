"""Fixtures for the search tests: the tiny space, variants of it, a shared local Ray and a
two-node Ray cluster started with ``ray start`` (and torn down by the PIDs it started)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny.yaml"


def write_space(directory: Path, name: str = "tiny.yaml", **sections) -> Path:
    """The tiny space with some run sections changed, e.g. ``retrain={"lr": 10.0}``
    (merged key by key into the section) or ``seed=3``."""
    data = yaml.safe_load(TINY.read_text())
    for key, value in sections.items():
        if isinstance(value, dict):
            data[key] = {**data.get(key, {}), **value}
        else:
            data[key] = value
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def short_tempdir(prefix: str) -> Path:
    """A fresh directory under /tmp with a short path (Ray's socket paths must stay short)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pids_using(marker: str) -> list[int]:
    """PIDs of the processes that mention ``marker`` (our unique temp dir) on their command line
    or in a file they hold open (Ray's agents rename themselves, but keep their logs open)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            files = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        if any(marker in text for text in (command, *files)):
            pids.append(int(entry.name))
    return pids


def running(pid: int) -> bool:
    """True while ``pid`` exists and is no zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.2)


@pytest.fixture()
def two_node_cluster():
    """A Ray head without CPUs and a worker node with two, on this machine; yields ``HOST:PORT``.

    The head hosts no trial, so every trial must run on the other node. Both use a temp dir of
    their own, and teardown stops exactly the processes that mention it (never ``ray stop``,
    which would stop every Ray on the machine)."""
    temp = short_tempdir("rc")
    port = _free_port()
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")
    common = [f"--temp-dir={temp}", "--disable-usage-stats"]
    try:
        subprocess.run(
            [
                "ray",
                "start",
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                "--num-cpus=0",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            ["ray", "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", *common],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"127.0.0.1:{port}"
    finally:
        _stop(_pids_using(str(temp)))
        shutil.rmtree(temp, ignore_errors=True)


def completed_search_trials(run: Path) -> int:
    return sum(1 for f in run.glob("search/trial_*/result.json") if f.stat().st_size > 0)


def start_search(space: Path, run: Path, env: dict[str, str]) -> subprocess.Popen:
    """``invnas search`` of ``space`` into the run directory ``run``, as a separate driver."""
    command = ["invnas", "search", str(space), "--name", run.name, "--storage", str(run.parent)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(driver: subprocess.Popen, done, what: str, timeout_s: float) -> None:
    """Poll until ``done()``; fail with the driver's output if it exits first or time runs
    out (a machine busy compiling the kernel takes minutes)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert driver.poll() is None, driver.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, f"no {what} in {timeout_s:.0f} s"
        time.sleep(0.05)


@pytest.fixture()
def ray_tmpdir():
    """A private RAY_TMPDIR for the subprocesses, so that teardown stops only their Ray."""
    temp = short_tempdir("rk")
    yield temp
    _stop(_pids_using(str(temp)))
    shutil.rmtree(temp, ignore_errors=True)


def driver_env(ray_tmpdir: Path) -> dict[str, str]:
    """The environment of a driver subprocess whose local Ray lives under ``ray_tmpdir``."""
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(ray_tmpdir))


def resume(run: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``invnas resume`` of ``run``, to its end."""
    return subprocess.run(
        ["invnas", "resume", str(run)], env=env, capture_output=True, text=True, timeout=600
    )


def journal_study(run: Path):
    """The search study in the run's ``optuna.journal``."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.study import load_study

    backend = JournalFileBackend(str(run / "optuna.journal"))
    return load_study(study_name="search", storage=JournalStorage(backend))


def kill_9_in_search(space: Path, run: Path, env: dict[str, str], timeout_s: float = 600) -> None:
    """Start a search of ``space`` into ``run`` and SIGKILL its driver once a search trial has
    completed."""
    driver = start_search(space, run, env)
    try:
        wait_for(driver, lambda: completed_search_trials(run) >= 1, "a search trial", timeout_s)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()


def journal_trial_ids(run: Path) -> list[str]:
    """The Tune trial ids of the search study's COMPLETE trials that ran (not answered as
    repeats), sorted; asserts that no trial stays RUNNING."""
    from optuna.trial import TrialState

    trials = journal_study(run).trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    return sorted(
        t.user_attrs["tune_trial_id"]
        for t in trials
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    )
