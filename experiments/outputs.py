"""Where the experiment scripts put their figures: ``<stem>.json`` (the numbers, committed under
experiments/results/) and ``<stem>.md`` (the table quoted in the READMEs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path


def write_outputs(result: dict, stem: str | Path, markdown: Callable[[dict], str]) -> None:
    """Write ``result`` as ``<stem>.json`` and its ``markdown`` table as ``<stem>.md``, and
    print the table."""
    out = Path(stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    out.with_suffix(".md").write_text(table)
    print(table)


def write_json_atomically(path: Path, value: object) -> None:
    """Write ``value`` as JSON to ``path`` through a ``.partial`` file renamed into place, so an
    interrupted experiment never leaves a half-written result behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(value))
    partial.replace(path)
