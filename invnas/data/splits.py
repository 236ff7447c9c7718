"""Train / validation / test splits of a run's dataset, fixed by the seed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from invnas.config import PHOTO_DATASETS, DataConfig
from invnas.data.augment import BatchTransform, split_transforms
from invnas.data.images import ImagePool, ImageTensorDataset, channel_stats
from invnas.data.mnist import FASHION_MNIST_DIR, IDX_DATASETS
from invnas.space.spec import InputSpec

log = logging.getLogger(__name__)

DEFAULT_SYNTHETIC_CLASSES = 10
# handwriting: a mirrored digit or letter is another symbol, so augmentation does not flip it
UNFLIPPABLE = frozenset({"digits", "mnist"})


@dataclass(frozen=True)
class DatasetSplits:
    """The three splits as map-style datasets of ``(image, label)`` pairs.

    Images come out as float ``(channels, image_size, image_size)`` tensors normalised with
    ``mean``/``std`` (per channel, measured on the training split); labels are int64 class
    indices into ``class_names``.
    """

    name: str
    train: ImageTensorDataset
    val: ImageTensorDataset
    test: ImageTensorDataset
    num_classes: int
    channels: int
    image_size: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def streamed(self) -> bool:
        """Whether the images are decoded per batch from files rather than held in memory."""
        from invnas.data.stream import ImageFiles

        return isinstance(self.train.pool, ImageFiles)


def stratified_split(
    labels: Tensor | np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[Tensor]:
    """Disjoint sorted index sets covering ``labels``: one per fraction plus the rest (first).

    ``stratified_split(y, (0.1, 0.2), seed)`` returns ``[rest, ~10%, ~20%]``. Each part's size
    is ``round(n * fraction)`` (at least 1) and every class is spread over the parts in
    proportion to its frequency. The result depends only on ``labels``, ``fractions`` and
    ``seed``.
    """
    labels = np.asarray(labels)
    total = len(labels)
    sizes = [max(1, round(total * f)) for f in fractions]
    if sum(sizes) >= total:
        raise ValueError(
            f"{total} samples are too few to split into {len(fractions) + 1} non-empty parts"
        )
    classes, inverse = np.unique(labels, return_inverse=True)
    remaining = np.bincount(inverse, minlength=len(classes))
    quotas = []
    for size in sizes:
        quota = _largest_remainder(remaining, size)
        quotas.append(quota)
        remaining = remaining - quota
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        start = 0
        for p, quota in enumerate(quotas, start=1):
            parts[p].append(members[start : start + quota[c]])
            start += quota[c]
        parts[0].append(members[start:])
    return [torch.from_numpy(np.sort(np.concatenate(p))).long() for p in parts]


def _largest_remainder(counts: np.ndarray, size: int) -> np.ndarray:
    """Integer shares of ``size`` proportional to ``counts`` that sum to exactly ``size``."""
    exact = counts * (size / counts.sum())
    shares = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[: size - int(shares.sum())]] += 1
    return shares


def check_num_classes(splits: DatasetSplits, num_classes: int) -> None:
    """Raise ValueError if a model with ``num_classes`` outputs cannot label every class."""
    if num_classes < splits.num_classes:
        raise ValueError(
            f"num_classes: {num_classes} is smaller than the {splits.num_classes} classes of "
            f"dataset {splits.name!r}; use at least {splits.num_classes}"
        )
    if num_classes > splits.num_classes:
        log.warning(
            "num_classes is %d but dataset %r has %d classes; the extra outputs stay unused",
            num_classes,
            splits.name,
            splits.num_classes,
        )


def resolve_data_path(config: DataConfig, root: str | Path | None = None) -> Path:
    """``config.path`` as an absolute path, a relative one taken from ``root`` (the directory of
    the space file) or else from the working directory. Without ``config.path``, Fashion-MNIST
    reads from the Debian package's directory; the other datasets on disk need one."""
    if config.path is None and config.dataset == "fashion_mnist":
        return FASHION_MNIST_DIR
    if config.path is None:
        where = {
            "cifar10": "the directory holding cifar-10-batches-py/",
            "cifar100": "the directory holding cifar-100-python/",
            "imagefolder": "a directory of class folders",
            "mnist": "the directory holding the four IDX files",
        }.get(config.dataset, "a directory")
        raise ValueError(f"data.path: missing for dataset {config.dataset!r}; give {where}")
    path = Path(config.path).expanduser()
    if not path.is_absolute():
        path = Path(root if root is not None else Path.cwd()) / path
    return path.resolve()


def _read_parts(
    config: DataConfig, input: InputSpec, seed: int, root: str | Path | None, num_classes: int
) -> dict[str, ImagePool]:
    if config.dataset == "digits":
        from invnas.data.digits import read_digits

        return {"all": read_digits(input.size)}
    if config.dataset == "synthetic":
        from invnas.data.synthetic import make_synthetic

        pool = make_synthetic(
            config.synthetic_samples, input.channels, input.size, num_classes, seed
        )
        return {"all": pool}
    if config.dataset in ("cifar10", "cifar100"):
        from invnas.data.cifar import read_cifar

        return read_cifar(resolve_data_path(config, root), config.dataset)
    if config.dataset == "imagefolder":
        return _read_image_folder(config, input, resolve_data_path(config, root))
    if config.dataset in IDX_DATASETS:
        from invnas.data.mnist import read_mnist_format

        path = resolve_data_path(config, root)
        return read_mnist_format(path, config.dataset, default=config.path is None)
    raise ValueError(
        f"data.dataset: {config.dataset!r} is not a dataset; "
        "expected digits, fashion_mnist, mnist, cifar10, cifar100, imagefolder or synthetic"
    )


def _read_image_folder(config: DataConfig, input: InputSpec, path: Path) -> dict[str, ImagePool]:
    """In memory, or streamed (``data.loading: stream``, or ``auto`` when the decoded images
    would exceed :data:`~invnas.data.stream.STREAM_ABOVE_BYTES`)."""
    from invnas.data.folder import read_image_folder
    from invnas.data.stream import list_image_files, should_stream

    if config.loading != "memory":
        files = list_image_files(path, 1 if input.channels == 1 else 3, input.size)
        if config.loading == "stream" or should_stream(files):
            log.info("streaming %s: %s", path, ", ".join(f"{len(p)} {s}" for s, p in files.items()))
            return files
    return read_image_folder(path, input.size)


def _train_stats(pool: ImagePool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation constants of the training split. A streamed pool is read in smaller
    chunks, so that peak memory does not depend on the folder's size; the sums then round in
    another order than in memory (last bits of mean/std) once it has over that many images."""
    from invnas.data.stream import STATS_CHUNK, ImageFiles

    if isinstance(pool, ImageFiles):
        return channel_stats(pool, chunk=STATS_CHUNK)
    return channel_stats(pool)


def _split_parts(
    parts: dict[str, ImagePool], config: DataConfig, seed: int
) -> dict[str, ImagePool]:
    """Carve whatever of val/test is missing out of ``all`` (or ``train``)."""
    if "all" in parts:
        pool = parts["all"]
        train, val, test = stratified_split(
            pool.labels, (config.val_fraction, config.test_fraction), seed
        )
        return {"train": pool.subset(train), "val": pool.subset(val), "test": pool.subset(test)}
    parts = dict(parts)
    missing = [s for s in ("val", "test") if s not in parts]
    if missing:
        fractions = {"val": config.val_fraction, "test": config.test_fraction}
        pool = parts["train"]
        rest, *carved = stratified_split(pool.labels, tuple(fractions[s] for s in missing), seed)
        parts["train"] = pool.subset(rest)
        for split, rows in zip(missing, carved, strict=True):
            parts[split] = pool.subset(rows)
    return parts


def _transforms(config: DataConfig, size: int) -> dict[str, BatchTransform | None]:
    if config.augment == "photo" and config.dataset not in PHOTO_DATASETS:
        raise ValueError(
            f"data.augment: 'photo' is for datasets of photographs ({', '.join(PHOTO_DATASETS)}), "
            f"not {config.dataset!r}; use 'none' or 'crop_flip'"
        )
    return split_transforms(config.augment, size, flip=config.dataset not in UNFLIPPABLE)


def load_splits(
    config: DataConfig,
    input: InputSpec,
    seed: int,
    root: str | Path | None = None,
    *,
    num_classes: int | None = None,
) -> DatasetSplits:
    """Read the dataset ``config`` names and split it by ``seed``.

    A relative ``config.path`` is taken from ``root`` (the space file's directory). Images are
    resized to ``input.size``; 1-channel data is replicated when ``input.channels`` is 3, any
    other channel mismatch is a ValueError. ``num_classes`` sets the class count of the
    synthetic dataset (default 10) and, for the others, is checked with
    :func:`check_num_classes`. Data with its own test split (CIFAR, the IDX datasets'
    ``t10k`` files, an ImageFolder ``test/``)
    keeps it, and the validation split is carved from training by ``config.val_fraction``;
    otherwise all three come from one pool by ``val_fraction`` / ``test_fraction``.
    ``config.augment``: ``crop_flip`` augments the training split with a random crop with
    padding, plus horizontal flips except for handwriting (``digits``, ``mnist``); ``photo``
    (photo datasets only) with random resized crops and flips, and evaluates the validation
    and test splits on their centre crops.
    """
    classes = num_classes if num_classes is not None else DEFAULT_SYNTHETIC_CLASSES
    parts = _split_parts(_read_parts(config, input, seed, root, classes), config, seed)
    data_channels = parts["train"].channels
    if input.channels != data_channels and not (data_channels == 1 and input.channels == 3):
        allowed = "1 or 3" if data_channels == 1 else str(data_channels)
        raise ValueError(
            f"input.channels: {input.channels} does not match the {data_channels}-channel images "
            f"of dataset {config.dataset!r}; use {allowed}"
        )
    mean, std = _train_stats(parts["train"])
    if input.channels != data_channels:
        mean, std = mean * input.channels, std * input.channels
    transforms = _transforms(config, input.size)

    def dataset(split: str) -> ImageTensorDataset:
        return ImageTensorDataset(
            parts[split],
            size=input.size,
            channels=input.channels,
            mean=mean,
            std=std,
            augment=transforms[split],
        )

    class_names = parts["train"].class_names
    splits = DatasetSplits(
        name=config.dataset,
        train=dataset("train"),
        val=dataset("val"),
        test=dataset("test"),
        num_classes=len(class_names),
        channels=input.channels,
        image_size=input.size,
        class_names=class_names,
        mean=mean,
        std=std,
    )
    log.info(
        "dataset %s: %d train, %d val, %d test, %d classes, %dx%dx%d",
        splits.name,
        len(splits.train),
        len(splits.val),
        len(splits.test),
        splits.num_classes,
        splits.channels,
        splits.image_size,
        splits.image_size,
    )
    if num_classes is not None and config.dataset != "synthetic":
        check_num_classes(splits, num_classes)
    return splits
