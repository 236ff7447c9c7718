"""Saving and restoring a training run between epochs (model, optimizer, scheduler, gradient
scaler, RNG).

Files are written with ``torch.save`` and read back with ``torch.load(weights_only=True)``, so
they hold nothing but tensors and plain values, and loading one cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

FORMAT_VERSION = 1
_PLAIN = (bool, int, float, str, type(None), torch.Tensor)


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is not a str or int")
            _check_plain(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where}: {type(value).__name__} cannot be checkpointed; "
        "use tensors, numbers, strings, bools, None, lists and dicts"
    )


def save_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | None,
    epoch: int,
    extra: Mapping[str, Any] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write everything needed to continue after ``epoch`` (the number of finished epochs) to
    ``path``, atomically. ``extra`` holds caller state of plain values (checked here, so a bad
    value fails at save time rather than at resume). Torch's CPU RNG state is included, and
    the float16 gradient ``scaler``'s state (its scale) when there is one."""
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    state = {
        "format": FORMAT_VERSION,
        "epoch": int(epoch),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "extra": extra,
        "rng": torch.get_rng_state(),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    _check_plain(state["scheduler"], "scheduler state")
    _check_plain(state["scaler"], "scaler state")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)
    return path


def load_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: Optimizer | None,
    scheduler: LRScheduler | None,
    *,
    restore_rng: bool = True,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[int, dict[str, Any]]:
    """Load a :func:`save_training_state` file into ``model``, ``optimizer`` and ``scheduler``
    (either may be None to skip it), into ``scaler`` when given and the file holds a scaler's
    state (one written without keeps the scaler's initial scale), and, if ``restore_rng``,
    torch's CPU RNG. Returns ``(epoch, extra)``."""
    path = Path(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an invnas training checkpoint (format {FORMAT_VERSION})")
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        if state["scheduler"] is None:
            raise ValueError(f"{path}: holds no scheduler state to restore")
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if restore_rng:
        torch.set_rng_state(state["rng"])
    return int(state["epoch"]), dict(state["extra"])
