"""Plain (single-path) building blocks: conv-BN-ReLU, the spatial op, residual blocks and stems,
built from the layers of an architecture's plan (:mod:`invnas.space.plan`).

Parameter names are part of the contract: ``Supernet.extract`` copies weights into these modules
by name, and :mod:`invnas.space.cost` counts their parameters and MACs on the same plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from invnas.ops import Involution2d
from invnas.space.plan import (
    BatchNormPlan,
    BlockPlan,
    ConvBNPlan,
    LayerPlan,
    LinearPlan,
    MaxPoolPlan,
    OpPlan,
    ReluPlan,
    StemPlan,
)
from invnas.space.spec import OpChoice


class ConvBNAct(nn.Module):
    """``kernel_size`` convolution (no bias, 'same' padding), BatchNorm, then ReLU if ``act``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def make_op(op: OpChoice, channels: int, stride: int) -> nn.Module:
    """The spatial operation ``op`` on ``channels`` channels (no norm, no activation)."""
    k = op.kernel_size
    if op.kind == "conv":
        groups = op.groups if op.groups is not None else 1
        return nn.Conv2d(channels, channels, k, stride, padding=k // 2, groups=groups, bias=False)
    reduction = op.reduction if op.reduction is not None else 4
    if op.group_channels is not None:
        return Involution2d(
            channels, k, stride, group_channels=op.group_channels, reduction=reduction
        )
    return Involution2d(channels, k, stride, reduction=reduction, groups=op.groups or 1)


@dataclass(frozen=True)
class WeightedLayers:
    """How the planned layers that hold weights become modules: plain ones (:data:`PLAIN`),
    or the supernet's sliceable twins (:data:`invnas.nn.dynamic.SLICEABLE`)."""

    conv_bn: Callable[..., nn.Module]
    op: Callable[[OpChoice, int, int], nn.Module]
    batch_norm: Callable[[int], nn.Module]


PLAIN = WeightedLayers(conv_bn=ConvBNAct, op=make_op, batch_norm=nn.BatchNorm2d)


def build_layer(layer: LayerPlan | None, weighted: WeightedLayers = PLAIN) -> nn.Module:
    """The module of one planned layer (``None``: the identity); the layers with weights are
    made by ``weighted``."""
    if layer is None:
        return nn.Identity()
    if isinstance(layer, ConvBNPlan):
        return weighted.conv_bn(
            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, act=layer.act
        )
    if isinstance(layer, OpPlan):
        return weighted.op(layer.op, layer.channels, layer.stride)
    if isinstance(layer, BatchNormPlan):
        return weighted.batch_norm(layer.channels)
    if isinstance(layer, ReluPlan):
        return nn.ReLU(inplace=True)
    if isinstance(layer, MaxPoolPlan):
        return nn.MaxPool2d(3, 2, 1)
    if isinstance(layer, LinearPlan):
        return nn.Linear(layer.in_features, layer.out_features)
    raise TypeError(f"layer {layer!r}: not a planned layer")


def add_layers(
    module: nn.Module, plan: BlockPlan, build: Callable[[LayerPlan | None], nn.Module | None]
) -> None:
    """Set one attribute of ``module`` per layer of ``plan``, built by ``build``, in order."""
    for name, layer in plan.layers():
        setattr(module, name, build(layer))


class Bottleneck(nn.Module):
    """1x1 reduce, spatial op (carrying the stride), 1x1 expand, plus the shortcut, then ReLU."""

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        add_layers(self, plan, build_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.act2(self.bn2(self.op(self.conv1(x)))))
        return self.act(out + self.shortcut(x))


class BasicBlock(nn.Module):
    """Two spatial ops at the output width (the first striding) plus the shortcut, then ReLU.

    A 1x1 ``entry`` projection adapts the input width first when it differs from the output.
    """

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        add_layers(self, plan, build_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.op1(self.entry(x))))
        out = self.bn2(self.op2(out))
        return self.act(out + self.shortcut(x))


def build_block(plan: BlockPlan) -> nn.Module:
    """The plain residual block of ``plan``."""
    return Bottleneck(plan) if plan.kind == "bottleneck" else BasicBlock(plan)


def build_stem(plan: StemPlan) -> nn.Sequential:
    """The layers before the first stage."""
    return nn.Sequential(*(build_layer(layer) for layer in plan.layers))
