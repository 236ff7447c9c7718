"""Run directories and their typed records: the state every command shares (search, resume,
report, export), read and written only through :class:`RunDir` and the records."""

from invnas.rundir.directory import Driver, Run, RunDir, empty_results, open_run
from invnas.rundir.info import Overrides, RunInfo
from invnas.rundir.records import (
    SCHEMA_VERSION,
    BestTrial,
    Failure,
    Objective,
    PhaseName,
    PhaseRecord,
    PhaseRecordT,
    PhaseStatus,
    RetrainedMetrics,
    RetrainedRecord,
    RetrainPhase,
    RunResults,
    SearchPhase,
    SupernetPhase,
    TrialMetrics,
    TrialRecord,
)

__all__ = [
    "SCHEMA_VERSION",
    "BestTrial",
    "Driver",
    "Failure",
    "Objective",
    "Overrides",
    "PhaseName",
    "PhaseRecord",
    "PhaseRecordT",
    "PhaseStatus",
    "RetrainPhase",
    "RetrainedMetrics",
    "RetrainedRecord",
    "Run",
    "RunDir",
    "RunInfo",
    "RunResults",
    "SearchPhase",
    "SupernetPhase",
    "TrialMetrics",
    "TrialRecord",
    "empty_results",
    "open_run",
]
