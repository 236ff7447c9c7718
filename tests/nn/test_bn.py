"""BatchNorm recalibration on a plain subnet and on the supernet's path."""

from __future__ import annotations

import torch
from torch import nn

from invnas.nn.bn import recalibrate_bn
from invnas.nn.supernet import Supernet
from invnas.space.arch import sample
from invnas.space.spec import StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

OPS = conv_and_involution(inv_kernels=(3,), group_channels=(4,), reduction=(2,))
SPACE = small_space(
    "bn",
    12,
    StemSpec("conv", channels=8),
    [StageSpec("s1", (1, 2), (16, 32), OPS, stride=2, granularity="block")],
    channels=1,
    num_classes=4,
)


def _batches(n: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(6, 1, 12, 12, generator=gen) * 2.0 + 3.0, torch.zeros(6, dtype=torch.long))
        for _ in range(n)
    ]


def test_running_stats_become_the_average_batch_statistics() -> None:
    net = nn.Sequential(nn.BatchNorm2d(1), nn.Dropout(0.5), nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    net[0].running_mean.fill_(-5.0)
    net.eval()
    batches = _batches(3)
    used = recalibrate_bn(net, batches, num_batches=3)
    assert used == 3
    xs = [x for x, _ in batches]
    mean = torch.stack([x.mean() for x in xs]).mean()
    var = torch.stack([x.var(unbiased=True) for x in xs]).mean()
    torch.testing.assert_close(net[0].running_mean, mean.reshape(1))
    torch.testing.assert_close(net[0].running_var, var.reshape(1))
    assert int(net[0].num_batches_tracked) == 3
    # the second BN sees the conv of the first BN's batch-normalised output; dropout stayed off
    with torch.no_grad():
        hidden = [net[2](nn.functional.batch_norm(x, None, None, training=True)) for x in xs]
    torch.testing.assert_close(
        net[3].running_mean, torch.stack([h.mean(dim=(0, 2, 3)) for h in hidden]).mean(0)
    )
    assert not net.training and not any(m.training for m in net.modules())
    assert net[0].momentum == 0.1


def test_stops_after_num_batches_and_restores_train_mode() -> None:
    bn = nn.BatchNorm2d(1, momentum=0.3).train()
    batches = _batches(5)
    assert recalibrate_bn(bn, iter(batches), num_batches=2) == 2
    torch.testing.assert_close(
        bn.running_mean, ((batches[0][0].mean() + batches[1][0].mean()) / 2).reshape(1)
    )
    assert bn.training and bn.momentum == 0.3
    assert recalibrate_bn(bn, [b[0] for b in batches], num_batches=10) == 5  # plain tensors
    before = bn.running_mean.clone()
    assert recalibrate_bn(bn, batches, num_batches=0) == 0
    torch.testing.assert_close(bn.running_mean, before)


def test_recalibrating_the_subnet_or_the_supernet_path_agree() -> None:
    torch.manual_seed(0)
    supernet = Supernet(SPACE).eval()
    arch = next(a for a in (sample(SPACE, s) for s in range(50)) if a.stages[0].width == 16)
    subnet = supernet.extract(arch).eval()
    x = torch.randn(4, 1, 12, 12)
    stale = subnet(x)
    batches = _batches(4, seed=1)
    assert recalibrate_bn(subnet, batches, num_batches=4) == 4
    fresh = subnet(x)
    assert not torch.allclose(fresh, stale, atol=1e-3)  # eval outputs follow the new statistics
    assert not subnet.training

    recalibrate_bn(supernet, batches, num_batches=4, forward=lambda b: supernet(b, arch))
    assert not supernet.training
    torch.testing.assert_close(supernet(x, arch), fresh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(supernet.extract(arch).eval()(x), fresh, atol=1e-5, rtol=1e-5)
