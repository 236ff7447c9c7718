"""Training-time augmentation on batches of image tensors (no torchvision)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class RandomCropFlip:
    """Zero-pad by ``padding``, crop back to the original size at a random offset, and mirror
    left-right with probability 0.5 if ``flip``. Draws from torch's global generator, so
    ``seed_everything`` (and a DataLoader's per-worker seeding) make it reproducible."""

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
