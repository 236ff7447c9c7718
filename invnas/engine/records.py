"""Typed records the engine's training functions report and return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from invnas.train.loops import EpochStats


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch measured. ``epoch`` counts the finished epochs (0 only for the single
    report of a run with no epochs to train); a metric that was not measured is None.
    ``images_per_s``: training images per second of the epoch (all workers together)."""

    epoch: int
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    latency_ms: float | None = None
    images_per_s: float | None = field(default=None, compare=False)  # a timing, not a result

    @classmethod
    def of(
        cls, epoch: int, train: EpochStats | None, seconds: float = 0.0, **measured: float | None
    ) -> EpochMetrics:
        """The metrics of ``epoch`` with its training statistics (None: no training) and the
        images per second of its ``seconds`` of training (all workers together)."""
        if train is None:
            return cls(epoch, **measured)
        speed = train.samples / seconds if seconds > 0 else None
        return cls(epoch, train.loss, train.accuracy, images_per_s=speed, **measured)

    def as_dict(self) -> dict[str, int | float | None]:
        """The metrics by name, as reported to Tune: ``epoch`` and ``val_accuracy`` always
        (None when not measured), the others only when measured."""
        values = {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy,
            "val_accuracy": self.val_accuracy,
            "test_accuracy": self.test_accuracy,
            "latency_ms": self.latency_ms,
            "images_per_s": self.images_per_s,
        }
        kept = ("epoch", "val_accuracy")
        return {key: value for key, value in values.items() if value is not None or key in kept}


@dataclass(frozen=True)
class EpochReport:
    """One epoch's metrics with the live training state after it: what a caller reports and
    checkpoints (e.g. with :func:`invnas.engine.checkpoint.write_checkpoint`); ``scaler``:
    the gradient scaler of float16 training (None otherwise)."""

    metrics: EpochMetrics
    model: nn.Module
    optimizer: Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler | None = None

    @property
    def epoch(self) -> int:
        """Finished epochs: a run resumed from this state starts after it."""
        return self.metrics.epoch


OnEpoch = Callable[[EpochReport], None]


@dataclass(frozen=True)
class TrainingResult:
    """A finished training call: the trained model and the metrics of the epochs it ran (none
    when it resumed from a state that had finished already)."""

    model: nn.Module
    history: tuple[EpochMetrics, ...]

    @property
    def last(self) -> EpochMetrics | None:
        """The metrics of the last epoch run, None if it ran none."""
        return self.history[-1] if self.history else None
