"""The run directory: the only state shared by the search phases, resume, report and export.

Layout (``runs/NAME/``)::

    space.yaml      verbatim copy of the space file the run was started with
    run.json        name, created, invnas version, seed, command-line overrides, storage, address
    supernet/       Ray Tune experiment of phase 1 (checkpoints hold supernet.pt)
    search/         Ray Tune experiment of phase 2 (one trial per architecture)
    retrain/        Ray Tune experiment of phase 3 (checkpoints hold model.pt)
    optuna.journal  Optuna journal of the search study
    weights/        supernet.pt and retrain/<rank>.pt, stable copies for downstream use
    results.json    the run's summary (see :func:`empty_results`), rewritten atomically
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from invnas.config import RunConfig
from invnas.space.loader import SpaceFile
from invnas.space.spec import SearchSpace

PHASES = ("supernet", "search", "retrain")


class RunDir:
    """Paths of one run directory and atomic access to its JSON files."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def space_file(self) -> Path:
        return self.path / "space.yaml"

    @property
    def run_file(self) -> Path:
        return self.path / "run.json"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def journal_file(self) -> Path:
        return self.path / "optuna.journal"

    @property
    def weights_dir(self) -> Path:
        return self.path / "weights"

    @property
    def supernet_weights(self) -> Path:
        return self.weights_dir / "supernet.pt"

    def retrain_weights(self, rank: int) -> Path:
        """Stable copy of the retrained model of ``rank`` (1 = best)."""
        return self.weights_dir / "retrain" / f"{rank}.pt"

    def experiment_dir(self, phase: str) -> Path:
        """The Ray Tune experiment directory of ``phase`` (supernet, search or retrain)."""
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r}: not a phase; expected one of {list(PHASES)}")
        return self.path / phase

    @property
    def supernet_dir(self) -> Path:
        return self.experiment_dir("supernet")

    @property
    def search_dir(self) -> Path:
        return self.experiment_dir("search")

    @property
    def retrain_dir(self) -> Path:
        return self.experiment_dir("retrain")

    @classmethod
    def create(cls, path: str | os.PathLike, space_text: str, run_info: dict) -> RunDir:
        """Make a new run directory holding ``space.yaml``, ``run.json`` and an initial
        ``results.json``; ValueError if ``path`` already holds anything."""
        run = cls(path)
        if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
            raise ValueError(
                f"{run.path}: run directory exists; use --resume to continue it or choose "
                "another --name"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        run.space_file.write_text(space_text)
        _write_json_atomic(run.run_file, run_info)
        return run

    def read_run_info(self) -> dict:
        return json.loads(self.run_file.read_text())

    def write_run_info(self, info: dict) -> None:
        _write_json_atomic(self.run_file, info)

    def read_results(self) -> dict:
        """The parsed ``results.json``; ValueError if it is missing or not JSON."""
        try:
            return json.loads(self.results_file.read_text())
        except FileNotFoundError:
            raise ValueError(f"{self.results_file}: missing; the run has not started") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.results_file}: not valid JSON ({error})") from None

    def write_results(self, results: dict) -> None:
        """Replace ``results.json`` atomically (a reader never sees a partial file)."""
        _write_json_atomic(self.results_file, results)

    def load_space(self) -> SearchSpace:
        """The run's search space, read from its ``space.yaml`` copy."""
        return self.load_space_file().space

    def load_space_file(self) -> SpaceFile:
        """The run's search space and its settings as recorded in ``space.yaml`` (without the
        command-line overrides of run.json)."""
        from invnas.space.loader import load_space_file

        return load_space_file(self.space_file)


def open_run(path: str | os.PathLike) -> RunDir:
    """An existing run directory; ValueError naming what is missing when it is not one."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise ValueError(f"{run.path}: not a directory; expected an invnas run directory")
    missing = [p.name for p in (run.space_file, run.run_file) if not p.is_file()]
    if missing:
        raise ValueError(f"{run.path}: not an invnas run directory; missing {', '.join(missing)}")
    return run


def empty_results(name: str, config: RunConfig) -> dict[str, Any]:
    """The ``results.json`` of a run whose phases have not started."""
    from invnas.search.objectives import objectives_of

    search = config.search
    return {
        "name": name,
        "seed": config.seed,
        "space_file": "space.yaml",
        "phases": {
            "supernet": {
                "status": "pending",
                "epochs": config.supernet.epochs,
                "val_accuracy": None,
                "weights": None,
                "error": None,
            },
            "search": {
                "status": "pending",
                "trials_requested": search.trials,
                "trials_completed": 0,
                "trials_failed": 0,
                "sampler": search.sampler,
                "error": None,
            },
            "retrain": {"status": "pending", "mode": config.retrain.mode, "error": None},
        },
        "objectives": [o.to_dict() for o in objectives_of(search)],
        "trials": [],
        "pareto": [],
        "best": None,
        "retrained": [],
        "failures": [],
    }


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
