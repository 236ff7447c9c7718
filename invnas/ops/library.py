"""``invnas::involution`` and ``invnas::stride_pool``: the native kernels as PyTorch custom ops.

Registered with ``torch.library`` (schema, kernel, autograd formula, fake implementation), so that
``torch.compile(..., fullgraph=True)`` traces a model using them without graph breaks and
``torch.export`` captures them. The ``kernels`` argument names the implementation: ``"cpu"`` (the
native CPU kernel; the pure-PyTorch formulas when it cannot build or for other dtypes) or
``"torch"`` (the pure-PyTorch formulas, which run on any device).

>>> x, w = torch.randn(2, 8, 6, 6), torch.randn(2, 2, 9, 6, 6)
>>> torch.ops.invnas.involution(x, w, [3, 3], [1, 1], [1, 1], [1, 1], "torch").shape
torch.Size([2, 8, 6, 6])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from invnas.ops.backends import Geometry, torch_backend
from invnas.ops.backends import cpu as cpu_backend

KERNELS_CPU = "cpu"
KERNELS = (KERNELS_CPU, "torch")  # values of the ops' ``kernels`` argument


def _geometry(*pairs: Sequence[int]) -> Geometry:
    return tuple(int(v) for pair in pairs for v in pair)  # type: ignore[return-value]


def _native(tensor: torch.Tensor) -> Any:
    """The compiled extension when it can run on ``tensor``, else None."""
    if tensor.device.type != "cpu" or tensor.dtype not in cpu_backend.SUPPORTED_DTYPES:
        return None
    return cpu_backend.load_extension()


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
    ext = _native(input) if kernels == KERNELS_CPU else None
    if ext is None:
        return torch_backend.forward(input, weight, geometry)
    return ext.forward(input.contiguous(), weight.contiguous(), *geometry)


# The op of forward_kernel: typed schema from its signature.
involution_op = torch.library.custom_op("invnas::involution", forward_kernel, mutates_args=())


def _backward_pair(which: str) -> tuple[Callable[..., torch.Tensor], Any]:
    """``backward_input`` or ``backward_weight`` (``which``) of the native or torch kernels, as a
    plain function and as the custom op ``invnas::involution_<which>`` (whose fake is a
    contiguous tensor shaped like the input or the weight)."""

    def kernel(
        grad_out: torch.Tensor,
        input: torch.Tensor,
        weight: torch.Tensor,
        geometry: Sequence[int],
        kernels: str,
    ) -> torch.Tensor:
        flat = _geometry(geometry)
        ext = _native(input) if kernels == KERNELS_CPU else None
        if ext is None:
            return getattr(torch_backend, which)(grad_out, input, weight, flat)
        tensors = (grad_out.contiguous(), input.contiguous(), weight.contiguous())
        return getattr(ext, which)(*tensors, *flat)

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


def is_plain_eager(*tensors: torch.Tensor) -> bool:
    """Whether nothing traces these tensors: no torch.compile or torch.export, plain tensors (no
    FakeTensor), no dispatch or function mode (make_fx). The kernels may then be called
    directly, skipping the custom ops' dispatch (about 50 us a call, measured on the CPU)."""
    if torch.compiler.is_compiling():  # first, so that dynamo never traces the checks below
        return False
    return (
        all(type(t) is torch.Tensor for t in tensors)
        and torch._C._len_torch_dispatch_stack() == 0
        and not torch._C._is_torch_function_mode_enabled()
    )


def _involution_backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
    return *involution_grads(ctx, grad_out), None, None, None, None, None


involution_op.register_autograd(_involution_backward, setup_context=_setup_involution)


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
