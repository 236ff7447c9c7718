"""``load_exported``: an export directory back as an invnas model on the fast involution
backends."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from invnas.exporting.codegen import WEIGHTS_FILE
from invnas.nn.builder import ArchNet


def load_exported(path: str | os.PathLike) -> ArchNet:
    """The exported network of directory ``path`` as an :class:`invnas.nn.ArchNet` in eval mode.

    It is built from the directory's ``arch.yaml`` and holds its ``weights.pt``; its parameter
    names and outputs are those of the standalone ``model.py`` beside them, but its
    involutions run on invnas's backends (the native CPU kernel, CuPy on CUDA).
    """
    from invnas.nn import build_model
    from invnas.space.loader import load_space
    from invnas.space.serialize import fixed_arch

    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a directory; expected an invnas export directory")
    missing = [name for name in ("arch.yaml", WEIGHTS_FILE) if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"{directory}: not an invnas export; missing {', '.join(missing)}")
    space = load_space(directory / "arch.yaml")
    model = build_model(space, fixed_arch(space))
    state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
