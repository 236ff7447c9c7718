"""The checkpoint layout of an engine epoch and the metrics a report carries."""

from __future__ import annotations

import torch
from torch import nn

from invnas.engine import (
    TRAINING_STATE_FILE,
    EpochMetrics,
    EpochReport,
    resume_training,
    write_checkpoint,
)
from invnas.train import EpochStats, make_optimizer, make_scheduler


def _training(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    optimizer = make_optimizer(model, 0.1, 0.9, 1e-4)
    return model, optimizer, make_scheduler(optimizer, 2, 5)


def test_checkpoint_holds_the_weights_and_resumes_after_its_epoch(tmp_path):
    model, optimizer, scheduler = _training(0)
    model(torch.randn(8, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    report = EpochReport(EpochMetrics(epoch=3), model, optimizer, scheduler)
    write_checkpoint(tmp_path, report, "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", TRAINING_STATE_FILE]
    weights = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())

    fresh, fresh_optimizer, fresh_scheduler = _training(1)
    assert resume_training(None, fresh, fresh_optimizer, fresh_scheduler) == 0
    start = resume_training(tmp_path / TRAINING_STATE_FILE, fresh, fresh_optimizer, fresh_scheduler)
    assert start == 3
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
    assert fresh_scheduler.last_epoch == scheduler.last_epoch == 1
    assert fresh_optimizer.state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()


def test_metrics_name_what_was_measured():
    trained = EpochMetrics.of(2, EpochStats(0.5, 0.75, 100), val_accuracy=0.5)
    assert trained.as_dict() == {
        "epoch": 2,
        "train_loss": 0.5,
        "train_accuracy": 0.75,
        "val_accuracy": 0.5,
    }
    scored = EpochMetrics.of(1, None, val_accuracy=0.25, test_accuracy=0.5, latency_ms=1.0)
    assert scored.as_dict() == {
        "epoch": 1,
        "val_accuracy": 0.25,
        "test_accuracy": 0.5,
        "latency_ms": 1.0,
    }
    assert EpochMetrics(0).as_dict() == {"epoch": 0, "val_accuracy": None}
