"""CUDA backend: ``kernels/involution.cu`` compiled at run time by CuPy (NVRTC).

CuPy is imported lazily, so importing this module never fails on machines without it.
Kernels run on PyTorch's current CUDA stream and read and write the tensors' memory directly.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np
import torch

from invnas.ops.backends import Geometry
from invnas.resources import kernels_dir

KERNELS: tuple[str, ...] = (
    "involution_forward",
    "involution_backward_input",
    "involution_backward_weight",
)
CUDA_TYPES: dict[torch.dtype, str] = {
    torch.float32: "float",
    torch.float64: "double",
    torch.float16: "__half",
    torch.bfloat16: "__nv_bfloat16",
}
# The kernels convert half/bf16 only through intrinsics (__half2float, ...). Switching off the
# headers' implicit conversions avoids the fp16/bf16 header-version clash some CuPy 13 setups
# hit (CuPy issue #8146).
NVRTC_OPTIONS: tuple[str, ...] = (
    "-std=c++17",
    "-D__CUDA_NO_HALF_CONVERSIONS__",
    "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
)
_BLOCK = 256
_MAX_GRID = 65535 * 16  # grid-stride loops cover the rest

_lock = threading.Lock()
_kernels: dict[tuple[int, torch.dtype], dict[str, Any]] = {}


def name_expressions(dtype: torch.dtype) -> list[str]:
    """C++ names of the three kernel instantiations for ``dtype``, as given to NVRTC."""
    return [f"invnas::{kernel}<{CUDA_TYPES[dtype]}>" for kernel in KERNELS]


@functools.cache
def _cupy_importable() -> bool:
    try:
        import cupy  # noqa: F401
    except Exception:  # a broken CUDA install can raise more than ImportError
        return False
    return True


def is_available() -> bool:
    """True when CuPy imports and PyTorch sees a CUDA device."""
    return torch.cuda.is_available() and _cupy_importable()


def _load_kernels(device_index: int, dtype: torch.dtype) -> dict[str, Any]:
    """Compile (or fetch from CuPy's cache) the module for one device and dtype."""
    key = (device_index, dtype)
    with _lock:
        kernels = _kernels.get(key)
        if kernels is None:
            import cupy

            names = name_expressions(dtype)
            source = (kernels_dir() / "involution.cu").read_text(encoding="utf-8")
            module = cupy.RawModule(code=source, options=NVRTC_OPTIONS, name_expressions=names)
            with cupy.cuda.Device(device_index):
                kernels = {k: module.get_function(n) for k, n in zip(KERNELS, names, strict=True)}
            _kernels[key] = kernels
    return kernels


def _launch(
    kernel: str, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, shape: tuple[int, ...]
) -> None:
    """Run ``kernel`` over the elements of ``out`` on PyTorch's current stream."""
    total = out.numel()
    if total == 0:
        return
    import cupy

    device_index = out.device.index if out.device.index is not None else torch.cuda.current_device()
    function = _load_kernels(device_index, out.dtype)[kernel]
    grid = min((total + _BLOCK - 1) // _BLOCK, _MAX_GRID)
    args = (
        np.uint64(a.data_ptr()),
        np.uint64(b.data_ptr()),
        np.uint64(out.data_ptr()),
        *(np.int64(s) for s in shape),
    )
    stream = torch.cuda.current_stream(out.device).cuda_stream
    with cupy.cuda.Device(device_index), cupy.cuda.ExternalStream(stream, device_index):
        function((grid,), (_BLOCK,), args)


def _shape_args(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> tuple[int, ...]:
    """The 15 size arguments of the kernels, checking that ``weight`` fits ``input``."""
    b, c, h, w = input.shape
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    groups = weight.shape[1] if weight.dim() == 5 else 0
    expected = (b, groups, kh * kw, ho, wo)
    if groups <= 0 or c % groups or tuple(weight.shape) != expected:
        raise ValueError(
            f"involution weight has shape {tuple(weight.shape)}; expected (B, G, KH*KW, Ho, Wo)"
            f" = {expected} with G dividing C={c}"
        )
    return (b, c, h, w, groups, kh, kw, ho, wo, sh, sw, ph, pw, dh, dw)


class _InvolutionCuPy(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(
        ctx: Any, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
    ) -> torch.Tensor:
        input, weight = input.contiguous(), weight.contiguous()
        shape = _shape_args(input, weight, geometry)
        b, c, _, _, _, _, _, ho, wo = shape[:9]
        output = input.new_empty((b, c, ho, wo))
        _launch("involution_forward", input, weight, output, shape)
        ctx.save_for_backward(input, weight)
        ctx.shape = shape
        return output

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        input, weight = ctx.saved_tensors
        grad_output = grad_output.to(input.dtype).contiguous()
        grad_input = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_input = torch.empty_like(input)
            _launch("involution_backward_input", grad_output, weight, grad_input, ctx.shape)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.empty_like(weight)
            _launch("involution_backward_weight", grad_output, input, grad_weight, ctx.shape)
        return grad_input, grad_weight, None


def _compute_dtype(input: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """One dtype for both operands: autocast's where it is on (for fp32 work), else promoted."""
    dtype = torch.promote_types(input.dtype, weight.dtype)
    if dtype == torch.float32 and torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
    if dtype not in CUDA_TYPES:
        raise TypeError(
            f"involution (cupy backend): unsupported dtype {dtype}; "
            "expected float32, float16, bfloat16 or float64"
        )
    return dtype


def involution_cupy(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Involution on CUDA tensors with CuPy kernels; arguments already validated.

    input (B, C, H, W) and weight (B, G, kh*kw, Ho, Wo) on the same CUDA device
    -> (B, C, Ho, Wo) in their common dtype (autocast's dtype inside an autocast region).
    """
    if input.device.type != "cuda" or weight.device != input.device:
        raise ValueError(
            f"involution (cupy backend): input and weight must be on one CUDA device, "
            f"got {input.device} and {weight.device}"
        )
    dtype = _compute_dtype(input, weight)
    return _InvolutionCuPy.apply(input.to(dtype), weight.to(dtype), geometry)
