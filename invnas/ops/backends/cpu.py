"""Native CPU involution: ``kernels/cpu/`` compiled on first use (see :mod:`.cpu_build`).

The extension is built once into torch's extensions cache (``TORCH_EXTENSIONS_DIR`` or
``~/.cache/torch_extensions``). If the build fails (no compiler, no ninja) a warning is logged
once and :func:`is_available` returns False.
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from invnas.ops.backends import cpu_build

Pair = tuple[int, int]

logger = logging.getLogger(__name__)

SUPPORTED_DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_state: dict[str, Any] = {"module": None, "failed": False}


def is_built() -> bool:
    """Whether the kernel of this source is already compiled in the build cache (loading it is
    then quick; otherwise the first use compiles it, about a minute on 2 cores)."""
    return cpu_build.is_built()


def _build() -> ModuleType:
    return cpu_build.build()


def load_extension() -> ModuleType | None:
    """The compiled extension, building it on the first call; None if the build failed."""
    with _lock:
        if _state["module"] is None and not _state["failed"]:
            try:
                _state["module"] = _build()
            except Exception as exc:  # any build or import failure means: use the fallback
                _state["failed"] = True
                logger.warning(
                    "could not build the involution CPU kernel (%s: %s); "
                    "using the pure-PyTorch backend instead",
                    type(exc).__name__,
                    str(exc).strip().splitlines()[-1] if str(exc).strip() else "",
                )
        return _state["module"]


def is_available() -> bool:
    """Whether the native CPU kernel can run here (compiles it on the first call)."""
    return load_extension() is not None


class _InvolutionCpu(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        input: torch.Tensor,
        weight: torch.Tensor,
        geometry: tuple[int, ...],
    ) -> torch.Tensor:
        ext = load_extension()
        assert ext is not None, "involution_cpu called without a compiled extension"
        input, weight = input.contiguous(), weight.contiguous()
        ctx.save_for_backward(input, weight)
        ctx.geometry = geometry
        return ext.forward(input, weight, *geometry)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ext = load_extension()
        assert ext is not None
        input, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_input = ext.backward_input(grad_out, input, weight, *ctx.geometry)
        if ctx.needs_input_grad[1]:
            grad_weight = ext.backward_weight(grad_out, input, weight, *ctx.geometry)
        return grad_input, grad_weight, None


class _StridePoolCpu(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, input: torch.Tensor, stride: Pair) -> torch.Tensor:
        ext = load_extension()
        assert ext is not None, "stride_pool_cpu called without a compiled extension"
        ctx.size = input.shape[-2:]
        ctx.stride = stride
        return ext.stride_pool(input.contiguous(), *stride)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ext = load_extension()
        assert ext is not None
        return ext.stride_pool_backward(grad_out.contiguous(), *ctx.size, *ctx.stride), None


def stride_pool_cpu(input: torch.Tensor, stride: Pair) -> torch.Tensor:
    """``nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)(input)`` with the
    native kernel, bit-identical to it and its gradient (float32/float64 CPU tensors, (B, C, H, W)).
    Torch's CPU avg_pool2d is several times slower on the small maps of a kernel generator."""
    return _StridePoolCpu.apply(input, stride)


def involution_cpu(
    input: torch.Tensor,
    weight: torch.Tensor,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
) -> torch.Tensor:
    """Involution with the native CPU kernels (float32/float64 CPU tensors, validated arguments).

    Differentiable once in ``input`` and ``weight``.
    """
    geometry = (*kernel_size, *stride, *padding, *dilation)
    return _InvolutionCpu.apply(input, weight, geometry)
