"""The end-of-run summary of ``invnas search``: the same tables as ``invnas report`` (phases,
Pareto front, retrained models, rank correlation, failures), without the pictures."""

from __future__ import annotations

from pathlib import Path

from rich.console import Group, RenderableType
from rich.text import Text

from invnas.report import build_report, report_renderable
from invnas.space.spec import SearchSpace


def run_succeeded(results: dict) -> bool:
    """True when every phase of the run completed."""
    return all(p["status"] == "completed" for p in results["phases"].values())


def summary(results: dict, run_path: str | Path, space: SearchSpace) -> RenderableType:
    """Everything printed at the end of ``invnas search``."""
    stage_names = [stage.name for stage in space.stages]
    report = build_report(Path(run_path), results, stage_names)
    return Group(report_renderable(report), Text(f"run directory: {run_path}"))
