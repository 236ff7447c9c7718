"""Involution2d: shapes, kernel generation, backends, state_dict, constructor validation."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from invnas.ops import Involution2d, functional
from invnas.ops.backends import cpu as cpu_backend


def _backends() -> list[str]:
    return ["reference", "torch"] + (["cpu"] if cpu_backend.is_available() else [])


@pytest.mark.parametrize("size", [(7, 7), (8, 8), (15, 14), (1, 2)])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [3, 7])
def test_output_shape(size: tuple[int, int], stride: int, kernel_size: int) -> None:
    layer = Involution2d(16, kernel_size=kernel_size, stride=stride, group_channels=4)
    x = torch.randn(2, 16, *size)
    expected = tuple(-(-n // stride) for n in size)  # ceil(n / stride)
    assert layer.kernels(x).shape == (2, 4, kernel_size**2, *expected)
    assert layer(x).shape == (2, 16, *expected)


def test_pooling_averages_real_pixels_on_odd_sizes() -> None:
    layer = Involution2d(4, kernel_size=3, stride=2, group_channels=4)
    x = torch.randn(1, 4, 5, 5)
    pooled = layer.pool(x)
    assert pooled.shape == (1, 4, 3, 3)
    torch.testing.assert_close(pooled[..., 2, 2], x[..., 4, 4])  # the lone corner pixel
    torch.testing.assert_close(pooled[..., 0, 2], x[..., 0:2, 4].mean(-1))


def test_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    layer = Involution2d(8, kernel_size=3, stride=2, group_channels=4, reduction=2).eval()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    layer = layer.double()
    hidden = F.relu(layer.bn(layer.reduce(F.avg_pool2d(x, 2))))
    weight = layer.span(hidden).view(2, 2, 9, 3, 3)
    cols = F.unfold(x, 3, padding=1, stride=2).view(2, 2, 4, 9, 3, 3)
    expected = (weight.unsqueeze(2) * cols).sum(3).view(2, 8, 3, 3)
    torch.testing.assert_close(layer(x), expected)


def test_backends_agree_and_share_the_state_dict() -> None:
    torch.manual_seed(0)
    backends = _backends()
    x = torch.randn(2, 32, 9, 10, dtype=torch.float64)
    layers = {
        name: Involution2d(32, 5, stride=2, group_channels=8, backend=name).double()
        for name in backends
    }
    first = layers["reference"]
    for layer in layers.values():
        layer.load_state_dict(first.state_dict())
    outputs, grads = {}, {}
    for name, layer in layers.items():
        out = layer(x)  # train mode: updates the BN running statistics
        out.square().sum().backward()
        outputs[name] = out
        grads[name] = {n: p.grad for n, p in layer.named_parameters()}
    for name in backends[1:]:
        torch.testing.assert_close(outputs[name], outputs["reference"])
        for n, g in grads[name].items():
            torch.testing.assert_close(g, grads["reference"][n])
        state, ref_state = layers[name].state_dict(), first.state_dict()
        assert list(state) == list(ref_state)
        for key, tensor in state.items():
            torch.testing.assert_close(tensor, ref_state[key], rtol=0, atol=0)


def test_state_dict_keys_and_repr() -> None:
    layer = Involution2d(64, kernel_size=7, stride=2, backend="cpu")
    assert list(layer.state_dict()) == [
        "reduce.weight",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
        "span.weight",
        "span.bias",
    ]
    assert layer.span.out_channels == 49 * 4 and layer.reduce.out_channels == 16
    text = repr(layer)
    assert "64, kernel_size=(7, 7), stride=(2, 2), groups=4, reduction=4, backend='cpu'" in text
    assert Involution2d(64).state_dict().keys() == layer.state_dict().keys()


def test_groups_or_group_channels() -> None:
    by_width = Involution2d(64, group_channels=16)
    by_count = Involution2d(64, groups=4)
    assert by_width.groups == by_count.groups == 4
    shapes = {k: v.shape for k, v in by_width.state_dict().items()}
    assert shapes == {k: v.shape for k, v in by_count.state_dict().items()}
    assert Involution2d(64).groups == 4  # 16 channels per group unless told otherwise
    with pytest.raises(ValueError, match="not both"):
        Involution2d(64, group_channels=16, groups=4)


def test_hidden_width_is_at_least_one() -> None:
    layer = Involution2d(2, kernel_size=3, group_channels=1, reduction=4)
    assert layer.reduce.out_channels == 1
    assert layer(torch.randn(2, 2, 5, 5)).shape == (2, 2, 5, 5)


def test_non_square_kernel_and_dilation() -> None:
    layer = Involution2d(16, kernel_size=(3, 5), stride=(1, 2), dilation=(2, 1), group_channels=8)
    assert layer.padding == (2, 2)
    assert layer(torch.randn(1, 16, 9, 9)).shape == (1, 16, 9, 5)


def test_env_var_override(monkeypatch: pytest.MonkeyPatch, reference_calls: list[str]) -> None:
    monkeypatch.setenv(functional.ENV_VAR, "reference")
    layer = Involution2d(16, 3)
    layer(torch.randn(1, 16, 6, 6))
    assert reference_calls == ["reference"]
    Involution2d(16, 3, backend="torch")(torch.randn(1, 16, 6, 6))  # the argument wins
    assert reference_calls == ["reference"]


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"channels": 0}, "channels"),
        ({"channels": 64, "group_channels": 24}, "group_channels"),
        ({"channels": 64, "group_channels": 0}, "group_channels"),
        ({"channels": 64, "groups": 3}, "groups"),
        ({"channels": 64, "groups": 0}, "groups"),
        ({"channels": 64, "kernel_size": 4}, "kernel_size"),
        ({"channels": 64, "kernel_size": (3, 2)}, "kernel_size"),
        ({"channels": 64, "kernel_size": 0}, "kernel_size"),
        ({"channels": 64, "stride": 0}, "stride"),
        ({"channels": 64, "dilation": 0}, "dilation"),
        ({"channels": 64, "reduction": 0}, "reduction"),
        ({"channels": 64, "backend": "fastest"}, "backend"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}: "):
        Involution2d(**kwargs)


def test_wrong_input_channels() -> None:
    with pytest.raises(ValueError, match=r"^input: expected shape \(B, 16, H, W\)"):
        Involution2d(16, 3)(torch.randn(1, 8, 5, 5))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("size", "stride"), [((16, 16), 2), ((7, 5), 2), ((5, 9), (3, 2))])
def test_native_stride_pool_is_bit_identical(
    dtype: torch.dtype, size: tuple[int, int], stride: int | tuple[int, int]
) -> None:
    if not cpu_backend.is_available():
        pytest.skip("the native involution CPU kernel is not built here")
    pair = (stride, stride) if isinstance(stride, int) else stride
    pool = torch.nn.AvgPool2d(pair, pair, ceil_mode=True, count_include_pad=False)
    x = (torch.randn(2, 3, *size, dtype=dtype) * 10).requires_grad_()
    expected = pool(x)
    grad = torch.randn_like(expected)
    actual = cpu_backend.stride_pool_cpu(x, pair)
    assert torch.equal(actual, expected)
    (grad_actual,) = torch.autograd.grad(actual, x, grad)
    (grad_expected,) = torch.autograd.grad(expected, x, grad)
    assert torch.equal(grad_actual, grad_expected)


def test_cpu_backend_layer_equals_torch_backend_layer_exactly_up_to_the_op() -> None:
    """With the cpu backend the layer pools natively; its kernels stay bit-identical."""
    if not cpu_backend.is_available():
        pytest.skip("the native involution CPU kernel is not built here")
    torch.manual_seed(0)
    native = Involution2d(32, 3, stride=2, backend="cpu").double()
    plain = Involution2d(32, 3, stride=2, backend="torch").double()
    plain.load_state_dict(native.state_dict())
    x = torch.randn(2, 32, 9, 8, dtype=torch.float64)
    calls: list[torch.Tensor] = []
    native.span.register_forward_hook(lambda _m, _i, out: calls.append(out))
    plain.span.register_forward_hook(lambda _m, _i, out: calls.append(out))
    torch.testing.assert_close(native(x), plain(x))
    assert torch.equal(calls[0], calls[1])  # the generated kernels


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_gives_the_same_output_and_gradients(backend: str, stride: int) -> None:
    torch.manual_seed(0)
    layer = Involution2d(16, 3, stride=stride, group_channels=4, backend=backend).double()
    nhwc = Involution2d(16, 3, stride=stride, group_channels=4, backend=backend).double()
    nhwc.load_state_dict(layer.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    x = torch.randn(2, 16, 7, 6, dtype=torch.float64, requires_grad=True)
    x_nhwc = x.detach().to(memory_format=torch.channels_last).requires_grad_()
    assert not x_nhwc.is_contiguous()
    out, out_nhwc = layer(x), nhwc(x_nhwc)
    torch.testing.assert_close(out_nhwc, out)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_nhwc.backward(grad.to(memory_format=torch.channels_last))
    torch.testing.assert_close(x_nhwc.grad, x.grad)
    for (name, p), q in zip(layer.named_parameters(), nhwc.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, msg=name)
