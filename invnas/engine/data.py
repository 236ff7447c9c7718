"""The dataset's splits, fixed by the run's seed, and the seeded loaders every phase batches
them with."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader

from invnas.config import DataConfig, RunConfig
from invnas.data import DatasetSplits, load_splits, make_loader
from invnas.space.spec import InputSpec, SearchSpace
from invnas.train.seeding import derive_seed

EVAL_BATCH_SIZE = 256

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class SeededData:
    """The splits of a run's dataset and how they are batched.

    ``seed`` is the run's seed: it fixed the splits, and the engine derives its other random
    streams (training order, BatchNorm calibration batches, sampled paths) from it. ``workers``
    DataLoader processes prepare the batches; ``pin_memory`` puts them in page-locked memory
    (see :meth:`on`).
    """

    splits: DatasetSplits
    seed: int
    batch_size: int
    workers: int = 0
    pin_memory: bool = False

    def on(self, device: torch.device) -> SeededData:
        """These data batched for a model on ``device``: pinned memory for CUDA, so that
        the loops' non-blocking copies overlap the computation."""
        return dataclasses.replace(self, pin_memory=torch.device(device).type == "cuda")

    def train_loader(self, seed: int) -> DataLoader:
        """Shuffled training batches in an order fixed by ``seed``."""
        return make_loader(
            self.splits.train,
            self.batch_size,
            shuffle=True,
            seed=seed,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
        )

    def eval_loader(self, split: Split) -> DataLoader:
        """Unshuffled batches of ``split`` for evaluation."""
        return make_loader(
            getattr(self.splits, split),
            max(EVAL_BATCH_SIZE, self.batch_size),
            shuffle=False,
            seed=0,
            num_workers=self.workers,
            pin_memory=self.pin_memory,
        )

    def calibration_loader(self) -> DataLoader:
        """The training batches BatchNorm is recalibrated on, the same for every subnet."""
        return self.train_loader(derive_seed(self.seed, "bn"))

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch."""
        return len(self.train_loader(0))


@functools.lru_cache(maxsize=2)
def _cached_splits(
    data: DataConfig, input: InputSpec, seed: int, root: str | None, num_classes: int
) -> DatasetSplits:
    return load_splits(data, input, seed, Path(root) if root else None, num_classes=num_classes)


def load_data(
    space: SearchSpace,
    config: RunConfig,
    root: str | Path | None = None,
    *,
    cpus: float | None = None,
) -> SeededData:
    """The splits of ``config.data`` for ``space``'s input, fixed by ``config.seed`` (a relative
    ``data.path`` is taken from ``root``). Splits are read once per process and reused. The
    loaders use ``data.workers`` processes, by default as many as suit ``cpus`` (the trial's
    CPUs; default ``resources.cpus_per_trial``) and the way the images are held."""
    splits = _cached_splits(
        config.data, space.input, config.seed, str(root) if root else None, space.num_classes
    )
    cpus = config.resources.cpus_per_trial if cpus is None else cpus
    return SeededData(
        splits=splits,
        seed=config.seed,
        batch_size=config.data.batch_size,
        workers=config.data.workers_for(cpus, splits.streamed),
    )
