"""The IDX file format of MNIST and its descendants (Fashion-MNIST, KMNIST, EMNIST...).

A file is a big-endian header, then the data::

    0x00 0x00 <type> <ndim>        magic number; type 0x08 = unsigned bytes
    <size 0> ... <size ndim-1>     one 4-byte unsigned integer per dimension
    <data>                         prod(sizes) values, row-major

Images are ``idx3`` (count, rows, columns) and labels ``idx1`` (count). Files may be
gzipped (as published) or not; gzip is recognised by its content, not the file name.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def idx_magic(ndim: int) -> int:
    """The magic number of an unsigned-byte IDX file with ``ndim`` dimensions."""
    return (UNSIGNED_BYTE << 8) | ndim


@contextmanager
def _idx_stream(file: Path) -> Iterator[BinaryIO]:
    """``file`` opened for reading (through gzip if it is gzipped); read errors become a
    ValueError naming the file."""
    try:
        with file.open("rb") as probe:
            gzipped = probe.read(2) == _GZIP_MAGIC
        with gzip.open(file, "rb") if gzipped else file.open("rb") as stream:
            yield stream
    except (OSError, EOFError, zlib.error) as error:
        # gzip.BadGzipFile is an OSError; a gzip stream cut short raises EOFError
        raise ValueError(
            f"data.path: {file}: cannot read ({error}); expected an IDX file, gzipped or not "
            "(a truncated download? fetch it again)"
        ) from None


def _read_exactly(stream: BinaryIO, count: int, file: Path, what: str) -> bytes:
    data = stream.read(count)
    if len(data) < count:
        raise ValueError(
            f"data.path: {file}: truncated: the {what} has {len(data)} of {count} bytes; "
            "expected a complete IDX file (download it again)"
        )
    return data


def _parse_header(stream: BinaryIO, file: Path, ndim: int) -> tuple[int, ...]:
    magic = int.from_bytes(_read_exactly(stream, 4, file, "magic number"), "big")
    if magic != idx_magic(ndim):
        raise ValueError(
            f"data.path: {file}: magic number 0x{magic:08x} is not that of an IDX file of "
            f"unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''}; "
            f"expected 0x{idx_magic(ndim):08x}"
        )
    sizes = _read_exactly(stream, 4 * ndim, file, "header")
    return tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim))


def read_idx_shape(file: Path, ndim: int) -> tuple[int, ...]:
    """The shape an IDX file announces in its header (reads the header only)."""
    with _idx_stream(file) as stream:
        return _parse_header(stream, file, ndim)


def read_idx(file: Path, ndim: int) -> np.ndarray:
    """The uint8 array held in an IDX file with ``ndim`` dimensions (gzipped or not).

    Raises ValueError naming ``file`` for a wrong magic number (another type or dimension
    count, or not an IDX file), a truncated file, or bytes beyond the announced shape.
    """
    with _idx_stream(file) as stream:
        shape = _parse_header(stream, file, ndim)
        count = int(np.prod(shape, dtype=np.int64))
        data = _read_exactly(stream, count, file, f"data of shape {shape}")
        extra = len(stream.read(1))
    if extra:
        raise ValueError(
            f"data.path: {file}: holds more bytes than the shape {shape} its header announces; "
            "expected an unmodified IDX file"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).copy()


def write_idx(file: Path, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write a uint8 ``array`` as an IDX file, gzipped if ``compress`` (default: the name ends
    in ``.gz``). The inverse of :func:`read_idx`, for tests and converted datasets."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = idx_magic(array.ndim).to_bytes(4, "big")
    header += b"".join(int(size).to_bytes(4, "big") for size in array.shape)
    content = header + array.tobytes()
    if compress if compress is not None else file.suffix == ".gz":
        content = gzip.compress(content, mtime=0)
    file.write_bytes(content)
