"""Seeding: one call that seeds every random number generator a trial uses, and the seeds
derived from a run's seed for each of its uses."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and any GPUs).

    On CPU this makes a run repeat exactly; ``torch.use_deterministic_algorithms`` is not
    switched on, since the CPU kernels used here are deterministic already.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def derive_seed(seed: int, *parts: object) -> int:
    """A seed for one use (e.g. ``("supernet", epoch)``), stable across runs and machines."""
    text = ":".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
