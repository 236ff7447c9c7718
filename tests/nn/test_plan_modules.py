"""Built modules against their plan: every planned layer's shapes, and the supernet's twins."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from invnas.nn import build_model
from invnas.nn.blocks import build_block
from invnas.nn.supernet import Supernet
from invnas.space.arch import sample
from invnas.space.plan import (
    BatchNormPlan,
    ConvBNPlan,
    LayerPlan,
    MaxPoolPlan,
    OpPlan,
    plan_network,
    plan_supernet,
)
from invnas.space.spec import SearchSpace, StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

OPS = conv_and_involution(
    conv_kernels=(3, 5), conv_groups=(1, 2), inv_kernels=(3,), group_channels=(4,), reduction=(2,)
)


def _space(stem: StemSpec) -> SearchSpace:
    return small_space(
        "planned",
        21,
        stem,
        (
            StageSpec("s1", (1, 2), (16, 32), OPS, granularity="block"),
            StageSpec("s2", (1, 2), (16, 24), OPS, stride=2, block="basic", granularity="block"),
            StageSpec("s3", (1,), (32,), OPS, stride=2, expansion=2),
        ),
        num_classes=4,
    )


SPACES = {
    "conv-stem": _space(StemSpec("conv", channels=8, stride=2, pool=True)),
    "rednet-stem": _space(StemSpec("rednet", channels=32)),
}


def _check(layer: LayerPlan, shape_in: tuple[int, ...], shape_out: tuple[int, ...]) -> None:
    """Shapes (C, H, W) of one image into and out of the module built for ``layer``."""
    if isinstance(layer, ConvBNPlan):
        s, o = layer.in_size, layer.out_size
        assert (shape_in, shape_out) == ((layer.in_channels, s, s), (layer.out_channels, o, o))
    elif isinstance(layer, OpPlan):
        s, o, c = layer.in_size, layer.out_size, layer.channels
        assert (shape_in, shape_out) == ((c, s, s), (c, o, o))
    elif isinstance(layer, MaxPoolPlan):
        assert (shape_in[1:], shape_out[1:]) == ((layer.in_size,) * 2, (layer.out_size,) * 2)
    elif isinstance(layer, BatchNormPlan):
        assert shape_in[0] == layer.channels


def _check_shapes(
    planned: list[tuple[nn.Module, LayerPlan]], model: nn.Module, x: torch.Tensor
) -> None:
    seen: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen.setdefault(id(module), (tuple(inputs[0].shape[1:]), tuple(output.shape[1:])))

    hooks = [module.register_forward_hook(record) for module, _ in planned]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    for module, layer in planned:
        _check(layer, *seen[id(module)])


@pytest.mark.parametrize("name", list(SPACES))
def test_every_planned_layer_has_the_built_shapes(name: str) -> None:
    space = SPACES[name]
    rng = random.Random(name)
    for arch in {sample(space, rng) for _ in range(4)}:
        plan = plan_network(space, arch)
        model = build_model(space, arch).eval()
        planned = list(zip(model.stem, plan.stem.layers, strict=True))
        for stage, stage_plan in zip(model.stages, plan.stages, strict=True):
            for block, block_plan in zip(stage, stage_plan.blocks, strict=True):
                for attribute, layer in block_plan.layers():
                    module = getattr(block, attribute)
                    if layer is None:
                        assert isinstance(module, nn.Identity)
                    else:
                        planned.append((module, layer))
        x = torch.randn(1, space.input.channels, space.input.size, space.input.size)
        _check_shapes(planned, model, x)
        assert (model.fc.in_features, model.fc.out_features) == (
            plan.fc.in_features,
            plan.fc.out_features,
        )


@pytest.mark.parametrize("name", list(SPACES))
def test_supernet_blocks_are_the_planned_widest_blocks(name: str) -> None:
    space = SPACES[name]
    supernet = Supernet(space)
    plan = plan_supernet(space)
    for stage, positions in zip(supernet.stages, plan.stages, strict=True):
        assert len(stage.blocks) == len(positions)
        for choice, candidates in zip(stage.blocks, positions, strict=True):
            assert list(choice.candidates) == [block.op.code for block in candidates]
            for block in candidates:
                twin = choice.candidates[block.op.code].state_dict()
                plain = build_block(block).state_dict()
                assert {k: v.shape for k, v in twin.items()} == {
                    k: v.shape for k, v in plain.items()
                }
    assert supernet.fc.in_features == plan.fc.in_features
