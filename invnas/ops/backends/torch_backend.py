"""Pure-PyTorch involution: shift-and-add over the kernel taps, on any device.

Never builds the (B, C*K*K, L) unfold tensor. Two forms of each formula:

- eager (plain tensors, no autograd recording): the batch, with its groups (B*G rows), is cut
  into chunks of about ``CHUNK_ELEMENTS`` per thread, so that each chunk's accumulator stays in
  the CPU's cache over all the taps, and every tap is one in-place ``addcmul_`` into a
  preallocated buffer. Each chunk's input is first copied once per kernel column ``v`` into a
  buffer of shifted columns (row r of copy v is padded-input row r at the columns that column
  ``v`` of the taps reads), so that with stride 1 every tap's view is one contiguous run of
  Ho*Wo elements rather than Ho runs of Wo (2-3.5x faster per element at 28x28 and 14x14).
  The input gradient accumulates grad_out times the taps of one kernel column at a time into
  a (Hp, Wo) buffer, which it then adds, shifted back, into the gradient; the weight gradient
  loops over the group's channels (not the taps), adding each channel's grad_out times that
  channel's shifted copies seen as every tap at once (a strided view, no copy), so that it
  costs one multiply-add per element of the weight gradient per channel, as the forward costs
  one per output element per tap.
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

# Elements of the largest tensor one chunk updates, per intra-op thread (512 KiB in float32):
# TensorIterator splits each op's elements among the threads, so every core's share of the
# accumulator and of the shifted input beside it stays in its 1 MiB L2 cache. Measured on 2
# cores at 1 thread (process CPU time, B=8, the RedNet stages C=64 at 56x56 to C=256 at 14x14):
# 2**17 was fastest, or within the noise, for the forward and both gradients; 2**15-2**16 pay
# for more calls, 2**19-2**20 ran up to 1.6x slower (the forward most).
CHUNK_ELEMENTS = 1 << 17
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


def _chunks(rows: int, row_elements: int) -> tuple[int, list[tuple[int, int]]]:
    """The rows of the largest chunk, and (first row, rows) of each chunk: CHUNK_ELEMENTS per
    intra-op thread."""
    step = max(1, CHUNK_ELEMENTS * torch.get_num_threads() // max(1, row_elements))
    return min(step, rows), [(start, min(step, rows - start)) for start in range(0, rows, step)]


def _column_copies(geometry: Geometry, width: int, wo: int) -> list[tuple[slice, slice]]:
    """Per kernel column v: (the output columns whose tap in column v reads the input, not its
    padding; the input columns they read), one strided slice each (empty where none)."""
    kw, sw, pw, dw = geometry[1], geometry[3], geometry[5], geometry[7]
    copies = []
    for v in range(kw):
        first = max(0, -(-(pw - v * dw) // sw))
        end = max(first, min(wo, (width - 1 + pw - v * dw) // sw + 1))
        column = v * dw + first * sw - pw
        copies.append((slice(first, end), slice(column, column + (end - first - 1) * sw + 1, sw)))
    return copies


def _shifted_taps(shifted: torch.Tensor, geometry: Geometry, out: Pair) -> torch.Tensor:
    """The (n, CG, kh, kw, Ho, Wo) view of a buffer of shifted columns (n, CG, kw, Hp, Wo): entry
    (r, c, u, v, i, j) is the padded-input pixel that tap (u, v) of output pixel (i, j) reads.
    With stride 1, each tap's (Ho, Wo) is one contiguous run."""
    kh, kw, sh, dh = geometry[0], geometry[1], geometry[2], geometry[6]
    s = shifted.stride()
    return shifted.as_strided(
        (*shifted.shape[:2], kh, kw, *out),
        (s[0], s[1], dh * s[3], s[2], sh * s[3], s[4]),
        shifted.storage_offset(),
    )


def _tap_list(
    shifted: torch.Tensor, geometry: Geometry, out: Pair
) -> list[tuple[int, torch.Tensor]]:
    """(tap index, view) of every tap of a buffer of shifted columns, column by column, so that
    one column's copy is read by its kh taps in a row while it is in the cache."""
    by_row = _shifted_taps(shifted, geometry, out).unbind(2)
    kh, kw = geometry[:2]
    grid = [row.unbind(2) for row in by_row]
    return [(u * kw + v, grid[u][v]) for v in range(kw) for u in range(kh)]


def _load_shifted(
    shifted: torch.Tensor, x: torch.Tensor, copies: list[tuple[slice, slice]], top: int
) -> None:
    """Copy input rows ``x`` (n, CG, H, W) into ``shifted`` (n, CG, kw, Hp, Wo), whose padding
    entries were zeroed once and are never written."""
    rows = slice(top, top + x.shape[2])
    for v, (out_cols, in_cols) in enumerate(copies):
        if out_cols.stop > out_cols.start:
            shifted[:, :, v, rows, out_cols].copy_(x[..., in_cols])


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
    b, c, h, w = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    kw, ph = geometry[1], geometry[4]
    rows, cg = b * groups, c // groups
    x = _rows(input, groups)
    kernel = weight.reshape(rows, taps, 1, ho, wo)
    out = input.new_empty((rows, cg, ho, wo))
    step, chunks = _chunks(rows, cg * ho * wo)
    buffer = input.new_zeros((step, cg, kw, h + 2 * ph, wo))
    copies = _column_copies(geometry, w, wo)
    full = _tap_list(buffer, geometry, (ho, wo))
    for start, n in chunks:
        shifted = buffer[:n]
        _load_shifted(shifted, x[start : start + n], copies, ph)
        views = full if n == step else _tap_list(shifted, geometry, (ho, wo))
        acc, k = out[start : start + n], kernel[start : start + n].unbind(1)
        (tap, view), *rest = views
        torch.mul(view, k[tap], out=acc)
        for tap, view in rest:
            acc.addcmul_(view, k[tap])
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
    """Per kernel column v: the products of its kh taps added into a (Hp, Wo) buffer at their
    rows (the transpose of the forward's shifted copy), then that buffer added into the
    gradient at the input columns that column v reads."""
    b, c, h, w = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    kh, kw, sh, ph = geometry[0], geometry[1], geometry[2], geometry[4]
    rows, cg = b * groups, c // groups
    hp = h + 2 * ph
    grad = _rows(grad_out, groups)
    kernel = weight.reshape(rows, taps, 1, ho, wo)
    result = grad_out.new_empty((rows, cg, h, w))
    step, chunks = _chunks(rows, cg * hp * wo)
    buffer = grad_out.new_empty((step, cg, hp, wo))
    copies = _column_copies(geometry, w, wo)
    # A column whose taps read every input column (the middle one with "same" padding and
    # stride 1) goes first and is copied into the gradient rather than added into zeros.
    whole = [v for v, (_, cols) in enumerate(copies) if cols == slice(0, w, 1)]
    order = whole[:1] + [v for v in range(kw) if v not in whole[:1]]
    one_column = (kh, 1, *geometry[2:])
    full = _shifted_taps(buffer.unsqueeze(2), one_column, (ho, wo))[:, :, :, 0].unbind(2)
    for start, n in chunks:
        column = buffer[:n]
        views = full if n == step else [view[:n] for view in full]
        g, k = grad[start : start + n], kernel[start : start + n].unbind(1)
        acc = result[start : start + n]
        if not whole:
            acc.zero_()
        for v in order:
            if sh == 1:  # tap u=0 writes rows 0..Ho-1 outright; only the rows below need zeros
                column[:, :, ho:].zero_()
                torch.mul(g, k[v], out=views[0])
            else:
                column.zero_()
                views[0].addcmul_(g, k[v])
            for u in range(1, kh):
                views[u].addcmul_(g, k[u * kw + v])
            out_cols, in_cols = copies[v]
            if out_cols.stop > out_cols.start:
                products = column[:, :, ph : ph + h, out_cols]
                if v in whole[:1]:
                    acc.copy_(products)
                else:
                    acc[..., in_cols] += products
    return result.view(b, c, h, w)


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
    b, c, h, w = input.shape
    groups, taps, ho, wo = weight.shape[1:]
    kh, kw, ph = geometry[0], geometry[1], geometry[4]
    rows, cg = b * groups, c // groups
    x = _rows(input, groups)
    grad = _rows(grad_out, groups).unsqueeze(2).unsqueeze(2)  # (B*G, CG, 1, 1, Ho, Wo)
    out = weight.new_empty((rows, kh, kw, ho, wo))
    step, chunks = _chunks(rows, taps * ho * wo)
    buffer = input.new_zeros((step, cg, kw, h + 2 * ph, wo))
    copies = _column_copies(geometry, w, wo)
    for start, n in chunks:
        shifted = buffer[:n]
        _load_shifted(shifted, x[start : start + n], copies, ph)
        acc = out[start : start + n]
        xs = _shifted_taps(shifted, geometry, (ho, wo)).unbind(1)
        gs = grad[start : start + n].unbind(1)
        torch.mul(xs[0], gs[0], out=acc)
        for channel, grad_channel in zip(xs[1:], gs[1:], strict=True):
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
