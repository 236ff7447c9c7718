"""Typed form of a search space: the network structure to search (the run's settings, read from
the same file, are :mod:`invnas.config`).

Every class here is a frozen dataclass. The YAML loader (``invnas.space.loader``) validates a
mapping against these classes field by field, so a field's type annotation, its ``Literal``
values and its ``metadata`` bounds (``min``, ``max``, ``exclusive_min``, ``odd``; for tuples
they bound every element, and ``unique: False`` allows repeated elements) *are* the schema.
Everything downstream of the loader takes these objects, never raw dicts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

from invnas.config import positive

OpKind = Literal["conv", "involution"]


@dataclass(frozen=True)
class OpChoice:
    """One concrete candidate for a block's spatial operation.

    ``conv``: a ``kernel_size`` x ``kernel_size`` convolution with ``groups`` groups.
    ``involution``: an involution with ``groups`` kernel groups, or ``group_channels`` channels per
    group (then groups = channels // group_channels), and channel ``reduction`` in its kernel
    generator.
    """

    kind: OpKind
    kernel_size: int
    groups: int | None = None
    group_channels: int | None = None
    reduction: int | None = None

    def groups_for(self, channels: int) -> int:
        """Number of groups this op uses on a ``channels``-wide feature map."""
        if self.group_channels is not None:
            return channels // self.group_channels
        return self.groups if self.groups is not None else 1

    @property
    def code(self) -> str:
        """Short stable text form: ``conv3g1``, ``inv7g4r4`` or ``inv7c16r4``."""
        if self.kind == "conv":
            return f"conv{self.kernel_size}g{self.groups}"
        grouping = (
            f"c{self.group_channels}" if self.group_channels is not None else f"g{self.groups}"
        )
        return f"inv{self.kernel_size}{grouping}r{self.reduction}"

    @classmethod
    def from_code(cls, code: str) -> OpChoice:
        """Inverse of :attr:`code`; raises ValueError on malformed text."""
        import re

        match = re.fullmatch(r"conv(\d+)g(\d+)", code)
        if match:
            return cls("conv", int(match[1]), groups=int(match[2]))
        match = re.fullmatch(r"inv(\d+)([gc])(\d+)r(\d+)", code)
        if match:
            grouping = {"groups" if match[2] == "g" else "group_channels": int(match[3])}
            return cls("involution", int(match[1]), reduction=int(match[4]), **grouping)
        raise ValueError(
            f"op code {code!r}: not an op; expected convKgG (e.g. conv3g1), invKgGrR (e.g. "
            "inv7g4r4) or invKcCrR (e.g. inv7c16r4)"
        )


@dataclass(frozen=True)
class ConvSpace:
    """Choices for a convolution candidate."""

    kernel_size: tuple[int, ...] = field(default=(3,), metadata=positive(odd=True, max=31))
    groups: tuple[int, ...] = field(default=(1,), metadata=positive(max=8192))


@dataclass(frozen=True)
class InvolutionSpace:
    """Choices for an involution candidate (give ``groups`` or ``group_channels``, not both)."""

    kernel_size: tuple[int, ...] = field(default=(7,), metadata=positive(odd=True, max=31))
    groups: tuple[int, ...] | None = field(default=None, metadata=positive(max=8192))
    group_channels: tuple[int, ...] | None = field(default=None, metadata=positive(max=8192))
    reduction: tuple[int, ...] = field(default=(4,), metadata=positive(max=1024))


@dataclass(frozen=True)
class OpSpace:
    """The candidates of a block's spatial op; at least one of the two kinds is present."""

    conv: ConvSpace | None = None
    involution: InvolutionSpace | None = None

    def candidates(self) -> tuple[OpChoice, ...]:
        """Every concrete op, convolutions first, in a stable order."""
        found: list[OpChoice] = []
        if self.conv is not None:
            for k, g in itertools.product(self.conv.kernel_size, self.conv.groups):
                found.append(OpChoice("conv", k, groups=g))
        if self.involution is not None:
            inv = self.involution
            if inv.groups is not None:
                groupings = [{"groups": g} for g in inv.groups]
            else:  # the RedNet convention, 16 channels per group, unless told otherwise
                groupings = [{"group_channels": c} for c in inv.group_channels or (16,)]
            for k, grouping, r in itertools.product(inv.kernel_size, groupings, inv.reduction):
                found.append(OpChoice("involution", k, reduction=r, **grouping))
        return tuple(found)


@dataclass(frozen=True)
class StemSpec:
    """The fixed layers before the first stage.

    ``conv``: conv(kernel_size, stride) -> channels, BN, ReLU, then a 3x3/2 max-pool if ``pool``.
    ``resnet``: conv7x7/2 -> channels, BN, ReLU, max-pool 3x3/2 (torchvision ResNet).
    ``rednet``: conv3x3/2 -> channels/2, BN, ReLU; 3x3 involution on channels/2 (16 channels per
    group, reduction 4), BN, ReLU; conv3x3 channels/2 -> channels, BN, ReLU; max-pool 3x3/2.
    """

    kind: Literal["conv", "resnet", "rednet"] = "conv"
    channels: int = field(default=32, metadata=positive(max=8192))
    kernel_size: int = field(default=3, metadata=positive(odd=True, max=31))
    stride: int = field(default=1, metadata=positive(max=4))
    pool: bool = False


@dataclass(frozen=True)
class StageSpec:
    """One stage: a run of residual blocks at one width, the first one striding.

    ``width`` is the output channels of each block; a bottleneck's inner (op) width is
    ``width // expansion``. With ``granularity: stage`` one op is chosen for all blocks of the
    stage; with ``block`` every block chooses its own.

    ``blocks`` (fixed spaces only) pins the op of every block by op code, e.g.
    ``("conv3g1", "inv7c16r4")``: the stage then has one depth, ``len(blocks)``, and its ops are
    exactly these, whatever the granularity (``ops`` must still offer each of them).
    """

    name: str
    depth: tuple[int, ...] = field(metadata=positive(max=64))
    width: tuple[int, ...] = field(metadata=positive(max=8192))
    ops: OpSpace
    stride: int = field(default=1, metadata=positive(max=4))
    block: Literal["bottleneck", "basic"] = "bottleneck"
    expansion: int = field(default=4, metadata=positive(max=16))
    granularity: Literal["stage", "block"] = "stage"
    blocks: tuple[str, ...] | None = field(default=None, metadata={"unique": False})

    @property
    def pinned_ops(self) -> tuple[OpChoice, ...] | None:
        """The ops ``blocks`` pins, one per block, or None when the stage chooses its ops."""
        if self.blocks is None:
            return None
        return tuple(OpChoice.from_code(code) for code in self.blocks)

    def inner_width(self, width: int) -> int:
        """Channels the spatial op sees for a block of output width ``width``."""
        return width // self.expansion if self.block == "bottleneck" else width


@dataclass(frozen=True)
class InputSpec:
    """Shape of one input image."""

    channels: int = field(default=3, metadata=positive(max=64))
    size: int = field(default=32, metadata=positive(max=4096))


@dataclass(frozen=True)
class SearchSpace:
    """A whole search space: input, stem, stages and head size."""

    name: str
    input: InputSpec
    num_classes: int = field(metadata=positive(max=1_000_000))
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    source: str | None = field(default=None, compare=False)  # the file it was read from

    @property
    def uses_involution(self) -> bool:
        """True when some architecture of the space has an involution (stem or block)."""
        return self.stem.kind == "rednet" or any(
            op.kind == "involution" for s in self.stages for op in s.ops.candidates()
        )

    @property
    def is_fixed(self) -> bool:
        """True when every choice is single, i.e. the space is one architecture."""
        return all(
            len(s.depth) == 1
            and len(s.width) == 1
            and (s.blocks is not None or len(s.ops.candidates()) == 1)
            for s in self.stages
        )
