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


def test_resume_refuses_an_edited_space_or_another_space_file(tmp_path, capsys):
    from invnas.cli import main
    from invnas.rundir.info import settings_digest

    space, config = load_space_file(TINY)
    info = _info(name="r", settings_digest=settings_digest(space, config))
    run = RunDir.create(tmp_path / "r", TINY.read_text(), info)
    edited = TINY.read_text().replace("epochs: 1", "epochs: 3", 1)
    assert edited != TINY.read_text()
    run.space_file.write_text(edited)
    assert main(["resume", str(run.path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "space.yaml: supernet differ from the space the run was started with" in line
    run.space_file.write_text(TINY.read_text())
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("name: s1", "name: first", 1))
    argv = ["search", str(other), "--resume", "--name", "r", "--storage", str(tmp_path)]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "other.yaml: network differ from the space the run was started with" in line
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json", "space.yaml"]


def test_the_digest_ignores_where_a_run_runs():
    import dataclasses

    from invnas.rundir.info import settings_digest

    space, config = load_space_file(TINY)
    elsewhere = dataclasses.replace(
        config, resources=dataclasses.replace(config.resources, cpus_per_trial=4)
    )
    assert settings_digest(space, elsewhere) == settings_digest(space, config)
    reseeded = dataclasses.replace(config, seed=config.seed + 1)
    changed = settings_digest(space, reseeded)
    assert [k for k in changed if changed[k] != settings_digest(space, config)[k]] == ["seed"]


def test_run_files_follow_the_users_umask(tmp_path):
    import os
    import stat

    previous = os.umask(0o002)
    try:
        run = RunDir.create(tmp_path / "r", "name: tiny\n", _info())
        _, config = load_space_file(TINY)
        run.write_results(empty_results("r", config, objectives_of(config.search)))
    finally:
        os.umask(previous)
    for file in (run.run_file, run.results_file, run.space_file):
        assert stat.S_IMODE(file.stat().st_mode) == 0o664, file.name
