"""Phase 1: training the weight-sharing supernet, one Tune trial checkpointed every epoch."""

from __future__ import annotations

import logging
from pathlib import Path

from ray import tune

from invnas.rundir import PhaseStatus, RunDir, SupernetPhase
from invnas.search.context import TrialContext, derive_seed, portable_errors
from invnas.search.experiment import (
    TRAINING_STATE_FILE,
    copy_checkpoint_weights,
    fit,
    interrupted,
    report_with_checkpoint,
    run_config,
    trial_dirname,
    trial_error,
    unfinished,
)
from invnas.search.progress import TuneProgress
from invnas.space.arch import sample

log = logging.getLogger(__name__)

WEIGHTS_FILE = "supernet.pt"
MONITOR_ARCHS = 3  # fixed sample archs whose mean validation accuracy tracks training
MONITOR_BATCHES = 20  # validation batches per monitored arch (all of a small split)


def _monitor_accuracy(supernet, context: TrialContext, splits, device) -> float:
    """Mean validation accuracy of a few fixed archs, each with recalibrated BatchNorm."""
    from invnas.nn.bn import recalibrate_bn
    from invnas.train import evaluate

    bn_batches = context.run.search.bn_batches
    total = 0.0
    for k in range(MONITOR_ARCHS):
        arch = sample(context.space, derive_seed(context.seed, "monitor", k))
        subnet = supernet.extract(arch)
        calibration = context.train_loader(splits.train, derive_seed(context.seed, "bn"))
        recalibrate_bn(subnet, calibration, bn_batches)
        val = context.eval_loader(splits.val)
        total += evaluate(subnet, val, max_steps=MONITOR_BATCHES).accuracy
    return total / MONITOR_ARCHS


@portable_errors
def train_supernet(config: dict, context: TrialContext) -> None:
    """Tune trainable: train the supernet for ``supernet.epochs`` epochs, resuming from the
    trial's last checkpoint; each epoch reports loss/accuracy and checkpoints
    ``supernet.pt`` (the state_dict) and ``training.pt`` (optimizer, schedule, RNG)."""
    from invnas.nn.sampling import make_sampler
    from invnas.nn.supernet import Supernet
    from invnas.train import (
        load_training_state,
        make_optimizer,
        make_scheduler,
        seed_everything,
        train_supernet_epoch,
    )

    device = context.setup()
    settings = context.run.supernet
    seed_everything(derive_seed(context.seed, "supernet-init"))
    splits = context.splits()
    supernet = Supernet(context.space).to(device)
    optimizer = make_optimizer(supernet, settings.lr, settings.momentum, settings.weight_decay)
    steps = len(context.train_loader(splits.train, 0))
    scheduler = make_scheduler(optimizer, settings.epochs, steps)
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            start, _ = load_training_state(
                Path(directory) / TRAINING_STATE_FILE,
                supernet,
                optimizer,
                scheduler,
                restore_rng=False,
            )
        log.info("supernet: resuming after epoch %d", start)
    if settings.epochs == 0:
        empty = {"epoch": 0, "val_accuracy": None}
        report_with_checkpoint(supernet, optimizer, scheduler, 0, empty, WEIGHTS_FILE)
        return
    for epoch in range(start, settings.epochs):
        epoch_seed = derive_seed(context.seed, "supernet", epoch)
        seed_everything(epoch_seed)
        stats = train_supernet_epoch(
            supernet,
            context.train_loader(splits.train, epoch_seed),
            optimizer,
            make_sampler(settings.sampling, context.space, seed=epoch_seed),
            scheduler=scheduler,
            epoch=epoch,
        )
        metrics = {
            "epoch": epoch + 1,
            "train_loss": stats.loss,
            "train_accuracy": stats.accuracy,
            "val_accuracy": _monitor_accuracy(supernet, context, splits, device),
        }
        report_with_checkpoint(supernet, optimizer, scheduler, epoch + 1, metrics, WEIGHTS_FILE)


def run_supernet_phase(
    run: RunDir, context: TrialContext, resources: dict[str, float]
) -> SupernetPhase:
    """Train (or finish training) the supernet; copy its final weights to
    ``weights/supernet.pt``. Returns the phase's record."""
    settings = context.run.supernet
    trainable = tune.with_resources(
        tune.with_parameters(train_supernet, context=context), resources
    )
    progress = TuneProgress("supernet", "iterations", "val_accuracy", "max")

    def new_tuner() -> tune.Tuner:
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(num_samples=1, trial_dirname_creator=trial_dirname),
            run_config=run_config(run.supernet_dir, progress),
        )

    grid = fit(run.supernet_dir, trainable, new_tuner)
    result = grid[0]
    if unfinished(grid):
        return interrupted(SupernetPhase(PhaseStatus.RUNNING, settings.epochs))
    error = trial_error(result)
    if error is not None:
        return SupernetPhase(PhaseStatus.FAILED, settings.epochs, error=error)
    metrics = result.metrics or {}
    if result.checkpoint is None or metrics.get("epoch") != settings.epochs:
        error = "the supernet trial ended without its last epoch"
        return SupernetPhase(PhaseStatus.FAILED, settings.epochs, error=error)
    copy_checkpoint_weights(result.checkpoint, WEIGHTS_FILE, run.supernet_weights)
    return SupernetPhase(
        PhaseStatus.COMPLETED,
        settings.epochs,
        val_accuracy=metrics.get("val_accuracy"),
        weights=str(run.supernet_weights.relative_to(run.path)),
    )
