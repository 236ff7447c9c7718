"""Training one architecture stand-alone: from scratch or fine-tuned from its inherited
weights, with validation accuracy every epoch and test accuracy and latency at the end."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch
from torch import nn

from invnas.config import RetrainConfig
from invnas.engine.checkpoint import resume_training
from invnas.engine.data import SeededData
from invnas.engine.parallel import SINGLE, SingleProcess
from invnas.engine.records import EpochMetrics, EpochReport, OnEpoch, TrainingResult
from invnas.engine.scoring import inherited_model, load_supernet
from invnas.nn.builder import build_model
from invnas.space.arch import Arch
from invnas.space.spec import SearchSpace
from invnas.train.latency import measure_latency_ms
from invnas.train.loops import evaluate, make_optimizer, make_scaler, make_scheduler, train_epoch
from invnas.train.seeding import derive_seed, seed_everything


def initial_model(
    space: SearchSpace,
    arch: Arch,
    settings: RetrainConfig,
    data: SeededData,
    device: torch.device,
    *,
    supernet_weights: str | Path | None = None,
    bn_batches: int = 0,
) -> nn.Module:
    """``arch``'s model before training: freshly initialised (``scratch``) or, for
    ``finetune``, inherited from the supernet in ``supernet_weights`` with BatchNorm
    recalibrated on ``bn_batches`` calibration batches."""
    if settings.mode == "scratch":
        return build_model(space, arch).to(device)
    if supernet_weights is None:
        raise ValueError("retrain.mode: finetune needs the supernet's weights (supernet_weights)")
    supernet = load_supernet(space, supernet_weights)
    return inherited_model(supernet, arch, data, bn_batches, device).model


def train_standalone(
    space: SearchSpace,
    arch: Arch,
    settings: RetrainConfig,
    data: SeededData,
    device: torch.device,
    *,
    seed: int,
    supernet_weights: str | Path | None = None,
    bn_batches: int = 0,
    latency_threads: int | None = None,
    on_epoch: OnEpoch | None = None,
    resume_from: str | Path | None = None,
    parallel: SingleProcess = SINGLE,
    precision: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> TrainingResult:
    """Train ``arch`` for ``settings.epochs`` epochs from :func:`initial_model`, its random
    streams derived from ``seed`` (initialisation, then each epoch's order).

    ``on_epoch`` gets every epoch's metrics (training loss/accuracy, validation accuracy) and
    the training state; the last epoch's also carry the test accuracy and the batch-1 latency
    (``latency_threads`` threads). With 0 epochs the initial model is scored as epoch 1.
    ``resume_from`` (a ``training.pt`` checkpoint) continues after its epoch. ``parallel``:
    one of several data-parallel workers, as in :func:`invnas.engine.train_supernet`
    (accuracies and latency are measured by the main worker only). ``precision``: autocast
    dtype of the training steps (None: full precision; float16's gradient scaler is
    checkpointed). ``memory_format``: the model's weights' order, as in
    :func:`invnas.engine.train_supernet`.
    """
    data = data.on(device)
    seed_everything(seed)
    model = initial_model(
        space,
        arch,
        settings,
        data,
        device,
        supernet_weights=supernet_weights,
        bn_batches=bn_batches,
    ).to(memory_format=memory_format)
    optimizer = make_optimizer(model, settings.lr, settings.momentum, settings.weight_decay)
    epochs = max(settings.epochs, 1)
    scheduler = make_scheduler(optimizer, epochs, data.steps_per_epoch)
    scaler = make_scaler(device, precision)
    start = resume_training(resume_from, model, optimizer, scheduler, scaler)
    parallel.broadcast(model)
    data = parallel.shard(data)
    report = on_epoch or (lambda _: None)
    history = []
    for epoch in range(start, epochs):
        stats, seconds = None, 0.0
        if settings.epochs > 0:
            epoch_seed = derive_seed(seed, epoch)
            seed_everything(epoch_seed)
            train = functools.partial(
                train_epoch,
                model,
                data.train_loader(epoch_seed),
                optimizer,
                scheduler=scheduler,
                epoch=epoch,
                precision=precision,
                scaler=scaler,
            )
            stats, seconds = parallel.run_epoch(model, train)
        metrics = EpochMetrics.of(epoch + 1, stats, seconds)
        if parallel.is_main:
            metrics = _scored(metrics, model, space, data, settings, latency_threads)
        history.append(metrics)
        report(EpochReport(metrics, model, optimizer, scheduler, scaler))
    return TrainingResult(model, tuple(history))


def _scored(
    metrics: EpochMetrics,
    model: nn.Module,
    space: SearchSpace,
    data: SeededData,
    settings: RetrainConfig,
    latency_threads: int | None,
) -> EpochMetrics:
    """``metrics`` with the validation accuracy and, after the last epoch, the test accuracy
    and latency."""
    measured: dict[str, float | None] = {
        "val_accuracy": evaluate(model, data.eval_loader("val")).accuracy
    }
    if metrics.epoch >= settings.epochs:
        measured["test_accuracy"] = evaluate(model, data.eval_loader("test")).accuracy
        measured["latency_ms"] = measure_latency_ms(
            model,
            (space.input.channels, space.input.size, space.input.size),
            threads=latency_threads,
        )
    return dataclasses.replace(metrics, **measured)
