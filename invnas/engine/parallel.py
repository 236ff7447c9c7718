"""Data-parallel training: the engine's training functions run unchanged in every process of a
``torch.distributed`` group (gloo on CPU, NCCL on CUDA), each on its part of every batch.

What every worker does (see :class:`DataParallel`):

- trains the same path at every step: paths are drawn from the run's seed, the epoch and the
  step, never from the worker's rank, so every worker's sampler gives the same archs;
- takes its contiguous part of each batch (``SeededData.shard``), the batch being the one a
  single process trains on, so N workers train on what one worker would;
- weights its loss by its part of the batch and, after the backward passes of a step, sums the
  gradients of all workers in one all-reduce. Only parameters that have a gradient take part:
  in a single-path supernet the unused candidates have none, and every worker trained the same
  path, so the sets agree (checked each step). This is DDP's arithmetic without its
  ``find_unused_parameters`` (which all-reduces the whole supernet, zeros included) and
  without its ``no_sync`` dance for the several forward passes of fair sampling;
- normalises with the batch statistics of all workers in training mode (synchronised
  BatchNorm: one all-reduce of ``[sum, sum of squares, count]`` per layer, differentiable,
  sliced BatchNorm included; ``nn.SyncBatchNorm`` refuses CPU tensors and channel slices), so
  the running statistics stay the same on every worker;
- evaluates on the main worker only (monitor, validation and test accuracy, latency).

Example (each of N processes; Ray Train's TorchTrainer sets the group up itself)::

    with process_group(rank, world_size, port=29500) as parallel:
        train_supernet(space, settings, data, parallel.device, bn_batches=10,
                       parallel=parallel)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import os
import time
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from invnas.engine.data import SeededData
from invnas.train.loops import EpochStats, GradientSync


class SingleProcess:
    """Training in this process alone: every step is its own (the engine's default)."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """True on the worker that evaluates, reports metrics and writes checkpoints."""
        return self.rank == 0

    def shard(self, data: SeededData) -> SeededData:
        """``data`` with this worker's part of every training batch."""
        return data

    def broadcast(self, model: nn.Module) -> None:
        """Give every worker the main worker's parameters and buffers."""

    def reduce_stats(self, stats: EpochStats) -> EpochStats:
        """The epoch's statistics over the samples of every worker."""
        return stats

    def gather(self, value: str) -> list[str]:
        """``value`` of every worker, by rank."""
        return [value]

    @contextlib.contextmanager
    def training(self, model: nn.Module) -> Iterator[GradientSync | None]:
        """While training ``model``: the gradient sync to give the training loop (None)."""
        yield None

    def run_epoch(
        self, model: nn.Module, train: Callable[..., EpochStats]
    ) -> tuple[EpochStats, float]:
        """``train(sync=...)`` one epoch of ``model`` as this worker: the statistics of every
        worker, and the seconds it took."""
        began = time.perf_counter()
        with self.training(model) as sync:
            stats = train(sync=sync)
        return self.reduce_stats(stats), time.perf_counter() - began


SINGLE = SingleProcess()


class DataParallel(SingleProcess):
    """This process as one worker of the initialised default ``torch.distributed`` group;
    tensors it exchanges live on ``device`` (CUDA for NCCL). ``sync_batch_norm=False`` leaves
    BatchNorm to each worker's part of the batch (one all-reduce per layer less; the running
    statistics then differ between workers and the main worker's are kept)."""

    def __init__(self, device: torch.device, sync_batch_norm: bool = True) -> None:
        if not dist.is_initialized():
            raise RuntimeError("DataParallel needs an initialised torch.distributed group")
        self.device = device
        self.sync_batch_norm = sync_batch_norm
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    def shard(self, data: SeededData) -> SeededData:
        return dataclasses.replace(data, shard=(self.rank, self.world_size))

    def broadcast(self, model: nn.Module) -> None:
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, src=0)

    def reduce_stats(self, stats: EpochStats) -> EpochStats:
        sums = torch.tensor(
            [stats.loss * stats.samples, stats.accuracy * stats.samples, float(stats.samples)],
            dtype=torch.float64,
            device=self.device,
        )
        dist.all_reduce(sums)
        loss, correct, samples = sums.tolist()
        return EpochStats(loss / max(samples, 1), correct / max(samples, 1), int(samples))

    def gather(self, value: str) -> list[str]:
        values: list[str | None] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return [str(v) for v in values]

    @contextlib.contextmanager
    def training(self, model: nn.Module) -> Iterator[DataParallel]:
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        if not self.sync_batch_norm:
            norms = []
        for norm in norms:
            norm.forward = functools.partial(synced_batch_norm, norm)
        try:
            yield self
        finally:
            for norm in norms:
                del norm.forward

    def batch_weight(self, samples: int) -> float:
        """This worker's share of the step's batch (all workers' samples summed)."""
        total = torch.tensor([float(samples)], device=self.device)
        dist.all_reduce(total)
        return samples / float(total)

    def after_backward(self, model: nn.Module) -> None:
        """Sum the (batch-weighted) gradients of every worker, in one all-reduce."""
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        sizes = [g.numel() for g in grads]
        signature = torch.tensor(
            [len(grads), sum(sizes), -len(grads), -sum(sizes)], device=self.device
        )
        dist.all_reduce(signature, op=dist.ReduceOp.MAX)
        if signature[0] != len(grads) or -signature[2] != len(grads) or -signature[3] != sum(sizes):
            raise RuntimeError(
                "data-parallel workers trained different paths (their gradients differ in "
                "shape); every worker must draw the same paths"
            )
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for grad, part in zip(grads, flat.split(sizes), strict=True):
            grad.copy_(part.view_as(grad))


class _SumOverWorkers(torch.autograd.Function):
    """The sum of a tensor over every worker, differentiable: the gradient of each worker's
    input is the sum of every worker's output gradient."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


def synced_batch_norm(norm: _BatchNorm, x: Tensor) -> Tensor:
    """``norm`` applied to ``x`` (its leading ``x.shape[1]`` channels, as a sliced BatchNorm)
    with, in training mode, the mean and variance of the whole batch of every worker; the
    running statistics are updated with them. In eval mode: ``norm``'s own forward."""
    if not norm.training:
        return type(norm).forward(norm, x)
    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    full = x.float()  # statistics in float32, also under autocast
    local = torch.cat(
        [full.sum(dims), (full * full).sum(dims), full.new_full((1,), x.numel() / channels)]
    )
    total = _SumOverWorkers.apply(local)
    count = total[-1]
    mean = total[:channels] / count
    var = (total[channels : 2 * channels] / count - mean * mean).clamp_min(0.0)
    if norm.track_running_stats and norm.running_mean is not None:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            factor = norm.momentum
            if factor is None:
                factor = 1.0 / float(norm.num_batches_tracked)
            unbiased = var * count / (count - 1).clamp_min(1.0)
            norm.running_mean[:channels].lerp_(mean.detach(), factor)
            norm.running_var[:channels].lerp_(unbiased.detach(), factor)
    shape = (1, channels) + (1,) * (x.dim() - 2)
    out = (full - mean.view(shape)) * torch.rsqrt(var.view(shape) + norm.eps)
    if norm.affine:
        out = out * norm.weight[:channels].view(shape) + norm.bias[:channels].view(shape)
    return out.to(x.dtype)


@contextlib.contextmanager
def process_group(
    rank: int,
    world_size: int,
    *,
    port: int,
    address: str = "127.0.0.1",
    device: torch.device | None = None,
    timeout_s: float = 600.0,
) -> Iterator[DataParallel]:
    """This process as worker ``rank`` of ``world_size`` in a new default group (gloo on CPU,
    NCCL when ``device`` is CUDA) rendezvousing at ``address:port``; torn down afterwards."""
    device = device or torch.device("cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    os.environ.setdefault("MASTER_ADDR", address)
    os.environ.setdefault("MASTER_PORT", str(port))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend,
        init_method=f"tcp://{address}:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        yield DataParallel(device)
    finally:
        dist.destroy_process_group()
