"""Datasets in MNIST's four-file IDX layout: Fashion-MNIST (built in) and any other (``mnist``).

A directory holds the files as Zalando and LeCun publish them, gzipped or not::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz    (the training part)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz     (the official test part)

Fashion-MNIST defaults to where Debian's and Ubuntu's ``dataset-fashion-mnist`` package puts
them, so ``apt-get install dataset-fashion-mnist`` is all it takes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from invnas.data.idx import read_idx, read_idx_shape
from invnas.data.images import LabelledImages

log = logging.getLogger(__name__)

IDX_DATASETS = ("fashion_mnist", "mnist")
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_APT = "apt-get install dataset-fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# (images, labels) of each part, without the optional .gz
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _expected(dataset: str) -> str:
    names = ", ".join(f"{name}.gz" for pair in IDX_FILES.values() for name in pair)
    expected = f"expected a directory holding {names} (gzipped or not)"
    if dataset == "fashion_mnist":
        expected += (
            f"; on Debian or Ubuntu `{FASHION_MNIST_APT}` puts them in {FASHION_MNIST_DIR}, "
            "the default when data.path is not given"
        )
    return expected


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def find_idx_files(
    directory: Path, dataset: str, *, default: bool = False
) -> dict[str, tuple[Path, Path]]:
    """The ``(images, labels)`` files of the ``train`` and ``test`` parts in ``directory``
    (``default``: the directory was not given but is the dataset's default).

    Raises ValueError naming ``data.path``, the four expected files and (for Fashion-MNIST)
    the apt command when the directory is missing or incomplete. Reads no file.
    """
    where = f"data.path: {directory}"
    if default:
        where = f"data.path: not given, and the default {directory}"
    if not directory.exists():
        raise ValueError(f"{where} does not exist; {_expected(dataset)}")
    if not directory.is_dir():
        raise ValueError(f"{where} is not a directory; {_expected(dataset)}")
    found = {
        part: tuple(_find(directory, name) for name in names) for part, names in IDX_FILES.items()
    }
    missing = [
        f"{name}[.gz]"
        for part, names in IDX_FILES.items()
        for name, file in zip(names, found[part], strict=True)
        if file is None
    ]
    if len(missing) == len(IDX_FILES) * 2:
        raise ValueError(f"{where} holds none of the IDX files; {_expected(dataset)}")
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; {_expected(dataset)}")
    return found  # type: ignore[return-value]  # no None left


def _read_part(images_file: Path, labels_file: Path) -> tuple[np.ndarray, np.ndarray]:
    labels_shape = read_idx_shape(labels_file, 1)
    images_shape = read_idx_shape(images_file, 3)
    if images_shape[0] == 0:
        raise ValueError(f"data.path: {images_file}: holds no images; expected at least one")
    if images_shape[0] != labels_shape[0]:
        raise ValueError(
            f"data.path: {images_file}: {images_shape[0]} images but {labels_file.name} has "
            f"{labels_shape[0]} labels; expected one label per image"
        )
    return read_idx(images_file, 3), read_idx(labels_file, 1)


def _class_names(dataset: str, labels: dict[str, np.ndarray], files: dict) -> tuple[str, ...]:
    highest = max(int(part.max()) for part in labels.values())
    if dataset == "fashion_mnist":
        if highest >= len(FASHION_MNIST_CLASSES):
            raise ValueError(
                f"data.path: {files['train'][1].parent}: label {highest} in Fashion-MNIST; "
                f"expected labels 0..{len(FASHION_MNIST_CLASSES) - 1}"
            )
        return FASHION_MNIST_CLASSES
    return tuple(str(label) for label in range(highest + 1))


def read_mnist_format(
    directory: Path, dataset: str, *, default: bool = False
) -> dict[str, LabelledImages]:
    """The ``train`` and official ``test`` parts of an IDX dataset as uint8 ``(N, 1, H, W)``.

    ``dataset`` is ``fashion_mnist`` (its ten class names) or ``mnist`` (classes ``0..L``
    where ``L`` is the largest label found, so EMNIST letters, labelled 1..26, gets 27
    classes of which class 0 is empty). ``default``: ``directory`` is the dataset's default,
    not a ``data.path`` given (for messages).
    """
    files = find_idx_files(directory, dataset, default=default)
    arrays = {part: _read_part(*files[part]) for part in IDX_FILES}
    if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise ValueError(
            f"data.path: {directory}: training images are {arrays['train'][0].shape[1:]} but "
            f"test images {arrays['test'][0].shape[1:]}; expected one image size"
        )
    names = _class_names(dataset, {part: labels for part, (_, labels) in arrays.items()}, files)
    parts = {
        part: LabelledImages.create(
            torch.from_numpy(images[:, None]), torch.from_numpy(labels.astype(np.int64)), names
        )
        for part, (images, labels) in arrays.items()
    }
    log.info(
        "read %s from %s: %d train, %d test images of %dx%d",
        dataset,
        directory,
        len(parts["train"]),
        len(parts["test"]),
        *arrays["train"][0].shape[1:],
    )
    return parts
