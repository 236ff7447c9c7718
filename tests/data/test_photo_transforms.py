"""data.augment: photo (random resized crops and flips to train, centre crops to evaluate)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from invnas.config import DataConfig
from invnas.data import load_splits, make_loader
from invnas.data.augment import CentreCrop, RandomCropFlip, RandomResizedCrop
from invnas.space.spec import InputSpec


def photo_folder(root, per_class=8):
    """Three classes of 10x12 RGB noise photos."""
    rng = np.random.default_rng(7)
    for name in ("fox", "owl", "yak"):
        (root / name).mkdir()
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def ramp(batch=64, size=16):
    """Images whose value is their column index: a crop's values show where it lies."""
    return torch.arange(size, dtype=torch.float32).expand(batch, 3, size, size).clone()


def test_a_full_unflipped_crop_is_the_image():
    images = torch.rand(8, 3, 12, 12)
    crop = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert torch.allclose(crop(images), images, atol=1e-5)


def test_full_crops_are_mirrored_about_half_the_time():
    torch.manual_seed(0)
    images = ramp()
    out = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))(images)
    mirrored = torch.isclose(out, images.flip(-1), atol=1e-4).flatten(1).all(1)
    same = torch.isclose(out, images, atol=1e-4).flatten(1).all(1)
    assert bool((mirrored | same).all()) and 16 < int(mirrored.sum()) < 48


def test_a_quarter_of_the_area_spans_half_the_columns_inside_the_image():
    torch.manual_seed(1)
    size = 16
    out = RandomResizedCrop(scale=(0.25, 0.25), ratio=(1.0, 1.0), flip=False)(ramp(size=size))
    spans = out.amax(dim=(1, 2, 3)) - out.amin(dim=(1, 2, 3))
    # a box 8 of 16 columns wide, sampled at 16 points 0.5 columns apart: 7.5 columns (less
    # by up to 0.25 at each edge of the image, where the outer samples fall off the last pixel)
    assert bool(((spans >= 7.0 - 1e-4) & (spans <= 7.5 + 1e-4)).all())
    assert out.min() >= 0 and out.max() <= size - 1
    assert len(torch.unique(out[:, 0, 0, 0])) > 10  # boxes at many places


def test_aspect_ratios_stay_in_range_and_draws_follow_the_seed():
    crop = RandomResizedCrop()
    torch.manual_seed(3)
    first = crop(torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(3)
    again = crop(torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    torch.manual_seed(4)
    other = crop(torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (32, 3, 16, 16)


def test_the_centre_crop_drops_the_border():
    images = torch.ones(2, 3, 16, 16)
    images[..., 1:-1, 1:-1] = 0.0  # 14 of 16 pixels inside: 0.875 of the side
    out = CentreCrop()(images)
    assert out.shape == images.shape and torch.equal(out, torch.zeros_like(out))
    gradient = ramp(batch=1, size=8)
    expected = F.interpolate(gradient[..., :, :7][..., :7, :], size=(8, 8), mode="bilinear")
    assert torch.allclose(CentreCrop()(gradient), expected)  # 7 of 8: offset 0


def _photo_splits(root, loading):
    data = DataConfig(dataset="imagefolder", path=str(root), loading=loading, augment="photo")
    return load_splits(data, InputSpec(channels=3, size=8), seed=4)


def _batches(dataset, seed):
    torch.manual_seed(seed)  # the transforms draw from the global generator
    loader = make_loader(dataset, 7, shuffle=True, seed=1)
    return [x.clone() for x, _ in loader]


def test_photo_splits_train_on_crops_and_evaluate_on_centres_streamed_or_not(tmp_path):
    root = photo_folder(tmp_path)
    memory, streamed = _photo_splits(root, "memory"), _photo_splits(root, "stream")
    assert isinstance(memory.train.augment, RandomResizedCrop) and memory.train.augment.flip
    assert isinstance(memory.val.augment, CentreCrop) and isinstance(
        memory.test.augment, CentreCrop
    )
    for split in ("train", "val", "test"):
        ours, theirs = getattr(streamed, split), getattr(memory, split)
        for x, x2 in zip(_batches(ours, 5), _batches(theirs, 5), strict=True):
            assert torch.equal(x, x2)
    plain = load_splits(
        DataConfig(dataset="imagefolder", path=str(root), loading="memory"),
        InputSpec(channels=3, size=8),
        seed=4,
    )
    assert plain.train.augment is None and plain.val.augment is None
    cropped, whole = _batches(memory.val, 0), _batches(plain.val, 0)
    assert not torch.equal(cropped[0], whole[0])
    assert not torch.equal(_batches(memory.train, 5)[0], _batches(memory.train, 6)[0])


def test_true_and_false_still_mean_crop_flip_and_none():
    assert DataConfig(augment=True).augment == "crop_flip"
    assert DataConfig(augment=False).augment == "none"
    splits = load_splits(DataConfig(augment="crop_flip"), InputSpec(channels=1, size=8), seed=0)
    assert isinstance(splits.train.augment, RandomCropFlip) and not splits.train.augment.flip
    assert splits.val.augment is None


def test_photo_is_refused_for_handwriting():
    with pytest.raises(ValueError, match="data.augment: 'photo' is for datasets of photographs"):
        load_splits(DataConfig(augment="photo"), InputSpec(channels=1, size=8), seed=0)
