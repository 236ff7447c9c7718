"""ArchSearcher on real Optuna studies, without Ray: the restore after a driver died between
snapshots, the same suggestions as Ray's OptunaSearch, and public interfaces only."""

from __future__ import annotations

import functools
import pickle
import re
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

import invnas.pipeline.searcher as searcher_module
from invnas.config import SearchConfig
from invnas.pipeline.searcher import (
    ABANDONED_ATTR,
    DUPLICATE_ATTR,
    TUNE_TRIAL_ATTR,
    ArchSearcher,
)
from invnas.space.loader import load_space
from invnas.strategy.suggest import suggest_arch

from .conftest import TINY

optuna.logging.set_verbosity(optuna.logging.WARNING)
METRICS = ["accuracy", "macs"]
MODES = ["max", "min"]


def make_searcher(
    journal: Path | None, target=4, batch=2, sampler=None, space=None
) -> ArchSearcher:
    storage = JournalStorage(JournalFileBackend(str(journal))) if journal else None
    return ArchSearcher(
        space=space or functools.partial(suggest_arch, space=load_space(TINY)),
        metric=METRICS,
        mode=MODES,
        sampler=sampler or optuna.samplers.RandomSampler(seed=0),
        storage=storage,
        study_name="search",
        search=SearchConfig(max_macs=150),
        target=target,
        batch_size=batch,
        max_failures=1,
    )


def result(accuracy=0.5, macs=100):
    return {"accuracy": accuracy, "params": 10, "macs": macs, "latency_ms": 1.0}


def states(searcher: ArchSearcher) -> list[TrialState]:
    return [t.state for t in searcher.study.trials]


def test_restore_counts_each_trial_once_and_fails_the_trials_asked_after_the_snapshot(tmp_path):
    journal, snapshot = tmp_path / "optuna.journal", str(tmp_path / "searcher.pkl")
    driver = make_searcher(journal)
    driver.suggest("t1"), driver.suggest("t2")
    driver.on_trial_complete("t1", result(0.6))
    driver.save(snapshot)
    # the driver goes on past the snapshot, then dies
    driver.on_trial_complete("t2", result(0.7))
    driver.suggest("t3"), driver.suggest("t4")

    restored = make_searcher(journal)  # as Tune unpickles it before restoring its state
    restored.restore(snapshot)
    assert restored.completed == 1 and restored.failed == 0
    S = TrialState
    assert states(restored) == [S.COMPLETE, S.COMPLETE, S.FAIL, S.FAIL]
    assert restored.study.user_attrs[ABANDONED_ATTR] == [2, 3]
    assert restored.suggest("t5") is None  # t2 still runs in the restored experiment

    restored.on_trial_complete("t2", result(0.7))  # Tune runs t2 again; told once already
    assert restored.completed == 2
    assert restored.study.trials[1].values == [0.7, 100]
    assert restored.suggest("t5") is not None and restored.suggest("t6") is not None
    restored.on_trial_complete("t5", result(0.8))
    restored.on_trial_complete("t5", result(0.8))  # a second completion counts nothing
    restored.on_trial_complete("t6", None, error=True)
    assert (restored.completed, restored.failed) == (3, 1)
    assert restored.suggest("t7") is not None
    restored.on_trial_complete("t7", result(0.9))
    assert restored.suggest("t8") == Searcher.FINISHED
    assert states(restored).count(S.COMPLETE) == 4 and S.RUNNING not in states(restored)
    tune_ids = [t.user_attrs[TUNE_TRIAL_ATTR] for t in restored.study.trials]
    assert tune_ids == ["t1", "t2", "t3", "t4", "t5", "t6", "t7"]

    again = optuna.load_study(
        study_name="search", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    assert [t.state for t in again.trials] == states(restored)


def test_trials_in_flight_at_the_snapshot_are_told_after_the_restore(tmp_path):
    journal, snapshot = tmp_path / "optuna.journal", str(tmp_path / "searcher.pkl")
    driver = make_searcher(journal)
    driver.suggest("t1"), driver.suggest("t2")
    driver.save(snapshot)

    restored = make_searcher(journal)
    restored.restore(snapshot)
    assert states(restored) == [TrialState.RUNNING] * 2
    restored.on_trial_complete("t1", result(0.6, macs=100))
    restored.on_trial_complete("t2", result(0.7, macs=200))
    assert states(restored) == [TrialState.COMPLETE] * 2 and restored.completed == 2
    assert [t.constraints for t in restored.study.trials] == [{"max_macs": -50}, {"max_macs": 50}]
    assert ABANDONED_ATTR not in restored.study.user_attrs


def test_a_value_optuna_refuses_leaves_no_trial_running():
    one_arch = {"arch": "the-only-one"}
    searcher = make_searcher(None, target=2, batch=1, space=lambda trial: one_arch)
    searcher.suggest("t1")
    with pytest.warns(UserWarning, match="nan is not acceptable"):
        searcher.on_trial_complete("t1", {**result(float("nan")), **one_arch})
    assert searcher.completed == 1 and states(searcher) == [TrialState.FAIL]
    assert searcher.suggest("t2") == one_arch and searcher.repeats_told == 0  # not reused


def first_three_alike(trial) -> dict[str, str]:
    """Optuna trials 0-2 suggest one architecture, later ones each their own."""
    return {"arch": "A" if trial.number < 3 else f"B{trial.number}"}


def test_an_architecture_in_flight_is_not_run_twice_in_a_batch():
    searcher = make_searcher(None, target=3, batch=2, space=first_three_alike)
    assert searcher.suggest("t1") == {"arch": "A"}
    assert searcher.suggest("t2") == {"arch": "B3"}  # trials 1 and 2 (A again) are held
    assert states(searcher) == [TrialState.RUNNING] * 4
    searcher.on_trial_complete("t1", {**result(0.6), "arch": "A"})
    trials = searcher.study.trials
    assert [t.state for t in trials[:3]] == [TrialState.COMPLETE] * 3
    assert [t.values for t in trials[:3]] == [[0.6, 100]] * 3
    assert [t.user_attrs.get(DUPLICATE_ATTR) for t in trials[:3]] == [None, "t1", "t1"]
    assert searcher.repeats_told == 2 and searcher.completed == 1


def test_repeats_held_for_a_failing_trial_fail_with_it():
    searcher = make_searcher(None, target=3, batch=2, space=first_three_alike)
    searcher.suggest("t1"), searcher.suggest("t2")
    searcher.on_trial_complete("t1", error=True)
    assert states(searcher)[:3] == [TrialState.FAIL] * 3
    assert searcher.repeats_told == 0 and searcher.failed == 1
    assert all(DUPLICATE_ATTR not in t.user_attrs for t in searcher.study.trials)


def test_held_repeats_survive_a_restore_and_are_told_after_it(tmp_path):
    journal, snapshot = tmp_path / "optuna.journal", str(tmp_path / "searcher.pkl")
    driver = make_searcher(journal, target=3, batch=2, space=first_three_alike)
    driver.suggest("t1"), driver.suggest("t2")
    driver.save(snapshot)

    restored = make_searcher(journal, target=3, batch=2, space=first_three_alike)
    restored.restore(snapshot)
    assert states(restored) == [TrialState.RUNNING] * 4  # none abandoned
    restored.on_trial_complete("t1", {**result(0.6), "arch": "A"})
    assert states(restored)[:3] == [TrialState.COMPLETE] * 3 and restored.repeats_told == 2


def test_same_suggestions_as_rays_optuna_search():
    """Batches of one without repeats ask Optuna exactly as OptunaSearch did: the same
    sampler calls, so the same architectures for the same seed."""
    space = functools.partial(suggest_arch, space=load_space(TINY))
    ours = make_searcher(None, target=12, batch=1, sampler=optuna.samplers.TPESampler(seed=3))
    ray_search = OptunaSearch(
        space=space, metric=METRICS, mode=MODES, sampler=optuna.samplers.TPESampler(seed=3)
    )
    for number in range(12):
        trial_id = f"t{number}"
        suggested = [ours.suggest(trial_id), ray_search.suggest(trial_id)]
        assert suggested[0] == suggested[1]
        score = result(accuracy=len(suggested[0]["arch"]) / 100, macs=number)
        ours.on_trial_complete(trial_id, score)
        ray_search.on_trial_complete(trial_id, score)


def test_searcher_reads_no_private_attribute_of_ray_or_optuna():
    source = Path(searcher_module.__file__).read_text()
    owners = set(re.findall(r"(\w+|\))\._(?!_)", source))
    assert owners <= {"self"}, owners
    assert "super().suggest" not in source and "ray.tune.search.optuna" not in source


def test_restores_the_snapshot_of_the_searcher_that_subclassed_optuna_search(tmp_path):
    journal, snapshot = tmp_path / "optuna.journal", tmp_path / "searcher.pkl"
    storage = JournalStorage(JournalFileBackend(str(journal)))
    space = functools.partial(suggest_arch, space=load_space(TINY))
    old = OptunaSearch(
        space=space, metric=METRICS, mode=MODES, storage=storage, study_name="search"
    )
    old.suggest("t1"), old.suggest("t2")
    old.on_trial_complete("t1", result(0.6))
    old.save(str(snapshot))
    state = pickle.loads(snapshot.read_bytes())  # + what the old subclass added to __dict__
    state.update(_in_flight={"t2"}, _batch_started=2, _completed_count=1, _failed_count=0)
    snapshot.write_bytes(pickle.dumps(state))

    restored = make_searcher(journal)
    restored.restore(str(snapshot))
    assert (restored.completed, restored.repeats_told) == (1, 0)
    restored.on_trial_complete("t2", result(0.7, macs=200))
    assert states(restored) == [TrialState.COMPLETE] * 2 and restored.completed == 2
    assert restored.study.trials[1].constraints == {"max_macs": 50}
    assert restored.suggest("t3") is not None
