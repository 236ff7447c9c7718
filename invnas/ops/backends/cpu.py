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

from invnas.ops.backends import Geometry, Pair, cpu_build

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


@torch.compiler.assume_constant_result  # torch.compile calls it once instead of tracing it
def is_available() -> bool:
    """Whether the native CPU kernel can run here (compiles it on the first call)."""
    return load_extension() is not None


def stride_pool_cpu(input: torch.Tensor, stride: Pair) -> torch.Tensor:
    """``nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)(input)`` with the
    native kernel, bit-identical to it and its gradient (float32/float64 CPU tensors, (B, C, H, W)).
    Torch's CPU avg_pool2d is several times slower on the small maps of a kernel generator.
    Runs as the custom op ``invnas::stride_pool`` (see :mod:`invnas.ops.library`)."""
    return torch.ops.invnas.stride_pool(input, stride)


def involution_cpu(input: torch.Tensor, weight: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Involution with the native CPU kernels (float32/float64 CPU tensors, validated arguments)
    through the custom op ``invnas::involution`` (see :mod:`invnas.ops.library`).

    Differentiable once in ``input`` and ``weight``.
    """
    from invnas.ops import library  # imports this module

    return library.involution_with(library.KERNELS_CPU, input, weight, geometry)
