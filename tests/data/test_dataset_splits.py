"""Splitting, path resolution, channel and class checks, augmentation and seeded loaders."""

from pathlib import Path

import pytest
import torch

from invnas.config import DataConfig
from invnas.data import (
    RandomCropFlip,
    check_num_classes,
    load_splits,
    make_loader,
    resolve_data_path,
    stratified_split,
)
from invnas.space.spec import InputSpec


def test_stratified_split_sizes_proportions_and_determinism():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    rest, val, test = stratified_split(labels, (0.1, 0.2), seed=3)
    assert (len(rest), len(val), len(test)) == (70, 10, 20)
    assert torch.equal(torch.sort(torch.cat([rest, val, test])).values, torch.arange(100))
    assert torch.bincount(labels[test]).tolist() == [10, 6, 4]
    assert torch.bincount(labels[val]).tolist() == [5, 3, 2]
    again = stratified_split(labels, (0.1, 0.2), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(again, (rest, val, test), strict=True))
    assert not torch.equal(stratified_split(labels, (0.1, 0.2), seed=4)[2], test)


def test_stratified_split_refuses_too_few_samples():
    with pytest.raises(ValueError, match="too few"):
        stratified_split(torch.tensor([0, 1]), (0.1, 0.2), seed=0)


def test_relative_paths_are_taken_from_the_space_directory(tmp_path):
    config = DataConfig(dataset="imagefolder", path="images")
    assert resolve_data_path(config, tmp_path) == (tmp_path / "images").resolve()
    assert resolve_data_path(config, None) == (Path.cwd() / "images").resolve()
    absolute = DataConfig(dataset="imagefolder", path=str(tmp_path / "x"))
    assert resolve_data_path(absolute, "/elsewhere") == tmp_path / "x"
    with pytest.raises(ValueError, match="data.path: missing for dataset 'cifar10'"):
        resolve_data_path(DataConfig(dataset="cifar10"), tmp_path)


def test_channel_mismatch_names_input_channels():
    with pytest.raises(ValueError, match=r"input.channels: 2 .*1-channel.*use 1 or 3"):
        load_splits(DataConfig(), InputSpec(channels=2, size=8), seed=0)


def test_too_few_output_classes_is_an_error():
    splits = load_splits(DataConfig(), InputSpec(channels=1, size=8), seed=0)
    check_num_classes(splits, 10)
    check_num_classes(splits, 12)
    with pytest.raises(ValueError, match="num_classes: 9 is smaller than the 10 classes"):
        check_num_classes(splits, 9)
    with pytest.raises(ValueError, match="num_classes: 4"):
        load_splits(DataConfig(), InputSpec(channels=1, size=8), seed=0, num_classes=4)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    images = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1
    torch.manual_seed(0)
    cropped = RandomCropFlip(padding=2, flip=False)(images)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for b in range(2):
        windows = [padded[b, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(cropped[b], w) for w in windows)


def test_flip_mirrors_some_images_and_keeps_the_others():
    images = torch.rand(64, 1, 5, 5)
    torch.manual_seed(1)
    out = RandomCropFlip(padding=0, flip=True)(images)
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54


def test_loader_order_is_fixed_by_its_seed():
    splits = load_splits(DataConfig(), InputSpec(channels=1, size=8), seed=0)

    def labels(seed):
        return torch.cat([y for _, y in make_loader(splits.train, 100, True, seed)])

    assert torch.equal(labels(5), labels(5))
    assert not torch.equal(labels(5), labels(6))
    in_order = torch.cat([y for _, y in make_loader(splits.train, 100, False, 0)])
    assert torch.equal(in_order, splits.train.labels)
    assert len(make_loader(splits.train, 100, True, 0, drop_last=True)) == len(splits.train) // 100


def test_augmented_batches_repeat_with_worker_processes():
    splits = load_splits(DataConfig(augment=True), InputSpec(channels=1, size=8), seed=0)

    def first_batch():
        loader = make_loader(splits.train, 16, True, seed=2, num_workers=1)
        return next(iter(loader))[0]

    assert torch.equal(first_batch(), first_batch())
