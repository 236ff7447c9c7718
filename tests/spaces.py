"""Small search spaces for the tests, each built in one call from the spec dataclasses."""

from __future__ import annotations

from collections.abc import Iterable

from invnas.space.spec import (
    ConvSpace,
    InputSpec,
    InvolutionSpace,
    OpSpace,
    SearchSpace,
    StageSpec,
    StemSpec,
)

Ints = tuple[int, ...]


def conv_and_involution(
    *,
    conv_kernels: Ints = (3,),
    conv_groups: Ints = (1,),
    inv_kernels: Ints = (7,),
    groups: Ints | None = None,
    group_channels: Ints | None = None,
    reduction: Ints = (4,),
) -> OpSpace:
    """An op space offering both kinds (the spec's defaults where a choice is not given)."""
    return OpSpace(
        conv=ConvSpace(kernel_size=conv_kernels, groups=conv_groups),
        involution=InvolutionSpace(
            kernel_size=inv_kernels,
            groups=groups,
            group_channels=group_channels,
            reduction=reduction,
        ),
    )


def small_space(
    name: str,
    size: int,
    stem: StemSpec,
    stages: Iterable[StageSpec],
    *,
    channels: int = 3,
    num_classes: int = 5,
) -> SearchSpace:
    """A space on ``channels`` x ``size`` x ``size`` inputs."""
    return SearchSpace(name, InputSpec(channels, size), num_classes, stem, tuple(stages))
