"""The plan of a network: its layers in creation order, with their shapes (no torch needed).

This is the one description of the block graph. :mod:`invnas.nn` builds modules from it (the
plain network and, at the largest widths, the supernet's sliceable twins), :mod:`invnas.space.cost`
counts parameters and MACs on it, and :mod:`invnas.exporting.codegen` writes it out as the source of
a standalone ``model.py``. A block's layers are named as the attributes of the built module, so
the names are the state-dict keys; the order of :meth:`BlockPlan.layers` is the order in which
modules (and so their seeded random weights) are created.

Example::

    plan = plan_network(space, arch)
    plan.stages[0].blocks[0].layers()   # (("conv1", ConvBNPlan(...)), ("op", OpPlan(...)), ...)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from invnas.space.arch import Arch, StageArch, check_arch
from invnas.space.spec import OpChoice, SearchSpace, StageSpec, StemSpec

BlockKind = Literal["bottleneck", "basic"]


def out_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    """Output side of a window of ``kernel_size`` sliding by ``stride`` over ``size`` padded."""
    return (size + 2 * padding - kernel_size) // stride + 1


def same_size(size: int, kernel_size: int, stride: int) -> int:
    """Output side of a 'same'-padded (``kernel_size // 2``) layer."""
    return out_size(size, kernel_size, stride, kernel_size // 2)


def involution_reduce_channels(channels: int, reduction: int) -> int:
    """Width of an involution's kernel generator on ``channels`` channels (at least 1)."""
    return max(1, channels // reduction)


@dataclass(frozen=True)
class ConvBNPlan:
    """A bias-free 'same'-padded convolution, BatchNorm, then ReLU if ``act`` (``ConvBNAct``)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    in_size: int
    act: bool = True

    @property
    def out_size(self) -> int:
        return same_size(self.in_size, self.kernel_size, self.stride)


@dataclass(frozen=True)
class OpPlan:
    """The spatial op ``op`` on ``channels`` channels, which it keeps (no norm, no activation).

    A convolution has ``groups`` groups and no bias; an involution has ``groups`` kernel groups
    and a kernel generator of ``reduced`` channels.
    """

    op: OpChoice
    channels: int
    stride: int
    in_size: int

    @property
    def kernel_size(self) -> int:
        return self.op.kernel_size

    @property
    def groups(self) -> int:
        return self.op.groups_for(self.channels)

    @property
    def reduction(self) -> int:
        return self.op.reduction if self.op.reduction is not None else 4

    @property
    def reduced(self) -> int:
        return involution_reduce_channels(self.channels, self.reduction)

    @property
    def out_size(self) -> int:
        return same_size(self.in_size, self.op.kernel_size, self.stride)


@dataclass(frozen=True)
class BatchNormPlan:
    """BatchNorm over ``channels`` channels."""

    channels: int


@dataclass(frozen=True)
class ReluPlan:
    """A ReLU (in place)."""


@dataclass(frozen=True)
class MaxPoolPlan:
    """A 3x3 max-pool with stride 2 and padding 1."""

    in_size: int

    @property
    def out_size(self) -> int:
        return out_size(self.in_size, 3, 2, 1)


@dataclass(frozen=True)
class LinearPlan:
    """A linear layer with bias (the classifier, after global average pooling)."""

    in_features: int
    out_features: int


LayerPlan = ConvBNPlan | OpPlan | BatchNormPlan | ReluPlan | MaxPoolPlan | LinearPlan
NamedLayers = tuple[tuple[str, LayerPlan | None], ...]  # None: the identity (no layer)
RELU = ReluPlan()


@dataclass(frozen=True)
class StemPlan:
    """The layers before the first stage, in order (a ``Sequential``)."""

    layers: tuple[LayerPlan, ...]
    out_channels: int
    out_size: int


@dataclass(frozen=True)
class BlockPlan:
    """One residual block; the spatial op (the first, for a basic block) carries the stride.

    ``bottleneck``: 1x1 ``conv1`` to ``inner_channels``, ``op``, ``bn2``, 1x1 ``conv3`` to
    ``out_channels``, plus the shortcut. ``basic``: an ``entry`` 1x1 projection to
    ``out_channels`` if ``has_entry``, ``op1``, ``bn1``, ``op2``, ``bn2``, plus the shortcut.
    The shortcut is a 1x1 projection (with the stride) if ``projects``, else the identity.
    """

    kind: BlockKind
    in_channels: int
    out_channels: int
    inner_channels: int
    op: OpChoice
    stride: int
    in_size: int
    projects: bool
    has_entry: bool

    @property
    def out_size(self) -> int:
        return same_size(self.in_size, self.op.kernel_size, self.stride)

    def layers(self) -> NamedLayers:
        """The block's layers by attribute name, in creation order."""
        c_in, c_out, size = self.in_channels, self.out_channels, self.in_size
        inner = self.inner_channels
        shortcut = ConvBNPlan(c_in, c_out, 1, self.stride, size, act=False)
        if self.kind == "bottleneck":
            return (
                ("conv1", ConvBNPlan(c_in, inner, 1, 1, size)),
                ("op", OpPlan(self.op, inner, self.stride, size)),
                ("bn2", BatchNormPlan(inner)),
                ("act2", RELU),
                ("conv3", ConvBNPlan(inner, c_out, 1, 1, self.out_size, act=False)),
                ("shortcut", shortcut if self.projects else None),
                ("act", RELU),
            )
        return (
            ("entry", ConvBNPlan(c_in, c_out, 1, 1, size) if self.has_entry else None),
            ("op1", OpPlan(self.op, c_out, self.stride, size)),
            ("bn1", BatchNormPlan(c_out)),
            ("act1", RELU),
            ("op2", OpPlan(self.op, c_out, 1, self.out_size)),
            ("bn2", BatchNormPlan(c_out)),
            ("shortcut", shortcut if self.projects else None),
            ("act", RELU),
        )


@dataclass(frozen=True)
class StagePlan:
    """The blocks of one stage; the first takes the previous width and carries the stride."""

    name: str
    blocks: tuple[BlockPlan, ...]

    @property
    def out_channels(self) -> int:
        return self.blocks[-1].out_channels

    @property
    def out_size(self) -> int:
        return self.blocks[-1].out_size


@dataclass(frozen=True)
class NetworkPlan:
    """A whole plain network: stem, stages, global average pooling and the classifier ``fc``."""

    stem: StemPlan
    stages: tuple[StagePlan, ...]
    fc: LinearPlan

    def layers(self) -> tuple[LayerPlan, ...]:
        """Every layer of the network, in creation order (identities left out)."""
        found = list(self.stem.layers)
        for stage in self.stages:
            for block in stage.blocks:
                found.extend(layer for _, layer in block.layers() if layer is not None)
        return (*found, self.fc)


@dataclass(frozen=True)
class SupernetPlan:
    """The weight-sharing supernet: for every stage and every block position up to the stage's
    largest depth, one block per op candidate (see :func:`plan_supernet`)."""

    stem: StemPlan
    stages: tuple[tuple[tuple[BlockPlan, ...], ...], ...]
    fc: LinearPlan


def plan_stem(stem: StemSpec, in_channels: int, in_size: int) -> StemPlan:
    """The layers of ``stem`` on ``in_channels`` x ``in_size`` x ``in_size`` images."""
    c = stem.channels
    if stem.kind == "conv":
        last = ConvBNPlan(in_channels, c, stem.kernel_size, stem.stride, in_size)
        layers: list[LayerPlan] = [last]
    elif stem.kind == "resnet":
        last = ConvBNPlan(in_channels, c, 7, 2, in_size)
        layers = [last]
    elif stem.kind == "rednet":
        half = c // 2
        first = ConvBNPlan(in_channels, half, 3, 2, in_size)
        involution = OpChoice("involution", 3, group_channels=16, reduction=4)
        last = ConvBNPlan(half, c, 3, 1, first.out_size)
        layers = [first, OpPlan(involution, half, 1, first.out_size), BatchNormPlan(half), RELU]
        layers.append(last)
    else:
        raise ValueError(f"stem kind {stem.kind!r}: unknown; expected conv, resnet or rednet")
    if stem.kind == "conv" and not stem.pool:
        return StemPlan(tuple(layers), c, last.out_size)
    pool = MaxPoolPlan(last.out_size)  # resnet and rednet always pool
    return StemPlan((*layers, pool), c, pool.out_size)


def plan_block(
    spec: StageSpec, op: OpChoice, in_channels: int, width: int, stride: int, in_size: int
) -> BlockPlan:
    """A block of stage ``spec`` with op ``op``: ``in_channels`` to ``width`` channels."""
    return BlockPlan(
        kind=spec.block,
        in_channels=in_channels,
        out_channels=width,
        inner_channels=spec.inner_width(width),
        op=op,
        stride=stride,
        in_size=in_size,
        projects=stride != 1 or in_channels != width,
        has_entry=spec.block == "basic" and in_channels != width,
    )


def plan_stage(spec: StageSpec, stage: StageArch, in_channels: int, in_size: int) -> StagePlan:
    """The blocks ``stage`` chooses for ``spec``, after ``in_channels`` x ``in_size`` features."""
    blocks = []
    for index, op in enumerate(stage.ops):
        first = index == 0
        block = plan_block(
            spec,
            op,
            in_channels if first else stage.width,
            stage.width,
            spec.stride if first else 1,
            in_size,
        )
        blocks.append(block)
        in_size = block.out_size
    return StagePlan(spec.name, tuple(blocks))


def plan_network(space: SearchSpace, arch: Arch) -> NetworkPlan:
    """The plain network of ``arch`` (ValueError if ``arch`` is not in ``space``)."""
    check_arch(space, arch)
    stem = plan_stem(space.stem, space.input.channels, space.input.size)
    stages = []
    channels, size = stem.out_channels, stem.out_size
    for spec, stage in zip(space.stages, arch.stages, strict=True):
        stages.append(plan_stage(spec, stage, channels, size))
        channels, size = stages[-1].out_channels, stages[-1].out_size
    return NetworkPlan(stem, tuple(stages), LinearPlan(channels, space.num_classes))


def stage_input_sizes(space: SearchSpace) -> tuple[int, ...]:
    """The spatial size entering every stage (the same for every architecture)."""
    size = plan_stem(space.stem, space.input.channels, space.input.size).out_size
    sizes = []
    for spec in space.stages:
        sizes.append(size)
        size = same_size(size, 1, spec.stride)  # = any odd k x k op with 'same' padding
    return tuple(sizes)


def plan_supernet(space: SearchSpace) -> SupernetPlan:
    """The supernet of ``space``: every block at its stage's largest widths.

    A block holds every projection some architecture needs: the first block of a stage
    projects when it strides or when any incoming width differs from any width of the stage
    (then a basic block also has its entry, even where only the stride asks for it); later
    blocks never project.
    """
    stem = plan_stem(space.stem, space.input.channels, space.input.size)
    stages = []
    in_widths: tuple[int, ...] = (stem.out_channels,)
    for spec, size in zip(space.stages, stage_input_sizes(space), strict=True):
        stages.append(_supernet_stage(spec, in_widths, size))
        in_widths = tuple(spec.width)
    return SupernetPlan(stem, tuple(stages), LinearPlan(max(in_widths), space.num_classes))


def _supernet_stage(
    spec: StageSpec, in_widths: tuple[int, ...], in_size: int
) -> tuple[tuple[BlockPlan, ...], ...]:
    projects = spec.stride != 1 or any(c != w for c in in_widths for w in spec.width)
    first = tuple(
        _widest_block(spec, op, max(in_widths), spec.stride, in_size, projects)
        for op in spec.ops.candidates()
    )
    out_size = first[0].out_size
    rest = tuple(
        _widest_block(spec, op, max(spec.width), 1, out_size, False) for op in spec.ops.candidates()
    )
    return (first, *(rest for _ in range(1, max(spec.depth))))


def _widest_block(
    spec: StageSpec, op: OpChoice, in_channels: int, stride: int, in_size: int, projects: bool
) -> BlockPlan:
    block = plan_block(spec, op, in_channels, max(spec.width), stride, in_size)
    return replace(block, projects=projects, has_entry=spec.block == "basic" and projects)
