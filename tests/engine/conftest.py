"""Fixtures for the engine tests: the tiny search space, its run settings and seeded data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from invnas.engine import load_data
from invnas.space.loader import load_space_file

TINY = Path(__file__).resolve().parent.parent / "search" / "tiny.yaml"
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def tiny():
    """``(space, config)`` of the tiny space; the supernet trains for 2 epochs."""
    space, config = load_space_file(TINY)
    supernet = dataclasses.replace(config.supernet, epochs=2)
    return space, dataclasses.replace(config, supernet=supernet)


@pytest.fixture(scope="session")
def data(tiny):
    space, config = tiny
    return load_data(space, config, TINY.parent)
