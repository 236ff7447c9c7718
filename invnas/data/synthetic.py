"""Synthetic images with learnable structure, for smoke tests that need no files at all."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from invnas.data.images import LabelledImages


def make_synthetic(
    samples: int, channels: int, size: int, num_classes: int, seed: int, noise: float = 0.15
) -> LabelledImages:
    """``samples`` float images in ``[0, 1]``: each class is a smooth random template plus
    Gaussian pixel noise of std ``noise``, so a small CNN can learn them. Classes are balanced
    and the result depends only on the arguments."""
    if samples < num_classes:
        raise ValueError(
            f"data.synthetic_samples: {samples} is fewer than the {num_classes} classes; "
            f"use at least {num_classes}"
        )
    generator = torch.Generator().manual_seed(seed)
    coarse = max(2, size // 4)
    templates = torch.rand(num_classes, channels, coarse, coarse, generator=generator)
    templates = F.interpolate(templates, size=(size, size), mode="bilinear", align_corners=False)
    labels = (torch.arange(samples) % num_classes)[torch.randperm(samples, generator=generator)]
    pixels = torch.randn(samples, channels, size, size, generator=generator) * noise
    images = (0.25 + 0.5 * templates[labels] + pixels).clamp_(0.0, 1.0)
    return LabelledImages.create(images, labels, [f"class{i}" for i in range(num_classes)])
