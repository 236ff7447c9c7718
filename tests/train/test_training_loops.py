"""Training and evaluation loops on real data (the embedded digits)."""

import math

import pytest
import torch
from torch import nn

from invnas.config import DataConfig
from invnas.data import load_splits, make_loader
from invnas.space.spec import InputSpec
from invnas.train import (
    NonFiniteLossError,
    evaluate,
    make_optimizer,
    make_scheduler,
    seed_everything,
    train_epoch,
)


def tiny_cnn(channels=1, classes=10):
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, classes),
    )


@pytest.fixture(autouse=True)
def one_thread():
    # tiny models run fastest on one thread, and do not stall when other processes share the CPU
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_splits(DataConfig(augment=True), InputSpec(channels=1, size=16), seed=0)


def _train(splits, seed, epochs=2):
    seed_everything(seed)
    model = tiny_cnn()
    optimizer = make_optimizer(model, lr=0.1, momentum=0.9, weight_decay=5e-4)
    loader = make_loader(splits.train, 32, shuffle=True, seed=seed)
    scheduler = make_scheduler(optimizer, epochs, len(loader))
    history = [
        train_epoch(model, loader, optimizer, scheduler=scheduler, epoch=e) for e in range(epochs)
    ]
    return model, history


def test_a_tiny_cnn_learns_the_digits_reproducibly(digits):
    model, history = _train(digits, seed=0)
    assert history[-1].samples == len(digits.train)
    assert history[-1].loss < history[0].loss
    val = evaluate(model, make_loader(digits.val, 256, shuffle=False, seed=0))
    assert val.samples == len(digits.val)
    assert val.accuracy > 0.5  # chance is 0.1
    _, again = _train(digits, seed=0)
    assert again == history  # identical losses and accuracies, to the last bit


def test_evaluate_uses_eval_mode_and_restores_the_mode(digits):
    model = tiny_cnn()
    loader = make_loader(digits.val, 64, shuffle=False, seed=0)
    running = model[1].running_mean.clone()
    model.train()
    first = evaluate(model, loader)
    assert model.training and torch.equal(model[1].running_mean, running)
    model.eval()
    assert evaluate(model, loader) == first and not model.training
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in loader])
    labels = digits.val.labels
    assert first.accuracy == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    expected = float(nn.functional.cross_entropy(logits, labels))
    assert first.loss == pytest.approx(expected, rel=1e-5)


def test_custom_forward_and_max_steps(digits):
    model = tiny_cnn()
    calls = []

    def forward(images):
        calls.append(images.shape[0])
        return model(images)

    optimizer = make_optimizer(model, 0.05, 0.9, 0.0)
    loader = make_loader(digits.train, 20, shuffle=True, seed=0)
    stats = train_epoch(model, loader, optimizer, forward=forward, max_steps=3)
    assert calls == [20, 20, 20] and stats.samples == 60


def test_an_infinite_input_stops_training_before_the_weights_change():
    model = tiny_cnn()
    optimizer = make_optimizer(model, 0.1, 0.9, 0.0)
    good = (torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))
    bad = (torch.full((4, 1, 8, 8), math.inf), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(NonFiniteLossError, match="at epoch 7, step 2") as caught:
        train_epoch(model, [good, good, bad, good], optimizer, epoch=7)
    assert isinstance(caught.value, RuntimeError)
    assert (caught.value.epoch, caught.value.step) == (7, 2)
    assert math.isnan(caught.value.loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_diverging_learning_rate_is_reported_as_non_finite():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    optimizer = make_optimizer(model, lr=1e38, momentum=0.9, weight_decay=0.0)
    batches = [(torch.randn(8, 1, 4, 4), torch.randint(0, 10, (8,))) for _ in range(5)]
    with pytest.raises(NonFiniteLossError, match="step 1"):
        train_epoch(model, batches, optimizer)


def test_non_finite_loss_error_survives_pickling():
    """Ray pickles a failed trial's exception to hand it to the driver."""
    import pickle

    error = pickle.loads(pickle.dumps(NonFiniteLossError(float("inf"), 3, 5)))
    assert isinstance(error, NonFiniteLossError)
    assert (error.loss, error.epoch, error.step) == (float("inf"), 3, 5)
    assert str(error) == "non-finite training loss (inf) at epoch 3, step 5"
