"""Latency measurement (no timing asserted) and seeding."""

import random

import numpy as np
import pytest
import torch
from torch import nn

from invnas.train import measure_latency_ms, seed_everything


def test_latency_is_a_positive_median_and_state_is_restored():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    model.train()
    threads = torch.get_num_threads()
    running = model[1].running_mean.clone()
    latency = measure_latency_ms(model, (3, 16, 16), repeats=3, warmup=1, threads=1)
    assert isinstance(latency, float) and latency > 0
    assert model.training and torch.get_num_threads() == threads
    assert torch.equal(model[1].running_mean, running)  # ran in eval mode
    assert measure_latency_ms(model, (1, 3, 8, 8), repeats=1, warmup=0) > 0
    with pytest.raises(ValueError, match="input_shape"):
        measure_latency_ms(model, (2, 3, 8, 8))


def test_seed_everything_repeats_every_generator():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(11)
    first = draw()
    seed_everything(11)
    assert draw() == first
    seed_everything(12)
    assert draw() != first
