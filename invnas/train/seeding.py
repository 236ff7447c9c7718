"""One call that seeds every random number generator a trial uses."""

from __future__ import annotations

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
