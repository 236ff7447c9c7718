"""Stopping a run on a signal: SIGINT, SIGTERM and SIGHUP all stop it the same clean way.

While a phase's Tune experiment runs, a signal asks Tune to stop gracefully (Tune's SIGUSR1
handler: it snapshots the experiment and returns), so the phase is recorded as interrupted and
``invnas resume`` finishes it; between phases the signal raises KeyboardInterrupt. Which signal
arrived decides the exit code (128 + its number: 130, 143, 129).

Example::

    with catching_signals() as stop:
        run_phases()
    if stop.received: ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class StopRequest:
    """The stop signals received while :func:`catching_signals` was active, first one first."""

    received: list[int] = field(default_factory=list)
    in_tune: bool = False

    @property
    def exit_code(self) -> int:
        """128 + the first signal's number (130 for SIGINT, when none was recorded)."""
        return 128 + (self.received[0] if self.received else signal.SIGINT)


_current: StopRequest | None = None


def stop_requested() -> bool:
    """True when a stop signal arrived during the current run."""
    return _current is not None and bool(_current.received)


@contextlib.contextmanager
def catching_signals() -> Iterator[StopRequest]:
    """Handle SIGINT/SIGTERM/SIGHUP as a request to stop (see the module docstring); the
    previous handlers come back on exit. Outside the main thread nothing is installed."""
    global _current
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def on_signal(signum: int, frame: object) -> None:
        request.received.append(signum)
        if request.in_tune:
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune: snapshot, then return early
        else:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    _current = request
    try:
        yield request
    finally:
        _current = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def tune_stops_gracefully() -> Iterator[None]:
    """Mark a Tune experiment as running, so that a stop signal asks Tune to stop rather than
    raising in the middle of its loop (Tune's own SIGINT handler is turned off meanwhile: it
    would take SIGINT from ours)."""
    if _current is None:
        yield
        return
    previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    _current.in_tune = True
    try:
        yield
    finally:
        _current.in_tune = False
        if previous is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous
