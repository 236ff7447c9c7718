"""Pure-PyTorch involution: shift-and-add over the kernel taps, on any device.

Never builds the (B, C*K*K, L) unfold tensor: each tap reads a strided view of the padded input,
so the extra memory is one padded copy of the input plus the output. The backward is explicit
(one fused multiply-add per tap for the input gradient, one product-and-sum per tap for the
weight gradient) rather than autograd through the dozens of views; every tap is one or two
elementwise kernels that ``torch.compile`` fuses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from invnas.ops.backends import Geometry, Pair


def _tap_windows(geometry: Geometry, ho: int, wo: int) -> list[tuple[slice, slice]]:
    """(rows, cols) of the padded input that each tap reads, tap-major."""
    kh, kw, sh, sw, _, _, dh, dw = geometry
    return [
        (
            slice(u * dh, u * dh + (ho - 1) * sh + 1, sh),
            slice(v * dw, v * dw + (wo - 1) * sw + 1, sw),
        )
        for u in range(kh)
        for v in range(kw)
    ]


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    b, c = t.shape[:2]
    return t.reshape(b, groups, c // groups, *t.shape[2:])


def forward(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """out[b, c] = sum over taps t of weight[b, c // CG, t] * (tap t's view of the input)."""
    b, c, _, _ = input.shape
    groups, _, ho, wo = weight.shape[1:]
    ph, pw = geometry[4:6]
    padded = _grouped(F.pad(input, (pw, pw, ph, ph)) if ph or pw else input, groups)
    # unbind: no per-tap indexing of the weight (each would be a copy under autograd)
    taps = weight.unsqueeze(2).unbind(3)
    windows = _tap_windows(geometry, ho, wo)
    out = padded[..., windows[0][0], windows[0][1]] * taps[0]
    for (rows, cols), tap in zip(windows[1:], taps[1:], strict=True):
        out.addcmul_(padded[..., rows, cols], tap)  # one fused kernel per tap
    return out.reshape(b, c, ho, wo)


def _spread(t: torch.Tensor, geometry: Geometry, size: Pair) -> torch.Tensor:
    """``t`` (..., Ho, Wo) placed at the positions its pixels read in the padded input, (i * sh,
    j * sw) (zeros between), then padded by (k - 1) * d before and to ``size`` (the padded
    input's size) after: tap (u, v)'s contributions are then the window starting at
    ((kh - 1 - u) * dh, (kw - 1 - v) * dw)."""
    kh, kw, sh, sw, _, _, dh, dw = geometry
    ho, wo = t.shape[-2:]
    if (sh, sw) != (1, 1):
        grid = t.new_zeros((*t.shape[:-2], (ho - 1) * sh + 1, (wo - 1) * sw + 1))
        grid[..., ::sh, ::sw] = t
        t = grid
    hz, wz = t.shape[-2:]
    return F.pad(t, ((kw - 1) * dw, size[1] - wz, (kh - 1) * dh, size[0] - hz))


def backward_input(
    grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Gradient of :func:`forward` w.r.t. the input, gathered: each padded-input pixel sums
    grad_out * weight over the (output pixel, tap) pairs that read it. Out of place, so
    ``torch.compile`` fuses all taps into one kernel."""
    b, c, h, w = input.shape
    groups = weight.shape[1]
    kh, kw, _, _, ph, pw, dh, dw = geometry
    size = (h + 2 * ph, w + 2 * pw)
    grad = _spread(_grouped(grad_out, groups), geometry, size)
    taps = _spread(weight, geometry, size).unsqueeze(2).unbind(3)
    total = None
    for tap, (u, v) in zip(taps, ((u, v) for u in range(kh) for v in range(kw)), strict=True):
        rows = slice((kh - 1 - u) * dh, (kh - 1 - u) * dh + size[0])
        cols = slice((kw - 1 - v) * dw, (kw - 1 - v) * dw + size[1])
        term = grad[..., rows, cols], tap[..., rows, cols]
        total = term[0] * term[1] if total is None else total.addcmul_(*term)
    assert total is not None
    return total[..., ph : ph + h, pw : pw + w].reshape(b, c, h, w)


def backward_weight(
    grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Gradient of :func:`forward` w.r.t. the weight: per tap, grad_out times the tap's view of
    the input, summed over each group's channels (moved innermost first, so that each sum reads
    contiguous memory)."""
    groups, _, ho, wo = weight.shape[1:]
    ph, pw = geometry[4:6]
    padded = _grouped(F.pad(input, (pw, pw, ph, ph)) if ph or pw else input, groups)
    padded = padded.permute(0, 1, 3, 4, 2).contiguous()  # (B, G, Hp, Wp, CG)
    grad = _grouped(grad_out, groups).permute(0, 1, 3, 4, 2).contiguous()
    windows = _tap_windows(geometry, ho, wo)
    if torch.compiler.is_compiling():  # Inductor writes each fused sum straight into the stack
        return torch.stack([(padded[:, :, r, c] * grad).sum(-1) for r, c in windows], dim=2)
    # Eagerly, each sum goes in place (out=, tap-major so that it is contiguous): a list of 49
    # small sums between the large products fragments the heap (5x the peak memory on the CPU).
    per_tap = weight.new_empty((weight.shape[2], *weight.shape[:2], ho, wo))
    for tap, (rows, cols) in enumerate(windows):
        torch.sum(padded[:, :, rows, cols] * grad, -1, out=per_tap[tap])
    return per_tap.permute(1, 2, 0, 3, 4).contiguous()


class _InvolutionTorch(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
    ) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        ctx.geometry = geometry
        return forward(input, weight, geometry)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_input = backward_input(grad_out, input, weight, ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_weight = backward_weight(grad_out, input, weight, ctx.geometry)
        return grad_input, grad_weight, None


def involution_torch(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Involution by shift-and-add; arguments already validated.

    Differentiable in ``input`` and ``weight`` by the explicit formulas above (which are
    themselves differentiable, so double backward works too)."""
    return _InvolutionTorch.apply(input, weight, geometry)
