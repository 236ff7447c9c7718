"""Typed records of a run: what ``results.json`` holds, read and written only through these.

Every record is a frozen dataclass; :meth:`RunResults.to_json` gives the JSON layout and
:meth:`RunResults.from_json` reads it back, checking every field and naming the first one that
is wrong. ``schema_version`` is written into the file; a file without one was written by
invnas 0.1 (schema 1, the same layout) and loads as such.

Example::

    results = RunResults.from_json(json.loads(text), source="runs/R/results.json")
    results.phases.search.status is PhaseStatus.COMPLETED
    best = results.best.arch if results.best else None
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Union

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: invnas 0.1, written without a schema_version


class PhaseStatus(str, enum.Enum):
    """Where a phase stands; only ``COMPLETED`` phases are skipped on resume."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


TrialStatus = Literal["completed", "failed"]
PhaseName = Literal["supernet", "search", "retrain"]


@dataclass(frozen=True)
class Objective:
    """One objective of the search: a trial metric and whether to maximise or minimise it."""

    metric: str
    mode: Literal["max", "min"]

    def better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than ``b``."""
        return a > b if self.mode == "max" else a < b


@dataclass(frozen=True)
class TrainingScale:
    """How a training phase ran: ``workers`` data-parallel workers (1: a single process) on
    ``nodes`` (their addresses), training ``images_per_s`` images per second together in its
    last epoch (the mean over the trials of a phase with several)."""

    workers: int
    nodes: tuple[str, ...] = ()
    images_per_s: float | None = None

    @classmethod
    def of_metrics(cls, metrics: dict) -> TrainingScale:
        """The scale a trial's last reported metrics (``workers``, ``nodes``, ``images_per_s``)
        give."""
        nodes = str(metrics.get("nodes") or "")
        speed = metrics.get("images_per_s")
        return cls(
            int(metrics.get("workers", 1)),
            tuple(n for n in nodes.split(",") if n),
            None if speed is None else float(speed),
        )


@dataclass(frozen=True)
class SupernetPhase:
    """Phase 1: the supernet's training; ``weights`` is relative to the run directory.
    ``seconds`` (every phase): the wall-clock time it ran, summed over the drivers that ran it
    to an end (completed or failed)."""

    status: PhaseStatus
    epochs: int
    val_accuracy: float | None = None
    weights: str | None = None
    error: str | None = None
    scale: TrainingScale | None = None
    seconds: float | None = field(default=None, compare=False)  # a timing, not a result


@dataclass(frozen=True)
class SearchPhase:
    """Phase 2: the search; ``repeats_skipped`` counts suggestions of already-scored
    architectures answered without a trial."""

    status: PhaseStatus
    trials_requested: int
    sampler: str
    trials_completed: int = 0
    trials_failed: int = 0
    repeats_skipped: int = 0
    error: str | None = None
    seconds: float | None = field(default=None, compare=False)  # a timing, not a result


@dataclass(frozen=True)
class RetrainPhase:
    """Phase 3: retraining the winners (``mode``: scratch or finetune)."""

    status: PhaseStatus
    mode: str
    error: str | None = None
    scale: TrainingScale | None = None
    seconds: float | None = field(default=None, compare=False)  # a timing, not a result


PhaseRecord = Union[SupernetPhase, SearchPhase, RetrainPhase]  # noqa: UP007 (read at run time)
PhaseRecordT = typing.TypeVar("PhaseRecordT", SupernetPhase, SearchPhase, RetrainPhase)


@dataclass(frozen=True)
class Phases:
    """The three phases of a run, in order."""

    supernet: SupernetPhase
    search: SearchPhase
    retrain: RetrainPhase

    def __iter__(self):
        return iter((self.supernet, self.search, self.retrain))

    def named(self) -> tuple[tuple[PhaseName, PhaseRecord], ...]:
        """``(name, record)`` of every phase, in order."""
        return (("supernet", self.supernet), ("search", self.search), ("retrain", self.retrain))


@dataclass(frozen=True)
class TrialMetrics:
    """What a search trial measured: validation accuracy (0..1) on inherited weights, params,
    MACs and latency (ms, batch 1)."""

    accuracy: float
    params: int
    macs: int
    latency_ms: float

    def as_mapping(self) -> dict[str, float]:
        """The metrics by name, as the objectives refer to them."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrialRecord:
    """One search trial that completed or failed (``number`` counts them in creation order)."""

    trial_id: str
    number: int
    arch: str | None
    status: TrialStatus
    metrics: TrialMetrics | None = None
    feasible: bool = False
    error: str | None = None

    @property
    def eligible(self) -> bool:
        """Completed and within every constraint: may enter the Pareto front."""
        return self.status == "completed" and self.feasible and self.metrics is not None


@dataclass(frozen=True)
class BestTrial:
    """The best trial of the front by the first objective."""

    trial_id: str
    arch: str
    metrics: TrialMetrics


@dataclass(frozen=True)
class RetrainedMetrics:
    """A retrained model's accuracies (val, test; the supernet's from its search trial), cost
    and latency."""

    val_accuracy: float
    test_accuracy: float
    latency_ms: float
    supernet_accuracy: float | None = None
    params: int | None = None
    macs: int | None = None


@dataclass(frozen=True)
class RetrainedRecord:
    """One retrained winner (``rank`` 1 = best); ``weights`` is relative to the run."""

    rank: int
    trial_id: str
    arch: str
    status: TrialStatus
    metrics: RetrainedMetrics | None = None
    weights: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Failure:
    """A failed trial or phase, with its one-line error."""

    phase: PhaseName
    trial_id: str | None
    arch: str | None
    error: str


@dataclass(frozen=True)
class RunResults:
    """Everything a run found: its phases, trials, Pareto front, retrained models, failures."""

    name: str
    seed: int
    phases: Phases
    objectives: tuple[Objective, ...]
    trials: tuple[TrialRecord, ...] = ()
    pareto: tuple[str, ...] = ()
    best: BestTrial | None = None
    retrained: tuple[RetrainedRecord, ...] = ()
    failures: tuple[Failure, ...] = ()
    space_file: str = "space.yaml"
    schema_version: int = field(default=SCHEMA_VERSION, compare=False)

    @property
    def succeeded(self) -> bool:
        """True when every phase completed."""
        return all(phase.status is PhaseStatus.COMPLETED for phase in self.phases)

    def with_phase(
        self, name: PhaseName, record: PhaseRecord, failures: tuple[Failure, ...] = ()
    ) -> RunResults:
        """These results with phase ``name`` replaced and its failures replaced by
        ``failures``."""
        kept = tuple(f for f in self.failures if f.phase != name)
        phases = dataclasses.replace(self.phases, **{name: record})
        return dataclasses.replace(self, phases=phases, failures=kept + tuple(failures))

    def trial(self, trial_id: str) -> TrialRecord | None:
        """The search trial ``trial_id``, or None."""
        return next((t for t in self.trials if t.trial_id == trial_id), None)

    def retrained_for(self, trial_id: str) -> RetrainedRecord | None:
        """The retrained model of search trial ``trial_id``, or None."""
        return next((r for r in self.retrained if r.trial_id == trial_id), None)

    def to_json(self) -> dict[str, Any]:
        """The JSON layout of ``results.json``."""
        fields = plain(self)
        version = fields.pop("schema_version")
        return {"schema_version": version, **fields}

    @classmethod
    def from_json(cls, data: object, source: str = "results.json") -> RunResults:
        """Read :meth:`to_json` output (or an invnas 0.1 file); ValueError naming ``source``,
        the key path and what was expected."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: holds {type(data).__name__}; expected a JSON object")
        version = data.get("schema_version", 1)
        if version not in READABLE_VERSIONS:
            raise ValueError(
                f"{source}: schema_version: {version!r}; this invnas reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))} (written by a newer invnas? upgrade "
                "invnas to read it)"
            )
        return _from_plain(cls, {**data, "schema_version": SCHEMA_VERSION}, source, "")


def plain(value: Any) -> Any:
    """A record (or tuple of records, enum...) as JSON-ready values."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    return value


def _expected(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg) for arg in typing.get_args(kind))
    if origin is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(kind)))
    if origin is tuple:
        return f"a list of {_expected(typing.get_args(kind)[0])}"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "one of " + ", ".join(repr(member.value) for member in kind)
    if dataclasses.is_dataclass(kind):
        return "an object"
    return {type(None): "null", bool: "true or false", str: "a string"}.get(
        kind, f"a number ({getattr(kind, '__name__', kind)})"
    )


def _from_plain(kind: Any, value: Any, source: str, path: str) -> Any:
    """``value`` (parsed JSON) as type ``kind``; ValueError naming ``path`` when it is not."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(kind) if o is not type(None)]
        if value is None and len(options) < len(typing.get_args(kind)):
            return None
        if len(options) == 1:  # X | None: X's own message names the bad part
            return _from_plain(options[0], value, source, path)
        for option in options:
            try:
                return _from_plain(option, value, source, path)
            except ValueError:
                continue
    elif origin is Literal:
        if value in typing.get_args(kind):
            return value
    elif origin is tuple:
        if isinstance(value, list):
            item = typing.get_args(kind)[0]
            return tuple(_from_plain(item, v, source, f"{path}[{i}]") for i, v in enumerate(value))
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            pass
    elif dataclasses.is_dataclass(kind):
        if isinstance(value, dict):
            return _dataclass_from_plain(kind, value, source, path)
    elif kind is type(None):
        if value is None:
            return None
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is int or kind is bool or kind is str:
        if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            return value
    shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
    raise ValueError(f"{source}: {path or 'top level'}: {shown}; expected {_expected(kind)}")


def _dataclass_from_plain(kind: type, value: dict, source: str, path: str) -> Any:
    hints = typing.get_type_hints(kind)
    values = {}
    for f in dataclasses.fields(kind):
        where = f"{path}.{f.name}" if path else f.name
        if f.name in value:
            values[f.name] = _from_plain(hints[f.name], value[f.name], source, where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{source}: {where}: missing; expected {_expected(hints[f.name])}")
    return kind(**values)
