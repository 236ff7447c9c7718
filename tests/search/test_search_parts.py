"""The search's parts without Ray: Pareto sorting and ranking, objectives and constraints, the
define-by-run space, the samplers and the batching searcher on real Optuna studies, the run
directory and the storage/address checks."""

from __future__ import annotations

import functools
import random

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from invnas.config import SearchConfig
from invnas.rundir import Objective, TrialMetrics, TrialRecord
from invnas.search.objectives import constraint_violations, is_feasible, objectives_of
from invnas.search.pareto import dominates, pareto_front, rank_by
from invnas.search.ranking import rank_trials, summarize_front
from invnas.search.ray_session import check_address, resolve_storage
from invnas.search.samplers import SAMPLERS, make_sampler, uses_categorical
from invnas.search.searcher import MAX_REPEATS, ArchSearcher
from invnas.search.suggest import suggest_arch
from invnas.space.arch import Arch, check_arch
from invnas.space.loader import load_space

from .conftest import TINY

optuna.logging.set_verbosity(optuna.logging.WARNING)
ACC_MACS = [Objective("accuracy", "max"), Objective("macs", "min")]


def brute_front(points, objectives):
    return [
        i
        for i, p in enumerate(points)
        if not any(
            all(
                (q[o.metric] >= p[o.metric]) if o.mode == "max" else (q[o.metric] <= p[o.metric])
                for o in objectives
            )
            and any(q[o.metric] != p[o.metric] for o in objectives)
            for q in points
        )
    ]


def test_pareto_front_matches_brute_force_on_random_points():
    rng = random.Random(0)
    for _ in range(50):
        points = [
            {"accuracy": rng.choice([0.5, 0.6, 0.7, 0.8]), "macs": rng.choice([1, 2, 3, 4])}
            for _ in range(rng.randint(1, 12))
        ]
        assert pareto_front(points, ACC_MACS) == brute_front(points, ACC_MACS)


def test_dominance_and_lexicographic_rank():
    a, b = {"accuracy": 0.9, "macs": 10}, {"accuracy": 0.8, "macs": 10}
    assert dominates(a, b, ACC_MACS) and not dominates(b, a, ACC_MACS)
    assert not dominates(a, dict(a), ACC_MACS)
    points = [
        {"accuracy": 0.8, "macs": 5},
        {"accuracy": 0.9, "macs": 9},
        {"accuracy": 0.9, "macs": 7},
    ]
    assert rank_by(points, ACC_MACS) == [2, 1, 0]


def record(trial_id, accuracy, macs, status="completed", feasible=True, arch=None):
    return TrialRecord(
        trial_id=trial_id,
        number=0,
        arch=arch or trial_id,
        status=status,
        metrics=None if status != "completed" else TrialMetrics(accuracy, 1, macs, 1.0),
        feasible=feasible,
        error=None if status == "completed" else "boom",
    )


def test_front_best_and_retrain_order_skip_failed_infeasible_and_duplicate_archs():
    records = [
        record("a", 0.90, 100),
        record("b", 0.95, 300),
        record("c", 0.99, 50, feasible=False),
        record("d", 0.0, 0, status="failed"),
        record("e", 0.85, 200),  # dominated by a
        record("f", 0.95, 300, arch="b"),  # same arch as b
        record("g", 0.80, 40),
    ]
    pareto, best = summarize_front(records, ACC_MACS)
    assert pareto == ("a", "b", "f", "g")
    assert best.trial_id == "b"
    assert [r.trial_id for r in rank_trials(records, ACC_MACS)] == ["b", "a", "g", "e"]


def test_objectives_and_constraints():
    search = SearchConfig(objectives=("accuracy", "latency"), max_params=100, max_latency_ms=2.0)
    assert objectives_of(search) == [Objective("accuracy", "max"), Objective("latency_ms", "min")]
    metrics = {"accuracy": 0.9, "params": 120, "macs": 5, "latency_ms": 1.5}
    assert constraint_violations(search, metrics) == {"max_params": 20.0, "max_latency_ms": -0.5}
    assert not is_feasible(search, metrics)
    assert is_feasible(search, {**metrics, "params": 100})
    with pytest.raises(ValueError, match="listed twice"):
        objectives_of(SearchConfig(objectives=("macs", "macs")))


@pytest.mark.parametrize("categorical", [True, False])
def test_define_by_run_suggests_valid_archs_with_fixed_parameters(categorical):
    space = load_space(TINY)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = suggest_arch(trial, space=space, categorical=categorical)
        arch = Arch.decode(config["arch"])
        check_arch(space, arch)
        assert trial.user_attrs["arch"] == config["arch"]
        # block granularity: one op per block of the deepest choice, always
        assert set(trial.params) == {"s1.depth", "s1.width", "s1.op", "s2.width", "s2.op0"}
        kinds = {type(v) for v in trial.params.values()}
        assert (str in kinds) == categorical
        study.tell(trial, 0.5)
        seen.add(config["arch"])
    assert len(seen) > 5


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_drives_a_seeded_study(name):
    space = load_space(TINY)
    objectives = 1 if name == "cmaes" else 2

    def run():
        sampler = make_sampler(name, n_objectives=objectives, trials=8, seed=3)
        study = optuna.create_study(sampler=sampler, directions=["maximize"] * objectives)
        archs = []
        for i in range(8):
            trial = study.ask()
            arch = suggest_arch(trial, space=space, categorical=uses_categorical(name))["arch"]
            trial.set_constraint("max_macs", float(i % 2) - 0.5)
            archs.append(arch)
            study.tell(trial, [len(arch) / 100.0 + i * 0.01] * objectives)
        return archs

    first = run()
    assert first == run()  # same seed, same suggestions
    for arch in first:
        check_arch(space, Arch.decode(arch))


def test_cmaes_refuses_several_objectives():
    with pytest.raises(ValueError, match="cmaes is single-objective"):
        make_sampler("cmaes", n_objectives=2, trials=8, seed=0)
    with pytest.raises(ValueError, match="not a sampler"):
        make_sampler("annealing", n_objectives=1, trials=8, seed=0)


def make_searcher(target=4, batch=2, max_failures=1, space=None):
    return ArchSearcher(
        space=space or functools.partial(suggest_arch, space=load_space(TINY)),
        metric=["accuracy", "macs"],
        mode=["max", "min"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        search=SearchConfig(max_macs=10**9),
        target=target,
        batch_size=batch,
        max_failures=max_failures,
    )


def result(accuracy=0.5):
    return {"accuracy": accuracy, "params": 10, "macs": 100, "latency_ms": 1.0}


def test_searcher_suggests_in_batches_and_counts_completed_trials():
    searcher = make_searcher(target=3, batch=2)
    assert searcher.suggest("t1") is not None and searcher.suggest("t2") is not None
    assert searcher.suggest("t3") is None  # batch full
    searcher.on_trial_complete("t1", result())
    assert searcher.suggest("t3") is None  # waits for the whole batch
    searcher.on_trial_complete("t2", None, error=True)  # a failure does not use up the budget
    assert searcher.suggest("t3") is not None and searcher.suggest("t4") is not None
    searcher.on_trial_complete("t3", result())
    searcher.on_trial_complete("t4", result())
    assert searcher.completed == 3 and searcher.failed == 1
    assert searcher.suggest("t5") == Searcher.FINISHED
    states = [t.state for t in searcher.study.trials]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 1
    assert searcher.study.trials[0].constraints == {"max_macs": 100 - 10**9}


def test_searcher_stops_after_too_many_failures():
    searcher = make_searcher(target=5, batch=1, max_failures=1)
    for trial_id in ("t1", "t2"):
        assert searcher.suggest(trial_id) is not None
        searcher.on_trial_complete(trial_id, None, error=True)
    assert searcher.too_many_failures
    assert searcher.suggest("t3") == Searcher.FINISHED


def test_searcher_restore_fails_trials_asked_after_the_snapshot(tmp_path):
    searcher = make_searcher(target=4, batch=2)
    searcher.suggest("t1")
    searcher.save(str(tmp_path / "snapshot.pkl"))
    searcher.suggest("t2")  # asked after the snapshot: lost with the driver
    restored = make_searcher(target=4, batch=2)
    restored.restore(str(tmp_path / "snapshot.pkl"))
    # in-memory storage is pickled whole, so the lost ask is not even there
    assert [t.state for t in restored.study.trials] == [TrialState.RUNNING]
    assert restored.suggest("t3") is not None


def test_address_and_storage_checks(tmp_path, monkeypatch):
    assert check_address(None) is None and check_address("auto") == "auto"
    assert check_address("10.0.0.5:6379") == "10.0.0.5:6379"
    for bad in ("foo", "host:0", "host:99999", "http://x"):
        with pytest.raises(ValueError, match="--address"):
            check_address(bad)
    monkeypatch.chdir(tmp_path)
    assert resolve_storage("runs", joining=False) == tmp_path / "runs"
    assert resolve_storage(f"file://{tmp_path}/u", joining=True) == tmp_path / "u"
    with pytest.raises(ValueError, match="relative path"):
        resolve_storage("runs", joining=True)
    with pytest.raises(ValueError, match="s3:// storage is not supported"):
        resolve_storage("s3://bucket/runs", joining=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot create"):
        resolve_storage(str(tmp_path / "file" / "runs"), joining=False)


def test_searcher_answers_a_scored_architecture_without_running_it_again():
    searcher = make_searcher(target=24, batch=1)
    run_archs = []
    for number in range(24):
        trial_id = f"t{number}"
        config = searcher.suggest(trial_id)
        run_archs.append(config["arch"])
        arch = config["arch"]
        score = {**result(accuracy=len(arch) / 100), "macs": sum(map(ord, arch)), "arch": arch}
        searcher.on_trial_complete(trial_id, score)
    assert len(set(run_archs)) == 24  # random draws from 32 archs would repeat long before
    repeats = [t for t in searcher.study.trials if "duplicate_of" in t.user_attrs]
    assert repeats and searcher.repeats_told == len(repeats)
    by_tune_id = {
        t.user_attrs["tune_trial_id"]: t
        for t in searcher.study.trials
        if "tune_trial_id" in t.user_attrs
    }
    for repeat in repeats:
        first = by_tune_id[repeat.user_attrs["duplicate_of"]]
        assert repeat.state == TrialState.COMPLETE
        assert repeat.user_attrs["arch"] == first.user_attrs["arch"]
        assert repeat.values == first.values and repeat.constraints == first.constraints


def test_searcher_runs_a_repeat_when_the_space_is_exhausted():
    searcher = make_searcher(target=3, batch=1, space=lambda trial: {"arch": "the-only-one"})
    for trial_id in ("t1", "t2"):
        assert searcher.suggest(trial_id) == {"arch": "the-only-one"}
        searcher.on_trial_complete(trial_id, {**result(), "arch": "the-only-one"})
    assert searcher.completed == 2 and searcher.repeats_told == MAX_REPEATS
