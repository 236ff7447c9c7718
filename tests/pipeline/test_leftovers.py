"""Finding and stopping the processes of a local Ray session, with real processes: one that
renamed itself and ignores SIGTERM but holds a log of the session open, as Ray's agents do."""

from __future__ import annotations

import subprocess
import sys
import time

from invnas.pipeline.ray_session import session_processes, stop_processes

from .conftest import running

STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
log = open(sys.argv[1], "a")
print("ready", flush=True)
time.sleep(600)
"""


def start_stubborn(log) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", STUBBORN, str(log)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "ready\n"
    return process


def test_a_sessions_processes_are_found_by_their_open_files_and_stopped(tmp_path):
    session = tmp_path / "session_1"
    other = tmp_path / "session_10"  # a name that only starts like the session's
    session.mkdir()
    other.mkdir()
    mine = start_stubborn(session / "agent.log")
    theirs = start_stubborn(other / "agent.log")
    try:
        assert session_processes(str(session)) == [mine.pid]
        started = time.monotonic()
        assert stop_processes([mine.pid], grace_s=0.5) == [mine.pid]
        assert time.monotonic() - started >= 0.5  # SIGTERM was ignored; SIGKILL ended it
        mine.wait(timeout=5)
        assert running(theirs.pid) and session_processes(str(session)) == []
    finally:
        for process in (mine, theirs):
            process.kill()
            process.wait()
