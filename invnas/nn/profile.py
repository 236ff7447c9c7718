"""Count the multiply-accumulates of a built model by running it once with forward hooks.

Counting convention (shared with :mod:`invnas.space.cost`, which must agree exactly):

- MACs are multiply-accumulates for ONE image (batch 1).
- Counted: every ``nn.Conv2d`` (``out_channels * H_out * W_out * in_channels / groups * kh * kw``),
  every ``nn.Linear`` (``in_features * out_features``), and the aggregation of every involution
  (``channels * H_out * W_out * kh * kw``: each output value is a weighted sum over its k x k
  window). An involution's kernel generator is made of ``nn.Conv2d`` layers and is counted
  through them, at the resolution it runs at (after the stride's average pooling).
- Not counted: biases, BatchNorm, activations, pooling, residual additions.

Papers that quote "FLOPs" as multiply-adds count convs and linears the same way; how the
official RedNet figures treat the involution aggregation is stated in :mod:`invnas.space.cost`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from invnas.ops import Involution2d


@dataclass
class MacCount:
    """MACs of one forward pass for one image, split by kind of layer."""

    conv: int = 0
    linear: int = 0
    aggregation: int = 0

    @property
    def total(self) -> int:
        return self.conv + self.linear + self.aggregation


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def profile_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacCount:
    """Run ``model`` once in eval mode on zeros of ``input_shape`` and count its MACs per image.

    ``input_shape`` is ``(C, H, W)`` or ``(N, C, H, W)``; with a batch the count is divided by N.
    """
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4:
        raise ValueError(f"input_shape {input_shape}: expected (C, H, W) or (N, C, H, W)")
    count = MacCount()

    def on_conv(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        per_output = module.in_channels // module.groups * kh * kw
        count.conv += output.numel() * per_output

    def on_linear(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        count.linear += output.numel() * module.in_features

    def on_involution(module: Involution2d, _inputs, output: torch.Tensor) -> None:
        kh, kw = _pair(module.kernel_size)
        count.aggregation += output.numel() * kh * kw

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(on_linear))
        elif isinstance(module, Involution2d):
            handles.append(module.register_forward_hook(on_involution))
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    batch = shape[0]
    return MacCount(count.conv // batch, count.linear // batch, count.aggregation // batch)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Total MACs per image of ``model`` (convention in this module's docstring)."""
    return profile_macs(model, input_shape).total
