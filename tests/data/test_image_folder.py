"""ImageFolder trees of real PNG/JPEG files, read with Pillow."""

import numpy as np
import pytest
import torch
from PIL import Image

from invnas.config import DataConfig
from invnas.data import load_splits
from invnas.space.spec import InputSpec

COLOURS = {"blue": (0, 0, 255), "green": (0, 200, 0), "red": (250, 10, 10)}


def _write_class(directory, colour, count, mode="RGB", suffix=".png", start=0):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.new("RGB", (10 + i, 12), colour).convert(mode)
        image.save(directory / f"img{start + i}{suffix}")


def make_tree(root, count=10, mode="RGB"):
    for name, colour in COLOURS.items():
        _write_class(root / name, colour, count, mode)
    return root


def _pixels(dataset, splits):
    images, labels = dataset.batch(range(len(dataset)))
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    return images * std + mean, labels


def test_class_directories_become_labelled_resized_images(tmp_path):
    make_tree(tmp_path / "imgs")
    config = DataConfig(dataset="imagefolder", path="imgs")
    splits = load_splits(config, InputSpec(channels=3, size=8), seed=0, root=tmp_path)
    assert splits.class_names == ("blue", "green", "red") and splits.num_classes == 3
    assert (len(splits.train), len(splits.val), len(splits.test)) == (21, 3, 6)
    for dataset in (splits.train, splits.val, splits.test):
        pixels, labels = _pixels(dataset, splits)
        assert pixels.shape[1:] == (3, 8, 8)
        for image, label in zip(pixels, labels, strict=True):
            colour = torch.tensor(COLOURS[splits.class_names[label]], dtype=torch.float32) / 255
            assert torch.allclose(image.mean(dim=(1, 2)), colour, atol=1e-5)
    again = load_splits(config, InputSpec(channels=3, size=8), seed=0, root=tmp_path)
    assert torch.equal(again.test.indices, splits.test.indices)


def test_greyscale_images_give_one_channel(tmp_path):
    make_tree(tmp_path, count=4, mode="L")
    config = DataConfig(dataset="imagefolder", path=str(tmp_path))
    grey = load_splits(config, InputSpec(channels=1, size=6), seed=0)
    assert grey.train[0][0].shape == (1, 6, 6)
    with pytest.raises(ValueError, match="input.channels"):
        make_tree(tmp_path / "colour", count=4)
        load_splits(
            DataConfig(dataset="imagefolder", path=str(tmp_path / "colour")),
            InputSpec(channels=1, size=6),
            seed=0,
        )


def test_split_directories_are_used_and_val_is_carved_from_train(tmp_path):
    for name, colour in COLOURS.items():
        _write_class(tmp_path / "train" / name, colour, 10, suffix=".jpg")
        _write_class(tmp_path / "test" / name, colour, 2, suffix=".bmp")
    config = DataConfig(dataset="imagefolder", path=str(tmp_path), val_fraction=0.2)
    splits = load_splits(config, InputSpec(channels=3, size=8), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (24, 6, 6)
    assert splits.test.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_unknown_class_in_test_is_an_error(tmp_path):
    _write_class(tmp_path / "train" / "a", (0, 0, 0), 5)
    _write_class(tmp_path / "train" / "b", (9, 9, 9), 5)
    _write_class(tmp_path / "test" / "c", (1, 1, 1), 1)
    with pytest.raises(ValueError, match=r"test/c: class 'c' is not one of the training"):
        load_splits(DataConfig(dataset="imagefolder", path=str(tmp_path)), InputSpec(), 0)


def test_missing_or_empty_directories_name_the_path(tmp_path):
    with pytest.raises(ValueError, match=f"data.path: {tmp_path / 'absent'} does not exist"):
        load_splits(DataConfig(dataset="imagefolder", path="absent"), InputSpec(), 0, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path / 'empty'} holds no class directories"):
        load_splits(DataConfig(dataset="imagefolder", path="empty"), InputSpec(), 0, tmp_path)
    (tmp_path / "noimages" / "cat").mkdir(parents=True)
    (tmp_path / "noimages" / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=f"{tmp_path / 'noimages' / 'cat'} holds no images"):
        load_splits(DataConfig(dataset="imagefolder", path="noimages"), InputSpec(), 0, tmp_path)


def test_unreadable_image_names_the_file(tmp_path):
    make_tree(tmp_path, count=3)
    broken = tmp_path / "red" / "broken.png"
    broken.write_bytes(np.arange(50, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"{broken}: cannot read image"):
        load_splits(DataConfig(dataset="imagefolder", path=str(tmp_path)), InputSpec(), 0)
