"""A torn last line of the Optuna journal is dropped (with a backup); worse damage is refused."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from invnas.rundir.journal import repair_journal


def _journal(tmp_path, trials: int = 3):
    path = tmp_path / "optuna.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="search", storage=storage)
    for value in range(trials):
        study.tell(study.ask(), float(value))
    return path


def _values(path):
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.load_study(study_name="search", storage=storage)
    return [t.value for t in study.trials]


def test_an_intact_journal_is_left_alone(tmp_path):
    path = _journal(tmp_path)
    before = path.read_bytes()
    assert not repair_journal(path)
    assert path.read_bytes() == before
    assert not repair_journal(tmp_path / "absent.journal")


def test_a_torn_last_line_is_dropped_and_the_study_opens(tmp_path):
    path = _journal(tmp_path)
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"op_code": 6, "worker_id": "x", "trial_id"')  # cut short
    assert repair_journal(path)
    assert path.read_bytes() == intact
    assert (tmp_path / "optuna.journal.torn").read_bytes().startswith(intact)
    assert _values(path) == [0.0, 1.0, 2.0]


def test_garbage_replacing_the_last_line_is_dropped(tmp_path):
    path = _journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + b"\x00\x00garbage\n")
    assert repair_journal(path)
    assert path.read_bytes() == b"".join(lines[:-1])
    json.loads(path.read_bytes().splitlines()[-1])  # ends on a whole operation


def test_damage_before_the_last_line_is_a_clear_error(tmp_path):
    path = _journal(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = b"not json\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=r"optuna.journal: line 3 is not an Optuna journal"):
        repair_journal(path)
