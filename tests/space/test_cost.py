"""The cost model against built models (params, hook-counted MACs); bounds against brute force."""

from __future__ import annotations

import dataclasses
import random

import pytest

from invnas.nn import build_model, count_macs
from invnas.space.arch import Arch, StageArch, cardinality, enumerate_archs, sample
from invnas.space.cost import CostBounds, bounds, cost, macs, params
from invnas.space.spec import OpChoice, SearchSpace, StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

MIXED = conv_and_involution(
    conv_kernels=(3, 5),
    conv_groups=(1, 2),
    inv_kernels=(3, 7),
    group_channels=(4,),
    reduction=(2, 4),
)


def _space(name, size, stem, stages, in_channels=3, num_classes=7) -> SearchSpace:
    return small_space(name, size, stem, stages, channels=in_channels, num_classes=num_classes)


def block_bottleneck_space() -> SearchSpace:
    """Per-block choices, bottlenecks, odd input with stride 2 in the stem and two stages."""
    return _space(
        "block_bottleneck",
        23,
        StemSpec("conv", channels=12, kernel_size=3, stride=2),
        [
            StageSpec("s1", depth=(1, 2), width=(16, 32), ops=MIXED, granularity="block"),
            StageSpec("s2", (1, 3), (32, 48), MIXED, stride=2, granularity="block"),
            StageSpec("s3", (2,), (32,), MIXED, stride=2, expansion=2, granularity="block"),
        ],
    )


def stage_basic_space() -> SearchSpace:
    """Stage granularity, basic blocks, conv groups and involution groups, ResNet stem."""
    ops = conv_and_involution(conv_groups=(1, 4), inv_kernels=(5,), groups=(1, 2), reduction=(8,))
    return _space(
        "stage_basic",
        37,
        StemSpec("resnet", channels=8),
        [
            StageSpec("s1", (1, 2), (8, 16), ops, block="basic"),
            StageSpec("s2", (1, 2), (16, 24), ops, stride=2, block="basic"),
            StageSpec("s3", (1,), (24, 32), ops, stride=3, block="basic"),
        ],
        in_channels=1,
    )


def rednet_mixed_space() -> SearchSpace:
    """RedNet stem, basic and bottleneck stages mixed, 1x1 convs, and op widths so narrow that
    the involution kernel generator's hidden width is clamped to 1."""
    narrow = conv_and_involution(
        conv_kernels=(1, 3), inv_kernels=(3,), group_channels=(2, 4), reduction=(8, 16)
    )
    return _space(
        "rednet_mixed",
        29,
        StemSpec("rednet", channels=32),
        [
            StageSpec("s1", (1, 2), (16, 32), narrow, expansion=4, granularity="block"),
            StageSpec("s2", (2,), (24,), narrow, stride=2, block="basic", granularity="block"),
            StageSpec("s3", (1,), (48,), narrow, stride=2, expansion=6),
        ],
    )


def pooled_stem_pinned_space() -> SearchSpace:
    """Conv stem with max-pool, and a stage whose ops are pinned block by block."""
    return _space(
        "pooled_pinned",
        31,
        StemSpec("conv", channels=16, kernel_size=5, stride=1, pool=True),
        [
            StageSpec(
                "s1", (3,), (16, 32), MIXED, expansion=2, blocks=("conv3g1", "inv7c4r2", "conv5g2")
            ),
            StageSpec("s2", (1, 2), (32,), MIXED, stride=2, granularity="block"),
        ],
        num_classes=3,
    )


SPACES = [block_bottleneck_space, stage_basic_space, rednet_mixed_space, pooled_stem_pinned_space]


def _measured(space: SearchSpace, arch: Arch) -> tuple[int, int]:
    model = build_model(space, arch)
    count = sum(p.numel() for p in model.parameters())
    return count, count_macs(model, (space.input.channels, space.input.size, space.input.size))


@pytest.mark.parametrize("make_space", SPACES, ids=lambda f: f.__name__)
def test_cost_equals_built_model_on_sampled_archs(make_space):
    space = make_space()
    rng = random.Random(make_space.__name__)
    archs = {sample(space, rng) for _ in range(40)}
    archs = sorted(archs, key=Arch.encode)[:8]
    assert len(archs) >= 8
    for arch in archs:
        expected = cost(space, arch)
        assert _measured(space, arch) == (expected.params, expected.macs), arch.encode()
        assert params(space, arch) == expected.params
        assert macs(space, arch) == expected.macs


def test_aggregation_macs_are_the_involution_share():
    space = block_bottleneck_space()
    conv = OpChoice("conv", 3, groups=1)
    inv = OpChoice("involution", 7, group_channels=4, reduction=4)
    rest = (StageArch(1, 32, (conv,)), StageArch(2, 32, (conv,) * 2))
    all_conv = Arch((StageArch(1, 16, (conv,)), *rest))
    one_inv = Arch((StageArch(1, 16, (inv,)), *rest))
    assert cost(space, all_conv).aggregation_macs == 0
    # stage 1 runs at the stem's output, ceil(23 / 2) = 12; the op has 16 // 4 = 4 channels
    assert cost(space, one_inv).aggregation_macs == 4 * 12 * 12 * 7 * 7


def test_cost_rejects_an_arch_outside_the_space():
    space = stage_basic_space()
    arch = sample(space, 0)
    wrong = Arch((StageArch(1, 12, arch.stages[0].ops[:1]),) + arch.stages[1:])
    with pytest.raises(ValueError, match="width 12"):
        cost(space, wrong)


def _brute_force(space: SearchSpace) -> CostBounds:
    costs = [cost(space, arch) for arch in enumerate_archs(space)]
    return CostBounds(
        min(c.params for c in costs),
        max(c.params for c in costs),
        min(c.macs for c in costs),
        max(c.macs for c in costs),
    )


def _enumerable_spaces() -> list[SearchSpace]:
    few = conv_and_involution(conv_groups=(1, 2), inv_kernels=(3, 5), group_channels=(4,))
    block = _space(
        "small_block",
        15,
        StemSpec("conv", channels=8, kernel_size=3, stride=2),
        [
            StageSpec("s1", (1, 2), (8, 16), few, expansion=2, granularity="block"),
            StageSpec("s2", (1, 3), (16, 32), few, stride=2, granularity="block"),
        ],
    )
    stage = _space(
        "small_stage",
        19,
        StemSpec("rednet", channels=32),
        [
            StageSpec("s1", (1, 3), (16, 32), few, block="basic"),
            StageSpec("s2", (2, 4), (32, 64), few, stride=2, expansion=2),
            StageSpec("s3", (1,), (16, 64), few, stride=2, block="basic", granularity="block"),
        ],
    )
    return [block, stage, pooled_stem_pinned_space(), stage_basic_space()]


@pytest.mark.parametrize("space", _enumerable_spaces(), ids=lambda s: s.name)
def test_bounds_equal_brute_force(space):
    assert bounds(space) == _brute_force(space)


def test_bounds_of_a_huge_space_need_no_enumeration():
    space = block_bottleneck_space()
    deep = dataclasses.replace(
        space,
        stages=tuple(dataclasses.replace(s, depth=(*s.depth, 20, 40)) for s in space.stages),
    )
    assert cardinality(deep) > 10**100
    found, shallow = bounds(deep), bounds(space)
    # the shallow depths stay allowed, so the minima cannot change; the maxima grow
    assert (found.params_min, found.macs_min) == (shallow.params_min, shallow.macs_min)
    assert found.params_max > 10 * shallow.params_max
    assert found.macs_max > 10 * shallow.macs_max
    for seed in range(5):
        sampled = cost(deep, sample(deep, seed))
        assert found.params_min <= sampled.params <= found.params_max
        assert found.macs_min <= sampled.macs <= found.macs_max
