"""Measured CPU latency of a model at batch size 1."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn


@torch.no_grad()
def measure_latency_ms(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
) -> float:
    """Median wall time in milliseconds of one forward pass of a single image.

    ``input_shape`` is ``(C, H, W)`` (or ``(1, C, H, W)``). Runs in eval mode under no_grad
    with ``threads`` intra-op threads if given; the model's mode and torch's thread count are
    restored afterwards.
    """
    if repeats < 1:
        raise ValueError(f"repeats: {repeats}; expected at least 1")
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1:
        raise ValueError(f"input_shape: {tuple(input_shape)}; expected (C, H, W) or (1, C, H, W)")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    images = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    was_training = model.training
    previous_threads = torch.get_num_threads()
    try:
        model.eval()
        if threads is not None:
            torch.set_num_threads(threads)
        for _ in range(warmup):
            model(images)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(images)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
        torch.set_num_threads(previous_threads)
    return float(statistics.median(times))
