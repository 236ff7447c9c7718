"""PointwiseConv2d: a drop-in nn.Conv2d(1x1) whose algorithm choice never changes the result
beyond rounding, and pointwise_conv2d, its functional twin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from invnas.ops.pointwise import MIN_PIXELS, PointwiseConv2d, pointwise_conv2d


@pytest.fixture
def two_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("size", [(2, 2), (4, 4), (9, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_a_1x1_conv(two_threads: None, size: tuple[int, int], bias: bool) -> None:
    torch.manual_seed(0)
    layer = PointwiseConv2d(12, 20, bias=bias)
    plain = nn.Conv2d(12, 20, 1, bias=bias)
    plain.load_state_dict(layer.state_dict())
    assert list(layer.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 12, *size, requires_grad=True)
    out, expected = layer(x), plain(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, [x, *layer.parameters()], grad)
    want = torch.autograd.grad(expected, [x, *plain.parameters()], grad)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
    # the per-image GEMM path runs from MIN_PIXELS pixels on, oneDNN / nn.Conv2d below
    gemm = size[0] * size[1] >= MIN_PIXELS
    assert ("SlowConv2D" in type(out.grad_fn).__name__) == gemm


def test_float64_and_one_thread_run_conv2d_unchanged() -> None:
    torch.manual_seed(0)
    weight, bias = torch.randn(6, 3, 1, 1, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(pointwise_conv2d(x, weight, bias), nn.functional.conv2d(x, weight, bias))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        x32, w32 = x.float(), weight.float()
        assert torch.equal(pointwise_conv2d(x32, w32), nn.functional.conv2d(x32, w32))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("nhwc", ["input", "weight", "both"])
def test_channels_last_tensors_get_a_1x1_convs_gradients(two_threads: None, nhwc: str) -> None:
    torch.manual_seed(0)
    x, weight = torch.randn(4, 12, 8, 8), torch.randn(20, 12, 1, 1)
    last = torch.channels_last
    x_cl = (x.to(memory_format=last) if nhwc != "weight" else x.clone()).requires_grad_()
    w_cl = (weight.to(memory_format=last) if nhwc != "input" else weight.clone()).requires_grad_()
    x, weight = x.requires_grad_(), weight.requires_grad_()
    out, expected = pointwise_conv2d(x_cl, w_cl), nn.functional.conv2d(x, weight)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    got = torch.autograd.grad(out, [x_cl, w_cl], grad)
    want = torch.autograd.grad(expected, [x, weight], grad)
    for a, e in zip(got, want, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4)


def test_forward_hooks_see_it_as_a_conv() -> None:
    layer = PointwiseConv2d(4, 8)
    seen: list[tuple[int, ...]] = []
    layer.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    layer(torch.randn(1, 4, 5, 5))
    assert isinstance(layer, nn.Conv2d) and seen == [(1, 8, 5, 5)]
    assert layer.kernel_size == (1, 1)
