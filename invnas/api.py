"""The Python API: the command line's jobs as functions returning typed records.

Example::

    import invnas

    run = invnas.search("search_spaces/quickstart.yaml", name="demo", trials=8)
    print(run.results.best)                  # BestTrial(trial_id=..., arch=..., metrics=...)
    invnas.export(run.path, "exported/demo")  # model.py, weights.pt, arch.yaml, metrics.json
    report = invnas.report(run.path)         # what ``invnas report --json`` prints
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from invnas.rundir import Run, open_run
from invnas.space import load_space, load_space_file

PathLike = str | os.PathLike

__all__ = ["export", "load_run", "load_space", "load_space_file", "report", "resume", "search"]


def search(
    space_file: PathLike,
    *,
    name: str | None = None,
    storage: PathLike | None = None,
    trials: int | None = None,
    seed: int | None = None,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    train_workers: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Run:
    """Run ``invnas search`` on ``space_file`` and return the finished (or failed) run.

    Keyword arguments are the command's flags; None keeps the space file's value. With
    ``progress`` the phases report on stderr as on the command line. Ctrl-C raises
    ``PhaseInterrupted`` (a KeyboardInterrupt) whose ``run_path`` :func:`resume` finishes.
    ValueError for bad input, before any run directory is made.
    """
    from invnas.pipeline.driver import SearchOptions, run_search

    options = SearchOptions(
        name=name,
        storage=None if storage is None else str(storage),
        address=address,
        resume=resume,
        seed=seed,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        train_workers=train_workers,
        trials=trials,
    )
    with _progress(progress):
        run, _ = run_search(space_file, options)
    return run.load()


def resume(
    run_dir: PathLike,
    *,
    address: str | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    progress: bool = True,
) -> Run:
    """Finish the interrupted run in ``run_dir`` (``invnas resume``); see :func:`search`."""
    from invnas.pipeline.driver import SearchOptions, resume_run

    options = SearchOptions(
        address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial
    )
    with _progress(progress):
        run, _ = resume_run(run_dir, options)
    return run.load()


def load_run(run_dir: PathLike) -> Run:
    """The typed record of the run in ``run_dir`` (ValueError if it is not a run)."""
    return open_run(run_dir).load()


def export(
    source: PathLike,
    out: PathLike,
    *,
    pick: str = "best",
    weights: str | None = None,
    force: bool = False,
) -> Path:
    """Write ``invnas export``'s five files for a run directory (``pick``: best, rank:N or
    trial:ID; ``weights``: retrained or inherited) or a fixed space file; returns ``out``."""
    from invnas.exporting import export_run, export_space

    source = Path(source)
    if source.is_dir():
        return export_run(source, pick, weights, out, force)
    if pick != "best" or weights is not None:
        raise ValueError(f"pick, weights: apply to a run directory; {source} is a space file")
    return export_space(source, out, force)


def report(run_dir: PathLike, *, plots: bool = True) -> dict[str, Any]:
    """What ``invnas report --json`` prints for ``run_dir``; with ``plots`` the pictures are
    written into the run directory (when matplotlib is installed)."""
    from invnas.reporting import load_report

    return load_report(run_dir, plots=plots)


@contextlib.contextmanager
def _progress(shown: bool):
    if not shown:
        yield
        return
    from rich.console import Console

    from invnas.pipeline.progress import ProgressDisplay, showing

    with showing(ProgressDisplay(Console(file=sys.stderr))):
        yield
