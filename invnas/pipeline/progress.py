"""What the user sees while a search runs: phase, work done of total, failures, best so far,
elapsed time and ETA; a live rich display on a terminal, plain lines otherwise.

The Tune callback (:class:`TuneProgress`) holds no display itself (Tune pickles its callbacks
with the experiment): it forwards to the display made current with :func:`showing`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ray.tune import Callback
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger(__name__)


@dataclass
class PhaseState:
    """Progress of one phase as last reported."""

    phase: str
    total: int
    unit: str
    done: int = 0
    failed: int = 0
    best: str = ""
    started: float = field(default_factory=time.monotonic)
    done_at_start: int | None = None

    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the pace of this session (None before any pace)."""
        base = self.done_at_start or 0
        if self.done <= base:
            return None
        pace = (time.monotonic() - self.started) / (self.done - base)
        return pace * max(self.total - self.done, 0)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressDisplay:
    """Plain progress lines on ``console`` (the display used when it is not a terminal)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.phases: dict[str, PhaseState] = {}

    def start_phase(self, phase: str, total: int, unit: str) -> None:
        self.phases[phase] = PhaseState(phase, total, unit)
        self.console.print(f"{phase}: started ({total} {unit})", highlight=False)

    def update(self, phase: str, done: int, failed: int = 0, best: str = "") -> None:
        state = self.phases.get(phase)
        if state is None:
            return
        if state.done_at_start is None:
            state.done_at_start = max(done - 1, 0)
        changed = (done, failed, best) != (state.done, state.failed, state.best)
        state.done, state.failed, state.best = done, failed, best or state.best
        if changed:
            self._show(state)

    def end_phase(self, phase: str, status: str) -> None:
        state = self.phases.get(phase)
        elapsed = time.monotonic() - state.started if state else 0.0
        self.console.print(f"{phase}: {status} after {_clock(elapsed)}", highlight=False)

    def close(self) -> None:
        pass

    def _show(self, state: PhaseState) -> None:
        failed = f", {state.failed} failed" if state.failed else ""
        best = f", best {state.best}" if state.best else ""
        elapsed = time.monotonic() - state.started
        self.console.print(
            f"{state.phase}: {state.done}/{state.total} {state.unit}{failed}{best}, "
            f"elapsed {_clock(elapsed)}, eta {_clock(state.eta_s())}",
            highlight=False,
        )


class LiveProgressDisplay(ProgressDisplay):
    """A rich progress bar per phase (for terminals)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self._progress = Progress(
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TextColumn("[red]{task.fields[failed]}"),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._progress.start()

    def start_phase(self, phase: str, total: int, unit: str) -> None:
        self.phases[phase] = PhaseState(phase, total, unit)
        self._tasks[phase] = self._progress.add_task(
            phase, total=total, unit=unit, failed="", best=""
        )

    def update(self, phase: str, done: int, failed: int = 0, best: str = "") -> None:
        if phase not in self._tasks:
            return
        state = self.phases[phase]
        state.done, state.failed, state.best = done, failed, best or state.best
        self._progress.update(
            self._tasks[phase],
            completed=done,
            failed=f"{failed} failed" if failed else "",
            best=f"best {state.best}" if state.best else "",
        )

    def end_phase(self, phase: str, status: str) -> None:
        if phase in self._tasks:
            self._progress.update(self._tasks[phase], description=f"{phase} {status}")
            self._progress.stop_task(self._tasks[phase])

    def close(self) -> None:
        self._progress.stop()


_current: ProgressDisplay | None = None


@contextlib.contextmanager
def showing(display: ProgressDisplay | None) -> Iterator[ProgressDisplay | None]:
    """Make ``display`` the one progress callbacks report to, for the body's duration."""
    global _current
    previous, _current = _current, display
    try:
        yield display
    finally:
        _current = previous
        if display is not None:
            display.close()


def current_display() -> ProgressDisplay | None:
    return _current


class TuneProgress(Callback):
    """Feeds a phase's Tune events to the current display.

    ``count`` is ``"trials"`` (done = trials finished without error) or ``"iterations"`` (done
    = the last reported ``training_iteration``, e.g. epochs of the single supernet trial).
    ``best_metric`` / ``best_mode`` pick the best-so-far value shown.
    """

    def __init__(self, phase: str, count: str, best_metric: str, best_mode: str = "max"):
        self.phase = phase
        self.count = count
        self.best_metric = best_metric
        self.best_mode = best_mode
        self._best: float | None = None
        self._iteration = 0
        self._completed: set[str] = set()

    def _best_text(self) -> str:
        if self._best is None:
            return ""
        if self.best_metric.endswith("accuracy"):
            return f"{self.best_metric} {self._best:.4f}"
        return f"{self.best_metric} {self._best:g}"

    def _note(self, result: dict | None) -> None:
        value = (result or {}).get(self.best_metric)
        if isinstance(value, (int, float)):
            if self._best is None or (
                value > self._best if self.best_mode == "max" else value < self._best
            ):
                self._best = float(value)

    def _refresh(self, trials: list) -> None:
        display = current_display()
        if display is None:
            return
        for trial in trials:  # trials restored from a snapshot report no new results
            if trial.status == "TERMINATED":
                self._note(trial.last_result)
        failed = sum(1 for t in trials if t.status == "ERROR")
        if self.count == "iterations":
            done = self._iteration
        else:
            # on_trial_complete comes before Tune marks the trial TERMINATED
            done = len(self._completed | {t.trial_id for t in trials if t.status == "TERMINATED"})
        display.update(self.phase, done, failed, self._best_text())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._note(result)
        self._iteration = max(self._iteration, int(result.get("training_iteration", 0)))
        if self.count == "iterations":
            self._refresh(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._note(trial.last_result)
        self._completed.add(trial.trial_id)
        self._refresh(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._refresh(trials)
