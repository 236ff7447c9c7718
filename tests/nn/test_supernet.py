"""Supernet: one path per forward, extraction equals the supernet, sliceable layers, checkpoints."""

from __future__ import annotations

import io
import random

import pytest
import torch
from torch import nn

from invnas.nn.builder import ArchNet
from invnas.nn.dynamic import DynamicBatchNorm2d, DynamicConv2d, DynamicInvolution2d
from invnas.nn.supernet import Supernet
from invnas.ops import Involution2d
from invnas.space.arch import Arch, StageArch, enumerate_archs, sample
from invnas.space.spec import InvolutionSpace, OpChoice, OpSpace, SearchSpace, StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

MIXED_OPS = conv_and_involution(conv_groups=(1, 2), inv_kernels=(3,), group_channels=(4,))


def make_space(stem: StemSpec, stages: tuple[StageSpec, ...], channels: int = 3) -> SearchSpace:
    return small_space("tiny", 13, stem, stages, channels=channels)


SPACES = {
    "bottleneck-block": make_space(
        StemSpec("conv", channels=8),
        (
            StageSpec("s1", depth=(1, 2), width=(16, 32), ops=MIXED_OPS, granularity="block"),
            StageSpec(
                "s2",
                depth=(1, 3),
                width=(16, 32, 48),
                stride=2,
                ops=conv_and_involution(
                    conv_kernels=(1, 3), inv_kernels=(3, 5), groups=(1, 2), reduction=(2,)
                ),
                granularity="block",
            ),
        ),
    ),
    "basic-stage": make_space(
        StemSpec("conv", channels=8, stride=2),
        (
            StageSpec(
                "s1", depth=(1, 2), width=(8, 16), ops=MIXED_OPS, block="basic", granularity="stage"
            ),
            StageSpec("s2", depth=(2,), width=(8, 24), stride=2, ops=MIXED_OPS, block="basic"),
        ),
    ),
    "rednet-stem": make_space(
        StemSpec("rednet", channels=32),
        (
            StageSpec(
                "s1",
                depth=(1, 2),
                width=(32, 64),
                stride=2,
                expansion=2,
                ops=OpSpace(
                    involution=InvolutionSpace(
                        kernel_size=(3,), group_channels=(8,), reduction=(4, 16)
                    )
                ),
                granularity="block",
            ),
        ),
        channels=1,
    ),
}


def _randomize_bn(module: nn.Module, rng: torch.Generator) -> None:
    """Give every BatchNorm non-trivial statistics and affine weights, as after training."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            shape = m.running_mean.shape
            m.running_mean.copy_(torch.randn(shape, generator=rng, dtype=m.running_mean.dtype))
            m.running_var.copy_(torch.rand(shape, generator=rng, dtype=m.running_var.dtype) + 0.5)
            m.weight.data.copy_(torch.rand(shape, generator=rng, dtype=m.weight.dtype) + 0.5)
            m.bias.data.copy_(torch.randn(shape, generator=rng, dtype=m.bias.dtype) * 0.1)
            m.num_batches_tracked.fill_(7)


def _trained_like(space: SearchSpace, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    supernet = Supernet(space).double()
    with torch.no_grad():
        _randomize_bn(supernet, torch.Generator().manual_seed(seed))
    return supernet.eval()


@pytest.mark.parametrize("name", sorted(SPACES))
def test_extract_equals_supernet_in_eval_mode(name: str) -> None:
    space = SPACES[name]
    supernet = _trained_like(space)
    x = torch.randn(2, space.input.channels, 13, 13, dtype=torch.float64)
    rng = random.Random(0)
    archs = {sample(space, rng) for _ in range(24)}
    for arch in archs:
        subnet = supernet.extract(arch)
        assert type(subnet) is ArchNet and not subnet.training
        expected = supernet(x, arch)
        torch.testing.assert_close(subnet(x), expected, atol=1e-6, rtol=0)
    assert len(archs) > 10


def test_extract_float32_matches_closely() -> None:
    space = SPACES["bottleneck-block"]
    torch.manual_seed(1)
    supernet = Supernet(space).eval()
    x = torch.randn(2, 3, 16, 16)
    for seed in range(8):
        arch = sample(space, seed)
        torch.testing.assert_close(supernet.extract(arch)(x), supernet(x, arch), atol=1e-5, rtol=0)


def test_extract_copies_and_has_no_supernet_machinery() -> None:
    space = SPACES["bottleneck-block"]
    supernet = _trained_like(space)
    arch = sample(space, 3)
    subnet = supernet.extract(arch)
    dynamic = (DynamicConv2d, DynamicBatchNorm2d, DynamicInvolution2d, Supernet)
    assert not any(isinstance(m, dynamic) for m in subnet.modules())
    super_ptrs = {t.untyped_storage().data_ptr() for t in supernet.state_dict().values()}
    assert all(
        t.untyped_storage().data_ptr() not in super_ptrs for t in subnet.state_dict().values()
    )
    x = torch.randn(1, 3, 13, 13, dtype=torch.float64)
    before = subnet(x)
    with torch.no_grad():
        for p in supernet.parameters():
            p.add_(1.0)
    torch.testing.assert_close(subnet(x), before, atol=0, rtol=0)
    # buffers are inherited too
    bn = subnet.stages[0][0].conv1.bn
    source = supernet.stages[0].blocks[0].candidates[arch.stages[0].ops[0].code].conv1.bn
    width = bn.num_features
    torch.testing.assert_close(bn.running_var, source.running_var[:width])
    assert int(bn.num_batches_tracked) == 7


def test_forward_runs_only_the_chosen_path() -> None:
    space = SPACES["bottleneck-block"]
    supernet = Supernet(space)
    ran: set[str] = set()
    for name, module in supernet.named_modules():
        module.register_forward_hook(lambda m, i, o, name=name: ran.add(name))
    op_a, op_b = (
        OpChoice("conv", 3, groups=2),
        OpChoice("involution", 3, group_channels=4, reduction=4),
    )
    op_c = OpChoice("involution", 5, groups=2, reduction=2)
    arch = Arch((StageArch(2, 16, (op_a, op_b)), StageArch(1, 48, (op_c,))))
    out = supernet(torch.randn(2, 3, 13, 13), arch)
    assert out.shape == (2, 5)
    blocks = {
        n.split(".candidates.")[0] + "." + n.split(".candidates.")[1].split(".")[0]
        for n in ran
        if ".candidates." in n
    }
    assert blocks == {
        f"stages.0.blocks.0.{op_a.code}",
        f"stages.0.blocks.1.{op_b.code}",
        f"stages.1.blocks.0.{op_c.code}",
    }
    # gradients reach exactly the chosen path's weights
    out.sum().backward()
    with_grad = {n for n, p in supernet.named_parameters() if p.grad is not None}
    assert any(n.startswith(f"stages.0.blocks.1.candidates.{op_b.code}.op.span") for n in with_grad)
    assert not any(".blocks.2." in n for n in with_grad)  # depth 1 of 3: deeper blocks skipped
    assert not any(f"stages.0.blocks.0.candidates.{op_b.code}" in n for n in with_grad)
    assert "fc.weight" in with_grad and "stem.0.conv.weight" in with_grad


def test_rejects_an_arch_of_another_space() -> None:
    space = SPACES["basic-stage"]
    supernet = Supernet(space)
    arch = sample(SPACES["bottleneck-block"], 0)
    with pytest.raises(ValueError, match="arch"):
        supernet(torch.randn(1, 3, 13, 13), arch)
    with pytest.raises(ValueError, match="arch"):
        supernet.extract(arch)


def test_state_dict_round_trip() -> None:
    space = SPACES["rednet-stem"]
    supernet = _trained_like(space, seed=2)
    buffer = io.BytesIO()
    torch.save(supernet.state_dict(), buffer)
    buffer.seek(0)
    restored = Supernet(space).double().eval()
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(2, 1, 13, 13, dtype=torch.float64)
    for arch in list(enumerate_archs(space))[:6]:
        torch.testing.assert_close(restored(x, arch), supernet(x, arch), atol=0, rtol=0)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_sliced_conv_equals_plain_conv(groups: int) -> None:
    dynamic = DynamicConv2d(16, 24, 3, stride=2, groups=groups).double()
    plain = nn.Conv2d(8, 12, 3, 2, padding=1, groups=groups, bias=False).double()
    plain.weight.data.copy_(dynamic.weight[:12, : 8 // groups])
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(dynamic(x, 12), plain(x), atol=1e-12, rtol=0)


def test_sliced_batchnorm_updates_only_active_statistics() -> None:
    bn = DynamicBatchNorm2d(6).double()
    x = torch.randn(8, 4, 5, 5, dtype=torch.float64) * 3 + 2
    bn(x)
    expected_mean = 0.1 * x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean[:4], expected_mean)
    assert bn.running_mean[4:].eq(0).all() and bn.running_var[4:].eq(1).all()
    assert int(bn.num_batches_tracked) == 1


@pytest.mark.parametrize(
    ("op", "channels", "stride"),
    [
        (OpChoice("involution", 3, group_channels=4, reduction=4), 8, 2),
        (OpChoice("involution", 5, groups=2, reduction=2), 6, 1),
        (OpChoice("involution", 3, groups=1, reduction=16), 4, 2),
    ],
)
def test_sliced_involution_equals_involution2d(op: OpChoice, channels: int, stride: int) -> None:
    torch.manual_seed(0)
    dynamic = DynamicInvolution2d(16, op, stride).double().eval()
    _randomize_bn(dynamic, torch.Generator().manual_seed(0))
    grouping = {"group_channels": op.group_channels} if op.group_channels else {"groups": op.groups}
    plain = Involution2d(channels, op.kernel_size, stride, reduction=op.reduction, **grouping)
    plain = plain.double().eval()
    with torch.no_grad():
        for name, target in plain.state_dict(keep_vars=True).items():
            source = dynamic.state_dict()[name]
            target.copy_(source[tuple(slice(0, n) for n in target.shape)])
    x = torch.randn(2, channels, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(dynamic(x), plain(x), atol=1e-12, rtol=0)
