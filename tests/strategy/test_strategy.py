"""The search strategy without Ray: Pareto fronts and ranking, objectives and constraints,
define-by-run suggestions and the seeded Optuna samplers."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest

from invnas.config import SearchConfig
from invnas.rundir import Objective, TrialMetrics, TrialRecord
from invnas.space.arch import Arch, check_arch
from invnas.space.loader import load_space
from invnas.strategy.objectives import constraint_violations, is_feasible, objectives_of
from invnas.strategy.pareto import dominates, pareto_front, rank_by
from invnas.strategy.ranking import rank_trials, summarize_front
from invnas.strategy.samplers import SAMPLERS, make_sampler, uses_categorical
from invnas.strategy.suggest import suggest_arch

TINY = Path(__file__).resolve().parents[1] / "pipeline" / "tiny.yaml"
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
