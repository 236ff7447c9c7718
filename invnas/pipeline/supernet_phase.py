"""Phase 1: training the weight-sharing supernet, one Tune trial checkpointed every epoch."""

from __future__ import annotations

import functools
import logging

from ray import tune

from invnas.engine import SINGLE, SingleProcess, TrainingResult
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
from invnas.pipeline.workers import (
    TRAIN_DIR,
    fit_workers,
    result_checkpoint,
    run_on_worker,
    scale_metrics,
)
from invnas.rundir import PhaseStatus, RunDir, SupernetPhase, TrainingScale

WEIGHTS_FILE = "supernet.pt"
log = logging.getLogger(__name__)


@portable_errors
def train_supernet(config: dict, context: TrialContext, exp_dir: str) -> None:
    """Tune trainable: train the supernet for ``supernet.epochs`` epochs
    (:func:`invnas.engine.train_supernet`), resuming from the trial's last checkpoint; each
    epoch reports loss/accuracy, the workers and nodes, and checkpoints ``supernet.pt`` (the
    state_dict) and ``training.pt`` (optimizer, schedule). With several workers the trial
    drives them on Ray Train (:func:`invnas.pipeline.workers.fit_workers`)."""
    if context.share.workers > 1:
        fit_workers(context, _train_on_worker, config, exp_dir)
        return
    device = context.setup()
    on_epoch = functools.partial(
        report_with_checkpoint, weights_file=WEIGHTS_FILE, extra=scale_metrics(SINGLE)
    )
    with resume_file() as resume_from:
        _train(context, device, on_epoch, resume_from, SINGLE)


def _train_on_worker(config: dict) -> None:
    """One Ray Train worker of a data-parallel supernet trial."""
    run_on_worker(config, WEIGHTS_FILE, functools.partial(_train, config["context"]))


def _train(
    context: TrialContext, device, on_epoch, resume_from, parallel: SingleProcess
) -> TrainingResult:
    return train(
        context.space,
        context.run.supernet,
        context.data(),
        device,
        bn_batches=context.run.search.bn_batches,
        on_epoch=on_epoch,
        resume_from=resume_from,
        parallel=parallel,
        precision=context.precision(device),
        memory_format=context.memory_format(device),
    )


def run_supernet_phase(run: RunDir, context: TrialContext) -> SupernetPhase:
    """Train (or finish training) the supernet; copy its final weights to
    ``weights/supernet.pt``. Returns the phase's record."""
    settings = context.run.supernet
    trainable = tune.with_resources(
        tune.with_parameters(train_supernet, context=context, exp_dir=str(run.supernet_dir)),
        context.trial_resources(),
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
    checkpoint = result_checkpoint(result)
    if checkpoint is None or metrics.get("epoch") != settings.epochs:
        error = "the supernet trial ended without its last epoch"
        return SupernetPhase(PhaseStatus.FAILED, settings.epochs, error=error)
    copy_checkpoint_weights(checkpoint, WEIGHTS_FILE, run.supernet_weights)
    return SupernetPhase(
        PhaseStatus.COMPLETED,
        settings.epochs,
        val_accuracy=metrics.get("val_accuracy"),
        weights=str(run.supernet_weights.relative_to(run.path)),
        scale=TrainingScale.of_metrics(metrics),
    )


def restore_supernet_weights(run: RunDir) -> bool:
    """Copy ``weights/supernet.pt`` back from the last checkpoint of the supernet experiment
    when it is missing (True when it did); ValueError naming both when there is none."""
    if run.supernet_weights.is_file():
        return False
    checkpoints = sorted(
        run.supernet_dir.glob(f"trial_*/checkpoint_*/{WEIGHTS_FILE}"),
        key=lambda path: path.parent.name,
    ) or sorted(
        run.supernet_dir.glob(f"{TRAIN_DIR}/*/checkpoint_*/{WEIGHTS_FILE}"),
        key=lambda path: path.parent.stat().st_mtime,
    )
    if not checkpoints:
        raise ValueError(
            f"{run.supernet_weights}: missing, and {run.supernet_dir} holds no checkpoint to "
            "restore it from; start a new run"
        )
    copy_atomically(checkpoints[-1], run.supernet_weights)
    log.warning("%s was missing; restored from %s", run.supernet_weights, checkpoints[-1])
    return True
