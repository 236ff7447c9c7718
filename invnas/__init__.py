"""invnas: neural architecture search for CNNs that mix convolution and involution."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"


def load_exported(path: str | os.PathLike) -> nn.Module:
    """The network exported to directory ``path`` by ``invnas export``, as an invnas model in
    eval mode running on invnas's fast involution backends (see
    :func:`invnas.export.load_exported`)."""
    from invnas.export.loading import load_exported as _load_exported

    return _load_exported(path)
