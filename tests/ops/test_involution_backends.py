"""The torch and native cpu backends against the unfold reference: forward, both gradients,
gradcheck, non-contiguous inputs, and the native kernel's build and fallback."""

from __future__ import annotations

import itertools
import logging
import shutil
import zlib
from dataclasses import dataclass

import pytest
import torch

from invnas.ops import functional
from invnas.ops.backends import cpu as cpu_backend
from invnas.ops.functional import involution, output_size


def _require_cpu_kernel() -> None:
    if cpu_backend.is_available():
        return
    if shutil.which("c++") and shutil.which("ninja"):
        pytest.fail(
            "a compiler and ninja are installed but the involution CPU kernel did not build"
        )
    pytest.skip("no C++ compiler or ninja: the native involution CPU kernel cannot be built here")


@pytest.fixture(params=["torch", "cpu"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "cpu":
        _require_cpu_kernel()
    return request.param


@dataclass(frozen=True)
class Case:
    batch: int
    channels: int
    groups: int
    size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    layout: str = "contiguous"  # or "channels_last", "transposed"

    def __str__(self) -> str:
        return (
            f"B{self.batch}C{self.channels}G{self.groups}-{self.size[0]}x{self.size[1]}"
            f"-k{self.kernel}s{self.stride}p{self.padding}d{self.dilation}-{self.layout}"
        ).replace(" ", "")


def _grid() -> list[Case]:
    """K x stride x dilation in full; the other axes rotate through their values."""
    cases = []
    for idx, (k, s, d) in enumerate(itertools.product((1, 3, 5, 7, 9), (1, 2, 3), (1, 2))):
        same = idx % 2 == 0
        pad = d * (k - 1) // 2 if same else 0
        span = d * (k - 1) + 1
        h = max(span, 6) + (idx // 3) % 2  # odd and even heights
        w = h + 1 if idx % 5 == 0 else h
        channels = 16 if idx % 4 == 0 else 32
        groups = (1, channels // 16, channels)[idx % 3]
        layout = ("contiguous", "channels_last", "transposed")[(idx // 2) % 3]
        batch = 1 + (idx // 2) % 2
        cases.append(
            Case(batch, channels, groups, (h, w), (k, k), (s, s), (pad, pad), (d, d), layout)
        )
    cases += [  # non-square kernels and geometries, padding larger than the kernel's reach
        Case(2, 16, 4, (9, 8), (3, 5), (1, 1), (1, 2), (1, 1)),
        Case(1, 32, 2, (11, 10), (1, 7), (2, 1), (0, 3), (1, 1), "channels_last"),
        Case(2, 16, 16, (10, 13), (5, 3), (2, 3), (4, 1), (1, 2), "transposed"),
        Case(1, 16, 1, (6, 7), (3, 3), (1, 2), (5, 4), (2, 1)),
        Case(2, 32, 32, (1, 9), (1, 3), (1, 1), (0, 1), (1, 1)),
        Case(2, 16, 2, (5, 6), (3, 3), (1, 1), (3, 4), (1, 1)),
        Case(1, 16, 1, (5, 45), (3, 7), (1, 1), (1, 3), (1, 1), "transposed"),  # several blocks
        Case(1, 16, 4, (4, 37), (3, 5), (1, 1), (1, 4), (1, 2)),
    ]
    return cases


GRID = _grid()


def _make(case: Case, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(zlib.crc32(str(case).encode()))
    h, w = case.size
    if case.layout == "transposed":
        x = torch.randn(case.batch, case.channels, w, h, generator=gen, dtype=dtype).transpose(2, 3)
    else:
        x = torch.randn(case.batch, case.channels, h, w, generator=gen, dtype=dtype)
        if case.layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
    ho, wo = output_size(case.size, case.kernel, case.stride, case.padding, case.dilation)
    taps = case.kernel[0] * case.kernel[1]
    weight = torch.randn(case.batch, case.groups, taps, ho, wo, generator=gen, dtype=dtype)
    return x, weight


def _run(
    x: torch.Tensor, weight: torch.Tensor, case: Case, backend: str, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output and the gradients of a fixed random projection of it w.r.t. input and weight."""
    x = x.detach().requires_grad_()
    weight = weight.detach().requires_grad_()
    out = involution(x, weight, case.kernel, case.stride, case.padding, case.dilation, backend)
    grad_out = torch.randn(
        out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype
    )
    grad_x, grad_w = torch.autograd.grad(out, (x, weight), grad_out)
    return out, grad_x, grad_w


def _assert_matches(
    actual: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...], **tol: float
) -> None:
    for name, a, e in zip(("output", "grad_input", "grad_weight"), actual, expected, strict=True):
        torch.testing.assert_close(a, e, msg=lambda m, n=name: f"{n}: {m}", **tol)


@pytest.mark.parametrize("case", GRID, ids=str)
def test_matches_reference(backend: str, case: Case) -> None:
    x, weight = _make(case)
    _assert_matches(_run(x, weight, case, backend), _run(x, weight, case, "reference"))


@pytest.mark.parametrize("case", GRID[::7], ids=str)
def test_float32_matches_reference(backend: str, case: Case) -> None:
    x, weight = _make(case, torch.float32)
    expected = _run(x, weight, case, "reference")
    _assert_matches(_run(x, weight, case, backend), expected, rtol=1e-4, atol=1e-4)


def test_non_contiguous_weight(backend: str) -> None:
    case = Case(2, 16, 4, (8, 8), (3, 3), (1, 1), (1, 1), (1, 1))
    x, weight = _make(case)
    strided = weight.transpose(3, 4).contiguous().transpose(3, 4)  # same values, other strides
    assert not strided.is_contiguous()
    _assert_matches(_run(x, strided, case, backend), _run(x, weight, case, "reference"))


GRADCHECK_CASES = [
    Case(1, 4, 1, (5, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    Case(2, 4, 2, (7, 7), (3, 3), (2, 2), (0, 0), (2, 2), "channels_last"),
    Case(1, 4, 4, (6, 5), (3, 1), (1, 2), (1, 0), (1, 1), "transposed"),
    Case(1, 2, 2, (8, 7), (5, 5), (3, 3), (2, 2), (1, 1)),
    Case(1, 2, 1, (4, 4), (1, 1), (2, 1), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=str)
def test_gradcheck(backend: str, case: Case) -> None:
    x, weight = _make(case)

    def fn(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return involution(x, weight, case.kernel, case.stride, case.padding, case.dilation, backend)

    inputs = (x.detach().requires_grad_(), weight.detach().requires_grad_())
    assert torch.autograd.gradcheck(fn, inputs)


def test_cpu_backend_runs_native_code() -> None:
    _require_cpu_kernel()
    assert functional.resolve_backend(None, torch.zeros(1, 1, 1, 1)) in ("cpu", "torch")
    assert functional.resolve_backend("auto", torch.zeros(1, 1, 1, 1)) == "cpu"
    ext = cpu_backend.load_extension()
    assert ext is not None and ext.__file__.endswith(".so")
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    out = cpu_backend.involution_cpu(x, torch.ones(1, 1, 1, 4, 4), (1, 1, 1, 1, 0, 0, 1, 1))
    # the grad_fn is library._Involution, the autograd Function of the cpu and cupy backends
    assert type(out.grad_fn).__name__ == "_InvolutionBackward"
    torch.testing.assert_close(out, x)


def test_auto_uses_torch_for_other_dtypes() -> None:
    x = torch.zeros(1, 2, 4, 4, dtype=torch.bfloat16)
    assert functional.resolve_backend(None, x) == "torch"


def test_build_failure_falls_back_to_torch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_build() -> None:
        raise RuntimeError("Error building extension: c++: command not found")

    monkeypatch.setattr(cpu_backend, "_state", {"module": None, "failed": False})
    monkeypatch.setattr(cpu_backend, "_build", broken_build)
    monkeypatch.delenv(functional.ENV_VAR, raising=False)
    x, weight = torch.randn(1, 4, 5, 5), torch.randn(1, 1, 9, 5, 5)
    with caplog.at_level(logging.WARNING, logger=cpu_backend.__name__):
        assert not cpu_backend.is_available()
        assert functional.resolve_backend(None, x) == "torch"
        assert functional.resolve_backend("cpu", x) == "torch"
        out = involution(x, weight, 3, padding=1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "pure-PyTorch" in warnings[0].getMessage()
    assert "cpu" not in functional.available_backends()
    torch.testing.assert_close(out, involution(x, weight, 3, padding=1, backend="reference"))


@pytest.mark.parametrize("stride", [1, 2])
def test_threaded_shape_matches_reference(backend: str, stride: int) -> None:
    """Big enough for the native kernels to split the work across threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        case = Case(2, 32, 2, (33, 34), (7, 7), (stride, stride), (3, 3), (1, 1), "channels_last")
        x, weight = _make(case)
        _assert_matches(_run(x, weight, case, backend), _run(x, weight, case, "reference"))
    finally:
        torch.set_num_threads(threads)


# The cpu kernels vectorise over the channels of a group (16 float32 lanes): full, partial and
# several vectors of lanes, on maps of under 16 pixels (scalar transposes), whole 16-pixel blocks,
# stride 2, and few planes (the rows are split into bands).
LANE_CASES = [
    Case(2, 64, 4, (16, 16), (7, 7), (1, 1), (3, 3), (1, 1)),
    Case(2, 128, 8, (8, 8), (7, 7), (2, 2), (3, 3), (1, 1)),
    Case(2, 64, 4, (4, 4), (7, 7), (1, 1), (3, 3), (1, 1)),
    Case(2, 64, 4, (4, 4), (7, 7), (2, 2), (3, 3), (1, 1)),
    Case(1, 64, 2, (9, 7), (5, 3), (1, 2), (2, 1), (1, 1), "channels_last"),
    Case(2, 24, 3, (5, 13), (3, 7), (2, 1), (1, 3), (1, 1)),
    Case(1, 48, 1, (11, 10), (3, 3), (1, 1), (2, 2), (2, 2)),
    Case(1, 80, 1, (6, 6), (3, 3), (2, 2), (1, 1), (1, 1), "transposed"),
]


@pytest.mark.parametrize("case", LANE_CASES, ids=str)
def test_float32_lanes_match_reference(case: Case) -> None:
    _require_cpu_kernel()
    x, weight = _make(case, torch.float32)
    expected = _run(x, weight, case, "reference")
    _assert_matches(_run(x, weight, case, "cpu"), expected, rtol=1e-4, atol=1e-4)


def test_cpu_results_do_not_depend_on_the_thread_count() -> None:
    _require_cpu_kernel()
    case = Case(1, 32, 2, (12, 12), (7, 7), (1, 1), (3, 3), (1, 1))  # 2 planes: banded rows
    x, weight = _make(case, torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = _run(x, weight, case, "cpu")
        torch.set_num_threads(2)
        double = _run(x, weight, case, "cpu")
    finally:
        torch.set_num_threads(threads)
    _assert_matches(double, single, rtol=0, atol=0)
