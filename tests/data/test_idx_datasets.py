"""The IDX reader and the MNIST-layout datasets, on small files the tests write themselves."""

import gzip

import numpy as np
import pytest
import torch

from invnas.config import DataConfig
from invnas.data import check_data_available, load_splits
from invnas.data.idx import read_idx, read_idx_shape, write_idx
from invnas.data.mnist import FASHION_MNIST_CLASSES, IDX_FILES, read_mnist_format
from invnas.space.spec import InputSpec

FILE_NAMES = [name for pair in IDX_FILES.values() for name in pair]


def write_idx_dataset(directory, train=40, test=12, classes=10, size=6, gz=True, seed=0):
    """The four IDX files of a tiny dataset in ``directory``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, count in (("train", train), ("test", test)):
        images = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
        labels = (np.arange(count) % classes).astype(np.uint8)
        image_name, label_name = IDX_FILES[part]
        suffix = ".gz" if gz else ""
        write_idx(directory / f"{image_name}{suffix}", images)
        write_idx(directory / f"{label_name}{suffix}", labels)
        arrays[part] = (images, labels)
    return arrays


@pytest.mark.parametrize("name", ["x.idx3-ubyte", "x.idx3-ubyte.gz"])
def test_idx_round_trip_gzipped_or_raw(tmp_path, name):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    raw = (tmp_path / name).read_bytes()
    assert raw[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    assert np.array_equal(read_idx(tmp_path / name, 3), array)
    assert read_idx_shape(tmp_path / name, 3) == (2, 3, 4)


def test_the_idx_header_is_big_endian_as_published(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8))
    assert (tmp_path / "labels").read_bytes() == bytes.fromhex("00000801 00000003 030104")


@pytest.mark.parametrize("gz", [False, True])
def test_a_truncated_file_names_the_file(tmp_path, gz):
    content = bytes.fromhex("00000803 00000002 00000003 00000003") + bytes(10)  # needs 18
    file = tmp_path / ("images.gz" if gz else "images")
    file.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(ValueError, match=rf"data.path: {file}: truncated: .* 10 of 18 bytes"):
        read_idx(file, 3)


def test_a_gzip_stream_cut_short_names_the_file(tmp_path):
    file = tmp_path / "images.gz"
    write_idx(file, np.zeros((50, 8, 8), dtype=np.uint8))
    file.write_bytes(file.read_bytes()[:-12])
    with pytest.raises(ValueError, match=rf"data.path: {file}: cannot read .*truncated"):
        read_idx(file, 3)


BAD_FILES = [
    # (content, ndim, what the message says after the file name)
    (bytes.fromhex("00000803 0000"), 3, "truncated: the header has 2 of 12 bytes"),
    (bytes.fromhex("00000801 00000002 0102"), 3, "magic number 0x00000801 .* expected 0x00000803"),
    (  # floats, not unsigned bytes
        bytes.fromhex("00000d03 00000001 00000001 00000001 00000000"),
        3,
        "magic number 0x00000d03 .* expected 0x00000803",
    ),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), 3, "magic number 0x89504e47 .* expected 0x00000803"),
    (bytes.fromhex("00000801 00000002 010203"), 1, r"holds more bytes than the shape \(2,\)"),
]


@pytest.mark.parametrize(
    ("content", "ndim", "message"),
    BAD_FILES,
    ids=["header-cut", "labels-for-images", "floats", "png", "extra-bytes"],
)
def test_a_malformed_file_names_the_file_and_what_is_expected(tmp_path, content, ndim, message):
    file = tmp_path / "data-ubyte"
    file.write_bytes(content)
    with pytest.raises(ValueError, match=rf"data.path: {file}: {message}"):
        read_idx(file, ndim)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_layout_reads_train_and_official_test(tmp_path, gz):
    arrays = write_idx_dataset(tmp_path, classes=7, gz=gz)
    parts = read_mnist_format(tmp_path, "mnist")
    assert set(parts) == {"train", "test"}
    for part, (images, labels) in arrays.items():
        assert parts[part].images.dtype == torch.uint8
        assert torch.equal(parts[part].images, torch.from_numpy(images)[:, None])
        assert torch.equal(parts[part].labels, torch.from_numpy(labels).long())
        assert parts[part].class_names == tuple(str(i) for i in range(7))


def test_mnist_class_count_comes_from_the_largest_label(tmp_path):
    write_idx_dataset(tmp_path, classes=5)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(12, 26, dtype=np.uint8))
    assert len(read_mnist_format(tmp_path, "mnist")["train"].class_names) == 27


def test_fashion_mnist_names_its_ten_classes_and_rejects_other_labels(tmp_path):
    write_idx_dataset(tmp_path)
    assert read_mnist_format(tmp_path, "fashion_mnist")["test"].class_names[0] == "T-shirt/top"
    assert len(FASHION_MNIST_CLASSES) == 10
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(40, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="label 10 in Fashion-MNIST; expected labels 0..9"):
        read_mnist_format(tmp_path, "fashion_mnist")


def test_a_count_mismatch_between_images_and_labels_names_both_files(tmp_path):
    write_idx_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(11, dtype=np.uint8))
    with pytest.raises(
        ValueError,
        match=r"t10k-images-idx3-ubyte.gz: 12 images but t10k-labels-idx1-ubyte.gz has 11 labels",
    ):
        read_mnist_format(tmp_path, "mnist")


@pytest.mark.parametrize("dataset", ["fashion_mnist", "mnist"])
def test_a_missing_directory_names_the_path_the_files_and_for_fashion_apt(tmp_path, dataset):
    config = DataConfig(dataset=dataset, path=str(tmp_path / "nowhere"))
    for call in (
        lambda: check_data_available(config),
        lambda: load_splits(config, InputSpec(channels=1, size=6), seed=0),
    ):
        with pytest.raises(ValueError) as raised:
            call()
        message = str(raised.value)
        assert message.startswith(f"data.path: {tmp_path / 'nowhere'} does not exist; expected")
        assert all(f"{name}.gz" in message for name in FILE_NAMES)
        assert ("apt-get install dataset-fashion-mnist" in message) == (dataset == "fashion_mnist")


def test_an_incomplete_directory_names_the_missing_files(tmp_path):
    write_idx_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    config = DataConfig(dataset="fashion_mnist", path=str(tmp_path))
    with pytest.raises(ValueError, match=r"lacks t10k-labels-idx1-ubyte\[.gz\]; expected") as err:
        check_data_available(config)
    assert "apt-get install dataset-fashion-mnist" in str(err.value)


def test_fashion_mnist_defaults_to_the_debian_package_directory(monkeypatch, tmp_path):
    import invnas.data.splits as splits

    monkeypatch.setattr(splits, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(ValueError) as raised:
        check_data_available(DataConfig(dataset="fashion_mnist"))
    message = str(raised.value)
    assert message.startswith(f"data.path: not given, and the default {tmp_path / 'absent'}")
    assert "apt-get install dataset-fashion-mnist" in message


def test_splits_keep_the_official_test_set_and_carve_val_from_train(tmp_path):
    write_idx_dataset(tmp_path / "idx", train=100, test=20, size=8)
    config = DataConfig(dataset="mnist", path="idx", val_fraction=0.1, augment=True)
    splits = load_splits(config, InputSpec(channels=3, size=12), seed=1, root=tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    assert splits.test.indices.tolist() == list(range(20))
    assert splits.train[0][0].shape == (3, 12, 12)
    assert splits.train.augment is not None and not splits.train.augment.flip  # handwriting
    again = load_splits(config, InputSpec(channels=3, size=12), seed=1, root=tmp_path)
    assert torch.equal(again.val.indices, splits.val.indices)


@pytest.mark.parametrize("dataset", ["digits", "synthetic"])
def test_embedded_datasets_are_always_available(dataset):
    check_data_available(DataConfig(dataset=dataset))


def test_availability_of_cifar_and_image_folders_names_the_path(tmp_path):
    for dataset in ("cifar10", "imagefolder"):
        config = DataConfig(dataset=dataset, path=str(tmp_path / "none"))
        with pytest.raises(ValueError, match=rf"data.path: {tmp_path / 'none'} does not exist"):
            check_data_available(config)
