"""The run directory: the only state shared by the search phases, resume, report and export.

Layout (``runs/NAME/``)::

    space.yaml      verbatim copy of the space file the run was started with
    run.json        how it was started (:class:`~invnas.rundir.info.RunInfo`)
    supernet/       Ray Tune experiment of phase 1 (checkpoints hold supernet.pt)
    search/         Ray Tune experiment of phase 2 (one trial per architecture)
    retrain/        Ray Tune experiment of phase 3 (checkpoints hold model.pt)
    optuna.journal  Optuna journal of the search study
    weights/        supernet.pt and retrain/<rank>.pt, stable copies for downstream use
    results.json    what the run found (:class:`~invnas.rundir.records.RunResults`), rewritten
                    atomically
    driver.json     host and PID of the process running it, while one does
    .disk-reserve   disk space held while a driver runs, given back to record a full disk
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invnas.config import RunConfig
from invnas.rundir.disk import release_space, reserve_space
from invnas.rundir.info import RunInfo
from invnas.rundir.records import (
    Objective,
    Phases,
    PhaseStatus,
    RetrainPhase,
    RunResults,
    SearchPhase,
    SupernetPhase,
)
from invnas.space.loader import SpaceFile

PHASES = ("supernet", "search", "retrain")


@dataclass(frozen=True)
class Driver:
    """The process driving a run (``driver.json``): its host, PID and the session directory
    of the local Ray it started (None when it joined a cluster)."""

    host: str
    pid: int
    ray_session: str | None = None

    @property
    def alive(self) -> bool:
        """True while the process runs (or runs on another host, which cannot be checked)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class Run:
    """A run as its directory records it: where it is, how it was started, what it found."""

    path: Path
    info: RunInfo
    results: RunResults


class RunDir:
    """Paths of one run directory and atomic, typed access to its JSON files."""

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
    def create(cls, path: str | os.PathLike, space_text: str, info: RunInfo) -> RunDir:
        """Make a new run directory holding ``space.yaml`` and ``run.json``; ValueError if
        ``path`` already holds anything."""
        run = cls(path)
        if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
            raise ValueError(
                f"{run.path}: run directory exists; use --resume to continue it or choose "
                "another --name"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        run.space_file.write_text(space_text)
        _write_json_atomic(run.run_file, info.to_json())
        return run

    def read_info(self) -> RunInfo:
        """The parsed ``run.json``; ValueError if it is missing or damaged."""
        return RunInfo.from_json(_read_json(self.run_file, "the run was not created"), "run.json")

    def read_results(self) -> RunResults:
        """The parsed ``results.json``; ValueError if it is missing, not JSON, or not results."""
        data = _read_json(self.results_file, "the run has not started")
        return RunResults.from_json(data, str(self.results_file))

    @property
    def driver_file(self) -> Path:
        return self.path / "driver.json"

    @property
    def reserve_file(self) -> Path:
        return self.path / ".disk-reserve"

    @contextlib.contextmanager
    def driving(self, ray_session: str | None = None) -> Iterator[None]:
        """Record this process (and the session directory of the local Ray it started) as the
        run's driver while the block runs, holding some disk space for
        :meth:`release_reserve`."""
        record = Driver(socket.gethostname(), os.getpid(), ray_session)
        _write_json_atomic(self.driver_file, dataclasses.asdict(record))
        try:
            reserve_space(self.reserve_file)
            yield
        finally:
            self.release_reserve()
            self.driver_file.unlink(missing_ok=True)

    def release_reserve(self) -> None:
        """Give back the disk space held while driving, so that a run whose disk is full can
        still record how it ended."""
        release_space(self.reserve_file)

    def read_driver(self) -> Driver | None:
        """The driver recorded in ``driver.json`` (None when there is none or it is damaged):
        the live one, or one that died without removing it (kill -9, power loss)."""
        try:
            record = json.loads(self.driver_file.read_text())
            session = record.get("ray_session")
            return Driver(str(record["host"]), int(record["pid"]), session and str(session))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def driver_alive(self) -> bool:
        """True while a process drives the run: its driver.json names a live process (or one
        on another host, which cannot be checked from here)."""
        driver = self.read_driver()
        return driver is not None and driver.alive

    def load(self) -> Run:
        """The whole typed record of this run (ValueError if a file is missing or damaged)."""
        return Run(self.path, self.read_info(), self.read_results())

    def write_results(self, results: RunResults) -> None:
        """Replace ``results.json`` atomically (a reader never sees a partial file)."""
        _write_json_atomic(self.results_file, results.to_json())

    def load_space_file(self) -> SpaceFile:
        """The run's search space and its settings as its ``space.yaml`` copy gives them
        (without the command-line overrides; see :meth:`settings`)."""
        from invnas.space.loader import load_space_file

        return load_space_file(self.space_file)

    def settings(self) -> SpaceFile:
        """The run's space and the settings it computes with: ``space.yaml`` with the
        command-line overrides recorded in ``run.json``."""
        space, config = self.load_space_file()
        return SpaceFile(space, self.read_info().overrides.apply(config))


def open_run(path: str | os.PathLike) -> RunDir:
    """An existing run directory; ValueError naming what is missing when it is not one."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise ValueError(f"{run.path}: not a directory; expected an invnas run directory")
    missing = [p.name for p in (run.space_file, run.run_file) if not p.is_file()]
    if missing:
        raise ValueError(f"{run.path}: not an invnas run directory; missing {', '.join(missing)}")
    return run


def empty_results(name: str, config: RunConfig, objectives: list[Objective]) -> RunResults:
    """The results of a run whose phases have not started."""
    pending = PhaseStatus.PENDING
    return RunResults(
        name=name,
        seed=config.seed,
        phases=Phases(
            supernet=SupernetPhase(pending, epochs=config.supernet.epochs),
            search=SearchPhase(
                pending, trials_requested=config.search.trials, sampler=config.search.sampler
            ),
            retrain=RetrainPhase(pending, mode=config.retrain.mode),
        ),
        objectives=tuple(objectives),
    )


def _read_json(path: Path, missing_means: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; {missing_means}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as any file the user creates (mkstemp gives 0600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
