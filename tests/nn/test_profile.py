"""count_macs / profile_macs against hand-computed counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invnas.nn.profile import count_macs, profile_macs
from invnas.ops import Involution2d


def test_conv_and_linear_counts():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2),  # 7x7 -> 4x4
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )
    count = profile_macs(model, (4, 7, 7))
    assert count.conv == 8 * 4 * 4 * (4 // 2) * 3 * 3  # biases are not counted
    assert count.linear == 8 * 3
    assert count.aggregation == 0
    assert count_macs(model, (4, 7, 7)) == count.total


def test_involution_counts_generator_at_output_resolution_and_aggregation():
    layer = Involution2d(8, 3, stride=2, group_channels=4, reduction=2)
    count = profile_macs(layer, (8, 7, 7))
    # output ceil(7 / 2) = 4; the kernel generator runs on the 4x4 average-pooled input
    reduce = 4 * 4 * 4 * 8  # 8 -> 4 channels
    span = 4 * 4 * (3 * 3 * 2) * 4  # 4 -> 9 taps x 2 groups
    assert count.conv == reduce + span
    assert count.aggregation == 8 * 4 * 4 * 3 * 3
    assert count.linear == 0


def test_count_is_per_image_and_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    model.train()
    single = count_macs(model, (2, 5, 5))
    assert count_macs(model, (4, 2, 5, 5)) == single == 3 * 2 * 25
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())
    assert torch.equal(model[1].running_mean, torch.zeros(3))  # counted in eval mode


def test_bad_input_shape_is_rejected():
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(nn.Conv2d(1, 1, 1), (5, 5))
