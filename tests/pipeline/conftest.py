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
    """PIDs of the processes whose command line mentions ``marker`` (our unique temp dir), or
    that hold a file under it open (Ray's agents rename their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in command or _holds_file_under(entry, marker):
            pids.append(int(entry.name))
    return pids


def _holds_file_under(process: Path, marker: str) -> bool:
    try:
        return any(marker in os.readlink(fd) for fd in (process / "fd").iterdir())
    except OSError:  # gone, or another user's
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
    yield from _cluster(head_cpus=0, node_cpus=2)


@pytest.fixture()
def two_one_cpu_nodes():
    """A Ray head and a worker node of one CPU each, on this machine; yields ``HOST:PORT``."""
    yield from _cluster(head_cpus=1, node_cpus=1)


def _cluster(head_cpus: int, node_cpus: int):
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
                f"--num-cpus={head_cpus}",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            ["ray", "start", f"--address=127.0.0.1:{port}", f"--num-cpus={node_cpus}", *common],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"127.0.0.1:{port}"
    finally:
        _stop(_pids_using(str(temp)))
        shutil.rmtree(temp, ignore_errors=True)
