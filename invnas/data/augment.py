"""Augmentation and evaluation crops on batches of image tensors (no torchvision).

Every transform maps float images ``(B, C, H, W)`` to a batch of the same shape; the random
ones draw from torch's global generator, so ``seed_everything`` (and a DataLoader's per-worker
seeding) make them reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

BatchTransform = Callable[[Tensor], Tensor]
# the evaluation crop of photos: resize to size / 0.875 and keep the centre (224 of 256)
CENTRE_FRACTION = 0.875


@dataclass(frozen=True)
class RandomCropFlip:
    """Zero-pad by ``padding``, crop back to the original size at a random offset, and mirror
    left-right with probability 0.5 if ``flip``."""

    padding: int
    flip: bool = True

    def __call__(self, images: Tensor) -> Tensor:
        batch, channels, height, width = images.shape
        if self.padding > 0:
            padded = F.pad(images, (self.padding,) * 4)
            span = 2 * self.padding + 1
            dy = torch.randint(0, span, (batch,))
            dx = torch.randint(0, span, (batch,))
            rows = (dy[:, None] + torch.arange(height))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(width))[:, None, None, :]
            images = padded[
                torch.arange(batch)[:, None, None, None],
                torch.arange(channels)[None, :, None, None],
                rows,
                cols,
            ]
        if self.flip:
            mirror = torch.rand(batch) < 0.5
            images = torch.where(mirror[:, None, None, None], images.flip(-1), images)
        return images


def default_augment(size: int, *, flip: bool) -> RandomCropFlip:
    """The usual CIFAR recipe scaled to ``size``: padding of ``size // 8`` (4 at 32 px)."""
    return RandomCropFlip(padding=max(1, size // 8), flip=flip)


@dataclass(frozen=True)
class RandomResizedCrop:
    """A random box of each image, stretched back to the image's size (bilinear), mirrored
    left-right with probability 0.5 if ``flip``: the usual training crop of photos.

    The box covers a uniform ``scale`` fraction of the area with a log-uniform aspect ratio
    (width / height) in ``ratio``; a side that would exceed the image is cut to it, and the
    box lies uniformly at random within the image.
    """

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True

    def __call__(self, images: Tensor) -> Tensor:
        batch = images.shape[0]
        area = torch.empty(batch).uniform_(*self.scale)
        aspect = torch.empty(batch).uniform_(*map(math.log, self.ratio)).exp()
        width = (area * aspect).sqrt().clamp(max=1.0)  # fractions of the image's sides
        height = (area / aspect).sqrt().clamp(max=1.0)
        left = torch.rand(batch) * (1 - width)
        top = torch.rand(batch) * (1 - height)
        mirror = (torch.rand(batch) < 0.5) if self.flip else torch.zeros(batch, dtype=torch.bool)
        # affine_grid maps output coordinates in [-1, 1] to input ones: scale by the box's
        # size (negated to mirror) and move to its centre
        theta = torch.zeros(batch, 2, 3)
        theta[:, 0, 0] = torch.where(mirror, -width, width)
        theta[:, 0, 2] = 2 * left + width - 1
        theta[:, 1, 1] = height
        theta[:, 1, 2] = 2 * top + height - 1
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="border", align_corners=False
        )


@dataclass(frozen=True)
class CentreCrop:
    """The centre ``fraction`` of each image's sides stretched back to its size (bilinear):
    the same as resizing to ``size / fraction`` and cropping the centre ``size`` x ``size``,
    the usual evaluation view of photos."""

    fraction: float = CENTRE_FRACTION

    def __call__(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        crop_h, crop_w = max(1, round(height * self.fraction)), max(1, round(width * self.fraction))
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        centre = images[..., top : top + crop_h, left : left + crop_w]
        return F.interpolate(centre, size=(height, width), mode="bilinear", align_corners=False)


def split_transforms(mode: str, size: int, *, flip: bool) -> dict[str, BatchTransform | None]:
    """The transform of each split for ``data.augment`` ``mode`` (``none``, ``crop_flip``,
    ``photo``) at image size ``size``; ``flip`` False never mirrors (handwriting)."""
    if mode == "none":
        return {"train": None, "val": None, "test": None}
    if mode == "crop_flip":
        return {"train": default_augment(size, flip=flip), "val": None, "test": None}
    if mode == "photo":
        centre = CentreCrop()
        return {"train": RandomResizedCrop(flip=flip), "val": centre, "test": centre}
    raise ValueError(
        f"data.augment: {mode!r} is not allowed; expected 'none', 'crop_flip' or 'photo'"
    )
