"""Reference involution (the unfold formulation): slow, memory hungry, the ground truth."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from invnas.ops.backends import Geometry


def involution_reference(
    input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Involution through ``F.unfold``; arguments already validated.

    input (B, C, H, W), weight (B, G, kh*kw, Ho, Wo) -> (B, C, Ho, Wo).
    """
    b, c, _, _ = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    cols = F.unfold(input, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    cols = cols.view(b, groups, c // groups, taps, ho, wo)
    return (weight.unsqueeze(2) * cols).sum(dim=3).view(b, c, ho, wo)
