"""Seeded DataLoaders: the same seed gives the same batches in the same order."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling (and worker seeding) comes from its own generator seeded with
    ``seed``. Successive epochs over one loader get different orders; to reproduce epoch ``e``
    after a resume, build the loader with a seed derived from ``(seed, e)``. ``pin_memory``
    puts batches in page-locked memory, for asynchronous copies to a CUDA device."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
