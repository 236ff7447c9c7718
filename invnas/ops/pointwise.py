"""The 1x1 convolutions of the involution kernel generator: PointwiseConv2d and its functional
twin pointwise_conv2d (also used by the supernet's sliceable involution, so that both compute
exactly the same thing)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Fewest pixels per image for which the per-image product wins (see PointwiseConv2d).
MIN_PIXELS = 16
# torch's own GEMM convolution; private, so a torch without it falls back to F.conv2d.
_gemm_conv2d = getattr(torch._C._nn, "thnn_conv2d", None)


def pointwise_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 1x1 ``weight`` (O, C, 1, 1), with the algorithm
    :class:`PointwiseConv2d` documents."""
    if (
        _gemm_conv2d is not None
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
        and 1 < torch.get_num_threads() <= x.shape[0]
        and _row_major(x)
        and _row_major(weight)  # thnn_conv2d's weight gradient is wrong for NHWC weights
    ):
        return _gemm_conv2d(x, weight, (1, 1), bias, (1, 1), (0, 0))
    return F.conv2d(x, weight, bias)


def _row_major(tensor: torch.Tensor) -> bool:
    """True when ``tensor``'s strides are exactly NCHW's (a 1x1 weight in channels_last order
    passes ``is_contiguous()`` too, its size-1 dims' strides aside)."""
    expected, step = [], 1
    for size in reversed(tensor.shape):
        expected.append(step)
        step *= size
    return tensor.stride() == tuple(reversed(expected))


class PointwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1, bias=bias)`` (same parameters, state_dict and
    hooks) that picks the faster of torch's two CPU algorithms for the kernel generator's shapes.

    On float32 CPU input, with several threads and at least one image per thread, and maps of at
    least ``MIN_PIXELS`` pixels, it runs torch's GEMM convolution (one matrix product per image,
    the images spread over the threads) instead of oneDNN, which splits each of these small
    products across the threads. Measured on 2 threads at batch 8 on RedNet-26's generator
    shapes at 64x64 input (fwd+bwd): 1.3-3.5x faster on 32x32 to 8x8 maps, as fast or faster at
    4x4, 2.5x slower at 2x2 (hence the threshold). The results agree to rounding; float64,
    channels_last tensors and the other cases run ``nn.Conv2d`` unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pointwise_conv2d(x, self.weight, self.bias)
