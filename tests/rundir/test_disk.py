"""The one-line message for a full disk, from a raised OSError or a trial's error text."""

from __future__ import annotations

import errno
from pathlib import Path

from invnas.rundir import RunDir
from invnas.rundir.disk import disk_full_message


def test_a_full_disk_names_the_path_and_the_free_space(tmp_path):
    error = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "results.json"))
    message = disk_full_message(error, Path("/elsewhere"))
    assert message.startswith(f"{tmp_path / 'results.json'}: out of disk space (No space left")
    assert "MB free there" in message and "\n" not in message


def test_a_write_to_an_open_file_names_the_fallback_and_a_cause_is_followed(tmp_path):
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as quota:
            raise RuntimeError("saving the experiment failed") from quota
    except RuntimeError as error:
        message = disk_full_message(error, tmp_path)
    assert message.startswith(f"{tmp_path}: out of disk space (Disk quota exceeded)")


def test_a_trials_error_text_and_the_file_size_limit_are_recognised():
    text = "OSError: [Errno 27] File too large: '/runs/R/search/trial_1/result.json'"
    message = disk_full_message(text, Path("/runs/R"))
    assert message.startswith("/runs/R/search/trial_1/result.json: out of disk space (File too")
    assert "ulimit -f" in message


def test_other_errors_are_not_a_full_disk(tmp_path):
    assert disk_full_message(OSError(errno.EACCES, "Permission denied"), tmp_path) is None
    assert disk_full_message("OSError: [Errno 2] No such file or directory: 'x'", tmp_path) is None
    assert disk_full_message(ValueError("bad"), tmp_path) is None


def test_the_reserve_is_held_while_driving_and_given_back(tmp_path):
    run = RunDir(tmp_path)
    with run.driving("/tmp/ray/session_x"):
        assert run.reserve_file.stat().st_size > 0
        assert run.read_driver().ray_session == "/tmp/ray/session_x"
        run.release_reserve()
        assert not run.reserve_file.exists()
    assert not run.driver_file.exists() and run.read_driver() is None
