"""Labelled images held in memory, and the dataset that turns them into model inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from invnas.data.augment import BatchTransform


@dataclass(frozen=True)
class LabelledImages:
    """A pool of images as read from disk, before splitting and normalisation.

    ``images`` is ``(N, C, H, W)``, either ``uint8`` (0..255) or floating point in ``[0, 1]``;
    ``labels`` is ``int64`` ``(N,)``; ``indices`` are the rows' positions in the source they were
    read from (file order), kept so that a split can be traced back to its origin.
    """

    images: Tensor
    labels: Tensor
    class_names: tuple[str, ...]
    indices: Tensor

    @classmethod
    def create(cls, images: Tensor, labels: Tensor, class_names: Sequence[str]) -> LabelledImages:
        """Pool whose ``indices`` are simply ``0..N-1``."""
        if images.ndim != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"images {tuple(images.shape)} and labels {tuple(labels.shape)} do not match"
            )
        return cls(images, labels.long(), tuple(class_names), torch.arange(labels.shape[0]))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def subset(self, rows: Tensor) -> LabelledImages:
        """The rows ``rows`` of this pool (their ``indices`` follow them)."""
        return LabelledImages(
            self.images[rows], self.labels[rows], self.class_names, self.indices[rows]
        )

    def read(self, rows: Tensor) -> Tensor:
        """The images of rows ``rows``."""
        return self.images[rows]


class ImagePool(Protocol):
    """Labelled images in memory (:class:`LabelledImages`) or on disk
    (:class:`~invnas.data.stream.ImageFiles`): what splits and datasets need of them."""

    labels: Tensor
    class_names: tuple[str, ...]
    indices: Tensor

    def __len__(self) -> int: ...

    @property
    def channels(self) -> int: ...

    def subset(self, rows: Tensor) -> ImagePool: ...

    def read(self, rows: Tensor) -> Tensor: ...


def to_unit_float(images: Tensor) -> Tensor:
    """``uint8`` images scaled to ``[0, 1]``; float images returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def channel_stats(
    pool: ImagePool, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of a pool's images in ``[0, 1]`` units (read
    ``chunk`` images at a time, so a streamed pool is never held whole)."""
    channels, rows = pool.channels, len(pool)
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    count = 0
    for start in range(0, rows, chunk):
        block = to_unit_float(pool.read(torch.arange(start, min(start + chunk, rows)))).double()
        total += block.sum(dim=(0, 2, 3))
        squares += block.square().sum(dim=(0, 2, 3))
        count += block.shape[0] * block.shape[2] * block.shape[3]
    if count == 0:
        raise ValueError("cannot compute image statistics of an empty split")
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0.0).sqrt().clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def resize_images(images: Tensor, size: int) -> Tensor:
    """Float images resized to ``size`` x ``size`` (bilinear, antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    shrinking = images.shape[-1] > size or images.shape[-2] > size
    return F.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )


class ImageTensorDataset(Dataset):
    """Images of a pool, each returned as a normalised float tensor ``(C, size, size)``.

    Per batch of indices the pool's images are read (decoded, for files), scaled to ``[0, 1]``,
    resized to ``size``, replicated from 1 to ``channels`` channels if asked, transformed by
    ``augment`` (a training augmentation or an evaluation crop) if given, and normalised with
    ``mean``/``std``. Items are ``(image, label)`` pairs.
    """

    def __init__(
        self,
        pool: ImagePool,
        *,
        size: int,
        channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: BatchTransform | None = None,
    ) -> None:
        if channels != pool.channels and not (pool.channels == 1 and channels == 3):
            raise ValueError(f"cannot present {pool.channels}-channel images as {channels}")
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean/std need {channels} values, got {len(mean)}/{len(std)}")
        self.pool = pool
        self.labels = pool.labels
        self.indices = pool.indices
        self.size = size
        self.channels = channels
        self.augment = augment
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self._mean.flatten().tolist())

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self._std.flatten().tolist())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, rows: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
        """Stacked inputs ``(B, C, size, size)`` and labels ``(B,)`` for ``rows``."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        images = resize_images(to_unit_float(self.pool.read(rows)), self.size)
        if images.shape[1] != self.channels:
            images = images.expand(-1, self.channels, -1, -1)
        if self.augment is not None:
            images = self.augment(images)
        return (images - self._mean) / self._std, self.labels[rows]

    def __getitems__(self, rows: list[int]) -> list[tuple[Tensor, Tensor]]:
        # DataLoader hands whole batches here, so the transforms run once per batch.
        images, labels = self.batch(rows)
        return list(zip(images.unbind(0), labels.unbind(0), strict=True))

    def __getitem__(self, row: int) -> tuple[Tensor, Tensor]:
        images, labels = self.batch([row])
        return images[0], labels[0]
