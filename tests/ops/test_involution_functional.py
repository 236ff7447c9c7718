"""invnas.ops.involution: argument validation and backend choice."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch

from invnas.ops import available_backends, functional, involution


def _args(**changes: Any) -> dict[str, Any]:
    """Valid arguments (B=2, C=16, G=4, 8x8, K=3, same padding) with some replaced."""
    args: dict[str, Any] = {
        "input": torch.randn(2, 16, 8, 8),
        "weight": torch.randn(2, 4, 9, 8, 8),
        "kernel_size": 3,
        "stride": 1,
        "padding": 1,
        "dilation": 1,
        "backend": "torch",
    }
    args.update(changes)
    return args


def test_valid_arguments_run() -> None:
    assert involution(**_args()).shape == (2, 16, 8, 8)


def test_weight_shape_message_names_expected_and_actual() -> None:
    args = _args(
        input=torch.randn(2, 16, 56, 56),
        weight=torch.randn(2, 4, 49, 27, 27),
        kernel_size=7,
        stride=2,
        padding=3,
    )
    message = "weight: expected shape (2, 4, 49, 28, 28), got (2, 4, 49, 27, 27)"
    with pytest.raises(ValueError, match=re.escape(message)):
        involution(**args)


@pytest.mark.parametrize(
    ("changes", "argument"),
    [
        ({"input": torch.randn(16, 8, 8)}, "input"),
        ({"input": torch.ones(2, 16, 8, 8, dtype=torch.int64)}, "input"),
        ({"input": "not a tensor"}, "input"),
        ({"weight": torch.randn(2, 4, 9, 64)}, "weight"),
        ({"weight": torch.randn(2, 5, 9, 8, 8)}, "weight"),  # 5 groups do not divide 16 channels
        ({"weight": torch.randn(2, 4, 25, 8, 8)}, "weight"),  # taps do not match kernel_size
        ({"weight": torch.randn(1, 4, 9, 8, 8)}, "weight"),  # batch mismatch
        ({"weight": torch.randn(2, 4, 9, 8, 8, dtype=torch.float64)}, "weight"),
        ({"weight": torch.empty(2, 4, 9, 8, 8, device="meta")}, "weight"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (3,)}, "kernel_size"),
        ({"kernel_size": 3.0}, "kernel_size"),
        ({"stride": 0}, "stride"),
        ({"stride": (1, -2)}, "stride"),
        ({"dilation": 0}, "dilation"),
        ({"padding": -1}, "padding"),
        ({"padding": (1, -1)}, "padding"),
        ({"input": torch.randn(2, 16, 2, 2), "padding": 0}, "input"),  # output size would be 0
        ({"backend": "gpu"}, "backend"),
        ({"backend": "cupy"}, "backend"),  # CPU tensors
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    changes: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{argument}: "):
        involution(**_args(**changes))


def test_small_output_message_gives_sizes() -> None:
    with pytest.raises(ValueError, match=r"input: .*\(2, 2\).*got \(0, 0\)"):
        involution(**_args(input=torch.randn(2, 16, 2, 2), padding=0))


def test_cpu_backend_rejects_unsupported_inputs() -> None:
    x = torch.randn(1, 2, 4, 4, dtype=torch.float16)
    with pytest.raises(ValueError, match="^backend: 'cpu' supports"):
        involution(x, torch.randn(1, 1, 1, 4, 4, dtype=torch.float16), 1, backend="cpu")
    meta = torch.empty(1, 2, 4, 4, device="meta")
    with pytest.raises(ValueError, match="^backend: 'cpu' runs CPU tensors only"):
        involution(meta, torch.empty(1, 1, 1, 4, 4, device="meta"), 1, backend="cpu")


def test_cupy_on_cpu_says_why() -> None:
    with pytest.raises(ValueError, match="cupy.*CUDA tensors only; input is on cpu"):
        involution(**_args(backend="cupy"))


def test_torch_backend_runs_on_other_devices() -> None:
    meta = torch.empty(2, 16, 8, 8, device="meta")
    out = involution(meta, torch.empty(2, 4, 9, 8, 8, device="meta"), 3, padding=1)
    assert out.shape == (2, 16, 8, 8) and out.device.type == "meta"


def test_backend_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(1, 1, 1, 1)
    monkeypatch.delenv(functional.ENV_VAR, raising=False)
    auto = functional.resolve_backend(None, x)
    assert auto in ("cpu", "torch")
    monkeypatch.setenv(functional.ENV_VAR, "reference")
    assert functional.resolve_backend(None, x) == "reference"
    assert functional.resolve_backend("torch", x) == "torch"  # the argument wins
    assert functional.resolve_backend("auto", x) == auto  # an explicit "auto" chooses
    monkeypatch.setenv(functional.ENV_VAR, " Torch ")
    assert functional.resolve_backend(None, x) == "torch"
    monkeypatch.setenv(functional.ENV_VAR, "auto")
    assert functional.resolve_backend(None, x) == auto
    monkeypatch.setenv(functional.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=f"^{functional.ENV_VAR}: .*'fastest'"):
        functional.resolve_backend(None, x)


def test_env_var_selects_the_implementation(
    monkeypatch: pytest.MonkeyPatch, reference_calls: list[str]
) -> None:
    monkeypatch.setenv(functional.ENV_VAR, "reference")
    involution(**_args(backend=None))
    assert reference_calls == ["reference"]


def test_available_backends() -> None:
    names = available_backends()
    assert names[:2] == ["reference", "torch"]
    assert set(names) <= set(functional.BACKENDS)
