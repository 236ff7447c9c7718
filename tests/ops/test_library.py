"""The invnas:: custom ops: opcheck, torch.compile without graph breaks, torch.export."""

from __future__ import annotations

import pytest
import torch

from invnas.ops import Involution2d
from invnas.ops import library as _library  # noqa: F401  (registers the ops)
from invnas.ops.backends import cpu as cpu_backend


def _kernels() -> list[str]:
    return ["torch"] + (["cpu"] if cpu_backend.is_available() else [])


def _backends() -> list[str]:
    return ["reference", "torch"] + (["cpu"] if cpu_backend.is_available() else [])


# (B, C, H, W, G, K, stride, dilation)
CASES = [(2, 8, 7, 6, 2, 3, 1, 1), (1, 4, 9, 8, 1, 3, 2, 1), (2, 6, 8, 8, 3, 3, 1, 2)]


def _args(case: tuple[int, ...], kernels: str) -> tuple[object, ...]:
    b, c, h, w, g, k, s, d = case
    p = d * (k - 1) // 2
    ho, wo = (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1
    x = torch.randn(b, c, h, w, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(b, g, k * k, ho, wo, dtype=torch.float64, requires_grad=True)
    return x, weight, [k, k], [s, s], [p, p], [d, d], kernels


@pytest.mark.parametrize("kernels", _kernels())
@pytest.mark.parametrize("case", CASES)
def test_opcheck_involution(kernels: str, case: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    torch.library.opcheck(torch.ops.invnas.involution.default, _args(case, kernels))


@pytest.mark.parametrize("stride", [[2, 2], [3, 2]])
def test_opcheck_stride_pool(stride: list[int]) -> None:
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.invnas.stride_pool.default, (x, stride))


@pytest.mark.parametrize("backend", _backends())
def test_compile_fullgraph_without_graph_breaks(backend: str) -> None:
    """aot_eager: dynamo and AOT autograd trace forward and backward (Inductor's codegen is
    what experiments/bench_involution.py times)."""
    torch.manual_seed(0)
    layer = Involution2d(8, 3, stride=2, groups=2, backend=backend).double()
    x = torch.randn(2, 8, 9, 8, dtype=torch.float64, requires_grad=True)
    expected = layer(x)
    (grad_expected,) = torch.autograd.grad(expected.sum(), x)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    actual = compiled(x)
    (grad_actual,) = torch.autograd.grad(actual.sum(), x)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(grad_actual, grad_expected)


@pytest.mark.parametrize("backend", [b for b in _backends() if b != "reference"])
def test_export_captures_the_layer(backend: str) -> None:
    torch.manual_seed(0)
    layer = Involution2d(8, 3, stride=2, groups=2, backend=backend).eval()
    x = torch.randn(2, 8, 9, 8)
    program = torch.export.export(layer, (x,))
    targets = {str(node.target) for node in program.graph.nodes}
    if backend == "cpu":
        assert "invnas.involution.default" in targets
        assert "invnas.stride_pool.default" in targets
    torch.testing.assert_close(program.module()(x), layer(x))


def test_kernels_for_falls_back_to_torch_where_the_named_kernels_cannot_run() -> None:
    cpu_tensor = torch.zeros(1, 2, 3, 3)
    assert _library.kernels_for(cpu_tensor, "torch") == "torch"
    assert _library.kernels_for(cpu_tensor, "cupy") == "torch"  # CUDA kernels, CPU tensor
    assert _library.kernels_for(cpu_tensor.half(), "cpu") == "torch"  # no native float16
    if cpu_backend.is_available():
        assert _library.kernels_for(cpu_tensor, "cpu") == "cpu"
    with pytest.raises(ValueError, match="kernels: expected one of cpu, cupy, torch; got 'cuda'"):
        _library.kernels_for(cpu_tensor, "cuda")


@pytest.mark.parametrize("case", CASES[:2])
def test_opcheck_cupy_kernels_on_the_cpu(case: tuple[int, ...]) -> None:
    """kernels="cupy" on CPU tensors (an exported CUDA model run on the CPU) runs the torch
    formulas through the same op, schema, autograd formula and fake kernels."""
    torch.manual_seed(0)
    args = _args(case, "cupy")
    torch.library.opcheck(torch.ops.invnas.involution.default, args)
    expected = torch.ops.invnas.involution(*args[:6], "torch")
    torch.testing.assert_close(torch.ops.invnas.involution(*args), expected)


def _require_cupy() -> None:
    from invnas.ops.backends import cupy_backend

    if not cupy_backend.is_available():
        pytest.skip("needs CuPy and a CUDA GPU (none here)")


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_opcheck_cupy_kernels_on_the_gpu(case: tuple[int, ...]) -> None:
    _require_cupy()
    torch.manual_seed(0)
    x, weight, *geometry, _ = _args(case, "cupy")
    args = (x.detach().cuda().requires_grad_(), weight.detach().cuda().requires_grad_())
    torch.library.opcheck(torch.ops.invnas.involution.default, (*args, *geometry, "cupy"))
    expected = torch.ops.invnas.involution(x, weight, *geometry, "torch")
    actual = torch.ops.invnas.involution(*args, *geometry, "cupy")
    torch.testing.assert_close(actual.cpu(), expected)


@pytest.mark.gpu
def test_cupy_backend_compiles_and_exports_through_the_op() -> None:
    _require_cupy()
    torch.manual_seed(0)
    layer = Involution2d(8, 3, stride=2, groups=2, backend="cupy").cuda()
    x = torch.randn(2, 8, 9, 8, device="cuda", requires_grad=True)
    expected = layer(x)
    (grad_expected,) = torch.autograd.grad(expected.sum(), x)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True)
    actual = compiled(x)
    (grad_actual,) = torch.autograd.grad(actual.sum(), x)
    torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(grad_actual, grad_expected)
    program = torch.export.export(layer.eval(), (x.detach(),))
    assert "invnas.involution.default" in {str(node.target) for node in program.graph.nodes}
