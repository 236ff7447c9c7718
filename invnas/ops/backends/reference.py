"""Reference involution (the unfold formulation): slow, memory hungry, the ground truth."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Pair = tuple[int, int]


def involution_reference(
    input: torch.Tensor,
    weight: torch.Tensor,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> torch.Tensor:
    """Involution through ``F.unfold``; arguments already validated, geometry as (h, w) pairs.

    input (B, C, H, W), weight (B, G, kh*kw, Ho, Wo) -> (B, C, Ho, Wo).
    """
    b, c, _, _ = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    cols = F.unfold(input, kernel_size, dilation=dilation, padding=padding, stride=stride)
    cols = cols.view(b, groups, c // groups, taps, ho, wo)
    return (weight.unsqueeze(2) * cols).sum(dim=3).view(b, c, ho, wo)
