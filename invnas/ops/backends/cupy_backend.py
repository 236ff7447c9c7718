"""CUDA backend: ``kernels/involution.cu`` compiled at run time by CuPy (NVRTC).

CuPy is imported lazily, so importing this module never fails on machines without it.
Kernels run on PyTorch's current CUDA stream and read and write the tensors' memory directly.
:func:`forward`, :func:`backward_input` and :func:`backward_weight` are the kernels that the custom
op ``invnas::involution`` runs for ``kernels="cupy"`` (see :mod:`invnas.ops.library`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
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


def forward(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """The forward kernel: ``input`` and ``weight`` of one dtype on one CUDA device; what
    ``invnas::involution`` runs for "cupy"."""
    input, weight = input.contiguous(), weight.contiguous()
    shape = _shape_args(input, weight, geometry)
    output = input.new_empty((*shape[:2], *shape[7:9]))
    _launch("involution_forward", input, weight, output, shape)
    return output


def _gradient_kernel(which: str) -> Callable[..., torch.Tensor]:
    """The kernel ``involution_<which>`` as a function of (grad_out, input, weight, geometry)
    returning the gradient of the input (``backward_input``) or of the weight
    (``backward_weight``): what the op's backward ops run for "cupy"."""
    of_input = which == "backward_input"

    def gradient(
        grad_out: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
    ) -> torch.Tensor:
        shape = _shape_args(input, weight, geometry)
        like, other = (input, weight) if of_input else (weight, input)
        grad = torch.empty_like(like, memory_format=torch.contiguous_format)
        _launch(f"involution_{which}", grad_out.contiguous(), other.contiguous(), grad, shape)
        return grad

    return gradient


backward_input = _gradient_kernel("backward_input")
backward_weight = _gradient_kernel("backward_weight")


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
    Runs through the custom op ``invnas::involution`` (kernels "cupy") when traced, so that
    torch.compile and torch.export capture it as on the CPU.
    """
    if input.device.type != "cuda" or weight.device != input.device:
        raise ValueError(
            f"involution (cupy backend): input and weight must be on one CUDA device, "
            f"got {input.device} and {weight.device}"
        )
    from invnas.ops import library  # imports this module

    dtype = _compute_dtype(input, weight)
    return library.involution_with(
        library.KERNELS_CUPY, input.to(dtype), weight.to(dtype), geometry
    )
