"""Training the weight-sharing supernet, epoch by epoch, with a per-epoch monitor accuracy."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from invnas.config import SupernetConfig
from invnas.engine.checkpoint import resume_training
from invnas.engine.data import SeededData
from invnas.engine.parallel import SINGLE, SingleProcess
from invnas.engine.records import EpochMetrics, EpochReport, OnEpoch, TrainingResult
from invnas.engine.scoring import inherited_model
from invnas.nn.sampling import make_path_sampler
from invnas.nn.supernet import Supernet
from invnas.space.arch import sample
from invnas.space.spec import SearchSpace
from invnas.train.loops import (
    evaluate,
    make_optimizer,
    make_scaler,
    make_scheduler,
    train_supernet_epoch,
)
from invnas.train.seeding import derive_seed, seed_everything

log = logging.getLogger(__name__)

MONITOR_ARCHS = 3  # fixed sample archs whose mean validation accuracy tracks training
MONITOR_BATCHES = 20  # validation batches per monitored arch (all of a small split)


def monitor_accuracy(
    supernet: Supernet, data: SeededData, bn_batches: int, archs: int = MONITOR_ARCHS
) -> float:
    """Mean validation accuracy (at most ``MONITOR_BATCHES`` batches) of ``archs`` fixed
    sampled architectures, each with inherited weights and recalibrated BatchNorm."""
    total = 0.0
    for k in range(archs):
        arch = sample(supernet.space, derive_seed(data.seed, "monitor", k))
        subnet = inherited_model(supernet, arch, data, bn_batches).model
        total += evaluate(subnet, data.eval_loader("val"), max_steps=MONITOR_BATCHES).accuracy
    return total / archs


def train_supernet(
    space: SearchSpace,
    settings: SupernetConfig,
    data: SeededData,
    device: torch.device,
    *,
    bn_batches: int,
    monitor_archs: int = MONITOR_ARCHS,
    on_epoch: OnEpoch | None = None,
    resume_from: str | Path | None = None,
    parallel: SingleProcess = SINGLE,
    precision: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> TrainingResult:
    """Train a supernet of ``space`` for ``settings.epochs`` epochs (cosine schedule, paths
    drawn by ``settings.sampling``), every random stream derived from ``data.seed``.

    After each epoch ``on_epoch`` gets its metrics (the validation accuracy is
    :func:`monitor_accuracy` with ``bn_batches`` calibration batches; None when
    ``monitor_archs`` is 0) and the training state. ``resume_from`` (a ``training.pt``
    checkpoint) continues after its epoch, giving the weights an uninterrupted run would have.
    With 0 epochs, ``on_epoch`` gets one report of epoch 0 with the untrained supernet.
    ``parallel`` (a :class:`~invnas.engine.parallel.DataParallel`): this process is one of
    several workers training together; every worker gets every report (the training
    statistics are all workers'; the monitor accuracy is measured by the main worker only).
    ``precision``: autocast dtype of the training steps (see
    :func:`invnas.train.train_epoch`); None trains in full precision. float16's gradient
    scaler lasts the whole run and is checkpointed with it. ``memory_format``: the order of
    the supernet's weights (``torch.channels_last``: NHWC; the images follow them).

    Example::

        data = load_data(space, config)
        result = train_supernet(space, config.supernet, data, torch.device("cpu"),
                                bn_batches=config.search.bn_batches, on_epoch=print)
    """
    data = data.on(device)
    seed_everything(derive_seed(data.seed, "supernet-init"))
    supernet = Supernet(space).to(device, memory_format=memory_format)
    optimizer = make_optimizer(supernet, settings.lr, settings.momentum, settings.weight_decay)
    scheduler = make_scheduler(optimizer, settings.epochs, data.steps_per_epoch)
    scaler = make_scaler(device, precision)
    start = resume_training(resume_from, supernet, optimizer, scheduler, scaler)
    parallel.broadcast(supernet)
    data = parallel.shard(data)
    if start:
        log.info("supernet: resuming after epoch %d", start)
    report = on_epoch or (lambda _: None)
    if settings.epochs == 0:
        empty = EpochMetrics(epoch=0)
        report(EpochReport(empty, supernet, optimizer, scheduler, scaler))
        return TrainingResult(supernet, (empty,))
    history = []
    for epoch in range(start, settings.epochs):
        epoch_seed = derive_seed(data.seed, "supernet", epoch)
        seed_everything(epoch_seed)
        sampler = make_path_sampler(settings.sampling, space, seed=epoch_seed)
        stats, seconds = parallel.run_epoch(
            supernet,
            functools.partial(
                train_supernet_epoch,
                supernet,
                data.train_loader(epoch_seed),
                optimizer,
                sampler,
                scheduler=scheduler,
                epoch=epoch,
                precision=precision,
                scaler=scaler,
            ),
        )
        monitored = None
        if monitor_archs and parallel.is_main:
            monitored = monitor_accuracy(supernet, data, bn_batches, monitor_archs)
        metrics = EpochMetrics.of(epoch + 1, stats, seconds, val_accuracy=monitored)
        history.append(metrics)
        report(EpochReport(metrics, supernet, optimizer, scheduler, scaler))
    return TrainingResult(supernet, tuple(history))
