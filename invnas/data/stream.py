"""Image files decoded on demand: an ImageFolder larger than memory.

An :class:`ImageFiles` pool holds only the file list (paths as bytes in one numpy array) and
labels; :class:`~invnas.data.images.ImageTensorDataset` decodes a batch's files when the batch
is asked for, so DataLoader worker processes decode in parallel and memory does not grow with
the number of images. Splits, normalisation and batches equal those of the in-memory path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from invnas.data.folder import FileList, list_image_folder, load_image

# an ImageFolder whose decoded images would take more than this streams under data.loading: auto
STREAM_ABOVE_BYTES = 1 << 30
# images decoded at a time for the training statistics (in memory: 4096)
STATS_CHUNK = 256


@dataclass(frozen=True)
class ImageFiles:
    """A pool of image files, the streaming twin of :class:`~invnas.data.images.LabelledImages`:
    ``read(rows)`` decodes rows ``rows`` to uint8 ``(B, channels, size, size)``."""

    root: Path
    files: np.ndarray
    labels: Tensor
    class_names: tuple[str, ...]
    indices: Tensor
    channels: int
    size: int

    @classmethod
    def create(cls, listed: FileList, channels: int, size: int) -> ImageFiles:
        """Pool of every file of ``listed``, presented with ``channels`` (1 or 3) channels."""
        labels = torch.tensor(listed.labels, dtype=torch.long)
        return cls(
            listed.root,
            listed.files,
            labels,
            listed.class_names,
            torch.arange(len(labels)),
            channels,
            size,
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, rows: Tensor) -> ImageFiles:
        """The rows ``rows`` of this pool (their ``indices`` follow them)."""
        return ImageFiles(
            self.root,
            self.files[rows.numpy()],
            self.labels[rows],
            self.class_names,
            self.indices[rows],
            self.channels,
            self.size,
        )

    def read(self, rows: Tensor) -> Tensor:
        """Rows ``rows`` decoded and resized, uint8 ``(len(rows), channels, size, size)``."""
        mode = "L" if self.channels == 1 else "RGB"
        arrays = [
            load_image(self.root / self.files[row].decode(), self.size, mode)
            for row in rows.tolist()
        ]
        return torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(0, dtype=torch.uint8)


def list_image_files(root: Path, channels: int, size: int) -> dict[str, ImageFiles]:
    """The image files under ``root`` as streaming pools keyed like
    :func:`~invnas.data.folder.read_image_folder`'s. Images are decoded as RGB when
    ``channels`` is 3 (greyscale files replicated, as in memory) and as greyscale when 1."""
    return {
        split: ImageFiles.create(listed, channels, size)
        for split, listed in list_image_folder(root).items()
    }


def should_stream(pools: dict[str, ImageFiles]) -> bool:
    """Whether the decoded images would exceed :data:`STREAM_ABOVE_BYTES`."""
    decoded = sum(len(p) * p.channels * p.size * p.size for p in pools.values())
    return decoded > STREAM_ABOVE_BYTES
