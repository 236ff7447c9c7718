"""invnas: neural architecture search for CNNs that mix convolution and involution.

The command line's jobs as functions (see :mod:`invnas.api`)::

    import invnas
    run = invnas.search("space.yaml", name="demo")
    invnas.export(run.path, "exported/demo")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from invnas.api import export, load_run, load_space, load_space_file, report, resume, search

if TYPE_CHECKING:
    from torch import nn

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "export",
    "load_exported",
    "load_run",
    "load_space",
    "load_space_file",
    "report",
    "resume",
    "search",
]


def load_exported(path: str | os.PathLike) -> nn.Module:
    """The network exported to directory ``path`` by ``invnas export``, as an invnas model in
    eval mode running on invnas's fast involution backends (see
    :func:`invnas.exporting.load_exported`)."""
    from invnas.exporting.loading import load_exported as _load_exported

    return _load_exported(path)
