"""Training one architecture stand-alone: from scratch or fine-tuned from its inherited
weights, with validation accuracy every epoch and test accuracy and latency at the end."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from invnas.config import RetrainConfig
from invnas.engine.checkpoint import resume_training
from invnas.engine.data import SeededData
from invnas.engine.records import EpochMetrics, EpochReport, OnEpoch, TrainingResult
from invnas.engine.scoring import inherited_model, load_supernet
from invnas.nn.builder import build_model
from invnas.space.arch import Arch
from invnas.space.spec import SearchSpace
from invnas.train.latency import measure_latency_ms
from invnas.train.loops import evaluate, make_optimizer, make_scheduler, train_epoch
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
) -> TrainingResult:
    """Train ``arch`` for ``settings.epochs`` epochs from :func:`initial_model`, its random
    streams derived from ``seed`` (initialisation, then each epoch's order).

    ``on_epoch`` gets every epoch's metrics (training loss/accuracy, validation accuracy) and
    the training state; the last epoch's also carry the test accuracy and the batch-1 latency
    (``latency_threads`` threads). With 0 epochs the initial model is scored as epoch 1.
    ``resume_from`` (a ``training.pt`` checkpoint) continues after its epoch.
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
    )
    optimizer = make_optimizer(model, settings.lr, settings.momentum, settings.weight_decay)
    epochs = max(settings.epochs, 1)
    scheduler = make_scheduler(optimizer, epochs, data.steps_per_epoch)
    start = resume_training(resume_from, model, optimizer, scheduler)
    report = on_epoch or (lambda _: None)
    val_loader = data.eval_loader("val")
    history = []
    for epoch in range(start, epochs):
        stats = None
        if settings.epochs > 0:
            epoch_seed = derive_seed(seed, epoch)
            seed_everything(epoch_seed)
            stats = train_epoch(
                model, data.train_loader(epoch_seed), optimizer, scheduler=scheduler, epoch=epoch
            )
        measured: dict[str, float | None] = {"val_accuracy": evaluate(model, val_loader).accuracy}
        if epoch + 1 >= settings.epochs:
            measured["test_accuracy"] = evaluate(model, data.eval_loader("test")).accuracy
            measured["latency_ms"] = measure_latency_ms(
                model,
                (space.input.channels, space.input.size, space.input.size),
                threads=latency_threads,
            )
        metrics = EpochMetrics.of(epoch + 1, stats, **measured)
        history.append(metrics)
        report(EpochReport(metrics, model, optimizer, scheduler))
    return TrainingResult(model, tuple(history))
