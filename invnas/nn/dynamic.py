"""Sliceable layers for the weight-sharing supernet.

Each layer holds the weights of its widest configuration and runs on their leading channels
(OFA-style channel slicing): the number of input channels is read from the input, the number of
output channels is passed in (or follows the input). Running a layer on ``c`` active channels
computes exactly what a plain layer holding the leading slice of every weight computes, which
is what :meth:`invnas.nn.supernet.Supernet.extract` copies out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from invnas.nn.blocks import WeightedLayers, build_layer
from invnas.ops import involution
from invnas.ops.pointwise import pointwise_conv2d
from invnas.space.plan import (
    LayerPlan,
    involution_reduce_channels,
)
from invnas.space.spec import OpChoice


class DynamicConv2d(nn.Conv2d):
    """A convolution run on the leading channels of its weight.

    With ``groups`` g, ``c_in`` input and ``c_out`` output channels it equals
    ``nn.Conv2d(c_in, c_out, groups=g)`` holding ``weight[:c_out, :c_in // g]``; ``c_out``
    defaults to ``c_in`` (a spatial op keeps its input's width).
    """

    def __init__(
        self,
        max_in_channels: int,
        max_out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(
            max_in_channels,
            max_out_channels,
            kernel_size,
            stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=bias,
        )

    def sliced(
        self, x: torch.Tensor, out_channels: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight and bias slices for input ``x`` and ``out_channels`` (default: as many
        as ``x`` has); ValueError beyond the largest configuration."""
        in_channels = x.shape[1]
        out_channels = in_channels if out_channels is None else out_channels
        if in_channels > self.in_channels or out_channels > self.out_channels:
            raise ValueError(
                f"{type(self).__name__}: {in_channels}->{out_channels} channels exceed "
                f"the largest configuration {self.in_channels}->{self.out_channels}"
            )
        weight = self.weight[:out_channels, : in_channels // self.groups]
        return weight, None if self.bias is None else self.bias[:out_channels]

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        weight, bias = self.sliced(x, out_channels)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the leading channels of its affine weights and running statistics.

    In training mode the running statistics of the active channels are updated in place; the
    others are left untouched. Being a ``BatchNorm2d``, it is found (and reset) by
    :func:`invnas.nn.bn.recalibrate_bn`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        tracked = not self.training or self.track_running_stats
        running_mean = self.running_mean[:c] if tracked and self.running_mean is not None else None
        running_var = self.running_var[:c] if tracked and self.running_var is not None else None
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        return F.batch_norm(
            x,
            running_mean,
            running_var,
            None if self.weight is None else self.weight[:c],
            None if self.bias is None else self.bias[:c],
            use_batch_stats,
            factor,
            self.eps,
        )


class DynamicLinear(nn.Linear):
    """A linear layer run on the leading input features of its weight (outputs are fixed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)


class DynamicConvBNAct(nn.Module):
    """Sliceable twin of :class:`invnas.nn.blocks.ConvBNAct` (same parameter names)."""

    def __init__(
        self,
        max_in_channels: int,
        max_out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = DynamicConv2d(max_in_channels, max_out_channels, kernel_size, stride)
        self.bn = DynamicBatchNorm2d(max_out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, out_channels)))


class DynamicPointwiseConv2d(DynamicConv2d):
    """Sliceable twin of :class:`invnas.ops.pointwise.PointwiseConv2d` (an involution's kernel
    generator): it picks the same algorithm, so that an extracted Involution2d computes exactly
    what this computes."""

    def __init__(self, max_in_channels: int, max_out_channels: int, bias: bool = False) -> None:
        super().__init__(max_in_channels, max_out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:
        return pointwise_conv2d(x, *self.sliced(x, out_channels))


class DynamicInvolution2d(nn.Module):
    """Sliceable twin of :class:`invnas.ops.Involution2d` (same parameter names).

    On ``c`` active channels the kernel generator uses ``c // reduction`` reduce channels (at
    least 1) and emits ``K*K*G`` kernel taps for the ``G`` groups of ``c`` channels (``G`` follows
    ``c`` when the op fixes channels per group).
    """

    def __init__(self, max_channels: int, op: OpChoice, stride: int = 1) -> None:
        super().__init__()
        if op.kind != "involution":
            raise ValueError(f"op {op.code}: not an involution")
        self.op = op
        self.kernel_size = op.kernel_size
        self.stride = stride
        self.reduction = op.reduction if op.reduction is not None else 4
        max_reduced = involution_reduce_channels(max_channels, self.reduction)
        max_taps = self.kernel_size**2 * op.groups_for(max_channels)
        self.pool = (
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
            if stride > 1
            else nn.Identity()
        )
        self.reduce = DynamicPointwiseConv2d(max_channels, max_reduced)
        self.bn = DynamicBatchNorm2d(max_reduced)
        self.act = nn.ReLU(inplace=True)
        self.span = DynamicPointwiseConv2d(max_reduced, max_taps, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        groups = self.op.groups_for(c)
        k = self.kernel_size
        hidden = self.act(
            self.bn(self.reduce(self.pool(x), involution_reduce_channels(c, self.reduction)))
        )
        weight = self.span(hidden, k * k * groups)
        weight = weight.view(b, groups, k * k, *weight.shape[-2:])
        return involution(x, weight, k, stride=self.stride, padding=(k - 1) // 2)

    def extra_repr(self) -> str:
        return f"op={self.op.code}, stride={self.stride}"


def make_dynamic_op(op: OpChoice, max_channels: int, stride: int) -> nn.Module:
    """Sliceable twin of :func:`invnas.nn.blocks.make_op`; it keeps the input's width."""
    if op.kind == "conv":
        groups = op.groups if op.groups is not None else 1
        return DynamicConv2d(max_channels, max_channels, op.kernel_size, stride, groups=groups)
    return DynamicInvolution2d(max_channels, op, stride)


def build_dynamic_layer(layer: LayerPlan | None) -> nn.Module | None:
    """Sliceable twin of :func:`invnas.nn.blocks.build_layer` for a block's layer planned at
    its largest widths (``None`` stays ``None``: a block without that layer)."""
    return None if layer is None else build_layer(layer, SLICEABLE)


SLICEABLE = WeightedLayers(
    conv_bn=DynamicConvBNAct, op=make_dynamic_op, batch_norm=DynamicBatchNorm2d
)
