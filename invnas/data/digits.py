"""The embedded default dataset: scikit-learn's 8x8 handwritten digits (no download needed).

1797 grey images of the digits 0-9, values 0..16, shipped inside the scikit-learn wheel.
"""

from __future__ import annotations

import torch

from invnas.data.images import LabelledImages, resize_images

DIGITS_SAMPLES = 1797


def read_digits(size: int) -> LabelledImages:
    """All 1797 digits as 1-channel float images in ``[0, 1]``, resized to ``size`` x ``size``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = resize_images(images, size).clamp_(0.0, 1.0)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return LabelledImages.create(images, labels, [str(name) for name in bunch.target_names])
