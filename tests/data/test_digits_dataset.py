"""The embedded digits: real data, split by the seed, resized and normalised."""

import pytest
import torch
from sklearn.datasets import load_digits

from invnas.config import DataConfig
from invnas.data import load_splits
from invnas.data.digits import DIGITS_SAMPLES
from invnas.space.spec import InputSpec


@pytest.fixture(scope="module")
def digits16():
    return load_splits(DataConfig(), InputSpec(channels=1, size=16), seed=0)


def _indices(splits):
    return [set(d.indices.tolist()) for d in (splits.train, splits.val, splits.test)]


def test_splits_cover_all_digits_once_with_the_configured_sizes(digits16):
    train, val, test = _indices(digits16)
    assert len(val) == round(DIGITS_SAMPLES * 0.1) == 180
    assert len(test) == round(DIGITS_SAMPLES * 0.2) == 359
    assert len(train) == DIGITS_SAMPLES - 180 - 359
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(range(DIGITS_SAMPLES))
    assert (len(digits16.train), len(digits16.val), len(digits16.test)) == (1258, 180, 359)


def test_splits_are_fixed_by_the_seed(digits16):
    again = load_splits(DataConfig(), InputSpec(channels=1, size=16), seed=0)
    other = load_splits(DataConfig(), InputSpec(channels=1, size=16), seed=1)
    assert _indices(again) == _indices(digits16)
    assert _indices(other)[1] != _indices(digits16)[1]
    assert _indices(other)[2] != _indices(digits16)[2]
    assert torch.equal(again.val.batch(range(5))[0], digits16.val.batch(range(5))[0])


def test_every_class_is_spread_over_the_splits_in_proportion(digits16):
    counts = torch.bincount(torch.as_tensor(load_digits().target), minlength=10)
    for split, fraction in ((digits16.val, 0.1), (digits16.test, 0.2)):
        per_class = torch.bincount(split.labels, minlength=10)
        assert (per_class - counts * fraction).abs().max() <= 1


def test_images_are_resized_normalized_and_labelled(digits16):
    image, label = digits16.train[0]
    assert image.shape == (1, 16, 16) and image.dtype == torch.float32
    assert label.dtype == torch.long and 0 <= int(label) < 10
    assert digits16.num_classes == 10 and digits16.class_names[3] == "3"
    everything, _ = digits16.train.batch(range(len(digits16.train)))
    assert abs(float(everything.mean())) < 1e-3
    assert abs(float(everything.std()) - 1.0) < 1e-2


def test_native_size_keeps_the_original_pixels():
    splits = load_splits(DataConfig(), InputSpec(channels=1, size=8), seed=0)
    raw = torch.as_tensor(load_digits().images, dtype=torch.float32) / 16.0
    images, labels = splits.val.batch(range(len(splits.val)))
    restored = images[:, 0] * splits.std[0] + splits.mean[0]
    rows = splits.val.indices
    assert torch.allclose(restored, raw[rows], atol=1e-5)
    assert torch.equal(labels, torch.as_tensor(load_digits().target)[rows])


def test_three_channels_replicate_the_grey_image():
    splits = load_splits(DataConfig(), InputSpec(channels=3, size=12), seed=0)
    image, _ = splits.test[7]
    assert image.shape == (3, 12, 12)
    assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    assert splits.channels == 3 and len(splits.mean) == 3


def test_augmentation_changes_training_images_only():
    splits = load_splits(DataConfig(augment=True), InputSpec(channels=1, size=16), seed=0)
    torch.manual_seed(0)
    first = splits.train.batch(range(32))[0]
    second = splits.train.batch(range(32))[0]
    assert not torch.equal(first, second)
    assert torch.equal(splits.val.batch(range(32))[0], splits.val.batch(range(32))[0])
    assert splits.train.augment is not None and not splits.train.augment.flip


def test_digits_read_from_the_shipped_file_equal_scikit_learns_loader():
    from sklearn.datasets import load_digits

    from invnas.data.digits import read_digits

    ours = read_digits(8)
    theirs = load_digits()
    expected = torch.as_tensor(theirs.images, dtype=torch.float32).unsqueeze(1) / 16.0
    assert torch.equal(ours.images, expected)
    assert ours.labels.tolist() == theirs.target.tolist()
