"""Functional involution: validation, backend choice and dispatch (the twin of Involution2d)."""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

import torch

from invnas.ops import library  # noqa: F401  (registers the invnas:: custom ops)
from invnas.ops.backends import Geometry, Pair, geometry_of
from invnas.ops.backends import cpu as cpu_backend
from invnas.ops.backends.reference import involution_reference
from invnas.ops.backends.torch_backend import involution_torch

IntOrPair = int | tuple[int, int]
BackendFn = Callable[[torch.Tensor, torch.Tensor, Geometry], torch.Tensor]

ENV_VAR = "INVNAS_INVOLUTION_BACKEND"
BACKENDS = ("reference", "torch", "cpu", "cupy")


def _cupy_module() -> ModuleType | None:
    try:
        from invnas.ops.backends import cupy_backend
    except ImportError:
        return None
    return cupy_backend


def _cupy_available() -> bool:
    module = _cupy_module()
    try:
        return module is not None and bool(module.is_available())
    except Exception:  # a broken CUDA/CuPy install counts as unavailable
        return False


def _involution_cupy(*args: object) -> torch.Tensor:
    module = _cupy_module()
    assert module is not None
    return module.involution_cupy(*args)


# Looked up at call time, so tests can wrap an entry to see which backend ran.
_IMPLEMENTATIONS: dict[str, BackendFn] = {
    "reference": involution_reference,
    "torch": involution_torch,
    "cpu": cpu_backend.involution_cpu,
    "cupy": _involution_cupy,
}


def available_backends() -> list[str]:
    """Backends that can run here: always reference and torch; cpu if its kernel builds (this
    compiles it on the first call); cupy if CuPy and a CUDA device are present."""
    names = ["reference", "torch"]
    if cpu_backend.is_available():
        names.append("cpu")
    if _cupy_available():
        names.append("cupy")
    return names


def check_backend_name(backend: str | None, source: str = "backend") -> str | None:
    """Return ``backend`` lower-cased, or raise ValueError if it is not a backend name."""
    if backend is None:
        return None
    name = backend.strip().lower() if isinstance(backend, str) else backend
    if name not in ("auto", *BACKENDS):
        allowed = ", ".join(("auto", *BACKENDS))
        raise ValueError(f"{source}: expected one of {allowed}; got {backend!r}")
    return name


def resolve_backend(backend: str | None, input: torch.Tensor) -> str:
    """The backend that will run for ``input``: the argument, else $INVNAS_INVOLUTION_BACKEND,
    else (or for "auto") chosen from the device: cpu -> "cpu" (or "torch" when the kernel cannot
    build or the dtype is not float32/float64), cuda -> "cupy" when available, else "torch"."""
    name = check_backend_name(backend)
    if name is None:
        name = check_backend_name(os.environ.get(ENV_VAR) or None, source=ENV_VAR)
    if name is None or name == "auto":
        if input.device.type == "cpu":
            usable = input.dtype in cpu_backend.SUPPORTED_DTYPES and cpu_backend.is_available()
            return "cpu" if usable else "torch"
        if input.device.type == "cuda" and _cupy_available():
            return "cupy"
        return "torch"
    if name == "cpu":
        if input.device.type != "cpu":
            raise ValueError(f"backend: 'cpu' runs CPU tensors only; input is on {input.device}")
        if input.dtype not in cpu_backend.SUPPORTED_DTYPES:
            raise ValueError(
                f"backend: 'cpu' supports torch.float32 and torch.float64; got {input.dtype}"
            )
        return "cpu" if cpu_backend.is_available() else "torch"  # the build failure is logged
    if name == "cupy":
        if input.device.type != "cuda":
            raise ValueError(f"backend: 'cupy' runs CUDA tensors only; input is on {input.device}")
        if not _cupy_available():
            raise ValueError("backend: 'cupy' is unavailable (CuPy not installed or no GPU)")
    return name


def as_pair(name: str, value: IntOrPair, minimum: int) -> Pair:
    """Normalise an int or (h, w) pair, checking every entry is an int >= ``minimum``."""
    items = (value, value) if isinstance(value, int) else value
    ok = isinstance(items, (tuple, list)) and len(items) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in items)
    if not ok:
        raise ValueError(f"{name}: expected an int or an (h, w) pair of ints, got {value!r}")
    if min(items) < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name}: expected {kind} values, got {value!r}")
    return int(items[0]), int(items[1])


def output_size(size: Pair, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """(Ho, Wo) of an involution (or convolution) with this geometry on an (H, W) input."""
    ho, wo = (
        (size[a] + 2 * padding[a] - dilation[a] * (kernel_size[a] - 1) - 1) // stride[a] + 1
        for a in (0, 1)
    )
    return ho, wo


def _check_tensors(input: torch.Tensor, weight: torch.Tensor) -> None:
    for name, tensor, rank, dims in (
        ("input", input, 4, "(B, C, H, W)"),
        ("weight", weight, 5, "(B, G, KH*KW, Ho, Wo)"),
    ):
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dim() != rank:
            raise ValueError(
                f"{name}: expected a {rank}-D tensor {dims}, "
                f"got {tensor.dim()}-D of shape {tuple(tensor.shape)}"
            )
    if not input.is_floating_point():
        raise ValueError(f"input: expected a floating-point dtype, got {input.dtype}")
    if weight.dtype != input.dtype:
        raise ValueError(f"weight: expected dtype {input.dtype} (as input), got {weight.dtype}")
    if weight.device != input.device:
        raise ValueError(f"weight: expected device {input.device} (as input), got {weight.device}")


def involution(
    input: torch.Tensor,
    weight: torch.Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    backend: str | None = None,
) -> torch.Tensor:
    """Involution of ``input`` (B, C, H, W) with per-position kernels ``weight``
    (B, G, KH*KW, Ho, Wo); channel c uses kernel group c // (C // G). Zero padding.

    ``backend``: "reference", "torch", "cpu", "cupy" or "auto"/None (see :func:`resolve_backend`).

    >>> x = torch.randn(2, 16, 8, 8)
    >>> w = torch.randn(2, 4, 9, 8, 8)
    >>> involution(x, w, kernel_size=3, padding=1).shape
    torch.Size([2, 16, 8, 8])
    """
    _check_tensors(input, weight)
    k = as_pair("kernel_size", kernel_size, 1)
    s = as_pair("stride", stride, 1)
    p = as_pair("padding", padding, 0)
    d = as_pair("dilation", dilation, 1)
    b, c, h, w = input.shape
    groups = weight.shape[1]
    if groups < 1 or c % groups:
        raise ValueError(
            f"weight: groups (dim 1) must divide the input's {c} channels, got {groups}"
        )
    ho, wo = output_size((h, w), k, s, p, d)
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"input: spatial size {(h, w)} is too small for kernel_size {k}, padding {p}, "
            f"dilation {d}: expected a positive output size, got {(ho, wo)}"
        )
    expected = (b, groups, k[0] * k[1], ho, wo)
    if tuple(weight.shape) != expected:
        raise ValueError(f"weight: expected shape {expected}, got {tuple(weight.shape)}")
    return run_backend(resolve_backend(backend, input), input, weight, geometry_of(k, s, p, d))


def run_backend(
    name: str, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Run backend ``name`` (as returned by :func:`resolve_backend`) without checking the
    arguments, for callers that made ``weight`` for ``input`` themselves (as
    :class:`Involution2d` does) and pass the flat geometry of normalised pairs: on small feature
    maps the checks of :func:`involution` cost more than the op itself."""
    return _IMPLEMENTATIONS[name](input, weight, geometry)
