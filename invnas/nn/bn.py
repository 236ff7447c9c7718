"""BatchNorm recalibration: re-estimate the running statistics of a (sub)network from data.

Weights inherited from a supernet come with BatchNorm statistics accumulated over many
different paths; before a subnet is evaluated they are reset and re-estimated on a few
batches of its own activations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

log = logging.getLogger(__name__)


def _inputs(batch: object) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"batch of type {type(batch).__name__}: expected a tensor or an (x, y) pair")


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Iterable,
    num_batches: int,
    forward: Callable[[torch.Tensor], object] | None = None,
) -> int:
    """Reset every BatchNorm of ``model`` and re-estimate its statistics on ``num_batches``.

    The statistics become the plain average over the batches (momentum ``None``). Only the
    BatchNorm layers are put in training mode, so dropout and the like stay deterministic;
    every module's mode and every BatchNorm's momentum are restored afterwards. ``batches``
    yields tensors or ``(x, y)`` pairs; ``forward`` (default ``model``) runs one batch, e.g.
    ``lambda x: supernet(x, arch)``. Returns the number of batches used; with
    ``num_batches == 0`` nothing is changed.

    Example::

        used = recalibrate_bn(subnet, train_loader, num_batches=10)
    """
    if num_batches <= 0:
        return 0
    forward = model if forward is None else forward
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    param = next(model.parameters(), None)
    device = param.device if param is not None else None
    used = 0
    try:
        model.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None
            norm.train()
        for batch in batches:
            if used >= num_batches:
                break
            x = _inputs(batch)
            forward(x if device is None else x.to(device, non_blocking=True))
            used += 1
    finally:
        for module, training in modes.items():
            module.training = training
        for norm, momentum in momenta.items():
            norm.momentum = momentum
    if used < num_batches:
        log.warning("BN recalibration: asked for %d batches, the data had %d", num_batches, used)
    return used
