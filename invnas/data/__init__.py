"""Datasets: the embedded digits, Fashion-MNIST and other IDX (MNIST-format) directories, CIFAR
archive directories, ImageFolder trees, synthetic data.

``load_splits(config.data, space.input, seed, root)`` reads one and splits it by the seed;
``make_loader`` wraps a split in a seeded DataLoader; ``check_data_available`` checks that the
files are there without reading them. Nothing is downloaded.
"""

from invnas.data.augment import RandomCropFlip
from invnas.data.available import check_data_available
from invnas.data.images import ImageTensorDataset, LabelledImages
from invnas.data.loader import make_loader
from invnas.data.splits import (
    DatasetSplits,
    check_num_classes,
    load_splits,
    resolve_data_path,
    stratified_split,
)

__all__ = [
    "DatasetSplits",
    "ImageTensorDataset",
    "LabelledImages",
    "RandomCropFlip",
    "check_data_available",
    "check_num_classes",
    "load_splits",
    "make_loader",
    "resolve_data_path",
    "stratified_split",
]
