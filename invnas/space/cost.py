"""Parameters and MACs of an architecture, counted on its plan (no model is built).

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

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from invnas.space.arch import Arch, StageArch
from invnas.space.plan import (
    BatchNormPlan,
    BlockPlan,
    ConvBNPlan,
    LayerPlan,
    LinearPlan,
    NetworkPlan,
    OpPlan,
    StagePlan,
    plan_block,
    plan_network,
    plan_stage,
    plan_stem,
    same_size,
    stage_input_sizes,
)
from invnas.space.spec import SearchSpace, StageSpec


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


Pick = Callable[..., int]  # min or max


def _conv(c_in: int, c_out: int, k: int, out: int, groups: int = 1, bias: bool = False) -> _Tally:
    """A k x k convolution with an ``out`` x ``out`` output."""
    params = c_out * (c_in // groups) * k * k + (c_out if bias else 0)
    return _Tally(params, c_out * out * out * (c_in // groups) * k * k)


def _bn(channels: int) -> _Tally:
    return _Tally(2 * channels)


def _op(layer: OpPlan) -> _Tally:
    """A convolution, or an involution: its kernel generator (avg-pool by the stride, 1x1
    reduce + BN, 1x1 span with bias) and its aggregation."""
    c, k, out = layer.channels, layer.kernel_size, layer.out_size
    if layer.op.kind == "conv":
        return _conv(c, c, k, out, layer.groups)
    reduce = _conv(c, layer.reduced, 1, out)
    span = _conv(layer.reduced, k * k * layer.groups, 1, out, bias=True)
    aggregation = c * out * out * k * k
    return reduce + _bn(layer.reduced) + span + _Tally(0, aggregation, aggregation)


def _layer(layer: LayerPlan | None) -> _Tally:
    if isinstance(layer, ConvBNPlan):
        conv = _conv(layer.in_channels, layer.out_channels, layer.kernel_size, layer.out_size)
        return conv + _bn(layer.out_channels)
    if isinstance(layer, OpPlan):
        return _op(layer)
    if isinstance(layer, BatchNormPlan):
        return _bn(layer.channels)
    if isinstance(layer, LinearPlan):
        weights = layer.in_features * layer.out_features
        return _Tally(weights + layer.out_features, weights)
    return _Tally()  # identities, ReLU and pooling: no parameters, no counted MACs


def _sum(layers: Iterable[LayerPlan | None]) -> _Tally:
    return sum((_layer(layer) for layer in layers), _Tally())


def _block(block: BlockPlan) -> _Tally:
    return _sum(layer for _, layer in block.layers())


def _stage(stage: StagePlan) -> _Tally:
    return sum((_block(block) for block in stage.blocks), _Tally())


def _tally(space: SearchSpace, arch: Arch) -> _Tally:
    return _sum(plan_network(space, arch).layers())


def plan_cost(plan: NetworkPlan) -> Cost:
    """Params and MACs of the network ``plan`` describes."""
    tally = _sum(plan.layers())
    return Cost(tally.params, tally.macs, tally.aggregation)


def cost(space: SearchSpace, arch: Arch) -> Cost:
    """Params and MACs of ``arch`` (ValueError if it is not in ``space``)."""
    return plan_cost(plan_network(space, arch))


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
    out = same_size(size, 1, spec.stride)
    best: dict[int, int] = {}
    for width in spec.width:
        if pinned is not None:
            stage = plan_stage(spec, StageArch(len(pinned), width, pinned), c_in, size)
            best[width] = getattr(_stage(stage), field)
            continue
        first = {
            op: getattr(_block(plan_block(spec, op, c_in, width, spec.stride, size)), field)
            for op in candidates
        }
        rest = {
            op: getattr(_block(plan_block(spec, op, width, width, 1, out)), field)
            for op in candidates
        }
        values = []
        for depth in spec.depth:
            if spec.granularity == "stage":
                values.append(pick(first[op] + (depth - 1) * rest[op] for op in candidates))
            else:
                values.append(pick(first.values()) + (depth - 1) * pick(rest.values()))
        best[width] = pick(values)
    return best


def _extreme(space: SearchSpace, pick: Pick, field: str) -> int:
    stem = plan_stem(space.stem, space.input.channels, space.input.size)
    # state: incoming width -> extreme total so far
    frontier = {stem.out_channels: getattr(_sum(stem.layers), field)}
    for spec, size in zip(space.stages, stage_input_sizes(space), strict=True):
        reached: dict[int, int] = {}
        for c_in, so_far in frontier.items():
            for width, value in _stage_extremes(spec, c_in, size, pick, field).items():
                total = so_far + value
                reached[width] = pick(reached.get(width, total), total)
        frontier = reached
    return pick(
        so_far + getattr(_layer(LinearPlan(width, space.num_classes)), field)
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
