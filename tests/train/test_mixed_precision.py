"""Training steps under autocast: bfloat16, and float16 with its gradient scaler (on the CPU
here; the pipeline turns them on for CUDA)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from invnas.data.loader import make_loader
from invnas.train import make_optimizer, seed_everything, train_epoch


def _trained(precision: torch.dtype | None) -> tuple[nn.Module, float]:
    seed_everything(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )
    images = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(64) % 10
    loader = make_loader(TensorDataset(images, labels), 16, shuffle=True, seed=2)
    stats = train_epoch(model, loader, make_optimizer(model, 0.05, 0.9, 0.0), precision=precision)
    return model, stats.loss


@pytest.mark.parametrize("precision", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_trains_close_to_full_precision_but_not_in_it(precision):
    full, full_loss = _trained(None)
    mixed, mixed_loss = _trained(precision)
    assert abs(mixed_loss - full_loss) < 0.05
    weight, reference = mixed[0].weight, full[0].weight
    assert weight.dtype == torch.float32  # the parameters stay in float32
    assert not torch.equal(weight, reference)  # the steps ran in the lower precision
    torch.testing.assert_close(weight, reference, atol=2e-2, rtol=0.1)
