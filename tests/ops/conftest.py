"""Fixtures shared by the op tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from invnas.ops import functional


@pytest.fixture
def reference_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list that gets "reference" each time the reference backend runs (its dispatch entry is
    wrapped for the test)."""
    calls: list[str] = []
    original = functional._IMPLEMENTATIONS["reference"]

    def spy(*args: Any) -> torch.Tensor:
        calls.append("reference")
        return original(*args)

    monkeypatch.setitem(functional._IMPLEMENTATIONS, "reference", spy)
    return calls
