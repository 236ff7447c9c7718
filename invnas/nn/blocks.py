"""Plain (single-path) building blocks: conv-BN-ReLU, the spatial op, residual blocks and stems.

Parameter names are part of the contract: ``Supernet.extract`` copies weights into these modules
by name, and :mod:`invnas.space.cost` counts their parameters and MACs from the spec alone.
"""

from __future__ import annotations

import torch
from torch import nn

from invnas.ops import Involution2d
from invnas.space.spec import OpChoice, StemSpec


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


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return ConvBNAct(in_channels, out_channels, 1, stride, act=False)


class Bottleneck(nn.Module):
    """1x1 reduce, spatial op (carrying the stride), 1x1 expand, plus the shortcut, then ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, inner_channels: int, op: OpChoice, stride: int
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, inner_channels, 1)
        self.op = make_op(op, inner_channels, stride)
        self.bn2 = nn.BatchNorm2d(inner_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = ConvBNAct(inner_channels, out_channels, 1, act=False)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.act2(self.bn2(self.op(self.conv1(x)))))
        return self.act(out + self.shortcut(x))


class BasicBlock(nn.Module):
    """Two spatial ops at the output width (the first striding) plus the shortcut, then ReLU.

    A 1x1 ``entry`` projection adapts the input width first when it differs from the output.
    """

    def __init__(self, in_channels: int, out_channels: int, op: OpChoice, stride: int) -> None:
        super().__init__()
        self.entry = (
            ConvBNAct(in_channels, out_channels, 1)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.op1 = make_op(op, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.op2 = make_op(op, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.op1(self.entry(x))))
        out = self.bn2(self.op2(out))
        return self.act(out + self.shortcut(x))


def build_stem(stem: StemSpec, in_channels: int) -> nn.Sequential:
    """The layers before the first stage, as described by :class:`StemSpec`."""
    c = stem.channels
    if stem.kind == "conv":
        layers: list[nn.Module] = [ConvBNAct(in_channels, c, stem.kernel_size, stem.stride)]
        if stem.pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        return nn.Sequential(*layers)
    if stem.kind == "resnet":
        return nn.Sequential(ConvBNAct(in_channels, c, 7, 2), nn.MaxPool2d(3, 2, 1))
    if stem.kind == "rednet":
        half = c // 2
        return nn.Sequential(
            ConvBNAct(in_channels, half, 3, 2),
            Involution2d(half, 3, 1, group_channels=16, reduction=4),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            ConvBNAct(half, c, 3),
            nn.MaxPool2d(3, 2, 1),
        )
    raise ValueError(f"stem kind {stem.kind!r}: unknown; expected conv, resnet or rednet")
