"""Scoring on inherited weights: deterministic, and the same as doing its steps by hand."""

from __future__ import annotations

import pytest
import torch

from invnas.data import make_loader
from invnas.engine import inherited_model, load_supernet, score_arch
from invnas.nn.bn import recalibrate_bn
from invnas.nn.supernet import Supernet
from invnas.space.arch import sample
from invnas.space.cost import cost
from invnas.train import derive_seed, evaluate


@pytest.fixture(scope="module")
def supernet(tiny, tmp_path_factory):
    """A supernet with BatchNorm statistics far from any subnet's (so recalibration matters),
    saved and loaded back as the search trials load it."""
    space, _ = tiny
    torch.manual_seed(0)
    net = Supernet(space)
    with torch.no_grad():
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.fill_(3.0)
    path = tmp_path_factory.mktemp("supernet") / "supernet.pt"
    torch.save(net.state_dict(), path)
    return load_supernet(space, path)


def test_score_is_deterministic_and_equals_extract_recalibrate_evaluate(tiny, data, supernet):
    space, config = tiny
    arch = sample(space, 3)
    first = score_arch(supernet, arch, data, 2, measure_latency=False)
    second = score_arch(supernet, arch, data, 2, measure_latency=True, latency_threads=1)

    manual = supernet.extract(arch)
    calibration = make_loader(
        data.splits.train, config.data.batch_size, shuffle=True, seed=derive_seed(0, "bn")
    )
    assert recalibrate_bn(manual, calibration, 2) == 2
    expected = evaluate(manual, make_loader(data.splits.val, 256, shuffle=False, seed=0))

    for score in (first, second):
        assert (score.accuracy, score.loss) == (expected.accuracy, expected.loss)
        assert score.bn_batches == 2
        state = manual.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in score.model.state_dict().items())
    counted = cost(space, arch)
    assert (first.params, first.macs) == (counted.params, counted.macs)
    assert first.latency_ms is None and second.latency_ms > 0


def test_recalibration_changes_the_inherited_statistics_and_not_the_supernet(tiny, data, supernet):
    space, _ = tiny
    arch = sample(space, 5)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    kept = inherited_model(supernet, arch, data, 0)
    recalibrated = inherited_model(supernet, arch, data, 2)
    assert (kept.bn_batches, recalibrated.bn_batches) == (0, 2)
    mean = "stem.0.bn.running_mean"
    assert torch.all(kept.model.state_dict()[mean] == 3.0)
    assert not torch.allclose(recalibrated.model.state_dict()[mean], kept.model.state_dict()[mean])
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())
    test = score_arch(supernet, arch, data, 2, split="test", measure_latency=False)
    assert test.accuracy == evaluate(recalibrated.model, data.eval_loader("test")).accuracy
