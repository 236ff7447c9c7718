"""Data-parallel trials: a phase's Tune trial that trains with several Ray Train workers.

The Tune trial stays what the phase sees (run directory, progress, restore): it reserves no CPU
and only drives a ``TorchTrainer`` whose workers run the engine as one
:class:`~invnas.engine.parallel.DataParallel` group (gloo on CPU, NCCL on GPU). Every worker
reports every epoch (Ray Train's reports are barriers); the main worker's metrics reach the
trial through ``TuneReportCallback`` with the path of the checkpoint it wrote
(``checkpoint_path``). The Train run lives in the phase's directory, ``train/<trial id>``
(not in Tune's trial directory, which is a staging copy in Ray's session directory), so a
restored trial fits the same run again and the workers resume from its latest checkpoint.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from invnas.engine.checkpoint import TRAINING_STATE_FILE, write_checkpoint
from invnas.engine.parallel import DataParallel, SingleProcess
from invnas.engine.records import EpochReport, OnEpoch, TrainingResult
from invnas.pipeline.context import TrialContext

log = logging.getLogger(__name__)

TRAIN_DIR = "train"  # the phase's Train runs: <experiment>/train/<trial id>
CHECKPOINT_PATH_KEY = "checkpoint_path"  # what TuneReportCallback adds to the metrics
METRICS_FILE = "metrics.json"  # the reported metrics, beside a worker checkpoint's weights


def node_name() -> str:
    """This process's node, as results.json records it: ``IP (node id prefix)`` in a Ray
    cluster (several nodes may share a host), else the host name."""
    try:
        import ray

        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
            return f"{ray.util.get_node_ip_address()} ({node_id[:8]})"
    except Exception:  # not in a Ray process: the host name says it as well
        pass
    return socket.gethostname()


def scale_metrics(parallel: SingleProcess) -> dict[str, Any]:
    """The metrics that say how a phase trained: its workers and the nodes they ran on."""
    nodes = sorted(set(parallel.gather(node_name())))
    return {"workers": parallel.world_size, "nodes": ",".join(nodes)}


def fit_workers(
    context: TrialContext, worker: Callable[[dict], None], config: dict, exp_dir: str
) -> None:
    """From inside a Tune trial of the experiment at ``exp_dir``: run
    ``worker(config | {"context": context, "train_dir": ...})`` on ``context.share.workers``
    Ray Train workers of ``context.share`` CPUs/GPUs each, resuming the trial's Train run if it
    has one; raises what a worker raised."""
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    share = context.share
    per_worker = {"CPU": share.cpus}
    if share.gpus > 0:
        per_worker["GPU"] = share.gpus
    train_dir = Path(exp_dir) / TRAIN_DIR / tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        worker,
        train_loop_config={**config, "context": context, "train_dir": str(train_dir)},
        scaling_config=ScalingConfig(
            num_workers=share.workers, use_gpu=share.gpus > 0, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=train_dir.name,
            storage_path=str(train_dir.parent),
            callbacks=[TuneReportCallback()],
            failure_config=FailureConfig(max_failures=0),
            checkpoint_config=CheckpointConfig(num_to_keep=None),
        ),
    )
    trainer.fit()


WorkerTraining = Callable[[torch.device, OnEpoch, "Path | None", DataParallel], TrainingResult]


def run_on_worker(config: dict, weights_file: str, train: WorkerTraining) -> None:
    """The body of every data-parallel worker: its device and place in the group, then
    ``train(device, on_epoch, resume_from, parallel)`` reporting every epoch from every worker
    (the main one checkpointing ``weights_file``), resumed from the Train run's latest
    checkpoint; a run resumed after its last epoch reports that epoch again."""
    context: TrialContext = config["context"]
    device, parallel = worker_setup(context)
    on_epoch = functools.partial(
        report_from_worker,
        weights_file=weights_file,
        parallel=parallel,
        extra=scale_metrics(parallel),
    )
    with worker_resume_file(config) as resume_from:
        result = train(device, on_epoch, resume_from, parallel)
        if not result.history and resume_from is not None:
            report_finished(resume_from, parallel)


def worker_setup(context: TrialContext) -> tuple[torch.device, DataParallel]:
    """In a Ray Train worker: its threads and device, and its place in the worker group."""
    import ray.train.torch

    torch.set_num_threads(context.threads)
    device = ray.train.torch.get_device() if context.share.gpus > 0 else torch.device("cpu")
    return device, DataParallel(device)


def report_from_worker(
    report: EpochReport, weights_file: str, parallel: SingleProcess, extra: dict
) -> None:
    """Report an epoch from every worker (the main one with its checkpoint, as the Tune
    trials' :func:`~invnas.pipeline.experiment.report_with_checkpoint` writes it)."""
    import ray.train

    metrics = {**report.metrics.as_dict(), **extra}
    if not parallel.is_main:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as directory:
        write_checkpoint(directory, report, weights_file)
        Path(directory, METRICS_FILE).write_text(json.dumps(metrics))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))


def report_finished(resume_from: Path, parallel: SingleProcess) -> None:
    """Report again the last epoch of a Train run resumed after it (a driver killed between
    the last checkpoint and Tune's record of it), so that the trial ends with its metrics."""
    import ray.train

    directory = resume_from.parent
    metrics = json.loads((directory / METRICS_FILE).read_text())
    log.info("the workers had finished; reporting epoch %s again", metrics.get("epoch"))
    checkpoint = ray.train.Checkpoint.from_directory(str(directory)) if parallel.is_main else None
    ray.train.report(metrics, checkpoint=checkpoint)


def checkpoint_epoch(state_file: Path) -> int:
    """The epoch a ``training.pt`` was written after; -1 when it is missing or incomplete."""
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        return int(state["epoch"])
    except Exception:  # partly written (a driver killed during the upload) or absent
        return -1


@contextlib.contextmanager
def worker_resume_file(config: dict) -> Iterator[Path | None]:
    """The ``training.pt`` of the Train run's latest checkpoint (None in a fresh run).

    A checkpoint is in the run's directory (``config["train_dir"]``) before Ray Train records
    it: a driver killed in between leaves a complete epoch that Train does not hand back, so
    the latest complete one on disk is taken when it is newer (every worker reads the same
    files and chooses the same)."""
    import ray.train

    found = sorted(
        (checkpoint_epoch(path), str(path))
        for path in Path(config["train_dir"]).glob(f"checkpoint_*/{TRAINING_STATE_FILE}")
    )
    checkpoint = ray.train.get_checkpoint()
    with contextlib.ExitStack() as stack:
        chosen: tuple[int, Path] | None = None
        if checkpoint is not None:
            directory = stack.enter_context(checkpoint.as_directory())
            state_file = Path(directory) / TRAINING_STATE_FILE
            chosen = (checkpoint_epoch(state_file), state_file)
        if found and found[-1][0] >= 0 and (chosen is None or found[-1][0] > chosen[0]):
            log.info("resuming from %s, which Ray Train had not recorded", found[-1][1])
            chosen = (found[-1][0], Path(found[-1][1]))
        yield None if chosen is None else chosen[1]


def result_checkpoint(result):
    """The checkpoint of a finished trial: Tune's own, or the one its workers last wrote."""
    from ray import tune

    if result.checkpoint is not None:
        return result.checkpoint
    path = (result.metrics or {}).get(CHECKPOINT_PATH_KEY)
    return tune.Checkpoint(path) if path else None
