"""CIFAR-10 / CIFAR-100 read from a local copy of the standard Python-pickle archive.

The archives (``cifar-10-python.tar.gz``, ``cifar-100-python.tar.gz``) extract to a directory of
pickled dicts: ``data`` is a ``(N, 3072)`` uint8 array of 32x32 images stored as three colour
planes, next to the labels. Nothing is downloaded: point ``data.path`` at the extracted
directory or at its parent.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from invnas.data.images import LabelledImages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CifarLayout:
    """File names and pickle keys of one CIFAR variant."""

    title: str
    directory: str
    archive: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


CIFAR_LAYOUTS = {
    "cifar10": CifarLayout(
        title="CIFAR-10",
        directory="cifar-10-batches-py",
        archive="cifar-10-python.tar.gz",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        num_classes=10,
    ),
    "cifar100": CifarLayout(
        title="CIFAR-100",
        directory="cifar-100-python",
        archive="cifar-100-python.tar.gz",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        num_classes=100,
    ),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a data file must not run code."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return allowed[(module, name)]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import codecs

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    found: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for package in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found[(package, "_reconstruct")] = multiarray._reconstruct
        found[(package, "scalar")] = multiarray.scalar
    return found


def find_cifar_dir(path: Path, variant: str) -> Path:
    """The directory holding the pickles: ``path`` itself or ``path/<archive dir>``."""
    layout = CIFAR_LAYOUTS[variant]
    expected = (
        f"expected the extracted {layout.archive} ({path / layout.directory}/, or a directory "
        f"holding {', '.join(_short_file_list(layout))})"
    )
    if not path.exists():
        raise ValueError(f"data.path: {path} does not exist; {expected}")
    for candidate in (path / layout.directory, path):
        if candidate.is_dir() and any((candidate / f).is_file() for f in layout.files):
            missing = [f for f in layout.files if not (candidate / f).is_file()]
            if missing:
                raise ValueError(
                    f"data.path: {candidate} is an incomplete {layout.title} directory: "
                    f"missing {', '.join(missing)}; {expected}"
                )
            return candidate
    hint = ""
    if (path / layout.archive).is_file() or path.name == layout.archive:
        hint = f" (found the archive itself: extract it with `tar xzf {layout.archive}`)"
    raise ValueError(f"data.path: {path}: no {layout.title} data found{hint}; {expected}")


def _short_file_list(layout: CifarLayout) -> list[str]:
    if len(layout.train_files) > 1:
        first, last = layout.train_files[0], layout.train_files[-1]
        return [f"{first}..{last[-1]}", *layout.test_files, layout.meta_file]
    return list(layout.files)


def _load_pickle(file: Path) -> dict:
    try:
        with file.open("rb") as stream:
            content = _ArrayUnpickler(stream, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"data.path: {file}: not a CIFAR pickle ({error})") from error
    if not isinstance(content, dict):
        raise ValueError(f"data.path: {file}: not a CIFAR pickle (holds {type(content).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}


def _read_batches(directory: Path, files: tuple[str, ...], layout: CifarLayout):
    images, labels = [], []
    label_key = layout.label_key.decode()
    for name in files:
        file = directory / name
        content = _load_pickle(file)
        if "data" not in content or label_key not in content:
            raise ValueError(
                f"data.path: {file}: missing the 'data' or '{label_key}' entry of a "
                f"{layout.title} batch"
            )
        data = np.asarray(content["data"], dtype=np.uint8)
        batch_labels = np.asarray(content[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch_labels) != len(data):
            raise ValueError(
                f"data.path: {file}: 'data' has shape {data.shape} for {len(batch_labels)} "
                "labels; expected (N, 3072) uint8 with one label per row"
            )
        if len(batch_labels) and (
            batch_labels.min() < 0 or batch_labels.max() >= layout.num_classes
        ):
            raise ValueError(
                f"data.path: {file}: labels outside 0..{layout.num_classes - 1} for {layout.title}"
            )
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.from_numpy(batch_labels))
    return torch.cat(images), torch.cat(labels)


def _class_names(directory: Path, layout: CifarLayout) -> tuple[str, ...]:
    meta = _load_pickle(directory / layout.meta_file)
    names = meta.get(layout.names_key.decode())
    if names is None or len(names) != layout.num_classes:
        log.warning(
            "%s: no usable class names; numbering the classes", directory / layout.meta_file
        )
        return tuple(str(i) for i in range(layout.num_classes))
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_cifar(path: Path, variant: str) -> dict[str, LabelledImages]:
    """The official ``train`` and ``test`` parts of CIFAR-10 (``variant="cifar10"``) or
    CIFAR-100 (``"cifar100"``, fine labels) as uint8 images ``(N, 3, 32, 32)``."""
    layout = CIFAR_LAYOUTS[variant]
    directory = find_cifar_dir(path, variant)
    names = _class_names(directory, layout)
    parts = {}
    for part, files in (("train", layout.train_files), ("test", layout.test_files)):
        images, labels = _read_batches(directory, files, layout)
        parts[part] = LabelledImages.create(images, labels, names)
    log.info(
        "read %s from %s: %d train, %d test images",
        layout.title,
        directory,
        len(parts["train"]),
        len(parts["test"]),
    )
    return parts
