"""Fixtures for the engine tests: the tiny search space, its run settings and seeded data."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from invnas.config import DataConfig
from invnas.engine import load_data
from invnas.space.loader import load_space_file

TINY = Path(__file__).resolve().parent.parent / "pipeline" / "tiny.yaml"
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def tiny():
    """``(space, config)`` of the tiny space; the supernet trains for 2 epochs, on 384
    synthetic images (6 training batches per epoch) to keep the tests quick."""
    space, config = load_space_file(TINY)
    supernet = dataclasses.replace(config.supernet, epochs=2)
    data = DataConfig(dataset="synthetic", synthetic_samples=384, batch_size=48)
    return space, dataclasses.replace(config, supernet=supernet, data=data)


@pytest.fixture(scope="session")
def data(tiny):
    space, config = tiny
    return load_data(space, config, TINY.parent)
