"""The network plan on its own: layer names and order, shortcuts, sizes, the supernet's layout."""

from __future__ import annotations

import subprocess
import sys

import pytest

from invnas.space.arch import Arch, StageArch
from invnas.space.cost import cost, plan_cost
from invnas.space.plan import (
    RELU,
    BatchNormPlan,
    ConvBNPlan,
    LinearPlan,
    MaxPoolPlan,
    OpPlan,
    plan_block,
    plan_network,
    plan_stem,
    plan_supernet,
    stage_input_sizes,
)
from invnas.space.spec import OpChoice, SearchSpace, StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

CONV = OpChoice("conv", 3, groups=1)
INV = OpChoice("involution", 7, group_channels=4, reduction=2)
OPS = conv_and_involution(group_channels=(4,), reduction=(2,))
BOTTLENECK = StageSpec("b", (1, 2), (16, 32), OPS, stride=2, granularity="block")
BASIC = StageSpec("a", (1, 2), (8, 16), OPS, stride=2, block="basic", granularity="block")


def _space() -> SearchSpace:
    return small_space(
        "plan",
        23,
        StemSpec("conv", channels=8, kernel_size=3, stride=2),
        (
            StageSpec("s1", (1, 2), (8, 16), OPS, block="basic", granularity="block"),
            BOTTLENECK,
        ),
    )


def test_bottleneck_layers_in_creation_order():
    block = plan_block(BOTTLENECK, INV, 8, 32, 2, 11)
    assert (block.inner_channels, block.out_size, block.projects) == (8, 6, True)
    assert block.layers() == (
        ("conv1", ConvBNPlan(8, 8, 1, 1, 11)),
        ("op", OpPlan(INV, 8, 2, 11)),
        ("bn2", BatchNormPlan(8)),
        ("act2", RELU),
        ("conv3", ConvBNPlan(8, 32, 1, 1, 6, act=False)),
        ("shortcut", ConvBNPlan(8, 32, 1, 2, 11, act=False)),
        ("act", RELU),
    )
    same = plan_block(BOTTLENECK, CONV, 32, 32, 1, 6)
    assert not same.projects and dict(same.layers())["shortcut"] is None


def test_basic_block_layers_in_creation_order():
    block = plan_block(BASIC, CONV, 8, 16, 2, 9)
    assert (block.inner_channels, block.has_entry, block.projects) == (16, True, True)
    assert [name for name, _ in block.layers()] == [
        "entry",
        "op1",
        "bn1",
        "act1",
        "op2",
        "bn2",
        "shortcut",
        "act",
    ]
    layers = dict(block.layers())
    assert layers["entry"] == ConvBNPlan(8, 16, 1, 1, 9)
    assert layers["op1"] == OpPlan(CONV, 16, 2, 9) and layers["op2"] == OpPlan(CONV, 16, 1, 5)
    strided = plan_block(BASIC, CONV, 16, 16, 2, 9)
    assert strided.projects and not strided.has_entry
    assert dict(strided.layers())["entry"] is None


def test_op_plan_numbers():
    inv = OpPlan(INV, 16, 2, 7)
    assert (inv.groups, inv.reduction, inv.reduced, inv.out_size) == (4, 2, 8, 4)
    narrow = OpPlan(OpChoice("involution", 3, groups=2), 4, 1, 5)
    assert (narrow.groups, narrow.reduction, narrow.reduced) == (2, 4, 1)
    assert OpPlan(OpChoice("conv", 5, groups=2), 8, 1, 5).groups == 2


@pytest.mark.parametrize(
    ("stem", "size", "kinds", "out_size"),
    [
        (StemSpec("conv", channels=8), 15, [ConvBNPlan], 15),
        (StemSpec("conv", channels=8, kernel_size=5, pool=True), 15, [ConvBNPlan, MaxPoolPlan], 8),
        (StemSpec("resnet", channels=16), 33, [ConvBNPlan, MaxPoolPlan], 9),
        (
            StemSpec("rednet", channels=64),
            33,
            [ConvBNPlan, OpPlan, BatchNormPlan, type(RELU), ConvBNPlan, MaxPoolPlan],
            9,
        ),
    ],
)
def test_stems(stem, size, kinds, out_size):
    plan = plan_stem(stem, 3, size)
    assert [type(layer) for layer in plan.layers] == kinds
    assert (plan.out_channels, plan.out_size) == (stem.channels, out_size)


def test_rednet_stem_involution():
    involution = plan_stem(StemSpec("rednet", channels=64), 3, 33).layers[1]
    assert (involution.channels, involution.kernel_size, involution.groups) == (32, 3, 2)
    assert (involution.stride, involution.reduction, involution.in_size) == (1, 4, 17)


def test_network_chains_channels_and_sizes():
    space = _space()
    arch = Arch((StageArch(2, 16, (INV, CONV)), StageArch(1, 32, (CONV,))))
    plan = plan_network(space, arch)
    # 23 -> stem /2 -> 12 -> s1 12 -> s2 /2 -> 6
    assert (plan.stem.out_channels, plan.stem.out_size) == (8, 12)
    first, second = plan.stages[0].blocks
    assert (first.in_channels, first.out_channels, first.stride, first.in_size) == (8, 16, 1, 12)
    assert (second.in_channels, second.stride, second.in_size, second.projects) == (
        16,
        1,
        12,
        False,
    )
    last = plan.stages[1].blocks[0]
    assert (last.in_channels, last.out_channels, last.stride, last.out_size) == (16, 32, 2, 6)
    assert plan.fc == LinearPlan(32, 5)
    assert stage_input_sizes(space) == (12, 12)
    assert plan_cost(plan) == cost(space, arch)
    with pytest.raises(ValueError, match="width 24"):
        plan_network(space, Arch((arch.stages[0], StageArch(1, 24, (CONV,)))))


def test_supernet_plan_is_the_widest_block_with_every_projection():
    space = _space()
    plan = plan_supernet(space)
    first_stage, second_stage = plan.stages
    assert len(first_stage) == 2 and len(second_stage) == 2  # positions up to the largest depth
    assert [b.op for b in first_stage[0]] == list(OPS.candidates())
    entry = first_stage[0][0]
    # widths 8 -> 8 or 16: some configuration changes the width, so the block projects
    assert (entry.in_channels, entry.out_channels, entry.projects, entry.has_entry) == (
        8,
        16,
        True,
        True,
    )
    later = first_stage[1][0]
    assert (later.in_channels, later.projects, later.has_entry) == (16, False, False)
    strided = second_stage[0][1]
    assert (strided.in_channels, strided.out_channels, strided.inner_channels) == (16, 32, 8)
    assert (strided.stride, strided.in_size, second_stage[1][1].in_size) == (2, 12, 6)
    assert plan.fc == LinearPlan(32, 5)


def test_supernet_basic_block_keeps_its_entry_when_only_the_stride_projects():
    space = small_space(
        "strided",
        9,
        StemSpec("conv", channels=8),
        (StageSpec("a", (1,), (8,), OPS, stride=2, block="basic"),),
        num_classes=2,
    )
    block = plan_supernet(space).stages[0][0][0]
    assert block.projects and block.has_entry
    assert not plan_network(space, Arch((StageArch(1, 8, (CONV,)),))).stages[0].blocks[0].has_entry


def test_plan_and_cost_import_no_torch():
    code = "import sys, invnas.space.cost, invnas.space.plan; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
