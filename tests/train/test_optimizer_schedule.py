"""SGD set-up and the per-step cosine schedule."""

import math

import pytest
from torch import nn

from invnas.train import make_optimizer, make_scheduler


def _model():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2, 3))


def test_nesterov_sgd_without_decay_on_biases_and_norms():
    model = _model()
    optimizer = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    decayed, plain = optimizer.param_groups
    assert decayed["nesterov"] and decayed["momentum"] == 0.9 and decayed["lr"] == 0.1
    assert decayed["weight_decay"] == 1e-4 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert len(plain["params"]) == 4
    without_momentum = make_optimizer(model.parameters(), 0.1, 0.0, 0.0)
    assert not without_momentum.param_groups[0]["nesterov"]


def test_cosine_decays_per_step_to_zero():
    optimizer = make_optimizer(_model(), lr=0.2, momentum=0.9, weight_decay=0.0)
    scheduler = make_scheduler(optimizer, epochs=2, steps_per_epoch=5)
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[4] == pytest.approx(0.1)  # half-way
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert lrs[0] == pytest.approx(0.1 * (1 + math.cos(math.pi / 10)))
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))


def test_scheduler_state_round_trips():
    optimizer = make_optimizer(_model(), 0.2, 0.9, 0.0)
    scheduler = make_scheduler(optimizer, epochs=3, steps_per_epoch=4)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh_optimizer = make_optimizer(_model(), 0.2, 0.9, 0.0)
    fresh_optimizer.load_state_dict(optimizer.state_dict())
    fresh = make_scheduler(fresh_optimizer, epochs=1, steps_per_epoch=1)
    fresh.load_state_dict(state)
    for _ in range(3):
        optimizer.step(), scheduler.step(), fresh_optimizer.step(), fresh.step()
        assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert fresh.lr_lambdas[0].total_steps == 12
