"""Involution2d: the involution layer of Li et al. (CVPR 2021) with its kernel generator."""

from __future__ import annotations

import torch
from torch import nn

from invnas.ops.backends import geometry_of
from invnas.ops.backends.cpu import stride_pool_cpu
from invnas.ops.functional import (
    IntOrPair,
    as_pair,
    check_backend_name,
    resolve_backend,
    run_backend,
)
from invnas.ops.pointwise import PointwiseConv2d


class Involution2d(nn.Module):
    """Involution with kernels generated from the input (Li et al., "Involution", CVPR 2021).

    The kernel of each output position comes from the input itself: average-pool by the stride
    (so the kernels live at output resolution), a 1x1 conv to ``hidden = max(1, channels //
    reduction)`` channels (kept >= 1 so narrow layers still work), BatchNorm, ReLU, and a 1x1
    conv to ``KH * KW * G`` channels. The involution then uses "same" padding
    ``dilation * (K - 1) // 2``, so the output is ``ceil(H / stride) x ceil(W / stride)``.

    Args:
        channels: input and output channels C.
        kernel_size: odd int or (h, w) pair of odd ints.
        stride: int or (h, w) pair.
        group_channels: channels sharing one kernel; G = channels // group_channels
            (default 16, the RedNet convention, when ``groups`` is not given either).
        reduction: channel reduction ratio r of the kernel generator.
        dilation: int or (h, w) pair.
        groups: the number of kernel groups G directly, instead of ``group_channels``.
        backend: involution backend name, or None/"auto" to choose from the device (not saved
            in the state_dict).

    >>> layer = Involution2d(64, kernel_size=7, stride=2)
    >>> layer(torch.randn(2, 64, 15, 14)).shape
    torch.Size([2, 64, 8, 7])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: IntOrPair = 7,
        stride: IntOrPair = 1,
        group_channels: int | None = None,
        reduction: int = 4,
        dilation: IntOrPair = 1,
        groups: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        _positive_int("channels", channels)
        _positive_int("reduction", reduction)
        if groups is not None and group_channels is not None:
            raise ValueError(
                f"groups: give either groups ({groups}) or group_channels ({group_channels}), "
                "not both"
            )
        if groups is not None:
            _positive_int("groups", groups)
            if channels % groups:
                raise ValueError(f"groups: expected a divisor of channels={channels}, got {groups}")
        else:
            group_channels = 16 if group_channels is None else group_channels
            _positive_int("group_channels", group_channels)
            if channels % group_channels:
                raise ValueError(
                    f"group_channels: expected a divisor of channels={channels}, "
                    f"got {group_channels}"
                )
            groups = channels // group_channels
        self.kernel_size = as_pair("kernel_size", kernel_size, 1)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(
                f"kernel_size: expected odd sizes (even ones need asymmetric padding), "
                f"got {kernel_size!r}"
            )
        self.stride = as_pair("stride", stride, 1)
        self.dilation = as_pair("dilation", dilation, 1)
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        self.padding = (dh * (kh - 1) // 2, dw * (kw - 1) // 2)
        self.channels = channels
        self.groups = groups
        self.reduction = reduction
        self.backend = check_backend_name(backend)
        hidden = max(1, channels // reduction)
        taps = kh * kw

        # ceil_mode keeps the last partial window, so odd sizes pool to exactly ceil(H / stride)
        # = the involution's output size; count_include_pad=False averages real pixels only.
        self.pool = (
            nn.AvgPool2d(self.stride, self.stride, ceil_mode=True, count_include_pad=False)
            if self.stride != (1, 1)
            else nn.Identity()
        )
        self.reduce = PointwiseConv2d(channels, hidden, bias=False)
        self.bn = nn.BatchNorm2d(hidden)
        self.act = nn.ReLU(inplace=True)
        self.span = PointwiseConv2d(hidden, taps * groups)

    def kernels(self, x: torch.Tensor, backend: str | None = None) -> torch.Tensor:
        """The generated involution weight (B, G, KH*KW, Ho, Wo) for input ``x``; ``backend``
        is the resolved backend of the op (``"cpu"`` pools with the native kernel, which is
        bit-identical to ``self.pool`` and several times faster)."""
        if self.stride == (1, 1):
            pooled = x
        elif backend == "cpu":
            pooled = stride_pool_cpu(x, self.stride)
        else:
            pooled = self.pool(x)
        weight = self.span(self.act(self.bn(self.reduce(pooled))))
        b, _, ho, wo = weight.shape
        return weight.view(b, self.groups, -1, ho, wo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"input: expected shape (B, {self.channels}, H, W), got {tuple(x.shape)}"
            )
        backend = resolve_backend(self.backend, x)
        # The generated weight always fits x (odd kernel, "same" padding, pooled by the stride),
        # so the functional op's argument checks are skipped.
        geometry = geometry_of(self.kernel_size, self.stride, self.padding, self.dilation)
        return run_backend(backend, x, self.kernels(x, backend), geometry)

    def extra_repr(self) -> str:
        text = (
            f"{self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"groups={self.groups}, reduction={self.reduction}"
        )
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.backend is not None:
            text += f", backend={self.backend!r}"
        return text


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
