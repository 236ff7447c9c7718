"""Phase 1: training the weight-sharing supernet, one Tune trial checkpointed every epoch."""

from __future__ import annotations

import functools
import logging

from ray import tune

from invnas.engine import train_supernet as train
from invnas.pipeline.context import TrialContext, portable_errors
from invnas.pipeline.experiment import (
    copy_atomically,
    copy_checkpoint_weights,
    fit,
    interrupted,
    report_with_checkpoint,
    resume_file,
    run_config,
    trial_dirname,
    trial_error,
    unfinished,
)
from invnas.pipeline.progress import TuneProgress
from invnas.rundir import PhaseStatus, RunDir, SupernetPhase

WEIGHTS_FILE = "supernet.pt"
log = logging.getLogger(__name__)


@portable_errors
def train_supernet(config: dict, context: TrialContext) -> None:
    """Tune trainable: train the supernet for ``supernet.epochs`` epochs
    (:func:`invnas.engine.train_supernet`), resuming from the trial's last checkpoint; each
    epoch reports loss/accuracy and checkpoints ``supernet.pt`` (the state_dict) and
    ``training.pt`` (optimizer, schedule)."""
    device = context.setup()
    with resume_file() as resume_from:
        train(
            context.space,
            context.run.supernet,
            context.data(),
            device,
            bn_batches=context.run.search.bn_batches,
            on_epoch=functools.partial(report_with_checkpoint, weights_file=WEIGHTS_FILE),
            resume_from=resume_from,
        )


def run_supernet_phase(run: RunDir, context: TrialContext) -> SupernetPhase:
    """Train (or finish training) the supernet; copy its final weights to
    ``weights/supernet.pt``. Returns the phase's record."""
    settings = context.run.supernet
    trainable = tune.with_resources(
        tune.with_parameters(train_supernet, context=context), context.trial_resources()
    )
    progress = TuneProgress("supernet", "iterations", "val_accuracy", "max")

    def new_tuner() -> tune.Tuner:
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(num_samples=1, trial_dirname_creator=trial_dirname),
            run_config=run_config(run.supernet_dir, progress),
        )

    grid = fit(run.supernet_dir, trainable, new_tuner, resume_errored=True)
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


def restore_supernet_weights(run: RunDir) -> bool:
    """Copy ``weights/supernet.pt`` back from the last checkpoint of the supernet experiment
    when it is missing (True when it did); ValueError naming both when there is none."""
    if run.supernet_weights.is_file():
        return False
    checkpoints = sorted(run.supernet_dir.glob(f"trial_*/checkpoint_*/{WEIGHTS_FILE}"))
    if not checkpoints:
        raise ValueError(
            f"{run.supernet_weights}: missing, and {run.supernet_dir} holds no checkpoint to "
            "restore it from; start a new run"
        )
    copy_atomically(checkpoints[-1], run.supernet_weights)
    log.warning("%s was missing; restored from %s", run.supernet_weights, checkpoints[-1])
    return True
