"""The Optuna journal of a run (``optuna.journal``: one JSON operation per line), checked before
the search opens it: a torn last line (a write cut short by a crash) is dropped, with a backup
of the file as it was; anything worse is a clear error, never a hang."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def _is_operation(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def repair_journal(path: Path) -> bool:
    """Drop a torn last line of the journal at ``path``, keeping a copy of the damaged file as
    ``optuna.journal.torn``; True when it did. ValueError naming the file and line when a line
    before the last is damaged (the study cannot be trusted then). A missing file is fine."""
    if not path.is_file():
        return False
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last complete operation
    for number, line in enumerate(lines[:-1], start=1):
        if not _is_operation(line):
            raise ValueError(
                f"{path}: line {number} is not an Optuna journal operation (damaged in the "
                "middle, not just at its end); restore the file from a backup or start a new run"
            )
    if not lines:
        return False
    if _is_operation(lines[-1]):
        if not data.endswith(b"\n"):  # complete, but for the newline Optuna appends next
            with path.open("ab") as handle:
                handle.write(b"\n")
        return False
    backup = path.with_name(path.name + ".torn")
    shutil.copy2(path, backup)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(b"".join(line + b"\n" for line in lines[:-1]))
    partial.replace(path)
    log.warning(
        "%s: dropped a torn last line (%d bytes) left by an interrupted write; the damaged file "
        "is kept as %s",
        path,
        len(lines[-1]),
        backup.name,
    )
    return True
