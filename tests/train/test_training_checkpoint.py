"""Checkpoints: a resumed run continues exactly where the saved one would have."""

import pytest
import torch
from torch import nn

from invnas.train import load_training_state, make_optimizer, make_scheduler, save_training_state


def _model():
    # dropout makes the next losses depend on the restored RNG state too
    return nn.Sequential(
        nn.Flatten(), nn.Linear(16, 12), nn.Dropout(0.5), nn.ReLU(), nn.Linear(12, 3)
    )


def _setup(seed):
    torch.manual_seed(seed)
    model = _model()
    optimizer = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    return model, optimizer, make_scheduler(optimizer, epochs=2, steps_per_epoch=4)


def _steps(model, optimizer, scheduler, batches):
    losses = []
    for images, labels in batches:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


def test_round_trip_restores_the_next_losses(tmp_path):
    generator = torch.Generator().manual_seed(1)
    batches = [
        (
            torch.randn(8, 1, 4, 4, generator=generator),
            torch.randint(0, 3, (8,), generator=generator),
        )
        for _ in range(6)
    ]
    model, optimizer, scheduler = _setup(seed=0)
    _steps(model, optimizer, scheduler, batches[:3])
    path = save_training_state(
        tmp_path / "sub" / "state.pt",
        model,
        optimizer,
        scheduler,
        epoch=1,
        extra={"best": 0.5, "history": [1, 2], "name": "x"},
    )
    expected = _steps(model, optimizer, scheduler, batches[3:])

    torch.manual_seed(123)  # a different RNG state and different initial weights
    fresh_model, fresh_optimizer, fresh_scheduler = _setup(seed=9)
    epoch, extra = load_training_state(path, fresh_model, fresh_optimizer, fresh_scheduler)
    assert epoch == 1 and extra == {"best": 0.5, "history": [1, 2], "name": "x"}
    assert _steps(fresh_model, fresh_optimizer, fresh_scheduler, batches[3:]) == expected
    assert not (tmp_path / "sub" / "state.pt.partial").exists()
    assert set(torch.load(path, weights_only=True)) >= {"model", "optimizer", "scheduler", "rng"}


def test_extra_state_must_be_plain_values(tmp_path):
    model, optimizer, scheduler = _setup(seed=0)
    with pytest.raises(TypeError, match=r"extra.bad\[0\]: object cannot be checkpointed"):
        save_training_state(tmp_path / "s.pt", model, optimizer, scheduler, 0, {"bad": [object()]})
    assert not (tmp_path / "s.pt").exists()


def test_a_foreign_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    model, optimizer, scheduler = _setup(seed=0)
    with pytest.raises(ValueError, match="not an invnas training checkpoint"):
        load_training_state(tmp_path / "other.pt", model, optimizer, scheduler)


def _scaler(scale: float) -> torch.amp.GradScaler:
    scaler = torch.amp.GradScaler("cpu", init_scale=65536.0, growth_interval=3)
    scaler.scale(torch.ones(()))  # the scale exists from the first scaled loss on
    scaler.update(new_scale=scale)
    return scaler


def test_the_gradient_scaler_is_checkpointed(tmp_path):
    model, optimizer, scheduler = _setup(seed=0)
    saved = _scaler(96.0)
    path = save_training_state(tmp_path / "s.pt", model, optimizer, scheduler, 2, scaler=saved)
    restored = torch.amp.GradScaler("cpu")
    load_training_state(path, model, optimizer, scheduler, scaler=restored)
    assert restored.state_dict() == saved.state_dict()
    assert restored.get_scale() == 96.0 and restored.get_growth_interval() == 3

    save_training_state(tmp_path / "none.pt", model, optimizer, scheduler, 2)  # float32 training
    initial = torch.amp.GradScaler("cpu", init_scale=512.0)
    load_training_state(tmp_path / "none.pt", model, optimizer, scheduler, scaler=initial)
    assert initial.get_scale() == 512.0
