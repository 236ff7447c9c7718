"""Phase 3: the winners of the search, trained from scratch or fine-tuned from their inherited
weights, then scored on the held-out test split (one Tune trial per winner)."""

from __future__ import annotations

import dataclasses
import functools
import logging

from ray import tune

from invnas.engine import SINGLE, SingleProcess, TrainingResult, train_standalone
from invnas.pipeline.context import TrialContext, derive_seed, portable_errors
from invnas.pipeline.experiment import (
    copy_checkpoint_weights,
    fit,
    interrupted,
    parse_trial_dirname,
    report_with_checkpoint,
    resume_file,
    run_config,
    trial_dirname,
    trial_error,
    unfinished,
)
from invnas.pipeline.progress import TuneProgress
from invnas.pipeline.workers import (
    fit_workers,
    result_checkpoint,
    run_on_worker,
    scale_metrics,
)
from invnas.rundir import (
    Failure,
    PhaseStatus,
    RetrainedMetrics,
    RetrainedRecord,
    RetrainPhase,
    RunDir,
    TrainingScale,
    TrialRecord,
)
from invnas.space.arch import Arch

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"


@portable_errors
def retrain_arch(
    config: dict, context: TrialContext, supernet_weights: str | None, exp_dir: str
) -> None:
    """Tune trainable: train ``config["candidate"]["arch"]`` for ``retrain.epochs`` epochs
    (:func:`invnas.engine.train_standalone`, resuming from the trial's last checkpoint),
    reporting validation accuracy every epoch and the test accuracy with the last one; every
    report checkpoints ``model.pt``. With several workers the trial drives them on Ray Train
    (:func:`invnas.pipeline.workers.fit_workers`)."""
    if context.share.workers > 1:
        extended = {**config, "supernet_weights": supernet_weights}
        fit_workers(context, _retrain_on_worker, extended, exp_dir)
        return
    device = context.setup()
    on_epoch = functools.partial(
        report_with_checkpoint, weights_file=WEIGHTS_FILE, extra=scale_metrics(SINGLE)
    )
    with resume_file() as resume_from:
        _train(context, config, supernet_weights, device, on_epoch, resume_from, SINGLE)


def _retrain_on_worker(config: dict) -> None:
    """One Ray Train worker of a data-parallel retrain trial."""
    train = functools.partial(_train, config["context"], config, config["supernet_weights"])
    run_on_worker(config, WEIGHTS_FILE, train)


def _train(
    context: TrialContext,
    config: dict,
    supernet_weights: str | None,
    device,
    on_epoch,
    resume_from,
    parallel: SingleProcess,
) -> TrainingResult:
    candidate = config["candidate"]
    return train_standalone(
        context.space,
        Arch.decode(candidate["arch"]),
        context.run.retrain,
        context.data(),
        device,
        seed=derive_seed(context.seed, "retrain", candidate["rank"]),
        supernet_weights=supernet_weights,
        bn_batches=context.run.search.bn_batches,
        latency_threads=context.latency_threads,
        on_epoch=on_epoch,
        resume_from=resume_from,
        parallel=parallel,
        precision=context.precision(device),
        memory_format=context.memory_format(device),
    )


def candidates_of(ranked_trials: list[TrialRecord], top_k: int) -> list[dict]:
    """The retrain candidates (rank 1 = best) from search trial records ranked best first, as
    the Tune trials' configs."""
    return [
        {"rank": rank, "trial_id": trial.trial_id, "arch": trial.arch}
        for rank, trial in enumerate(ranked_trials[:top_k], start=1)
    ]


def run_retrain_phase(
    run: RunDir,
    context: TrialContext,
    ranked_trials: list[TrialRecord],
) -> tuple[RetrainPhase, tuple[RetrainedRecord, ...], tuple[Failure, ...]]:
    """Retrain the top-k of ``ranked_trials`` (search trial records, best first). Returns the
    phase's record, the retrained records and the failures."""
    settings = context.run.retrain
    record = RetrainPhase(PhaseStatus.COMPLETED, settings.mode)
    candidates = candidates_of(ranked_trials, settings.top_k)
    if not candidates:
        return record, (), ()
    weights = str(run.supernet_weights) if settings.mode == "finetune" else None
    trainable = tune.with_resources(
        tune.with_parameters(
            retrain_arch,
            context=context,
            supernet_weights=weights,
            exp_dir=str(run.retrain_dir),
        ),
        context.trial_resources(),
    )
    progress = TuneProgress("retrain", "trials", "test_accuracy", "max")

    def new_tuner() -> tune.Tuner:
        return tune.Tuner(
            trainable,
            param_space={"candidate": tune.grid_search(candidates)},
            tune_config=tune.TuneConfig(
                trial_dirname_creator=trial_dirname,
                reuse_actors=True,
                max_concurrent_trials=_concurrent_trials(context),
            ),
            run_config=run_config(run.retrain_dir, progress),
        )

    grid = fit(run.retrain_dir, trainable, new_tuner, resume_errored=True)
    if unfinished(grid):
        return interrupted(record), (), ()
    by_trial = {t.trial_id: t for t in ranked_trials}
    retrained: list[RetrainedRecord] = []
    failures: list[Failure] = []
    scales: list[TrainingScale] = []
    for result in sorted(
        (grid[i] for i in range(len(grid))), key=lambda r: r.config["candidate"]["rank"]
    ):
        candidate = result.config["candidate"]
        rank, trial_id, arch = candidate["rank"], candidate["trial_id"], candidate["arch"]
        metrics = result.metrics or {}
        error = trial_error(result)
        if error is None and "test_accuracy" not in metrics:
            error = "the retrain trial ended before its last epoch"
        if error is not None:
            retrained.append(RetrainedRecord(rank, trial_id, arch, "failed", error=error))
            failures.append(Failure("retrain", parse_trial_dirname(result.path)[1], arch, error))
            continue
        searched = by_trial[trial_id].metrics if trial_id in by_trial else None
        target = run.retrain_weights(rank)
        copy_checkpoint_weights(result_checkpoint(result), WEIGHTS_FILE, target)
        scales.append(TrainingScale.of_metrics(metrics))
        measured = RetrainedMetrics(
            val_accuracy=float(metrics["val_accuracy"]),
            test_accuracy=float(metrics["test_accuracy"]),
            latency_ms=float(metrics["latency_ms"]),
            supernet_accuracy=searched.accuracy if searched else None,
            params=searched.params if searched else None,
            macs=searched.macs if searched else None,
        )
        weights = str(target.relative_to(run.path))
        retrained.append(RetrainedRecord(rank, trial_id, arch, "completed", measured, weights))
    if retrained and all(r.status == "failed" for r in retrained):
        error = f"all {len(retrained)} retrain trials failed"
        record = RetrainPhase(PhaseStatus.FAILED, settings.mode, error)
    if scales:
        record = dataclasses.replace(record, scale=_overall(scales))
    return record, tuple(retrained), tuple(failures)


def _concurrent_trials(context: TrialContext) -> int | None:
    """How many data-parallel trials run at once: as many as the cluster's CPUs hold (Tune does
    not count the workers, only their zero-CPU drivers); None (no limit) for plain trials."""
    import ray

    share = context.share
    if share.workers == 1:
        return None
    return max(1, int(ray.cluster_resources().get("CPU", 1) / share.total_cpus + 1e-9))


def _overall(scales: list[TrainingScale]) -> TrainingScale:
    """The scale of a phase from its trials': their workers, every node, the mean speed."""
    speeds = [s.images_per_s for s in scales if s.images_per_s is not None]
    return TrainingScale(
        workers=max(s.workers for s in scales),
        nodes=tuple(sorted({node for s in scales for node in s.nodes})),
        images_per_s=sum(speeds) / len(speeds) if speeds else None,
    )
