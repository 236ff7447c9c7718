"""Seeded DataLoaders: the same seed gives the same batches in the same order."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class ShardedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Part ``index`` of ``count`` of every batch ``batches`` gives (contiguous, sizes
    differing by at most one): data-parallel workers each take their part of the same batch,
    and their parts together are the batch a single process would train on. A last batch
    smaller than ``count`` is dropped (some worker would get no sample)."""

    def __init__(self, batches: BatchSampler, index: int, count: int) -> None:
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count}: expected 0 <= index < count")
        self.batches = batches
        self.index = index
        self.count = count

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            if len(batch) < self.count:
                return
            size, extra = divmod(len(batch), self.count)
            start = self.index * size + min(self.index, extra)
            yield batch[start : start + size + (self.index < extra)]

    def __len__(self) -> int:
        batches = len(self.batches)
        if batches and not self.batches.drop_last:
            last = len(self.batches.sampler) - (batches - 1) * self.batches.batch_size
            batches -= last < self.count
        return batches


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    shard: tuple[int, int] | None = None,
) -> DataLoader:
    """A DataLoader whose shuffling (and worker seeding) comes from its own generator seeded with
    ``seed``. Successive epochs over one loader get different orders; to reproduce epoch ``e``
    after a resume, build the loader with a seed derived from ``(seed, e)``. ``pin_memory``
    puts batches in page-locked memory, for asynchronous copies to a CUDA device.

    ``shard=(index, count)`` yields only part ``index`` of each batch (see
    :class:`ShardedBatchSampler`); the batches themselves are those of ``shard=None``."""
    generator = torch.Generator().manual_seed(seed)
    # the samplers DataLoader itself builds for ``shuffle``, drawing from the same generator
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    batches: torch.utils.data.Sampler[list[int]] = BatchSampler(order, batch_size, drop_last)
    if shard is not None:
        batches = ShardedBatchSampler(batches, *shard)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
