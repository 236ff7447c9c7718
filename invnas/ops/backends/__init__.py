"""Involution backends; each is ``fn(input, weight, geometry)`` with validated tensors and the
flat :data:`Geometry` tuple. reference: unfold; torch: shift-and-add in PyTorch; cpu: native C++
kernels; cupy: CUDA kernels through CuPy."""

from __future__ import annotations

Pair = tuple[int, int]
# (kh, kw, sh, sw, ph, pw, dh, dw): kernel size, stride, padding and dilation as the kernels take
# them.
Geometry = tuple[int, int, int, int, int, int, int, int]


def geometry_of(kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Geometry:
    """The flat geometry tuple of the four (h, w) pairs."""
    return (*kernel_size, *stride, *padding, *dilation)  # type: ignore[return-value]
