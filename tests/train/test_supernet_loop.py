"""The weight-sharing loop on a tiny multi-path module and a stand-in arch sampler."""

import pytest
import torch
from torch import nn

from invnas.train import NonFiniteLossError, train_supernet_epoch


class TwoPaths(nn.Module):
    """A shared head behind one of two convolutions, chosen per forward by ``arch``."""

    def __init__(self):
        super().__init__()
        self.paths = nn.ModuleDict({"a": nn.Conv2d(1, 4, 3), "b": nn.Conv2d(1, 4, 3, bias=False)})
        self.head = nn.Linear(4, 3)

    def forward(self, images, arch):
        return self.head(self.paths[arch](images).mean(dim=(2, 3)))


class ListSampler:
    """Hands out a fixed list of archs per batch and records how often it was asked."""

    def __init__(self, archs):
        self.archs = list(archs)
        self.calls = 0

    def step(self):
        self.calls += 1
        return list(self.archs)


def _batches(count=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(5, 1, 6, 6, generator=generator),
            torch.randint(0, 3, (5,), generator=generator),
        )
        for _ in range(count)
    ]


def test_gradients_are_averaged_over_the_sampled_archs():
    torch.manual_seed(0)
    model = TwoPaths()
    ((images, labels),) = batches = _batches(1)
    reference = TwoPaths()
    reference.load_state_dict(model.state_dict())
    losses = [nn.functional.cross_entropy(reference(images, a), labels) for a in "ab"]
    (sum(losses) / 2).backward()

    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    stats = train_supernet_epoch(model, batches, optimizer, ListSampler("ab"))
    for name, parameter in reference.named_parameters():
        assert torch.allclose(model.state_dict()[name], before[name] - parameter.grad, atol=1e-6)
    assert stats.samples == 5
    assert stats.loss == pytest.approx(float(sum(losses).detach() / 2), rel=1e-6)


def test_only_the_sampled_path_is_trained():
    torch.manual_seed(0)
    model = TwoPaths()
    untouched = model.paths["b"].weight.clone()
    trained = model.paths["a"].weight.clone()
    sampler = ListSampler("a")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    stats = train_supernet_epoch(model, _batches(3), optimizer, sampler, max_steps=2)
    assert sampler.calls == 2 and stats.samples == 10
    assert torch.equal(model.paths["b"].weight, untouched)
    assert not torch.equal(model.paths["a"].weight, trained)
    assert 0.0 <= stats.accuracy <= 1.0


def test_scheduler_steps_once_per_batch_and_nan_is_caught():
    model = TwoPaths()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    train_supernet_epoch(model, _batches(3), optimizer, ListSampler("ab"), scheduler=scheduler)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.125)
    images, labels = _batches(1)[0]
    images[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="epoch 4, step 0"):
        train_supernet_epoch(model, [(images, labels)], optimizer, ListSampler("b"), epoch=4)
