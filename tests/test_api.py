"""The Python API runs the command line's jobs and hands back typed records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import invnas
from invnas.rundir import PhaseStatus, Run

TINY = Path(__file__).resolve().parent / "pipeline" / "tiny.yaml"


def test_api_names_stay_functions_after_their_packages_are_imported():
    import invnas.exporting.exporter  # noqa: F401
    import invnas.pipeline.driver  # noqa: F401
    import invnas.reporting  # noqa: F401

    for name in ("search", "resume", "export", "report", "load_run", "load_space"):
        assert callable(getattr(invnas, name)), name


def test_load_space_and_load_space_file():
    space = invnas.load_space(TINY)
    again, config = invnas.load_space_file(TINY)
    assert space == again and config.search.trials == 4
    with pytest.raises(FileNotFoundError, match="no such file"):
        invnas.load_space(TINY.with_name("absent.yaml"))
    with pytest.raises(ValueError, match="absent.yaml"):  # a run directory that is none
        invnas.load_run(TINY.parent / "absent.yaml")


@pytest.mark.slow  # a real three-phase search on a local Ray (~1 min)
def test_search_report_and_export_from_python(local_ray, tmp_path, capsys):
    run = invnas.search(TINY, name="api", storage=tmp_path, trials=2, progress=False)
    assert isinstance(run, Run) and run.path == tmp_path / "api"
    assert run.results.succeeded and run.results.phases.search.trials_completed == 2
    assert run.info.overrides.trials == 2
    assert capsys.readouterr().err == ""  # progress=False: nothing printed
    assert invnas.load_run(run.path) == run
    report = invnas.report(run.path, plots=False)
    assert report["name"] == "api" and report["trials"]["completed"] == 2
    out = invnas.export(run.path, tmp_path / "exported")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["arch"] == run.results.best.arch
    assert invnas.resume(run.path, progress=False).results == run.results  # nothing left to do
    with pytest.raises(ValueError, match="--trials: 0"):
        invnas.search(TINY, name="bad", storage=tmp_path, trials=0)
    assert not (tmp_path / "bad").exists()
    assert run.results.phases.retrain.status is PhaseStatus.COMPLETED
