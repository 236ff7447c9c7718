"""Build the plain network of one architecture: ``build_model(space, arch) -> ArchNet``."""

from __future__ import annotations

import torch
from torch import nn

from invnas.nn.blocks import build_block, build_layer, build_stem
from invnas.space.arch import Arch
from invnas.space.plan import StagePlan, plan_network
from invnas.space.spec import SearchSpace


def build_stage(plan: StagePlan) -> nn.Sequential:
    """The blocks of one stage."""
    return nn.Sequential(*(build_block(block) for block in plan.blocks))


class ArchNet(nn.Module):
    """Stem, stages of residual blocks, global average pool and a linear classifier."""

    def __init__(self, space: SearchSpace, arch: Arch) -> None:
        super().__init__()
        plan = plan_network(space, arch)
        self.arch = arch
        self.stem = build_stem(plan.stem)
        self.stages = nn.ModuleList(build_stage(stage) for stage in plan.stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = build_layer(plan.fc)

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
