"""End-to-end searches of the tiny space on a real local Ray: the run directory contract,
weights that load, the Optuna journal, refusal to overwrite, resume of a finished run, and
reproducibility (same seed, same architectures and metrics)."""

from __future__ import annotations

import json

import pytest
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import load_study
from optuna.trial import TrialState

from invnas.cli import main
from invnas.nn import build_model
from invnas.nn.supernet import Supernet
from invnas.pipeline.driver import SearchOptions, resume_run, run_search
from invnas.rundir import SCHEMA_VERSION, Objective, PhaseStatus
from invnas.space.arch import Arch, check_arch
from invnas.space.cost import cost
from invnas.space.loader import load_space
from invnas.strategy.pareto import pareto_front

from .conftest import write_space

TRIALS = 6


@pytest.fixture(scope="module")
def space_file(tmp_path_factory):
    return write_space(tmp_path_factory.mktemp("space"), search={"trials": TRIALS})


@pytest.fixture(scope="module")
def finished(local_ray, space_file, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    run, results = run_search(space_file, SearchOptions(name="first", storage=str(storage)))
    return run, results


def test_run_directory_holds_every_part_of_the_contract(finished, space_file):
    run, results = finished
    assert run.space_file.read_text() == space_file.read_text()
    info = run.read_info()
    assert info.name == "first" and info.seed == 0 and info.address is None
    for part in ("supernet", "search", "retrain"):
        assert (run.path / part / "tuner.pkl").is_file()
    assert results == run.read_results()
    assert {p: e.status for p, e in results.phases.named()} == dict.fromkeys(
        ("supernet", "search", "retrain"), PhaseStatus.COMPLETED
    )
    assert all(phase.seconds > 0 for phase in results.phases)  # wall-clock time of each
    search = results.phases.search
    assert search.trials_requested == search.trials_completed == TRIALS
    assert search.trials_failed == 0 and results.failures == ()
    assert results.objectives == (Objective("accuracy", "max"), Objective("macs", "min"))
    assert json.loads(run.results_file.read_text())["schema_version"] == SCHEMA_VERSION


def test_trials_carry_real_metrics_and_the_front_is_non_dominated(finished):
    run, results = finished
    space = load_space(run.space_file)
    trials = results.trials
    assert [t.number for t in trials] == list(range(TRIALS))
    assert len({t.trial_id for t in trials}) == TRIALS
    for trial in trials:
        arch = Arch.decode(trial.arch)
        check_arch(space, arch)
        counted = cost(space, arch)
        assert trial.metrics.params == counted.params
        assert trial.metrics.macs == counted.macs
        assert 0.0 <= trial.metrics.accuracy <= 1.0 and trial.metrics.latency_ms > 0
        assert trial.feasible and trial.status == "completed"
    objectives = [Objective("accuracy", "max"), Objective("macs", "min")]
    points = [t.metrics.as_mapping() for t in trials]
    expected = tuple(trials[i].trial_id for i in pareto_front(points, objectives))
    assert results.pareto == expected
    front = [t for t in trials if t.trial_id in results.pareto]
    assert results.best.metrics.accuracy == max(t.metrics.accuracy for t in front)


def test_weights_load_into_the_models_they_were_trained_as(finished):
    run, results = finished
    space = load_space(run.space_file)
    supernet = Supernet(space)
    supernet.load_state_dict(torch.load(run.supernet_weights, weights_only=True))
    assert results.phases.supernet.weights == "weights/supernet.pt"
    (retrained,) = results.retrained
    assert retrained.rank == 1 and retrained.status == "completed"
    assert retrained.trial_id == results.best.trial_id
    model = build_model(space, Arch.decode(retrained.arch))
    model.load_state_dict(torch.load(run.path / retrained.weights, weights_only=True))
    metrics = retrained.metrics
    assert 0.0 <= metrics.test_accuracy <= 1.0
    assert metrics.supernet_accuracy == results.best.metrics.accuracy


def test_optuna_journal_records_each_trial_once(finished):
    run, results = finished
    study = load_study(
        study_name="search", storage=JournalStorage(JournalFileBackend(str(run.journal_file)))
    )
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    repeats = [t for t in complete if "duplicate_of" in t.user_attrs]
    assert results.phases.search.repeats_skipped == len(repeats)
    run_ones = [t for t in complete if t not in repeats]
    assert len(run_ones) == TRIALS and len({t.user_attrs["arch"] for t in run_ones}) == TRIALS
    by_tune_id = {t.user_attrs["tune_trial_id"]: t for t in run_ones}
    for trial in results.trials:
        told = by_tune_id[trial.trial_id]
        assert told.user_attrs["arch"] == trial.arch
        assert told.values == [trial.metrics.accuracy, trial.metrics.macs]


def test_a_new_search_into_an_existing_run_is_refused(finished, space_file, capsys):
    run, _ = finished
    before = sorted(p.name for p in run.path.iterdir())
    code = main(["search", str(space_file), "--name", "first", "--storage", str(run.path.parent)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("invnas: ") and "exists; use --resume" in err[0]
    assert sorted(p.name for p in run.path.iterdir()) == before


def test_resuming_a_finished_run_skips_every_phase(finished, space_file):
    run, results = finished
    stamp = run.results_file.stat().st_mtime_ns
    again_run, again = resume_run(run.path)
    assert again_run.path == run.path and again == results
    options = SearchOptions(name="first", storage=str(run.path.parent), resume=True)
    flag_run, flagged = run_search(space_file, options)  # search --resume: the same
    assert flag_run.path == run.path and flagged == results
    assert run.results_file.stat().st_mtime_ns == stamp  # nothing was rerun or rewritten


def test_same_seed_gives_the_same_architectures_and_metrics(finished, space_file):
    run, results = finished
    _, twin = run_search(space_file, SearchOptions(name="second", storage=str(run.path.parent)))

    def comparable(res):
        return [(t.arch, t.metrics.accuracy, t.metrics.params, t.metrics.macs) for t in res.trials]

    assert comparable(twin) == comparable(results)
    assert twin.phases.supernet.val_accuracy == results.phases.supernet.val_accuracy
    first, second = results.retrained[0], twin.retrained[0]
    assert (first.arch, first.metrics.test_accuracy) == (second.arch, second.metrics.test_accuracy)
