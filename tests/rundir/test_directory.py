"""The run directory: creation, typed JSON files written atomically, the recorded settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from invnas.rundir import Overrides, PhaseStatus, RunDir, RunInfo, empty_results, open_run
from invnas.space import load_space_file
from invnas.strategy.objectives import objectives_of

TINY = Path(__file__).resolve().parents[1] / "pipeline" / "tiny.yaml"


def _info(name: str = "r", **overrides) -> RunInfo:
    return RunInfo(name=name, created="2026-01-01T00:00:00+00:00", seed=0, **overrides)


def test_run_dir_create_open_and_atomic_results(tmp_path):
    _, config = load_space_file(TINY)
    run = RunDir.create(tmp_path / "r", "name: tiny\n", _info())
    assert run.space_file.read_text() == "name: tiny\n"
    run.write_results(empty_results("r", config, objectives_of(config.search)))
    results = open_run(run.path).read_results()
    assert results.phases.search.trials_requested == 4
    assert all(phase.status is PhaseStatus.PENDING for phase in results.phases)
    assert not list(run.path.glob(".results.json.*"))
    with pytest.raises(ValueError, match="exists; use --resume"):
        RunDir.create(tmp_path / "r", "", _info())
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="missing space.yaml, run.json"):
        open_run(tmp_path / "plain")
    assert json.loads(run.run_file.read_text())["name"] == "r"
    assert run.read_info() == _info()


def test_settings_apply_the_recorded_overrides(tmp_path):
    overrides = Overrides(seed=7, trials=2, cpus_per_trial=0.5)
    run = RunDir.create(tmp_path / "r", TINY.read_text(), _info(overrides=overrides))
    space, config = run.settings()
    _, written = load_space_file(TINY)
    assert space.name == "tiny"
    assert (config.seed, config.search.trials, config.resources.cpus_per_trial) == (7, 2, 0.5)
    assert config.supernet == written.supernet  # what was not overridden stays the file's
    assert json.loads(run.run_file.read_text())["overrides"] == {
        "seed": 7,
        "trials": 2,
        "cpus_per_trial": 0.5,
    }


def test_damaged_files_are_clear_errors(tmp_path):
    run = RunDir.create(tmp_path / "r", "name: tiny\n", _info())
    with pytest.raises(ValueError, match="results.json: missing; the run has not started"):
        run.read_results()
    run.results_file.write_text('{"name": "r", "se')
    with pytest.raises(ValueError, match="results.json: not valid JSON"):
        run.read_results()
    run.run_file.write_text('{"name": "r"}')
    with pytest.raises(ValueError, match="run.json: created: missing"):
        run.read_info()
    run.run_file.write_text('{"name": "r", "created": "x", "seed": 0, "overrides": {"x": 1}}')
    with pytest.raises(ValueError, match="run.json: overrides: .*expected an object with keys"):
        run.read_info()
