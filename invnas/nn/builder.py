"""Build the plain network of one architecture: ``build_model(space, arch) -> ArchNet``."""

from __future__ import annotations

import torch
from torch import nn

from invnas.nn.blocks import BasicBlock, Bottleneck, build_stem
from invnas.space.arch import Arch, StageArch, check_arch
from invnas.space.spec import SearchSpace, StageSpec


def build_stage(spec: StageSpec, stage: StageArch, in_channels: int) -> nn.Sequential:
    """The blocks of one stage; the first takes ``in_channels`` and carries the stride."""
    blocks: list[nn.Module] = []
    for index, op in enumerate(stage.ops):
        block_in = in_channels if index == 0 else stage.width
        stride = spec.stride if index == 0 else 1
        if spec.block == "bottleneck":
            inner = spec.inner_width(stage.width)
            blocks.append(Bottleneck(block_in, stage.width, inner, op, stride))
        else:
            blocks.append(BasicBlock(block_in, stage.width, op, stride))
    return nn.Sequential(*blocks)


class ArchNet(nn.Module):
    """Stem, stages of residual blocks, global average pool and a linear classifier."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        check_arch(space, arch)
        self.arch = arch
        self.stem = build_stem(space.stem, space.input.channels)
        stages = []
        channels = space.stem.channels
        for spec, stage in zip(space.stages, arch.stages, strict=True):
            stages.append(build_stage(spec, stage, channels))
            channels = stage.width
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, space.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    def extra_repr(self) -> str:
        return f"arch={self.arch.encode()}"


def build_model(space: SearchSpace, arch: Arch) -> ArchNet:
    """The plain network of ``arch`` (ValueError if ``arch`` is not in ``space``)."""
    return ArchNet(space, arch)
