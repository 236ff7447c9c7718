"""Supernet training through the engine: per-epoch reports, changed weights, exact resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from invnas.engine import (
    TRAINING_STATE_FILE,
    EpochReport,
    train_supernet,
    write_checkpoint,
)
from invnas.nn.supernet import Supernet
from invnas.train import derive_seed, seed_everything

from .conftest import CPU


def _train(tiny, data, **kwargs):
    space, config = tiny
    return train_supernet(
        space, config.supernet, data, CPU, bn_batches=config.search.bn_batches, **kwargs
    )


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_each_epoch_is_reported_once_in_order_and_changes_the_weights(tiny, data):
    space, config = tiny
    reports: list[EpochReport] = []
    result = _train(tiny, data, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2]
    assert [r.metrics for r in reports] == list(result.history)
    for report in reports:
        assert report.model is result.model
        metrics = report.metrics.as_dict()
        assert set(metrics) == {
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_accuracy",
            "images_per_s",
        }
        assert math.isfinite(metrics["train_loss"])
        assert 0.0 <= metrics["val_accuracy"] <= 1.0
    assert reports[1].scheduler.last_epoch == 2 * data.steps_per_epoch
    seed_everything(derive_seed(data.seed, "supernet-init"))
    untrained = Supernet(space)
    assert not _same_weights(untrained, result.model)


@pytest.mark.parametrize("precision", [None, torch.float16], ids=str)
def test_resuming_after_epoch_one_gives_the_weights_of_an_uninterrupted_run(
    tiny, data, tmp_path, precision
):
    reports: list[EpochReport] = []

    def keep_first(report: EpochReport) -> None:
        if report.epoch == 1:
            write_checkpoint(tmp_path, report, "supernet.pt")
        reports.append(dataclasses.replace(report, scaler=_copy(report.scaler)))

    whole = _train(tiny, data, on_epoch=keep_first, precision=precision)
    epochs: list[int] = []
    resumed_scaler = []

    def record(report: EpochReport) -> None:
        epochs.append(report.epoch)
        resumed_scaler.append(_copy(report.scaler))

    resumed = _train(
        tiny,
        data,
        on_epoch=record,
        resume_from=tmp_path / TRAINING_STATE_FILE,
        precision=precision,
    )
    assert epochs == [2]
    assert resumed.history == whole.history[1:]
    assert _same_weights(resumed.model, whole.model)
    if precision == torch.float16:  # float16's scaler goes on from epoch 1's state
        first, last = reports[0].scaler, reports[1].scaler
        assert last["_growth_tracker"] == first["_growth_tracker"] + data.steps_per_epoch
        assert resumed_scaler == [last]
    else:
        assert resumed_scaler == [None]


def _copy(scaler: torch.amp.GradScaler | None) -> dict | None:
    return None if scaler is None else scaler.state_dict()


def test_no_epochs_report_the_untrained_supernet_once(tiny, data):
    space, config = tiny
    settings = dataclasses.replace(config.supernet, epochs=0)
    reports: list[EpochReport] = []
    result = train_supernet(space, settings, data, CPU, bn_batches=2, on_epoch=reports.append)
    assert [r.metrics.as_dict() for r in reports] == [{"epoch": 0, "val_accuracy": None}]
    assert result.last.epoch == 0


def test_without_monitor_archs_no_validation_accuracy_and_the_same_weights(tiny, data):
    space, config = tiny
    settings = dataclasses.replace(config.supernet, epochs=1)
    monitored = train_supernet(space, settings, data, CPU, bn_batches=2)
    plain = train_supernet(space, settings, data, CPU, bn_batches=2, monitor_archs=0)
    assert plain.last.val_accuracy is None and monitored.last.val_accuracy is not None
    assert _same_weights(plain.model, monitored.model)
