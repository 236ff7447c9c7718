"""The search's parts without Ray: Pareto sorting and ranking, objectives and constraints, the
define-by-run space, the samplers and the batching searcher on real Optuna studies, the run
directory and the storage/address checks."""

from __future__ import annotations

import functools

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from invnas.config import SearchConfig
from invnas.pipeline.ray_session import check_address, resolve_storage
from invnas.pipeline.searcher import MAX_REPEATS, ArchSearcher
from invnas.space.loader import load_space
from invnas.strategy.suggest import suggest_arch

from .conftest import TINY

optuna.logging.set_verbosity(optuna.logging.WARNING)


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


def test_a_deleted_supernet_weights_file_comes_back_from_the_last_checkpoint(tmp_path):
    from invnas.pipeline.supernet_phase import restore_supernet_weights
    from invnas.rundir import RunDir, RunInfo

    run = RunDir.create(tmp_path / "r", "name: tiny\n", RunInfo("r", "2026-01-01", 0))
    with pytest.raises(ValueError, match="supernet.pt: missing, and .* holds no checkpoint"):
        restore_supernet_weights(run)
    for epoch in (0, 1):
        checkpoint = run.supernet_dir / "trial_00000_a" / f"checkpoint_{epoch:06d}"
        checkpoint.mkdir(parents=True)
        (checkpoint / "supernet.pt").write_bytes(b"epoch %d" % epoch)
    assert restore_supernet_weights(run)
    assert run.supernet_weights.read_bytes() == b"epoch 1"
    assert not restore_supernet_weights(run)  # present: left alone
