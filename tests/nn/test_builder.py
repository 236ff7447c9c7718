"""Plain blocks and build_model: shapes on odd sizes, gradients, and the parameter-name contract."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invnas.nn import ArchNet, BasicBlock, Bottleneck, ConvBNAct, build_model, build_stem, make_op
from invnas.ops import Involution2d
from invnas.space.arch import Arch, StageArch
from invnas.space.plan import plan_block, plan_stem
from invnas.space.spec import OpChoice, SearchSpace, StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

CONV = OpChoice("conv", 3, groups=1)
CONV5G2 = OpChoice("conv", 5, groups=2)
INV = OpChoice("involution", 7, group_channels=4, reduction=4)
INV_G2 = OpChoice("involution", 3, groups=2, reduction=2)
OPS = conv_and_involution(conv_kernels=(3, 5), conv_groups=(1, 2), group_channels=(4,))


def _space(size: int = 23) -> SearchSpace:
    return small_space(
        "builder",
        size,
        StemSpec("conv", channels=8, kernel_size=3, stride=2),
        (
            StageSpec("s1", (2,), (16,), OPS, granularity="block"),
            StageSpec("s2", (1, 2), (16, 24), OPS, stride=2, block="basic", granularity="block"),
            StageSpec("s3", (1,), (32,), OPS, stride=2, expansion=2),
        ),
    )


ARCH = Arch(
    (
        StageArch(2, 16, (INV, CONV)),
        StageArch(2, 24, (CONV5G2, INV)),
        StageArch(1, 32, (CONV,)),
    )
)


def test_output_shapes_on_an_odd_input_with_stride_two():
    model = build_model(_space(23), ARCH).eval()
    x = torch.randn(2, 3, 23, 23)
    # 23 -> stem /2 -> 12 -> s1 12 -> s2 /2 -> 6 -> s3 /2 -> 3
    sizes = []
    out = model.stem(x)
    for stage in model.stages:
        out = stage(out)
        sizes.append(tuple(out.shape[1:]))
    assert tuple(model.stem(x).shape) == (2, 8, 12, 12)
    assert sizes == [(16, 12, 12), (24, 6, 6), (32, 3, 3)]
    assert tuple(model.features(x).shape) == (2, 32, 3, 3)
    assert tuple(model(x).shape) == (2, 5)


def _block_plan(kind: str, c_in: int, width: int, op: OpChoice, stride: int, size: int):
    spec = StageSpec("t", (1,), (width,), OPS, block=kind)
    return plan_block(spec, op, c_in, width, stride, size)


@pytest.mark.parametrize("size", [7, 9])
def test_blocks_halve_odd_sizes_rounding_up(size):
    x = torch.randn(1, 8, size, size)
    expected = (size + 1) // 2
    for block in (
        Bottleneck(_block_plan("bottleneck", 8, 16, INV, 2, size)),
        Bottleneck(_block_plan("bottleneck", 8, 16, CONV, 2, size)),
        BasicBlock(_block_plan("basic", 8, 12, INV_G2, 2, size)),
        BasicBlock(_block_plan("basic", 8, 8, CONV5G2, 2, size)),
    ):
        assert block.eval()(x).shape[-2:] == (expected, expected), block


def test_forward_backward_reaches_every_parameter():
    model = build_model(_space(17), ARCH)
    x = torch.randn(3, 3, 17, 17)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 4]))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []
    assert torch.isfinite(loss)


def test_parameter_names_follow_the_contract():
    model = build_model(_space(), ARCH)
    names = {name for name, _ in model.named_parameters()}
    expected = {
        "stem.0.conv.weight",
        "stem.0.bn.weight",
        # bottleneck with an involution; the first block changes width so it has a projection
        "stages.0.0.conv1.conv.weight",
        "stages.0.0.conv1.bn.bias",
        "stages.0.0.op.reduce.weight",
        "stages.0.0.op.bn.weight",
        "stages.0.0.op.span.weight",
        "stages.0.0.op.span.bias",
        "stages.0.0.bn2.weight",
        "stages.0.0.conv3.conv.weight",
        "stages.0.0.conv3.bn.weight",
        "stages.0.0.shortcut.conv.weight",
        "stages.0.0.shortcut.bn.weight",
        "stages.0.1.op.weight",
        # basic block: entry projection (16 -> 24), two ops with their BNs
        "stages.1.0.entry.conv.weight",
        "stages.1.0.op1.weight",
        "stages.1.0.bn1.weight",
        "stages.1.0.op2.weight",
        "stages.1.0.bn2.weight",
        "stages.1.0.shortcut.conv.weight",
        "stages.1.1.op1.span.bias",
        "fc.weight",
        "fc.bias",
    }
    assert expected <= names
    # same width and stride 1: identity shortcut, no entry projection
    assert not any(n.startswith(("stages.0.1.shortcut", "stages.1.1.shortcut")) for n in names)
    assert not any(n.startswith("stages.1.1.entry") for n in names)
    assert isinstance(model.stages[1][1].entry, nn.Identity)
    assert model.stages[1][0].op1.groups == 2 and model.stages[1][0].op1.kernel_size == (5, 5)
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and model.fc.in_features == 32


def test_make_op_builds_each_kind():
    conv = make_op(CONV5G2, 8, 2)
    assert isinstance(conv, nn.Conv2d) and conv.bias is None
    assert (conv.kernel_size, conv.stride, conv.padding, conv.groups) == ((5, 5), (2, 2), (2, 2), 2)
    by_channels = make_op(INV, 16, 1)
    assert isinstance(by_channels, Involution2d) and by_channels.groups == 4
    by_groups = make_op(INV_G2, 16, 2)
    assert by_groups.groups == 2 and by_groups.reduce.out_channels == 8
    assert by_groups.stride == (2, 2)


def test_conv_bn_act():
    layer = ConvBNAct(4, 6, 3, stride=2, groups=2)
    assert layer.conv.padding == (1, 1) and layer.conv.bias is None and layer.conv.groups == 2
    assert isinstance(layer.act, nn.ReLU)
    assert isinstance(ConvBNAct(4, 6, act=False).act, nn.Identity)


def test_stems():
    rednet = build_stem(plan_stem(StemSpec("rednet", channels=64), 3, 33))
    assert isinstance(rednet[1], Involution2d)
    assert (rednet[1].channels, rednet[1].groups, rednet[1].kernel_size) == (32, 2, (3, 3))
    assert isinstance(rednet[-1], nn.MaxPool2d)
    assert rednet(torch.randn(1, 3, 33, 33)).shape == (1, 64, 9, 9)
    resnet = build_stem(plan_stem(StemSpec("resnet", channels=16), 1, 33))
    assert resnet[0].conv.kernel_size == (7, 7)
    assert resnet(torch.randn(1, 1, 33, 33)).shape == (1, 16, 9, 9)
    pooled = build_stem(
        plan_stem(StemSpec("conv", channels=8, kernel_size=5, stride=1, pool=True), 3, 15)
    )
    assert pooled(torch.randn(1, 3, 15, 15)).shape == (1, 8, 8, 8)
    plain = build_stem(plan_stem(StemSpec("conv", channels=8), 3, 15))
    assert len(plain) == 1


def test_build_model_rejects_an_arch_outside_the_space():
    bad = Arch((StageArch(2, 16, (INV, CONV)), StageArch(1, 20, (CONV,)), ARCH.stages[2]))
    with pytest.raises(ValueError, match="width 20"):
        build_model(_space(), bad)
    assert isinstance(build_model(_space(), ARCH), ArchNet)


def test_a_channels_last_model_gives_the_same_output_and_gradients() -> None:
    from invnas.space.arch import sample
    from invnas.space.loader import load_space
    from invnas.train.loops import memory_format_of
    from tests.pipeline.conftest import TINY

    space = load_space(TINY)
    models = (build_model(space, sample(space, seed)) for seed in range(100))
    model = next(m for m in models if any(isinstance(x, Involution2d) for x in m.modules()))
    nhwc = build_model(space, model.arch)
    nhwc.load_state_dict(model.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    assert memory_format_of(model) == torch.contiguous_format
    assert memory_format_of(nhwc) == torch.channels_last
    x = torch.randn(48, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the kernel generator's 1x1 convolutions pick their algorithm
    try:
        out, out_nhwc = model(x), nhwc(x.to(memory_format=torch.channels_last))
        out.square().sum().backward()
        out_nhwc.square().sum().backward()
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(out_nhwc, out, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(model.named_parameters(), nhwc.parameters(), strict=True):
        scale = float(p.grad.abs().max())  # float32 sums in another order: rounding apart
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-4 * scale, msg=name)
