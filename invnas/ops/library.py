"""``invnas::involution`` and ``invnas::stride_pool``: the native kernels as PyTorch custom ops.

Registered with ``torch.library`` (schema, kernel, autograd formula, fake implementation), so that
``torch.compile(..., fullgraph=True)`` traces a model using them without graph breaks and
``torch.export`` captures them. The ``kernels`` argument names the implementation: ``"cpu"`` (the
native CPU kernel), ``"cupy"`` (the CUDA kernels through CuPy) or ``"torch"`` (the pure-PyTorch
formulas, which run on any device and stand in for the other two where those cannot run: another
device, dtype, no compiler, no CuPy; see :func:`kernels_for`).

>>> x, w = torch.randn(2, 8, 6, 6), torch.randn(2, 2, 9, 6, 6)
>>> torch.ops.invnas.involution(x, w, [3, 3], [1, 1], [1, 1], [1, 1], "torch").shape
torch.Size([2, 8, 6, 6])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from invnas.ops.backends import Geometry, cupy_backend, torch_backend
from invnas.ops.backends import cpu as cpu_backend

KERNELS_CPU, KERNELS_CUPY, KERNELS_TORCH = "cpu", "cupy", "torch"
KERNELS = (KERNELS_CPU, KERNELS_CUPY, KERNELS_TORCH)  # values of the ops' ``kernels`` argument


def _geometry(*pairs: Sequence[int]) -> Geometry:
    return tuple(int(v) for pair in pairs for v in pair)  # type: ignore[return-value]


def _native(tensor: torch.Tensor) -> Any:
    """The compiled extension when it can run on ``tensor``, else None."""
    if tensor.device.type != "cpu" or tensor.dtype not in cpu_backend.SUPPORTED_DTYPES:
        return None
    return cpu_backend.load_extension()


def kernels_for(tensor: torch.Tensor, kernels: str) -> str:
    """The kernels that run for ``kernels`` on ``tensor``: "cpu" for CPU float32/float64 where
    the native kernel builds, "cupy" for CUDA tensors of a CuPy dtype where CuPy and a GPU are
    present, else "torch". Raises ValueError for a name not in KERNELS."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels: expected one of {', '.join(KERNELS)}; got {kernels!r}")
    if kernels == KERNELS_CPU and _native(tensor) is not None:
        return KERNELS_CPU
    cuda = tensor.device.type == "cuda" and tensor.dtype in cupy_backend.CUDA_TYPES
    if kernels == KERNELS_CUPY and cuda and cupy_backend.is_available():
        return KERNELS_CUPY
    return KERNELS_TORCH


def forward_kernel(
    input: torch.Tensor,
    weight: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    kernels: str,
) -> torch.Tensor:
    """What ``invnas::involution`` computes, called directly (no dispatch, no autograd)."""
    geometry = _geometry(kernel_size, stride, padding, dilation)
    which = kernels_for(input, kernels)
    if which == KERNELS_CPU:
        return _native(input).forward(input.contiguous(), weight.contiguous(), *geometry)
    module = cupy_backend if which == KERNELS_CUPY else torch_backend
    return module.forward(input, weight, geometry)


# The op of forward_kernel: typed schema from its signature.
involution_op = torch.library.custom_op("invnas::involution", forward_kernel, mutates_args=())


def _backward_pair(which: str) -> tuple[Callable[..., torch.Tensor], Any]:
    """``backward_input`` or ``backward_weight`` (``which``) of the kernels that run (see
    :func:`kernels_for`), as a plain function and as the custom op ``invnas::involution_<which>``
    (whose fake is a contiguous tensor shaped like the input or the weight)."""

    def kernel(
        grad_out: torch.Tensor,
        input: torch.Tensor,
        weight: torch.Tensor,
        geometry: Sequence[int],
        kernels: str,
    ) -> torch.Tensor:
        flat = _geometry(geometry)
        chosen = kernels_for(input, kernels)
        if chosen == KERNELS_CPU:
            tensors = (grad_out.contiguous(), input.contiguous(), weight.contiguous())
            return getattr(_native(input), which)(*tensors, *flat)
        module = cupy_backend if chosen == KERNELS_CUPY else torch_backend
        return getattr(module, which)(grad_out, input, weight, flat)

    def fake(grad_out, input, weight, geometry, kernels):  # type: ignore[no-untyped-def]
        like = input if which == "backward_input" else weight
        return torch.empty_like(like, memory_format=torch.contiguous_format)

    op = torch.library.custom_op(f"invnas::involution_{which}", kernel, mutates_args=())
    op.register_fake(fake)
    return kernel, op


_backward_input, _backward_input_op = _backward_pair("backward_input")
_backward_weight, _backward_weight_op = _backward_pair("backward_weight")


@involution_op.register_fake
def _(input, weight, kernel_size, stride, padding, dilation, kernels):  # type: ignore[no-untyped-def]
    b, c = input.shape[:2]
    return input.new_empty((b, c, *weight.shape[-2:]))


def _setup_involution(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    input, weight, kernel_size, stride, padding, dilation, kernels = inputs
    ctx.save_for_backward(input, weight)
    ctx.geometry = list(_geometry(kernel_size, stride, padding, dilation))
    ctx.kernels = kernels


def involution_grads(
    ctx: Any, grad_out: torch.Tensor, direct: bool = False
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(grad_input, grad_weight) of ``invnas::involution`` by its backward ops (or, if
    ``direct``, by their kernels called directly), from a context holding the saved (input,
    weight), ``geometry``, ``kernels`` and ``needs_input_grad``."""
    input, weight = ctx.saved_tensors
    args = (grad_out, input, weight, ctx.geometry, ctx.kernels)
    grad_input = grad_weight = None
    if ctx.needs_input_grad[0]:
        grad_input = (_backward_input if direct else _backward_input_op)(*args)
    if ctx.needs_input_grad[1]:
        grad_weight = (_backward_weight if direct else _backward_weight_op)(*args)
    return grad_input, grad_weight


def _involution_backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
    return *involution_grads(ctx, grad_out), None, None, None, None, None


involution_op.register_autograd(_involution_backward, setup_context=_setup_involution)


class _Involution(torch.autograd.Function):
    """The grad_fn of the cpu and cupy backends' outputs: their kernels called directly when
    running eagerly (skipping the ops' dispatch), through the ``invnas::involution*`` custom ops
    when traced (torch.compile, torch.export)."""

    @staticmethod
    def forward(
        ctx: Any, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry, kernels: str
    ) -> torch.Tensor:
        ctx.save_for_backward(input, weight)
        ctx.geometry, ctx.kernels = list(geometry), kernels
        ctx.direct = torch_backend.is_plain_eager(input, weight)
        run = forward_kernel if ctx.direct else involution_op
        kh, kw, sh, sw, ph, pw, dh, dw = geometry
        return run(input, weight, [kh, kw], [sh, sw], [ph, pw], [dh, dw], kernels)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_out = grad_out.to(ctx.saved_tensors[0].dtype)  # autocast may hand another dtype
        direct = ctx.direct and torch_backend.is_plain_eager(grad_out)
        return *involution_grads(ctx, grad_out, direct), None, None


def involution_with(
    kernels: str, input: torch.Tensor, weight: torch.Tensor, geometry: Geometry
) -> torch.Tensor:
    """Involution by the named ``kernels`` (see :func:`kernels_for`) with arguments already
    validated, differentiable once in ``input`` and ``weight``."""
    return _Involution.apply(input, weight, geometry, kernels)


@torch.library.custom_op("invnas::stride_pool", mutates_args=())
def stride_pool_op(input: torch.Tensor, stride: Sequence[int]) -> torch.Tensor:
    """``avg_pool2d(input, stride, stride, ceil_mode=True, count_include_pad=False)``, natively
    where the extension runs (bit-identical, several times faster on small maps)."""
    ext = _native(input)
    if ext is None:
        return F.avg_pool2d(input, list(stride), list(stride), 0, True, False)
    return ext.stride_pool(input.contiguous(), *stride)


@torch.library.custom_op("invnas::stride_pool_backward", mutates_args=())
def _stride_pool_backward_op(
    grad_out: torch.Tensor, size: Sequence[int], stride: Sequence[int]
) -> torch.Tensor:
    ext = _native(grad_out)
    if ext is None:
        shape = grad_out.new_empty((*grad_out.shape[:2], *size))  # read for its shape only
        return torch.ops.aten.avg_pool2d_backward(
            grad_out, shape, list(stride), list(stride), [0, 0], True, False, None
        )
    return ext.stride_pool_backward(grad_out.contiguous(), *size, *stride)


@stride_pool_op.register_fake
def _(input, stride):  # type: ignore[no-untyped-def]
    b, c, h, w = input.shape
    return input.new_empty((b, c, -(-h // stride[0]), -(-w // stride[1])))


@_stride_pool_backward_op.register_fake
def _(grad_out, size, stride):  # type: ignore[no-untyped-def]
    return grad_out.new_empty((*grad_out.shape[:2], *size))


def _setup_pool(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    input, stride = inputs
    ctx.size = list(input.shape[-2:])
    ctx.stride = list(stride)


def _pool_backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
    return _stride_pool_backward_op(grad_out, ctx.size, ctx.stride), None


stride_pool_op.register_autograd(_pool_backward, setup_context=_setup_pool)
