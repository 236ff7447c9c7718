"""CIFAR readers on tiny archives written in the real pickle format."""

import pickle

import numpy as np
import pytest
import torch

from invnas.config import DataConfig
from invnas.data import load_splits
from invnas.data.cifar import read_cifar
from invnas.space.spec import InputSpec


def _dump(path, content):
    # protocol 2 with bytes keys, as the published (Python 2) archives are read back
    path.write_bytes(pickle.dumps(content, protocol=2))


def _batch(rng, count, label_key, num_classes, start):
    labels = [(start + i) % num_classes for i in range(count)]
    data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
    return {
        b"batch_label": b"fake batch",
        label_key: labels,
        b"data": data,
        b"filenames": [f"img{start + i}.png".encode() for i in range(count)],
    }


def write_cifar10(root, per_batch=4, seed=0):
    """A cifar-10-batches-py directory under ``root`` with 5x``per_batch`` train images."""
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    batches = []
    for i in range(1, 6):
        batch = _batch(rng, per_batch, b"labels", 10, (i - 1) * per_batch)
        _dump(directory / f"data_batch_{i}", batch)
        batches.append(batch)
    test = _batch(rng, 6, b"labels", 10, 3)
    _dump(directory / "test_batch", test)
    names = [n.encode() for n in "plane car bird cat deer dog frog horse ship truck".split()]
    _dump(directory / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return directory, batches, test


def write_cifar100(root, seed=0):
    rng = np.random.default_rng(seed)
    directory = root / "cifar-100-python"
    directory.mkdir(parents=True)
    train = _batch(rng, 30, b"fine_labels", 100, 90)  # labels 90..99, 0..19
    train[b"coarse_labels"] = [label // 5 for label in train[b"fine_labels"]]
    test = _batch(rng, 5, b"fine_labels", 100, 40)
    _dump(directory / "train", train)
    _dump(directory / "test", test)
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    _dump(directory / "meta", meta)
    return directory, train, test


def _planes(batch):
    return torch.from_numpy(batch[b"data"].reshape(-1, 3, 32, 32))


def test_cifar10_reader_returns_the_official_parts(tmp_path):
    directory, batches, test = write_cifar10(tmp_path)
    parts = read_cifar(tmp_path, "cifar10")
    assert torch.equal(parts["train"].images, torch.cat([_planes(b) for b in batches]))
    assert parts["train"].labels.tolist() == sum((b[b"labels"] for b in batches), [])
    assert torch.equal(parts["test"].images, _planes(test))
    assert parts["test"].labels.tolist() == test[b"labels"]
    assert parts["train"].class_names[:3] == ("plane", "car", "bird")
    again = read_cifar(directory, "cifar10")  # the extracted directory itself works too
    assert torch.equal(again["train"].images, parts["train"].images)


def test_cifar10_splits_keep_the_test_batch_and_carve_val_from_train(tmp_path):
    _, batches, test = write_cifar10(tmp_path)
    config = DataConfig(dataset="cifar10", path="cifar-10-batches-py", val_fraction=0.2)
    splits = load_splits(config, InputSpec(channels=3, size=32), seed=0, root=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (16, 4, 6)
    assert splits.num_classes == 10 and splits.image_size == 32
    train_rows = set(splits.train.indices.tolist())
    assert not train_rows & set(splits.val.indices.tolist())
    images, labels = splits.test.batch(range(6))
    mean = torch.tensor(splits.mean).view(1, 3, 1, 1)
    std = torch.tensor(splits.std).view(1, 3, 1, 1)
    assert torch.allclose(images * std + mean, _planes(test).float() / 255, atol=1e-5)
    assert labels.tolist() == test[b"labels"]


def test_cifar10_is_resized_to_the_space_input(tmp_path):
    write_cifar10(tmp_path)
    config = DataConfig(dataset="cifar10", path=str(tmp_path), augment=True)
    splits = load_splits(config, InputSpec(channels=3, size=16), seed=0)
    image, _ = splits.train[0]
    assert image.shape == (3, 16, 16)
    assert splits.train.augment.flip and splits.train.augment.padding == 2


def test_cifar100_uses_the_fine_labels(tmp_path):
    _, train, test = write_cifar100(tmp_path)
    splits = load_splits(
        DataConfig(dataset="cifar100", path=str(tmp_path)), InputSpec(), seed=1, num_classes=100
    )
    assert splits.num_classes == 100 and splits.class_names[42] == "fine42"
    assert sorted(splits.test.labels.tolist()) == sorted(test[b"fine_labels"])
    everything = torch.cat([splits.train.labels, splits.val.labels])
    assert sorted(everything.tolist()) == sorted(train[b"fine_labels"])
    with pytest.raises(ValueError, match="num_classes: 10 is smaller than the 100"):
        load_splits(
            DataConfig(dataset="cifar100", path=str(tmp_path)), InputSpec(), 1, num_classes=10
        )


def test_missing_archive_names_the_path(tmp_path):
    config = DataConfig(dataset="cifar10", path="nowhere")
    with pytest.raises(ValueError, match=f"data.path: {tmp_path / 'nowhere'} does not exist"):
        load_splits(config, InputSpec(), seed=0, root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no CIFAR-100 data found.*cifar-100-python"):
        load_splits(DataConfig(dataset="cifar100", path=str(tmp_path / "empty")), InputSpec(), 0)


def test_incomplete_archive_names_the_missing_file(tmp_path):
    directory, _, _ = write_cifar10(tmp_path)
    (directory / "data_batch_3").unlink()
    with pytest.raises(ValueError, match=f"{directory} is an incomplete CIFAR-10.*data_batch_3"):
        read_cifar(tmp_path, "cifar10")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    directory, _, _ = write_cifar10(tmp_path)
    marker = tmp_path / "opened"
    _dump(directory / "test_batch", {b"data": _Payload(marker), b"labels": [0]})
    with pytest.raises(ValueError, match="test_batch: not a CIFAR pickle"):
        read_cifar(directory, "cifar10")
    assert not marker.exists()
