"""ImageFolder-style directories: ``root/<class>/<image>``, optionally under ``train/``, ``val/``
and ``test/``. Images are read with Pillow and resized to the space's input size on load."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from invnas.data.images import LabelledImages

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "F"})

LAYOUT_HINT = (
    "expected root/<class>/<image>.png|jpg|... or root/train/<class>/<image> "
    "(with optional root/val/ and root/test/)"
)


def _visible_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def find_split_dirs(root: Path) -> dict[str, Path]:
    """``{"all": root}`` for a plain class layout, else the split subdirectories present."""
    if not root.exists():
        raise ValueError(f"data.path: {root} does not exist; {LAYOUT_HINT}")
    if not root.is_dir():
        raise ValueError(f"data.path: {root} is not a directory; {LAYOUT_HINT}")
    found = {}
    for split, names in SPLIT_DIRS.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    if not found:
        return {"all": root}
    if "train" not in found:
        raise ValueError(
            f"data.path: {root} has {', '.join(p.name + '/' for p in found.values())} but no "
            f"train/; {LAYOUT_HINT}"
        )
    return found


def load_image(file: Path, size: int, mode: str | None = None) -> np.ndarray:
    """``file`` as uint8 ``(C, size, size)`` (bilinear resize). ``mode`` ``L`` or ``RGB`` forces
    1 or 3 channels; by default greyscale files give 1 channel and the others 3. Raises
    ValueError naming the file if Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            mode = mode or ("L" if image.mode in _GREY_MODES else "RGB")
            converted = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(converted, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"data.path: {file}: cannot read image ({error})") from error
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


@dataclass(frozen=True)
class FileList:
    """The images of one split directory, in file order: paths relative to ``root`` (as bytes in
    one numpy array, compact and shared by forked DataLoader workers) and their labels."""

    root: Path
    files: np.ndarray
    labels: list[int]
    class_names: tuple[str, ...]

    def path(self, row: int) -> Path:
        return self.root / self.files[row].decode()


def _list_classes(directory: Path, class_names: tuple[str, ...] | None) -> FileList:
    class_dirs = _visible_dirs(directory)
    if not class_dirs:
        raise ValueError(f"data.path: {directory} holds no class directories; {LAYOUT_HINT}")
    names = class_names if class_names is not None else tuple(d.name for d in class_dirs)
    files: list[bytes] = []
    labels: list[int] = []
    for class_dir in class_dirs:
        if class_dir.name not in names:
            raise ValueError(
                f"data.path: {class_dir}: class {class_dir.name!r} is not one of the training "
                f"classes ({', '.join(names)})"
            )
        found = _image_files(class_dir)
        if not found:
            raise ValueError(
                f"data.path: {class_dir} holds no images; expected files ending in "
                f"{', '.join(sorted(IMAGE_SUFFIXES))}"
            )
        files.extend(str(f.relative_to(directory)).encode() for f in found)
        labels.extend([names.index(class_dir.name)] * len(found))
    return FileList(directory, np.array(files, dtype=np.bytes_), labels, names)


def list_image_folder(root: Path) -> dict[str, FileList]:
    """The image files under ``root``, keyed ``all`` (no split directories) or ``train`` /
    ``val`` / ``test`` (those present); nothing is decoded. Classes are the sorted directory
    names of the training part; labels are their positions."""
    split_dirs = find_split_dirs(root)
    first = "all" if "all" in split_dirs else "train"
    lists = {first: _list_classes(split_dirs[first], None)}
    for split, directory in split_dirs.items():
        if split != first:
            lists[split] = _list_classes(directory, lists[first].class_names)
    return lists


def read_image_folder(root: Path, size: int) -> dict[str, LabelledImages]:
    """The images under ``root`` as uint8 ``(N, C, size, size)`` pools, keyed as
    :func:`list_image_folder` does. C is 1 when every image is greyscale, else 3 (greyscale
    images are then replicated)."""
    lists = list_image_folder(root)
    read = {
        split: [load_image(listed.path(row), size) for row in range(len(listed.labels))]
        for split, listed in lists.items()
    }
    channels = max(a.shape[0] for arrays in read.values() for a in arrays)
    pools = {}
    for split, arrays in read.items():
        images = torch.from_numpy(
            np.stack([np.broadcast_to(a, (channels, size, size)) for a in arrays])
        )
        labels = torch.tensor(lists[split].labels)
        pools[split] = LabelledImages.create(images, labels, lists[split].class_names)
    names = next(iter(lists.values())).class_names
    log.info(
        "read image folder %s: %d classes, %s",
        root,
        len(names),
        ", ".join(f"{len(p)} {split}" for split, p in pools.items()),
    )
    return pools
