"""Phase 3: the winners of the search, trained from scratch or fine-tuned from their inherited
weights, then scored on the held-out test split (one Tune trial per winner)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from ray import tune

from invnas.rundir import (
    Failure,
    PhaseStatus,
    RetrainedMetrics,
    RetrainedRecord,
    RetrainPhase,
    RunDir,
    TrialRecord,
)
from invnas.search.context import TrialContext, derive_seed, portable_errors
from invnas.search.experiment import (
    TRAINING_STATE_FILE,
    copy_checkpoint_weights,
    fit,
    interrupted,
    parse_trial_dirname,
    report_with_checkpoint,
    run_config,
    trial_dirname,
    trial_error,
    unfinished,
)
from invnas.search.progress import TuneProgress

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"


def _initial_model(context: TrialContext, arch, supernet_weights: str | None, splits, device):
    from invnas.nn import build_model
    from invnas.nn.bn import recalibrate_bn
    from invnas.nn.supernet import Supernet

    settings = context.run.retrain
    if settings.mode == "scratch":
        return build_model(context.space, arch).to(device)
    supernet = Supernet(context.space)
    supernet.load_state_dict(torch.load(supernet_weights, map_location="cpu", weights_only=True))
    model = supernet.extract(arch).to(device)
    calibration = context.train_loader(splits.train, derive_seed(context.seed, "bn"))
    recalibrate_bn(model, calibration, context.run.search.bn_batches)
    return model


@portable_errors
def retrain_arch(config: dict, context: TrialContext, supernet_weights: str | None) -> None:
    """Tune trainable: train ``config["candidate"]["arch"]`` for ``retrain.epochs`` epochs
    (resuming from the trial's last checkpoint), reporting validation accuracy every epoch and
    the test accuracy with the last one; every report checkpoints ``model.pt``."""
    from invnas.space.arch import Arch
    from invnas.train import (
        evaluate,
        load_training_state,
        make_optimizer,
        make_scheduler,
        measure_latency_ms,
        seed_everything,
        train_epoch,
    )

    device = context.setup()
    settings = context.run.retrain
    candidate = config["candidate"]
    arch = Arch.decode(candidate["arch"])
    seed = derive_seed(context.seed, "retrain", candidate["rank"])
    seed_everything(seed)
    splits = context.splits()
    model = _initial_model(context, arch, supernet_weights, splits, device)
    optimizer = make_optimizer(model, settings.lr, settings.momentum, settings.weight_decay)
    steps = len(context.train_loader(splits.train, 0))
    scheduler = make_scheduler(optimizer, max(settings.epochs, 1), steps)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start, _ = load_training_state(
                Path(directory) / TRAINING_STATE_FILE,
                model,
                optimizer,
                scheduler,
                restore_rng=False,
            )
    val_loader = context.eval_loader(splits.val)
    for epoch in range(start, max(settings.epochs, 1)):
        metrics: dict = {"epoch": epoch + 1}
        if settings.epochs > 0:
            epoch_seed = derive_seed(seed, epoch)
            seed_everything(epoch_seed)
            stats = train_epoch(
                model,
                context.train_loader(splits.train, epoch_seed),
                optimizer,
                scheduler=scheduler,
                epoch=epoch,
            )
            metrics.update(train_loss=stats.loss, train_accuracy=stats.accuracy)
        metrics["val_accuracy"] = evaluate(model, val_loader).accuracy
        if epoch + 1 >= settings.epochs:
            metrics["test_accuracy"] = evaluate(model, context.eval_loader(splits.test)).accuracy
            metrics["latency_ms"] = measure_latency_ms(
                model,
                (context.space.input.channels, context.space.input.size, context.space.input.size),
                threads=max(1, int(context.cpus)),
            )
        report_with_checkpoint(model, optimizer, scheduler, epoch + 1, metrics, WEIGHTS_FILE)


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
    resources: dict[str, float],
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
        tune.with_parameters(retrain_arch, context=context, supernet_weights=weights),
        resources,
    )
    progress = TuneProgress("retrain", "trials", "test_accuracy", "max")

    def new_tuner() -> tune.Tuner:
        return tune.Tuner(
            trainable,
            param_space={"candidate": tune.grid_search(candidates)},
            tune_config=tune.TuneConfig(trial_dirname_creator=trial_dirname, reuse_actors=True),
            run_config=run_config(run.retrain_dir, progress),
        )

    grid = fit(run.retrain_dir, trainable, new_tuner)
    if unfinished(grid):
        return interrupted(record), (), ()
    by_trial = {t.trial_id: t for t in ranked_trials}
    retrained: list[RetrainedRecord] = []
    failures: list[Failure] = []
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
        copy_checkpoint_weights(result.checkpoint, WEIGHTS_FILE, target)
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
    return record, tuple(retrained), tuple(failures)
