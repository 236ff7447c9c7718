"""The torch backend's eager forms (cache-sized chunks; banded matrices on small maps) and its
traceable form (double backward) against the unfold reference."""

from __future__ import annotations

import pytest
import torch

from invnas.ops.backends import torch_backend
from invnas.ops.functional import involution
from tests.ops.test_involution_backends import GRID, Case, _assert_matches, _make, _run

CASES = GRID[::3] + [Case(3, 32, 2, (7, 7), (7, 7), (1, 1), (3, 3), (1, 1), "channels_last")]


@pytest.fixture(params=["chunked", "banded"])
def form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Forces one eager form (one row per chunk, so that chunk edges are crossed) and records
    which kernels ran."""
    ran: list[str] = []
    banded = request.param == "banded"
    monkeypatch.setattr(torch_backend, "BAND_MAX_WASTE", 10**9 if banded else 0)
    monkeypatch.setattr(torch_backend, "CHUNK_ELEMENTS", 1)
    names = ("_forward_band", "_backward_input_band", "_backward_weight_band")
    if not banded:
        names = ("_forward_eager", "_backward_input_eager", "_backward_weight_eager")
    for name in names:
        kernel = getattr(torch_backend, name)

        def recorded(*args: object, _kernel=kernel, _name=name) -> object:  # noqa: ANN001
            ran.append(_name)
            return _kernel(*args)

        monkeypatch.setattr(torch_backend, name, recorded)
    return ran


@pytest.mark.parametrize("case", CASES, ids=str)
def test_eager_form_matches_reference(form: list[str], case: Case) -> None:
    x, weight = _make(case)
    _assert_matches(_run(x, weight, case, "torch"), _run(x, weight, case, "reference"))
    assert len(set(form)) == 3, f"expected all three kernels of the form to run, ran {form}"


def test_eager_form_float32(form: list[str]) -> None:
    case = CASES[-1]
    x, weight = _make(case, torch.float32)
    expected = _run(x, weight, case, "reference")
    _assert_matches(_run(x, weight, case, "torch"), expected, rtol=1e-4, atol=1e-4)


def test_weight_only_gradient(form: list[str]) -> None:
    case = CASES[-1]
    x, weight = _make(case)
    geometry = (case.kernel, case.stride, case.padding, case.dilation)
    grads = [
        torch.autograd.grad(involution(x, w, *geometry, backend).sum(), w)[0]
        for backend in ("torch", "reference")
        for w in [weight.detach().requires_grad_()]
    ]
    torch.testing.assert_close(*grads)
    assert "_backward_input_band" not in form and "_backward_input_eager" not in form


# a map the chunked form takes, and one small enough for the banded form (5x5 padded, 3x3 kernel)
DOUBLE_CASES = [
    Case(1, 4, 2, (6, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    Case(2, 4, 4, (3, 3), (3, 3), (1, 1), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("case", DOUBLE_CASES, ids=str)
def test_double_backward(case: Case) -> None:
    """create_graph runs the traceable form, whose formulas autograd differentiates."""
    x, weight = _make(case)

    def fn(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return involution(x, weight, case.kernel, case.stride, case.padding, case.dilation, "torch")

    inputs = (x.detach().requires_grad_(), weight.detach().requires_grad_())
    assert torch.autograd.gradgradcheck(fn, inputs)
