"""Training and evaluation loops shared by supernet training, search and retraining."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from invnas.nn.sampling import PathSampler

Forward = Callable[[Tensor], Tensor]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run cannot continue meaningfully."""

    def __init__(self, loss: float, epoch: int, step: int) -> None:
        super().__init__(f"non-finite training loss ({loss}) at epoch {epoch}, step {step}")
        self.loss = loss
        self.epoch = epoch
        self.step = step

    def __reduce__(self):  # Ray pickles a trial's exception to hand it to the driver
        return type(self), (self.loss, self.epoch, self.step)


class GradientSync(Protocol):
    """How data-parallel workers combine their steps (see :mod:`invnas.engine.parallel`)."""

    def batch_weight(self, samples: int) -> float:
        """This worker's share of the step's batch: its loss is weighted by it."""

    def after_backward(self, model: nn.Module) -> None:
        """Sum the weighted gradients of every worker, before the optimizer steps."""


@dataclass(frozen=True)
class EpochStats:
    """Mean loss and accuracy over the samples seen in one training epoch."""

    loss: float
    accuracy: float
    samples: int


@dataclass(frozen=True)
class EvalStats:
    """Mean loss and accuracy of a model over a whole loader."""

    loss: float
    accuracy: float
    samples: int


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def memory_format_of(model: nn.Module) -> torch.memory_format:
    """``torch.channels_last`` when ``model``'s convolution weights are stored so (see
    ``Module.to(memory_format=...)``), else ``torch.contiguous_format``: the loops give their
    images the model's order."""
    for parameter in model.parameters():
        if parameter.dim() == 4 and not parameter.is_contiguous():
            if parameter.is_contiguous(memory_format=torch.channels_last):
                return torch.channels_last
    return torch.contiguous_format


def _to(
    device: torch.device, images: Tensor, labels: Tensor, order: torch.memory_format
) -> tuple[Tensor, Tensor]:
    """``images`` (in the memory ``order``) and ``labels`` on ``device``; copies from pinned
    memory to CUDA do not block the host (the kernels that read them queue behind the copies
    on the same stream)."""
    images = images.to(device, non_blocking=True, memory_format=order)
    return images, labels.to(device, non_blocking=True)


def _check_finite(loss: Tensor, epoch: int, step: int) -> None:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(value, epoch, step)


def train_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: Optimizer,
    *,
    forward: Forward | None = None,
    scheduler: LRScheduler | None = None,
    epoch: int = 0,
    max_steps: int | None = None,
    sync: GradientSync | None = None,
    precision: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> EpochStats:
    """One pass of cross-entropy training over ``loader`` (at most ``max_steps`` batches).

    ``forward(x) -> logits`` defaults to ``model(x)``; ``scheduler`` steps after every batch.
    Raises :class:`NonFiniteLossError` (naming ``epoch`` and the step) on a NaN/inf loss,
    before the bad gradient reaches the weights. With ``sync`` this is one data-parallel
    worker: its gradients are combined with the others' before every optimizer step (the
    returned statistics are its own). ``precision`` (torch.bfloat16 or torch.float16): the
    forward passes run under autocast in that dtype; None: full precision. float16 scales the
    loss with ``scaler`` (see :func:`make_scaler`; kept by the caller across epochs and
    checkpoints), or with a scaler made for the epoch when None.
    """
    forwards = [forward or model]
    return _train_steps(
        model,
        loader,
        optimizer,
        lambda: forwards,
        scheduler,
        epoch,
        max_steps,
        sync,
        precision,
        scaler,
    )


def train_supernet_epoch(
    supernet: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: Optimizer,
    sampler: PathSampler,
    *,
    scheduler: LRScheduler | None = None,
    epoch: int = 0,
    max_steps: int | None = None,
    sync: GradientSync | None = None,
    precision: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> EpochStats:
    """One epoch of weight-sharing training: per batch, ``sampler.step()`` gives the archs
    (one for uniform sampling, several for fair sampling); the gradients of
    ``loss(supernet(x, arch), y) / len(archs)`` accumulate over them before one optimizer step.
    The reported loss and accuracy are averaged over the archs of each batch. ``sync``,
    ``precision`` and ``scaler``: as in :func:`train_epoch` (every worker's sampler must give
    the same archs)."""

    def paths() -> list[Forward]:
        return [functools.partial(supernet, arch=arch) for arch in sampler.step()]

    return _train_steps(
        supernet, loader, optimizer, paths, scheduler, epoch, max_steps, sync, precision, scaler
    )


def _train_steps(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    optimizer: Optimizer,
    paths: Callable[[], Sequence[Forward]],
    scheduler: LRScheduler | None,
    epoch: int,
    max_steps: int | None,
    sync: GradientSync | None = None,
    precision: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> EpochStats:
    """The loop of both trainings: per batch, the gradients of every forward ``paths()`` gives
    accumulate (each loss divided by their number) before one optimizer step."""
    device = device_of(model)
    order = memory_format_of(model)
    if scaler is None:
        scaler = make_scaler(device, precision)
    model.train()
    total_loss, correct, seen = 0.0, 0.0, 0
    for step, (images, labels) in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        images, labels = _to(device, images, labels, order)
        forwards = paths()
        if not forwards:
            raise ValueError("sampler.step() returned no architectures")
        optimizer.zero_grad(set_to_none=True)
        weight = 1.0 if sync is None else sync.batch_weight(labels.shape[0])
        batch_loss, batch_correct = 0.0, 0
        for forward in forwards:
            with _autocast(device, precision):
                logits = forward(images)
            loss = F.cross_entropy(logits.float(), labels) / len(forwards)
            _check_finite(loss, epoch, step)
            weighted = loss * weight if sync is not None else loss
            (scaler.scale(weighted) if scaler is not None else weighted).backward()
            batch_loss += float(loss.detach())
            batch_correct += int((logits.detach().argmax(1) == labels).sum())
        if sync is not None:
            sync.after_backward(model)
        if scaler is not None:  # skips the step when a scaled gradient overflowed
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        batch = labels.shape[0]
        total_loss += batch_loss * batch
        correct += batch_correct / len(forwards)
        seen += batch
    return EpochStats(total_loss / max(seen, 1), correct / max(seen, 1), seen)


def make_scaler(device: torch.device, precision: torch.dtype | None) -> torch.amp.GradScaler | None:
    """The gradient scaler of float16 training on ``device``; None for other precisions (which
    need none). Its ``state_dict`` (the current scale) belongs in a training checkpoint."""
    return torch.amp.GradScaler(device.type) if precision == torch.float16 else None


def _autocast(device: torch.device, precision: torch.dtype | None):
    if precision is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=precision)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[tuple[Tensor, Tensor]],
    *,
    forward: Forward | None = None,
    max_steps: int | None = None,
) -> EvalStats:
    """Mean cross-entropy and accuracy of ``model`` over ``loader``, in eval mode (the model's
    previous mode is restored). A NaN loss is returned as is, not raised."""
    forward = forward or model
    device = device_of(model)
    order = memory_format_of(model)
    was_training = model.training
    model.eval()
    try:
        total_loss, correct, seen = 0.0, 0, 0
        for step, (images, labels) in enumerate(loader):
            if max_steps is not None and step >= max_steps:
                break
            images, labels = _to(device, images, labels, order)
            logits = forward(images)
            total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(1) == labels).sum())
            seen += labels.shape[0]
    finally:
        model.train(was_training)
    return EvalStats(total_loss / max(seen, 1), correct / max(seen, 1), seen)


def make_optimizer(
    model_or_params: nn.Module | Iterable[nn.Parameter],
    lr: float,
    momentum: float,
    weight_decay: float,
) -> torch.optim.SGD:
    """SGD with Nesterov momentum (plain momentum-free SGD when ``momentum`` is 0). Weight decay
    applies to weight tensors only, not to biases or normalisation scales (1-d parameters)."""
    params = (
        model_or_params.parameters() if isinstance(model_or_params, nn.Module) else model_or_params
    )
    params = [p for p in params if p.requires_grad]
    decayed = [p for p in params if p.ndim > 1]
    undecayed = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decayed, "weight_decay": weight_decay},
        {"params": undecayed, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


class CosineDecay:
    """Learning-rate factor ``0.5 * (1 + cos(pi * step / total_steps))``, 0 after the end.

    A plain object (not a closure) so that a scheduler's state_dict records ``total_steps``.
    """

    def __init__(self, total_steps: int) -> None:
        self.total_steps = max(1, int(total_steps))

    def __call__(self, step: int) -> float:
        progress = min(step, self.total_steps) / self.total_steps
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer: Optimizer, epochs: int, steps_per_epoch: int) -> LambdaLR:
    """Cosine decay from the optimizer's lr to 0 over ``epochs * steps_per_epoch`` steps; call
    ``scheduler.step()`` after every batch. Its ``state_dict`` round-trips for resuming."""
    return LambdaLR(optimizer, CosineDecay(epochs * steps_per_epoch))
