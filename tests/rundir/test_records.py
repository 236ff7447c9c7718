"""Typed run records: results.json round-trips, invnas 0.1 files load, bad files name the key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from invnas.rundir import (
    SCHEMA_VERSION,
    BestTrial,
    Failure,
    Objective,
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
from invnas.rundir.records import Phases


def _results() -> RunResults:
    metrics = TrialMetrics(accuracy=0.9, params=1200, macs=34_000, latency_ms=0.5)
    return RunResults(
        name="r",
        seed=3,
        phases=Phases(
            SupernetPhase(PhaseStatus.COMPLETED, 2, val_accuracy=0.7, weights="weights/s.pt"),
            SearchPhase(PhaseStatus.COMPLETED, 2, "nsga2", trials_completed=1, trials_failed=1),
            RetrainPhase(PhaseStatus.FAILED, "scratch", error="all 1 retrain trials failed"),
        ),
        objectives=(Objective("accuracy", "max"), Objective("macs", "min")),
        trials=(
            TrialRecord("a", 0, "d1w8:conv3g1", "completed", metrics, feasible=True),
            TrialRecord("b", 1, "d1w8:inv3c4r2", "failed", error="RuntimeError: boom"),
        ),
        pareto=("a",),
        best=BestTrial("a", "d1w8:conv3g1", metrics),
        retrained=(
            RetrainedRecord(
                1, "a", "d1w8:conv3g1", "completed", RetrainedMetrics(0.8, 0.81, 0.4, 0.9)
            ),
        ),
        failures=(Failure("search", "b", "d1w8:inv3c4r2", "RuntimeError: boom"),),
    )


def test_results_round_trip_through_json_text():
    results = _results()
    text = json.dumps(results.to_json())
    data = json.loads(text)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["phases"]["retrain"]["status"] == "failed"
    assert data["trials"][1]["metrics"] is None
    assert RunResults.from_json(data) == results


def test_a_file_of_invnas_0_1_loads_as_schema_1():
    data = _results().to_json()
    del data["schema_version"]
    del data["phases"]["search"]["repeats_skipped"]  # 0.1 runs before repeats were counted
    data["retrained"][0]["metrics"]["latency_ms"] = 1  # an int where a float is expected
    loaded = RunResults.from_json(data)
    assert loaded.phases.search.repeats_skipped == 0
    assert loaded.retrained[0].metrics.latency_ms == 1.0
    assert loaded.schema_version == SCHEMA_VERSION  # written back in the current schema


def test_a_newer_schema_is_refused_naming_the_version():
    data = {**_results().to_json(), "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(ValueError, match=f"x.json: schema_version: {SCHEMA_VERSION + 1}; this"):
        RunResults.from_json(data, "x.json")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: d["phases"]["search"].update(status="done"), r"phases.search.status: 'done'"),
        (lambda d: d["trials"][0].pop("trial_id"), r"trials\[0\].trial_id: missing"),
        (
            lambda d: d["trials"][0]["metrics"].update(params="9"),
            r"trials\[0\].metrics.params: '9'; expected a number \(int\)",
        ),
        (lambda d: d.update(pareto="a"), r"pareto: 'a'; expected a list of a string"),
        (lambda d: d["failures"][0].update(phase="export"), r"failures\[0\].phase"),
    ],
)
def test_damaged_results_name_the_key(damage, message):
    data = _results().to_json()
    damage(data)
    with pytest.raises(ValueError, match=message):
        RunResults.from_json(data, "results.json")


def test_with_phase_replaces_the_phase_and_only_its_failures():
    results = _results()
    record = dataclasses.replace(results.phases.search, status=PhaseStatus.RUNNING)
    updated = results.with_phase("search", record)
    assert updated.phases.search.status is PhaseStatus.RUNNING
    assert updated.phases.supernet == results.phases.supernet
    assert updated.failures == ()
    retrain_failure = Failure("retrain", "r1", "d1w8:conv3g1", "nan")
    again = updated.with_phase("retrain", results.phases.retrain, (retrain_failure,))
    assert again.failures == (retrain_failure,)
    assert not again.succeeded
