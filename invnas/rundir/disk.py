"""Out of disk space while a run writes: one clear line naming the path and the free space,
whether the error was raised here (an OSError) or in a trial (its one-line error text).

Example::

    disk_full_message(OSError(errno.ENOSPC, "No space left on device", "runs/R/x"), run.path)
    # 'runs/R/x: out of disk space (No space left on device); 0 MB free there; ...'
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

# a full file system, an exhausted quota, the file size limit (ulimit -f)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_IN_TEXT = re.compile(
    r"\[Errno (?P<errno>\d+)\] (?P<strerror>[^:'\n]+)(?::\s*'(?P<filename>[^'\n]+)')?"
)
RESERVE_BYTES = 2 * 1024**2


def disk_full_message(error: BaseException | str, fallback: Path) -> str | None:
    """The one-line message for a full disk (``DISK_FULL_ERRNOS``) found in ``error``, its
    causes, or a trial's error text; None when it is no such error. ``fallback`` is the path
    named when the error names none (a write to an open file)."""
    found = _disk_error(error)
    if found is None:
        return None
    number, strerror, filename = found
    path = Path(filename) if filename else fallback
    hint = "raise the file size limit (ulimit -f)" if number == errno.EFBIG else "free disk space"
    return (
        f"{path}: out of disk space ({strerror}); {_free_mb(path)} MB free there; {hint}, "
        "then resume the run"
    )


def _disk_error(error: BaseException | str) -> tuple[int, str, str | None] | None:
    texts = []
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in DISK_FULL_ERRNOS:
            return link.errno, link.strerror or os.strerror(link.errno), link.filename
        texts.append(str(link))
    for match in _IN_TEXT.finditer("\n".join(texts)):
        if int(match["errno"]) in DISK_FULL_ERRNOS:
            return int(match["errno"]), match["strerror"].strip(), match["filename"]
    return None


def _chain(error: BaseException | str) -> list[BaseException | str]:
    """``error`` and what caused it (a Ray task error's ``cause``, then Python's chain)."""
    links: list[BaseException | str] = []
    while error is not None and not any(error is link for link in links):
        links.append(error)
        if not isinstance(error, BaseException):
            break
        cause = getattr(error, "cause", None)
        error = cause if isinstance(cause, BaseException) else error.__cause__ or error.__context__
    return links


def _free_mb(path: Path) -> int:
    for directory in (path, *path.parents):
        try:
            return shutil.disk_usage(directory).free // 1024**2
        except OSError:
            continue
    return 0


def reserve_space(path: Path, size: int = RESERVE_BYTES) -> None:
    """Hold ``size`` bytes of the disk in the file ``path`` (see :func:`release_space`)."""
    with open(path, "wb") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except (AttributeError, OSError):  # a file system without fallocate
            handle.write(b"\0" * size)


def release_space(path: Path) -> None:
    """Give back what :func:`reserve_space` held, so that a run on a full disk can still
    record how it ended."""
    path.unlink(missing_ok=True)
