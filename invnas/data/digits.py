"""The embedded default dataset: scikit-learn's 8x8 handwritten digits (no download needed).

1797 grey images of the digits 0-9, values 0..16, shipped inside the scikit-learn wheel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from invnas.data.images import LabelledImages, resize_images

DIGITS_SAMPLES = 1797


def _digits_array() -> np.ndarray:
    """The (1797, 65) table of pixels and labels. Read straight from the file scikit-learn ships,
    which skips importing ``sklearn.datasets`` (seconds in every fresh Ray worker)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if shipped.is_file():
            return np.loadtxt(shipped, delimiter=",", dtype=np.float32)
    from sklearn.datasets import load_digits  # a layout we do not know: the public API

    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target]).astype(np.float32)


def read_digits(size: int) -> LabelledImages:
    """All 1797 digits as 1-channel float images in ``[0, 1]``, resized to ``size`` x ``size``."""
    table = _digits_array()
    images = torch.from_numpy(table[:, :-1].reshape(-1, 1, 8, 8).copy()) / 16.0
    images = resize_images(images, size).clamp_(0.0, 1.0)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    return LabelledImages.create(images, labels, [str(digit) for digit in range(10)])
