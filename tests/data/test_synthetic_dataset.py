"""Synthetic data: seeded, shaped like the space's input, and learnable."""

import pytest
import torch

from invnas.config import DataConfig
from invnas.data import load_splits
from invnas.space.spec import InputSpec


def _load(seed, classes=4, samples=400):
    config = DataConfig(dataset="synthetic", synthetic_samples=samples)
    return load_splits(config, InputSpec(channels=3, size=12), seed=seed, num_classes=classes)


def test_shape_classes_and_seeding():
    splits = _load(seed=0)
    assert splits.num_classes == 4 and splits.train[0][0].shape == (3, 12, 12)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (280, 40, 80)
    assert torch.bincount(splits.test.labels).tolist() == [20, 20, 20, 20]
    same, other = _load(seed=0), _load(seed=1)
    assert torch.equal(same.train.batch(range(8))[0], splits.train.batch(range(8))[0])
    assert not torch.equal(other.train.batch(range(8))[0], splits.train.batch(range(8))[0])


def test_classes_are_separable_by_their_training_means():
    splits = _load(seed=3)
    train_x, train_y = splits.train.batch(range(len(splits.train)))
    centroids = torch.stack([train_x[train_y == c].mean(0) for c in range(4)]).flatten(1)
    test_x, test_y = splits.test.batch(range(len(splits.test)))
    nearest = torch.cdist(test_x.flatten(1), centroids).argmin(1)
    assert (nearest == test_y).float().mean() > 0.9


def test_fewer_samples_than_classes_is_an_error():
    with pytest.raises(ValueError, match="data.synthetic_samples: 3"):
        _load(seed=0, classes=5, samples=3)
