"""A streamed ImageFolder (files decoded per batch) equals the in-memory one."""

import numpy as np
import pytest
import torch
from PIL import Image

import invnas.data.stream as stream
from invnas.config import DataConfig
from invnas.data import load_splits, make_loader
from invnas.data.stream import ImageFiles
from invnas.space.spec import InputSpec


def make_noise_tree(root, per_class=12, splits=("",), seed=0):
    """Classes of random-noise PNGs (various sizes, some greyscale) under ``root/<split>/``."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for name in ("ant", "bee", "cat"):
            directory = root / split / name
            directory.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(9 + i % 4, 11, 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                (image.convert("L") if i % 5 == 0 else image).save(directory / f"{i}.png")
    return root


def _splits(root, loading, channels=3, **config):
    data = DataConfig(dataset="imagefolder", path=str(root), loading=loading, **config)
    return load_splits(data, InputSpec(channels=channels, size=8), seed=4)


def _batches(dataset, workers=0):
    loader = make_loader(dataset, 7, shuffle=True, seed=1, num_workers=workers)
    return [(x.clone(), y.clone()) for x, y in loader]


@pytest.mark.parametrize("layout", [("",), ("train", "test")])
@pytest.mark.parametrize("channels", [1, 3])
def test_streamed_splits_and_batches_equal_the_in_memory_ones(tmp_path, layout, channels):
    root = make_noise_tree(tmp_path, splits=layout)
    if channels == 1:  # in memory, one channel needs a folder of greyscale images only
        for file in root.rglob("*.png"):
            Image.open(file).convert("L").save(file)
    memory, streamed = _splits(root, "memory", channels), _splits(root, "stream", channels)
    assert isinstance(streamed.train.pool, ImageFiles)
    assert (streamed.mean, streamed.std) == (memory.mean, memory.std)
    for split in ("train", "val", "test"):
        ours, theirs = getattr(streamed, split), getattr(memory, split)
        assert torch.equal(ours.indices, theirs.indices)
        for (x, y), (x2, y2) in zip(_batches(ours), _batches(theirs), strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)


def test_worker_processes_give_the_same_batches(tmp_path):
    splits = _splits(make_noise_tree(tmp_path), "stream")
    assert len(_batches(splits.train, workers=2)) == len(_batches(splits.train))
    for (x, y), (x2, y2) in zip(
        _batches(splits.train, workers=2), _batches(splits.train), strict=True
    ):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_auto_streams_above_the_size_limit(tmp_path, monkeypatch):
    root = make_noise_tree(tmp_path, per_class=4)
    assert not isinstance(_splits(root, "auto").train.pool, ImageFiles)
    monkeypatch.setattr(stream, "STREAM_ABOVE_BYTES", 3 * 8 * 8 * 12 - 1)
    assert isinstance(_splits(root, "auto").train.pool, ImageFiles)


def test_a_corrupt_image_names_the_file_when_its_batch_is_read(tmp_path):
    root = make_noise_tree(tmp_path, per_class=5, splits=("train", "test"))
    broken = root / "test" / "bee" / "3.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(30))
    splits = _splits(root, "stream")  # the training images decode; the test ones are not read
    with pytest.raises(ValueError, match=f"data.path: {broken}: cannot read image"):
        _batches(splits.test)
    (root / "train" / "ant" / "0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=f"{root / 'train' / 'ant' / '0.png'}: cannot read image"):
        _splits(root, "stream")  # the training statistics read every training image
