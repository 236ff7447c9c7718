"""Pure-PyTorch involution: shift-and-add over the kernel taps, on any device.

Never builds the (B, C*K*K, L) unfold tensor: each tap reads a strided view of the padded input,
so the extra memory is one padded copy of the input plus the output. Autograd does the backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Pair = tuple[int, int]


def involution_torch(
    input: torch.Tensor,
    weight: torch.Tensor,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> torch.Tensor:
    """Involution by shift-and-add; arguments already validated, geometry as (h, w) pairs."""
    b, c, _, _ = input.shape
    groups, _, ho, wo = weight.shape[1:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    padded = F.pad(input, (pw, pw, ph, ph)) if ph or pw else input
    padded = padded.reshape(b, groups, c // groups, *padded.shape[2:])
    # unbind: its backward stacks the tap gradients once instead of zero-filling a weight-sized
    # tensor per tap, as indexing weight[:, :, tap] would
    taps = weight.unsqueeze(2).unbind(3)
    out = None
    for u in range(kh):
        rows = slice(u * dh, u * dh + (ho - 1) * sh + 1, sh)
        for v in range(kw):
            cols = slice(v * dw, v * dw + (wo - 1) * sw + 1, sw)
            term = padded[..., rows, cols] * taps[u * kw + v]
            out = term if out is None else out.add_(term)
    assert out is not None
    return out.reshape(b, c, ho, wo)
