"""Scoring one architecture on weights inherited from the supernet: extract its subnet,
recalibrate BatchNorm on the seeded calibration batches, evaluate, count params/MACs and
measure latency."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from invnas.engine.data import SeededData, Split
from invnas.nn.bn import recalibrate_bn
from invnas.nn.builder import ArchNet
from invnas.nn.supernet import Supernet
from invnas.space.arch import Arch
from invnas.space.cost import cost
from invnas.space.spec import SearchSpace
from invnas.train.latency import measure_latency_ms
from invnas.train.loops import device_of, evaluate

LATENCY_REPEATS = 20


def load_supernet(space: SearchSpace, weights: str | Path) -> Supernet:
    """A supernet of ``space`` on the CPU with the state_dict saved in ``weights``."""
    supernet = Supernet(space)
    supernet.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return supernet


@dataclass(frozen=True)
class InheritedModel:
    """A subnet holding the supernet's weights, its BatchNorm recalibrated on ``bn_batches``
    calibration batches (0: the supernet's running statistics kept)."""

    model: ArchNet
    bn_batches: int


def inherited_model(
    supernet: Supernet,
    arch: Arch,
    data: SeededData,
    bn_batches: int,
    device: torch.device | None = None,
) -> InheritedModel:
    """``arch`` extracted from ``supernet`` (on ``device``, default the supernet's) with
    BatchNorm recalibrated on the first ``bn_batches`` of ``data.calibration_loader()``,
    the same batches for every architecture."""
    model = supernet.extract(arch)
    if device is not None:
        model = model.to(device)
    used = recalibrate_bn(model, data.on(device_of(model)).calibration_loader(), bn_batches)
    return InheritedModel(model, used)


@dataclass(frozen=True)
class ArchScore:
    """An architecture scored with inherited weights: accuracy and loss on the evaluated
    split, the cost model's params and MACs, and latency (None when not measured)."""

    arch: Arch
    model: ArchNet
    bn_batches: int
    accuracy: float
    loss: float
    params: int
    macs: int
    latency_ms: float | None


def score_arch(
    supernet: Supernet,
    arch: Arch,
    data: SeededData,
    bn_batches: int,
    *,
    device: torch.device | None = None,
    split: Split = "val",
    measure_latency: bool = True,
    latency_threads: int | None = None,
) -> ArchScore:
    """Score ``arch`` as a search trial does: :func:`inherited_model`, then accuracy on
    ``split``, params/MACs from :func:`invnas.space.cost.cost` and, if ``measure_latency``,
    the median batch-1 latency with ``latency_threads`` threads.

    Example::

        score = score_arch(supernet, arch, load_data(space, config), config.search.bn_batches)
        print(score.accuracy, score.macs)
    """
    inherited = inherited_model(supernet, arch, data, bn_batches, device)
    model = inherited.model
    stats = evaluate(model, data.on(device_of(model)).eval_loader(split))
    counted = cost(supernet.space, arch)
    latency = None
    if measure_latency:
        space = supernet.space
        latency = measure_latency_ms(
            model,
            (space.input.channels, space.input.size, space.input.size),
            repeats=LATENCY_REPEATS,
            threads=latency_threads,
        )
    return ArchScore(
        arch=arch,
        model=model,
        bn_batches=inherited.bn_batches,
        accuracy=stats.accuracy,
        loss=stats.loss,
        params=counted.params,
        macs=counted.macs,
        latency_ms=latency,
    )
