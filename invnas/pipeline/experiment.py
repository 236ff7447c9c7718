"""Running one phase as a Ray Tune experiment: fresh, or restored from its directory."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ray import tune

from invnas.engine.checkpoint import TRAINING_STATE_FILE, write_checkpoint
from invnas.engine.records import EpochReport
from invnas.pipeline.progress import TuneProgress
from invnas.pipeline.signals import stop_requested, tune_stops_gracefully
from invnas.rundir import PhaseRecordT, PhaseStatus

log = logging.getLogger(__name__)

# Tune snapshots the experiment at most this often (default: every >= 10 s); a restore after a
# crash redoes the work since the last snapshot, so keep the gap short.
SNAPSHOT_PERIOD_S = "2"
# Tune returning with unfinished trials when no stop signal came is not an interruption the user
# asked for (seen once in CI after a resume): the experiment is restored and run on, this often.
EARLY_RETURN_ATTEMPTS = 3


def trial_dirname(trial) -> str:
    """Trial directories named ``trial_<creation counter>_<trial id>``, so that the order in
    which Tune created the trials can be read back (module-level: Tune pickles it)."""
    counter = str(trial.experiment_tag).split("_", 1)[0]
    return f"trial_{int(counter) if counter.isdigit() else 0:05d}_{trial.trial_id}"


def parse_trial_dirname(path: str) -> tuple[int, str]:
    """``(creation counter, trial id)`` of a directory named by :func:`trial_dirname`."""
    match = re.fullmatch(r"trial_(\d+)_(.+)", Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a trial directory of an invnas run")
    return int(match[1]), match[2]


def run_config(exp_dir: Path, progress: TuneProgress) -> tune.RunConfig:
    """The Tune RunConfig of a phase whose experiment lives at ``exp_dir``: quiet, every
    checkpoint kept (a restore may need any of them), a failing trial recorded, not retried."""
    return tune.RunConfig(
        name=exp_dir.name,
        storage_path=str(exp_dir.parent),
        verbose=0,
        callbacks=[progress],
        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
    )


def fit(
    exp_dir: Path,
    trainable,
    new_tuner: Callable[[], tune.Tuner],
    *,
    resume_errored: bool = False,
    finished: Callable[[tune.ResultGrid], bool] | None = None,
) -> tune.ResultGrid:
    """Run the phase to its end: restore the experiment at ``exp_dir`` if it has a snapshot
    (finished trials stay finished, unfinished ones resume from their last checkpoint; with
    ``resume_errored`` failed ones too, e.g. a training killed by the signal that stopped the
    run), otherwise start ``new_tuner()`` afresh, clearing what a start without snapshot
    left.

    When Tune returns before the phase is ``finished`` (default: every trial ended) although
    no stop signal came, Tune's loop was ended from outside the run (its SIGUSR1 handler): the
    experiment is restored and run on, up to ``EARLY_RETURN_ATTEMPTS`` times in all."""
    finished = finished or _all_trials_ended
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", SNAPSHOT_PERIOD_S)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no console output
    for attempt in range(1, EARLY_RETURN_ATTEMPTS + 1):
        grid = _fit_once(exp_dir, trainable, new_tuner, resume_errored)
        if stop_requested() or finished(grid) or attempt == EARLY_RETURN_ATTEMPTS:
            break
        log.warning(
            "%s: Tune returned before the phase's end although no stop was asked; "
            "restoring the experiment (attempt %d of %d)",
            exp_dir.name,
            attempt + 1,
            EARLY_RETURN_ATTEMPTS,
        )
    return grid


def _all_trials_ended(grid: tune.ResultGrid) -> bool:
    return grid.num_terminated + grid.num_errors == len(grid)


def _fit_once(exp_dir: Path, trainable, new_tuner, resume_errored: bool) -> tune.ResultGrid:
    if tune.Tuner.can_restore(str(exp_dir)):
        log.info("restoring the Tune experiment %s", exp_dir)
        tuner = tune.Tuner.restore(
            str(exp_dir),
            trainable,
            resume_unfinished=True,
            resume_errored=resume_errored,
            restart_errored=False,
        )
    else:
        if exp_dir.exists():
            log.info("%s has no snapshot to restore; starting the phase afresh", exp_dir)
            shutil.rmtree(exp_dir)
        tuner = new_tuner()
    # Tune logs every failed trial as an ERROR with its traceback; failures are recorded in
    # results.json and shown by the progress display instead.
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    tune_logger.setLevel(logging.CRITICAL)
    try:
        with tune_stops_gracefully():
            return tuner.fit()
    finally:
        tune_logger.setLevel(level)


def trial_error(result) -> str | None:
    """One-line error of a failed Tune trial result (None when it did not fail)."""
    if result.error is None:
        return None
    error = result.error
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    # RayTaskError texts end with the original "ExcType: message" line
    last = text[-1] if text else type(cause).__name__
    return last[:500]


def unfinished(grid: tune.ResultGrid) -> bool:
    """True when the run was asked to stop (a signal) or some trial neither terminated nor
    failed (Tune returned early): the phase is interrupted, whatever its trials say."""
    return stop_requested() or not _all_trials_ended(grid)


def interrupted(record: PhaseRecordT) -> PhaseRecordT:
    """``record`` marked interrupted (the driver then stops; resume finishes it)."""
    return dataclasses.replace(
        record, status=PhaseStatus.INTERRUPTED, error="interrupted before its end"
    )


def report_with_checkpoint(report: EpochReport, weights_file: str) -> None:
    """Report an engine epoch's metrics to Tune with a checkpoint of its model's weights
    (CPU tensors, in ``weights_file``) and the training state a restored trial resumes from."""
    with tempfile.TemporaryDirectory() as directory:
        write_checkpoint(directory, report, weights_file)
        tune.report(report.metrics.as_dict(), checkpoint=tune.Checkpoint.from_directory(directory))


@contextlib.contextmanager
def resume_file() -> Iterator[Path | None]:
    """The ``training.pt`` of the trial's latest checkpoint (None in a fresh trial), to pass
    to the engine as ``resume_from``; it exists until the context ends."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        yield Path(directory) / TRAINING_STATE_FILE


def copy_checkpoint_weights(checkpoint: tune.Checkpoint, weights_file: str, target: Path) -> None:
    """Copy ``weights_file`` out of a trial's checkpoint to ``target``, atomically."""
    with checkpoint.as_directory() as directory:
        copy_atomically(Path(directory) / weights_file, target)


def copy_atomically(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that a reader never sees a partial ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(target)
