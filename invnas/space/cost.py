"""Parameters and MACs of an architecture, computed from the spec alone (no model is built).

The numbers equal those of the plain model ``invnas.nn.build_model(space, arch)`` exactly:
``params`` is its ``sum(p.numel() for p in model.parameters())`` (weights, biases and BatchNorm
affine parameters; running statistics are buffers, not parameters), and ``macs`` is what
``invnas.nn.profile.count_macs`` measures on it at ``space.input`` and batch 1:

- counted: convolutions (``C_out * H_out * W_out * C_in / groups * k * k``), linear layers
  (``in * out``) and the involution aggregation (``C * H_out * W_out * k * k``); an involution's
  kernel generator is two 1x1 convolutions, counted like any convolution at the resolution they
  run at (after the stride's average pooling);
- not counted: biases, BatchNorm, activations, pooling and residual additions.

How the official RedNet figures relate (Li et al. 2021; params 9.23/12.39/15.54/25.65/33.99 M
and "FLOPs" 1.73/2.22/2.71/4.74/6.79 G for RedNet-26/38/50/101/152 at 224x224):

- ``params`` of ``search_spaces/rednetNN.yaml`` equals them to the printed precision, except
  RedNet-152: 33,984,582 (33.98M). The official numbers are all reproduced, 33.99M included,
  when the stem involution is 7x7 instead of 3x3 (+720 parameters), as in an earlier revision
  of the official code; the released code and weights use 3x3, and so do we.
- ``macs`` is 1.685/2.167/2.649/4.659/6.679 G, 1.6-2.6% below the official figures. Those
  include the involution aggregation (without it the gap grows to 4-5%) and follow the
  convention of mmcv's counter as mmcls' ``get_flops`` runs it: convolution biases, BatchNorm
  (2 per element), ReLU (1 per element) and pooling (1 per input element) are counted too, the
  classifier is not. That convention applied to the 7x7-stem variant reproduces all five
  official figures to the printed precision (``tests/space/test_reference_spaces.py`` checks
  it for RedNet-26).

:func:`bounds` gives the smallest and largest params and MACs over a whole space by dynamic
programming over stages (state: the incoming width), without enumerating architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from invnas.space.arch import Arch, StageArch, check_arch
from invnas.space.spec import OpChoice, SearchSpace, StageSpec, StemSpec


@dataclass(frozen=True)
class Cost:
    """Parameters and MACs (per image) of one architecture.

    ``macs`` includes ``aggregation_macs``, the part spent in involution aggregation (the
    weighted sums over each k x k window; the kernel generators are ordinary convolutions).
    """

    params: int
    macs: int
    aggregation_macs: int = 0


@dataclass(frozen=True)
class CostBounds:
    """The smallest and largest params and MACs over every architecture of a space."""

    params_min: int
    params_max: int
    macs_min: int
    macs_max: int


@dataclass(frozen=True)
class _Tally:
    params: int = 0
    macs: int = 0
    aggregation: int = 0

    def __add__(self, other: _Tally) -> _Tally:
        return _Tally(
            self.params + other.params,
            self.macs + other.macs,
            self.aggregation + other.aggregation,
        )


Sized = tuple[_Tally, int]  # a layer's tally and its output size
Pick = Callable[..., int]  # min or max


def _out_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


def _conv(
    c_in: int, c_out: int, k: int, stride: int, size: int, groups: int = 1, bias: bool = False
) -> Sized:
    """A 'same'-padded k x k convolution: (tally, output size)."""
    out = _out_size(size, k, stride, k // 2)
    params = c_out * (c_in // groups) * k * k + (c_out if bias else 0)
    return _Tally(params, c_out * out * out * (c_in // groups) * k * k), out


def _bn(channels: int) -> _Tally:
    return _Tally(2 * channels)


def _conv_bn(c_in: int, c_out: int, k: int, stride: int, size: int, groups: int = 1) -> Sized:
    tally, out = _conv(c_in, c_out, k, stride, size, groups)
    return tally + _bn(c_out), out


def _involution(
    channels: int, k: int, stride: int, groups: int, reduction: int, size: int
) -> Sized:
    """Kernel generator (avg-pool by stride, 1x1 reduce + BN, 1x1 span with bias) and the
    aggregation: (tally, output size)."""
    out = _out_size(size, k, stride, k // 2)
    reduced = max(1, channels // reduction)
    reduce, _ = _conv(channels, reduced, 1, 1, out)
    span, _ = _conv(reduced, k * k * groups, 1, 1, out, bias=True)
    aggregation = channels * out * out * k * k
    return reduce + _bn(reduced) + span + _Tally(0, aggregation, aggregation), out


def _op(op: OpChoice, channels: int, stride: int, size: int) -> Sized:
    if op.kind == "conv":
        return _conv(channels, channels, op.kernel_size, stride, size, op.groups or 1)
    return _involution(
        channels, op.kernel_size, stride, op.groups_for(channels), op.reduction or 4, size
    )


def _stem(stem: StemSpec, in_channels: int, size: int) -> Sized:
    c = stem.channels
    if stem.kind == "conv":
        tally, size = _conv_bn(in_channels, c, stem.kernel_size, stem.stride, size)
        if stem.pool:
            size = _out_size(size, 3, 2, 1)
        return tally, size
    if stem.kind == "resnet":
        tally, size = _conv_bn(in_channels, c, 7, 2, size)
        return tally, _out_size(size, 3, 2, 1)
    half = c // 2  # the rednet stem's involution: 3x3, 16 channels per group, reduction 4
    first, size = _conv_bn(in_channels, half, 3, 2, size)
    involution, size = _involution(half, 3, 1, half // 16, 4, size)
    last, size = _conv_bn(half, c, 3, 1, size)
    return first + involution + _bn(half) + last, _out_size(size, 3, 2, 1)


def _block(spec: StageSpec, op: OpChoice, c_in: int, width: int, stride: int, size: int) -> Sized:
    """One residual block: (tally, output size)."""
    tally = _Tally()
    if stride != 1 or c_in != width:
        tally, _ = _conv_bn(c_in, width, 1, stride, size)
    if spec.block == "bottleneck":
        inner = spec.inner_width(width)
        conv1, _ = _conv_bn(c_in, inner, 1, 1, size)
        spatial, out = _op(op, inner, stride, size)
        conv3, _ = _conv_bn(inner, width, 1, 1, out)
        return tally + conv1 + spatial + _bn(inner) + conv3, out
    if c_in != width:
        entry, _ = _conv_bn(c_in, width, 1, 1, size)
        tally = tally + entry
    first, out = _op(op, width, stride, size)
    second, _ = _op(op, width, 1, out)
    return tally + first + _bn(width) + second + _bn(width), out


def _head(width: int, num_classes: int) -> _Tally:
    return _Tally(width * num_classes + num_classes, width * num_classes)


def _stage_sizes(space: SearchSpace) -> tuple[_Tally, list[int]]:
    """The stem's tally and the input size of every stage (architecture-independent)."""
    stem, size = _stem(space.stem, space.input.channels, space.input.size)
    sizes = []
    for spec in space.stages:
        sizes.append(size)
        size = _out_size(size, 1, spec.stride, 0)  # = any odd k x k op with padding k // 2
    return stem, sizes


def _stage_tally(spec: StageSpec, stage: StageArch, c_in: int, size: int) -> _Tally:
    total = _Tally()
    for index, op in enumerate(stage.ops):
        stride = spec.stride if index == 0 else 1
        block, size = _block(
            spec, op, c_in if index == 0 else stage.width, stage.width, stride, size
        )
        total = total + block
    return total


def _tally(space: SearchSpace, arch: Arch) -> _Tally:
    check_arch(space, arch)
    total, sizes = _stage_sizes(space)
    channels = space.stem.channels
    for spec, stage, size in zip(space.stages, arch.stages, sizes, strict=True):
        total, channels = total + _stage_tally(spec, stage, channels, size), stage.width
    return total + _head(channels, space.num_classes)


def cost(space: SearchSpace, arch: Arch) -> Cost:
    """Params and MACs of ``arch`` (ValueError if it is not in ``space``)."""
    tally = _tally(space, arch)
    return Cost(tally.params, tally.macs, tally.aggregation)


def params(space: SearchSpace, arch: Arch) -> int:
    """Trainable parameters of ``build_model(space, arch)``."""
    return _tally(space, arch).params


def macs(space: SearchSpace, arch: Arch) -> int:
    """MACs per image of ``build_model(space, arch)`` at ``space.input`` (see module docstring)."""
    return _tally(space, arch).macs


def _stage_extremes(
    spec: StageSpec, c_in: int, size: int, pick: Pick, field: str
) -> dict[int, int]:
    """For every width of the stage: the extreme (``pick``: min or max) of ``field`` over the
    stage's depths and ops, given ``c_in`` incoming channels."""
    pinned = spec.pinned_ops
    candidates = spec.ops.candidates()
    out = _out_size(size, 1, spec.stride, 0)
    best: dict[int, int] = {}
    for width in spec.width:
        if pinned is not None:
            stage = StageArch(len(pinned), width, pinned)
            best[width] = getattr(_stage_tally(spec, stage, c_in, size), field)
            continue
        first = {
            op: getattr(_block(spec, op, c_in, width, spec.stride, size)[0], field)
            for op in candidates
        }
        rest = {op: getattr(_block(spec, op, width, width, 1, out)[0], field) for op in candidates}
        values = []
        for depth in spec.depth:
            if spec.granularity == "stage":
                values.append(pick(first[op] + (depth - 1) * rest[op] for op in candidates))
            else:
                values.append(pick(first.values()) + (depth - 1) * pick(rest.values()))
        best[width] = pick(values)
    return best


def _extreme(space: SearchSpace, pick: Pick, field: str) -> int:
    stem, sizes = _stage_sizes(space)
    # state: incoming width -> extreme total so far
    frontier = {space.stem.channels: getattr(stem, field)}
    for spec, size in zip(space.stages, sizes, strict=True):
        reached: dict[int, int] = {}
        for c_in, so_far in frontier.items():
            for width, value in _stage_extremes(spec, c_in, size, pick, field).items():
                total = so_far + value
                reached[width] = pick(reached.get(width, total), total)
        frontier = reached
    return pick(
        so_far + getattr(_head(width, space.num_classes), field)
        for width, so_far in frontier.items()
    )


def bounds(space: SearchSpace) -> CostBounds:
    """Smallest and largest params and MACs over all architectures of ``space``."""
    return CostBounds(
        params_min=_extreme(space, min, "params"),
        params_max=_extreme(space, max, "params"),
        macs_min=_extreme(space, min, "macs"),
        macs_max=_extreme(space, max, "macs"),
    )
