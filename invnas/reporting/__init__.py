"""invnas report: what a search found (tables, pictures) and whether its supernet's ranking can
be trusted (rank correlation with stand-alone accuracy).

``build_report`` turns a run's results into one dict; ``report_tables`` renders it
with rich, ``write_plots`` draws it with matplotlib (optional), and :func:`report_run` does all
three for ``invnas report RUN_DIR``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rich.console import Group, RenderableType
from rich.text import Text

from invnas.reporting.content import build_report
from invnas.reporting.correlation import average_ranks, kendall_tau_b, spearman_rho
from invnas.reporting.hypervolume import hypervolume
from invnas.reporting.plots import PLOT_HINT, matplotlib_available, write_plots
from invnas.reporting.tables import report_renderable
from invnas.rundir import RunDir, RunResults, open_run

__all__ = [
    "PLOT_HINT",
    "average_ranks",
    "build_report",
    "hypervolume",
    "kendall_tau_b",
    "load_report",
    "report_renderable",
    "report_run",
    "run_summary",
    "spearman_rho",
    "write_plots",
]

log = logging.getLogger(__name__)


def _stage_names(run) -> list[str] | None:
    try:
        return [stage.name for stage in run.load_space_file().space.stages]
    except (ValueError, OSError) as error:  # a damaged space copy only costs the stage names
        log.warning("%s: stage names unavailable (%s)", run.space_file, error)
        return None


def load_report(run_dir: str | os.PathLike, plots: bool = True) -> dict:
    """The report of the run in ``run_dir``; with ``plots`` the pictures are written into the
    run directory and listed under ``plots`` (or ``plot_hint`` says how to get them)."""
    run = open_run(run_dir)
    results = run.read_results()
    report = build_report(run.path, results, _stage_names(run))
    report["driver"] = "live" if run.driver_alive() else "none"
    if plots:
        if matplotlib_available():
            report["plots"] = write_plots(report, results, run.path)
            report["plot_hint"] = None
        else:
            report["plots"] = {}
            report["plot_hint"] = PLOT_HINT
    return report


def run_summary(results: RunResults, run: RunDir) -> RenderableType:
    """What ``invnas search`` prints at its end: the report's tables (phases, Pareto front,
    retrained models, rank correlation, failures), without the pictures."""
    report = build_report(run.path, results, _stage_names(run))
    return Group(report_renderable(report), Text(f"run directory: {run.path}"))


def report_run(run_dir: str | os.PathLike, *, as_json: bool = False, plots: bool = True) -> None:
    """Print the report of ``run_dir``: rich tables, or one JSON object with ``as_json``."""
    report = load_report(Path(run_dir), plots=plots)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console.width = 160  # pipes and logs: no need to squeeze into 80 columns
    console.print(report_renderable(report), highlight=False)
