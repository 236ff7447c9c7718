"""Pure-PyTorch involution: shift-and-add over the kernel taps, on any device.

Never builds the (B, C*K*K, L) unfold tensor. Two forms of each formula:

- eager (plain tensors, no autograd recording): the batch, with its groups (B*G rows), is cut
  into chunks of about ``CHUNK_ELEMENTS`` so that each chunk's accumulator stays in the CPU's
  cache over all the taps, and every tap is one in-place ``addcmul_`` into a preallocated
  buffer. The input gradient adds grad_out times each tap into that tap's window of a padded
  buffer; the weight gradient loops over the group's channels (not the taps), adding each
  channel's grad_out times a strided "unfold" view of that channel (no copy), so that it costs
  one multiply-add per element of the weight gradient per channel, as the forward costs one per
  output element per tap.
- banded (eager, small maps): each row's kernels as one (Ho*Wo, Hp*Wp) matrix, zero off the
  band of pixels each output reads; the forward and both gradients are then batched matrix
  products (the forward hands its matrix to the input gradient).
- traceable (``torch.compile``, ``torch.export``, autograd through the formulas for double
  backward): out-of-place expressions that Inductor fuses into a few kernels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from invnas.ops.backends import Geometry, Pair

# Elements of the largest tensor one chunk updates (1 MiB in float32): measured on 2 cores at
# B=8 over the RedNet stages (C=64 at 56x56 to C=512 at 7x7), 2**18 was fastest for the forward
# and both gradients; 2**16 pays for more calls, 2**20 falls out of the 1 MiB L2 cache.
CHUNK_ELEMENTS = 1 << 18
# Small maps take the banded-matrix form when the padded map has at most this many pixels per
# kernel tap (its matrix products then do at most this many times the work of shift-and-add):
# on the RedNet stages, 3.4 (7x7 maps, K=7) ran 3x faster than shift-and-add, 8.2 (14x14) 2x
# slower.
BAND_MAX_WASTE = 4


def is_plain_eager(*tensors: torch.Tensor) -> bool:
    """Whether nothing traces these tensors: no torch.compile or torch.export, plain tensors (no
    FakeTensor), no dispatch or function mode (make_fx). Kernels may then write into buffers
    and skip the custom ops' dispatch (about 50 us a call, measured on the CPU)."""
    if torch.compiler.is_compiling():  # first, so that dynamo never traces the checks below
        return False
    return (
        all(type(t) is torch.Tensor for t in tensors)
        and torch._C._len_torch_dispatch_stack() == 0
        and not torch._C._is_torch_function_mode_enabled()
    )


def _eager(*tensors: torch.Tensor) -> bool:
    """Whether the in-place eager form may run: plain eager and autograd records nothing."""
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return not recording and is_plain_eager(*tensors)


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


def _padded(input: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    ph, pw = geometry[4:6]
    return F.pad(input, (pw, pw, ph, ph)) if ph or pw else input


def _rows(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, C, ...) -> (B*G, C/G, ...): one row per (sample, group), the unit of chunking."""
    return t.reshape(t.shape[0] * groups, t.shape[1] // groups, *t.shape[2:])


def _chunks(rows: int, row_elements: int) -> list[slice]:
    step = max(1, CHUNK_ELEMENTS // max(1, row_elements))
    return [slice(start, start + step) for start in range(0, rows, step)]


def forward(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """out[b, c] = sum over taps t of weight[b, c // CG, t] * (tap t's view of the input)."""
    if _eager(input, weight):
        if _banded(input, weight, geometry):
            return _forward_band(input, weight, geometry)[0]
        return _forward_eager(input, weight, geometry)
    b, c, _, _ = input.shape
    groups, _, ho, wo = weight.shape[1:]
    padded = _grouped(_padded(input, geometry), groups)
    taps = weight.unsqueeze(2).unbind(3)  # no per-tap indexing (a copy each under autograd)
    windows = _tap_windows(geometry, ho, wo)
    out = padded[..., windows[0][0], windows[0][1]] * taps[0]
    for (rows, cols), tap in zip(windows[1:], taps[1:], strict=True):
        out.addcmul_(padded[..., rows, cols], tap)  # one fused kernel per tap
    return out.reshape(b, c, ho, wo)


def _forward_eager(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    b, c, _, _ = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    padded = _rows(_padded(input, geometry), groups)  # (B*G, CG, Hp, Wp)
    kernel = weight.reshape(b * groups, taps, 1, ho, wo)
    out = input.new_empty((b * groups, c // groups, ho, wo))
    (rows0, cols0), *windows = _tap_windows(geometry, ho, wo)
    for chunk in _chunks(b * groups, out[0].numel()):
        x, acc, k = padded[chunk], out[chunk], kernel[chunk].unbind(1)
        torch.mul(x[..., rows0, cols0], k[0], out=acc)
        for (rows, cols), tap in zip(windows, k[1:], strict=True):
            acc.addcmul_(x[..., rows, cols], tap)
    return out.view(b, c, ho, wo)


def _banded(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> bool:
    kh, kw, _, _, ph, pw = geometry[:6]
    return (input.shape[2] + 2 * ph) * (input.shape[3] + 2 * pw) <= BAND_MAX_WASTE * kh * kw


def _band_view(matrix: torch.Tensor, geometry: Geometry, out: Pair, padded: Pair) -> torch.Tensor:
    """The band of ``matrix`` (rows, Ho*Wo, Hp*Wp) as a (rows, kh, kw, Ho, Wo) view: entry
    (n, u, v, i, j) is output pixel (i, j)'s entry for the padded pixel its tap (u, v) reads."""
    kh, kw, sh, sw, _, _, dh, dw = geometry
    (ho, wo), (hp, wp) = out, padded
    strides = (ho * wo * hp * wp, dh * wp, dw, wo * hp * wp + sh * wp, hp * wp + sw)
    return matrix.as_strided((matrix.shape[0], kh, kw, ho, wo), strides, matrix.storage_offset())


def _padded_size(input: torch.Tensor, geometry: Geometry) -> Pair:
    return input.shape[2] + 2 * geometry[4], input.shape[3] + 2 * geometry[5]


def _band(weight: torch.Tensor, input: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """The kernels of each (sample, group) row as a banded (rows, Ho*Wo, Hp*Wp) matrix."""
    b, groups, _, ho, wo = weight.shape
    hp, wp = _padded_size(input, geometry)
    band = weight.new_zeros((b * groups, ho * wo, hp * wp))
    view = _band_view(band, geometry, (ho, wo), (hp, wp))
    view.copy_(weight.reshape(view.shape))
    return band


def _forward_band(
    input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, banded kernel matrix): out = padded input @ band^T, row by row."""
    b, c, ho, wo = *input.shape[:2], *weight.shape[-2:]
    padded = _rows(_padded(input, geometry), weight.shape[1]).flatten(2)  # (B*G, CG, Hp*Wp)
    band = _band(weight, input, geometry)
    return torch.bmm(padded, band.transpose(1, 2)).view(b, c, ho, wo), band


def _backward_input_band(
    grad_out: torch.Tensor, input: torch.Tensor, band: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    b, c, h, w = input.shape
    ph, pw = geometry[4:6]
    grad = _rows(grad_out, band.shape[0] // b).flatten(2)  # (B*G, CG, Ho*Wo)
    padded = torch.bmm(grad, band).view(b, c, *_padded_size(input, geometry))
    return padded[..., ph : ph + h, pw : pw + w].contiguous()


def _backward_weight_band(
    grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """The band of grad_out^T @ padded input, row by row."""
    groups, _, ho, wo = weight.shape[1:]
    padded = _rows(_padded(input, geometry), groups).flatten(2)
    grad = _rows(grad_out, groups).flatten(2)
    products = torch.bmm(grad.transpose(1, 2), padded)  # (B*G, Ho*Wo, Hp*Wp)
    band = _band_view(products, geometry, (ho, wo), _padded_size(input, geometry))
    return band.reshape(weight.shape)


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
    """Gradient of :func:`forward` w.r.t. the input. Traced, it is gathered out of place (each
    padded-input pixel sums grad_out * weight over the (output pixel, tap) pairs that read it),
    which ``torch.compile`` fuses into one kernel."""
    if _eager(grad_out, input, weight):
        if _banded(input, weight, geometry):
            return _backward_input_band(grad_out, input, _band(weight, input, geometry), geometry)
        return _backward_input_eager(grad_out, input, weight, geometry)
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


def _backward_input_eager(
    grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    b, c, h, w = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    ph, pw = geometry[4:6]
    grad = _rows(grad_out, groups)
    kernel = weight.reshape(b * groups, taps, 1, ho, wo)
    padded = grad_out.new_zeros((b * groups, c // groups, h + 2 * ph, w + 2 * pw))
    windows = _tap_windows(geometry, ho, wo)
    for chunk in _chunks(b * groups, padded[0].numel()):
        acc, g, k = padded[chunk], grad[chunk], kernel[chunk].unbind(1)
        for (rows, cols), tap in zip(windows, k, strict=True):
            acc[..., rows, cols].addcmul_(g, tap)
    return padded[..., ph : ph + h, pw : pw + w].reshape(b, c, h, w)


def backward_weight(
    grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Gradient of :func:`forward` w.r.t. the weight: per tap, grad_out times the tap's view of
    the input, summed over each group's channels. Traced, the channels are moved innermost
    first, so that each sum reads contiguous memory, and the per-tap sums are stacked (Inductor
    writes each fused sum straight into the stack)."""
    if _eager(grad_out, input, weight):
        if _banded(input, weight, geometry):
            return _backward_weight_band(grad_out, input, weight, geometry)
        return _backward_weight_eager(grad_out, input, weight, geometry)
    groups, _, ho, wo = weight.shape[1:]
    padded = _grouped(_padded(input, geometry), groups)
    padded = padded.permute(0, 1, 3, 4, 2).contiguous()  # (B, G, Hp, Wp, CG)
    grad = _grouped(grad_out, groups).permute(0, 1, 3, 4, 2).contiguous()
    windows = _tap_windows(geometry, ho, wo)
    return torch.stack([(padded[:, :, r, c] * grad).sum(-1) for r, c in windows], dim=2)


def _backward_weight_eager(
    grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    b, c = input.shape[:2]
    groups, taps, ho, wo = weight.shape[1:]
    kh, kw, sh, sw, _, _, dh, dw = geometry
    padded = _rows(_padded(input, geometry), groups)
    # Every tap's view at once, per channel: unfolded[n, j, u, v, i, k] is the input pixel that
    # tap (u, v) of output pixel (i, k) reads in channel j of row n (overlapping strides).
    n_stride, c_stride, h_stride, w_stride = padded.stride()
    unfolded = padded.as_strided(
        (b * groups, c // groups, kh, kw, ho, wo),
        (n_stride, c_stride, dh * h_stride, dw * w_stride, sh * h_stride, sw * w_stride),
        padded.storage_offset(),
    )
    grad = _rows(grad_out, groups).unsqueeze(2).unsqueeze(2)  # (B*G, CG, 1, 1, Ho, Wo)
    out = weight.new_empty((b * groups, kh, kw, ho, wo))
    for chunk in _chunks(b * groups, out[0].numel()):
        acc, x, g = out[chunk], unfolded[chunk].unbind(1), grad[chunk].unbind(1)
        torch.mul(x[0], g[0], out=acc)
        for channel, grad_channel in zip(x[1:], g[1:], strict=True):
            acc.addcmul_(channel, grad_channel)
    return out.view(b, groups, taps, ho, wo)


class _InvolutionTorch(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
    ) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        ctx.geometry, ctx.band = geometry, None
        if _eager(input, weight) and _banded(input, weight, geometry):
            out, band = _forward_band(input, weight, geometry)
            if ctx.needs_input_grad[0]:  # at most BAND_MAX_WASTE times the weight's size
                ctx.band = band
            return out
        return forward(input, weight, geometry)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0] and ctx.band is not None and _eager(grad_out, input, weight):
            grad_input = _backward_input_band(grad_out, input, ctx.band, ctx.geometry)
        elif ctx.needs_input_grad[0]:
            grad_input = backward_input(grad_out, input, weight, ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_weight = backward_weight(grad_out, input, weight, ctx.geometry)
        return grad_input, grad_weight, None


def involution_torch(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Involution by shift-and-add; arguments already validated.

    Differentiable in ``input`` and ``weight`` by the explicit formulas above (which are
    themselves differentiable, so double backward works too)."""
    return _InvolutionTorch.apply(input, weight, geometry)
