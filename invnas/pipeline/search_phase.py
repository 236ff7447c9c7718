"""Phase 2: the architecture search. Optuna suggests architectures through
:class:`~invnas.pipeline.searcher.ArchSearcher`; each Tune trial extracts its subnet from the
trained supernet, recalibrates BatchNorm on training batches and reports validation accuracy,
params, MACs and measured latency."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import ray
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune

from invnas.engine import load_supernet, score_arch
from invnas.nn.supernet import Supernet
from invnas.pipeline.context import TrialContext, portable_errors
from invnas.pipeline.experiment import (
    fit,
    interrupted,
    parse_trial_dirname,
    run_config,
    trial_dirname,
    trial_error,
    unfinished,
)
from invnas.pipeline.progress import TuneProgress
from invnas.pipeline.searcher import DUPLICATE_ATTR, ArchSearcher
from invnas.rundir import Failure, PhaseStatus, RunDir, SearchPhase, TrialMetrics, TrialRecord
from invnas.rundir.journal import repair_journal
from invnas.space.arch import Arch
from invnas.strategy.objectives import is_feasible, objectives_of
from invnas.strategy.samplers import make_sampler, uses_categorical, uses_constraints
from invnas.strategy.suggest import ARCH_KEY, suggest_arch

log = logging.getLogger(__name__)

STUDY_NAME = "search"


@portable_errors
def evaluate_arch(config: dict, context: TrialContext, supernet_weights: str) -> None:
    """Tune trainable: score the architecture ``config["arch"]`` with inherited weights
    (:func:`invnas.engine.score_arch`)."""
    device = context.setup()
    arch = Arch.decode(config[ARCH_KEY])
    data = context.data()
    supernet = _supernet(context.space, supernet_weights)
    score = score_arch(
        supernet,
        arch,
        data,
        context.run.search.bn_batches,
        device=device,
        latency_threads=context.threads,
    )
    if not math.isfinite(score.loss):
        raise FloatingPointError(
            f"validation loss of {arch.encode()} is {score.loss} with the supernet's weights"
        )
    tune.report(
        {
            "accuracy": score.accuracy,
            "val_loss": score.loss,
            "params": score.params,
            "macs": score.macs,
            "latency_ms": score.latency_ms,
            ARCH_KEY: arch.encode(),
            "node_id": ray.get_runtime_context().get_node_id(),
        }
    )


@functools.lru_cache(maxsize=1)
def _supernet(space, weights: str) -> Supernet:
    """The trained supernet, loaded once per worker process (Tune reuses it across trials;
    ``extract`` copies weights, so trials never change it)."""
    return load_supernet(space, weights)


def make_searcher(run: RunDir, context: TrialContext, trials: int) -> ArchSearcher:
    """The searcher of a fresh search phase, its study in ``optuna.journal``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines duplicate ours

    settings = context.run.search
    objectives = objectives_of(settings)
    sampler = make_sampler(
        settings.sampler,
        n_objectives=len(objectives),
        trials=trials,
        seed=context.seed,
    )
    return ArchSearcher(
        space=functools.partial(
            suggest_arch, space=context.space, categorical=uses_categorical(settings.sampler)
        ),
        metric=[o.metric for o in objectives],
        mode=[o.mode for o in objectives],
        sampler=sampler,
        storage=_journal(run),
        study_name=STUDY_NAME,
        search=settings,
        target=trials,
        batch_size=settings.max_concurrent,
        max_failures=settings.max_failures,
        tell_constraints=uses_constraints(settings.sampler),
    )


class RunJournal(JournalFileBackend):
    """The ``optuna.journal`` of the run whose search is in progress. Tune snapshots the
    searcher with its study, and so this storage; a snapshot records no path: unpickled, it is
    the journal of the run being resumed (:func:`_resuming`), so that a copied or moved run
    writes its own journal, never its origin's."""

    def __reduce__(self):
        return (_resumed_journal, ())


_resumed_path: Path | None = None


def _resumed_journal() -> RunJournal:
    if _resumed_path is None:
        raise RuntimeError(
            "a searcher snapshot is restored outside a search phase; it holds no journal path"
        )
    return RunJournal(str(_resumed_path))


@contextlib.contextmanager
def _resuming(run: RunDir) -> Iterator[None]:
    """Searcher snapshots restored in the block open ``run``'s journal."""
    global _resumed_path
    previous, _resumed_path = _resumed_path, run.journal_file
    try:
        yield
    finally:
        _resumed_path = previous


def _journal(run: RunDir) -> JournalStorage:
    """The Optuna storage of the run's search study (``optuna.journal``)."""
    return JournalStorage(RunJournal(str(run.journal_file)))


def _clear_stale_journal(run: RunDir) -> None:
    """Before a fresh start: forget a journal left by a start that died before its first
    snapshot (its trials belong to no experiment), and any lock a killed driver held."""
    run.journal_file.unlink(missing_ok=True)
    _remove_lock(run)


def _remove_lock(run: RunDir) -> None:
    lock = Path(str(run.journal_file) + ".lock")
    if lock.is_symlink() or lock.exists():
        lock.unlink()
    stale = lock.with_name(lock.name + ".lock")  # not Optuna's, but clean either way
    if stale.exists():
        shutil.rmtree(stale, ignore_errors=True)


def run_search_phase(
    run: RunDir, context: TrialContext, resources: dict[str, float], trials: int
) -> tuple[SearchPhase, tuple[TrialRecord, ...], tuple[Failure, ...]]:
    """Run (or finish) the search. Returns the phase's record, the trial records (completed
    and failed, in order) and the failures."""
    settings = context.run.search
    trainable = tune.with_resources(
        tune.with_parameters(
            evaluate_arch, context=context, supernet_weights=str(run.supernet_weights)
        ),
        resources,
    )
    progress = TuneProgress("search", "trials", "accuracy", "max")

    def new_tuner() -> tune.Tuner:
        _clear_stale_journal(run)
        searcher = make_searcher(run, context, trials)
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=-1,
                # no max_concurrent_trials: the searcher's batches bound concurrency already,
                # and Tune's ConcurrencyLimiter around it is snapshotted apart from it (a
                # restore could pair a stale limiter with a fresh searcher and stall)
                trial_dirname_creator=trial_dirname,
                reuse_actors=True,
            ),
            run_config=run_config(run.search_dir, progress),
        )

    _remove_lock(run)  # a driver killed while holding it leaves it behind
    repair_journal(run.journal_file)

    def search_over(grid: tune.ResultGrid) -> bool:
        results = (grid[i] for i in range(len(grid)))
        ended = [r for r in results if r.error is not None or "accuracy" in (r.metrics or {})]
        failed = sum(1 for r in ended if r.error is not None)
        over = len(ended) - failed >= trials or failed > settings.max_failures
        return over and not unfinished(grid)

    with _resuming(run):
        grid = fit(run.search_dir, trainable, new_tuner, finished=search_over)
    records, failures = collect_trials(grid, context)
    completed = sum(1 for r in records if r.status == "completed")
    failed = len(records) - completed
    record = SearchPhase(
        PhaseStatus.COMPLETED,
        trials_requested=trials,
        sampler=settings.sampler,
        trials_completed=completed,
        trials_failed=failed,
        repeats_skipped=_repeats_skipped(run),
    )
    if unfinished(grid) or (completed < trials and failed <= settings.max_failures):
        return interrupted(record), records, failures
    if failed > settings.max_failures:
        error = (
            f"{failed} search trials failed, more than search.max_failures "
            f"({settings.max_failures})"
        )
        record = dataclasses.replace(record, status=PhaseStatus.FAILED, error=error)
    return record, records, failures


def _repeats_skipped(run: RunDir) -> int:
    """Suggestions of already-scored architectures that the searcher answered without a trial
    (the Optuna trials marked ``duplicate_of``)."""
    import optuna

    if not run.journal_file.is_file():
        return 0
    study = optuna.load_study(study_name=STUDY_NAME, storage=_journal(run))
    return sum(DUPLICATE_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False))


def collect_trials(
    grid: tune.ResultGrid, context: TrialContext
) -> tuple[tuple[TrialRecord, ...], tuple[Failure, ...]]:
    """Trial records and failures from a finished search, in the order Tune created the
    trials."""
    settings = context.run.search
    results = sorted(
        (grid[i] for i in range(len(grid))), key=lambda r: parse_trial_dirname(r.path)[0]
    )
    records: list[TrialRecord] = []
    failures: list[Failure] = []
    for result in results:
        trial_id = parse_trial_dirname(result.path)[1]
        error = trial_error(result)
        metrics = result.metrics or {}
        arch = (result.config or {}).get(ARCH_KEY)
        if error is None and "accuracy" not in metrics:
            continue  # stopped before reporting: neither completed nor failed
        if error is not None:
            records.append(TrialRecord(trial_id, len(records), arch, "failed", error=error))
            failures.append(Failure("search", trial_id, arch, error))
            continue
        measured = TrialMetrics(
            accuracy=float(metrics["accuracy"]),
            params=int(metrics["params"]),
            macs=int(metrics["macs"]),
            latency_ms=float(metrics["latency_ms"]),
        )
        feasible = is_feasible(settings, measured.as_mapping())
        records.append(TrialRecord(trial_id, len(records), arch, "completed", measured, feasible))
    return tuple(records), tuple(failures)
