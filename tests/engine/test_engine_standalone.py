"""Stand-alone training through the engine: what each epoch reports, and fine-tuning."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from invnas.engine import EpochReport, inherited_model, initial_model, train_standalone
from invnas.nn.supernet import Supernet
from invnas.space.arch import sample

from .conftest import CPU


def _settings(tiny, **changes):
    return dataclasses.replace(tiny[1].retrain, **changes)


def _reported(tiny, data, epochs: int):
    """Train a sampled arch for ``epochs`` epochs; the result and the epochs' reports."""
    space, _ = tiny
    reports: list[EpochReport] = []
    settings = _settings(tiny, epochs=epochs)
    result = train_standalone(
        space, sample(space, 1), settings, data, CPU, seed=7, on_epoch=reports.append
    )
    return result, reports


def test_test_accuracy_and_latency_come_with_the_last_epoch_only(tiny, data):
    result, reports = _reported(tiny, data, epochs=2)
    first, last = (r.metrics.as_dict() for r in reports)
    assert [r.epoch for r in reports] == [1, 2]
    assert set(first) == {"epoch", "train_loss", "train_accuracy", "val_accuracy", "images_per_s"}
    assert first["images_per_s"] > 0
    assert set(last) == set(first) | {"test_accuracy", "latency_ms"}
    assert 0.0 <= last["test_accuracy"] <= 1.0 and last["latency_ms"] > 0
    assert result.last == reports[-1].metrics and result.model is reports[-1].model


def test_no_epochs_scores_the_initial_model_as_epoch_one(tiny, data):
    _, reports = _reported(tiny, data, epochs=0)
    assert [set(r.metrics.as_dict()) for r in reports] == [
        {"epoch", "val_accuracy", "test_accuracy", "latency_ms"}
    ]
    assert reports[0].epoch == 1


def test_the_same_seed_trains_the_same_weights(tiny, data):
    space, _ = tiny
    arch, settings = sample(space, 2), _settings(tiny, epochs=1)
    a = train_standalone(space, arch, settings, data, CPU, seed=3).model.state_dict()
    b = train_standalone(space, arch, settings, data, CPU, seed=3).model.state_dict()
    c = train_standalone(space, arch, settings, data, CPU, seed=4).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_finetune_starts_from_the_inherited_recalibrated_weights(tiny, data, tmp_path):
    space, _ = tiny
    arch, settings = sample(space, 4), _settings(tiny, mode="finetune")
    torch.manual_seed(1)
    supernet = Supernet(space)
    torch.save(supernet.state_dict(), tmp_path / "supernet.pt")
    with pytest.raises(ValueError, match="finetune"):
        initial_model(space, arch, settings, data, CPU)
    start = initial_model(
        space, arch, settings, data, CPU, supernet_weights=tmp_path / "supernet.pt", bn_batches=2
    ).state_dict()
    expected = inherited_model(supernet, arch, data, 2).model.state_dict()
    assert all(torch.equal(start[k], expected[k]) for k in expected)


def test_channels_last_trains_the_weights_of_the_default_order(tiny, data):
    from invnas.train.loops import memory_format_of

    space, _ = tiny
    arch, settings = sample(space, 2), _settings(tiny, epochs=1)
    plain = train_standalone(space, arch, settings, data, CPU, seed=3)
    nhwc = train_standalone(
        space, arch, settings, data, CPU, seed=3, memory_format=torch.channels_last
    )
    assert memory_format_of(nhwc.model) == torch.channels_last
    expected = plain.model.state_dict()
    for key, value in nhwc.model.state_dict().items():
        torch.testing.assert_close(value, expected[key], atol=1e-4, rtol=1e-3, msg=key)
    assert nhwc.last.val_accuracy == pytest.approx(plain.last.val_accuracy, abs=0.02)
