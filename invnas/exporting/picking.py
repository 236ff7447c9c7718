"""Choosing what to export from a run's results: the ``--pick`` and ``--weights`` rules.

``--pick best`` is the run's ``best`` trial (the most accurate of the Pareto set), ``rank:N``
the retrained winner of rank N (1 = best), ``trial:ID`` any completed search trial.
``--weights retrained`` takes the weights retrained for that trial in phase 3; ``inherited``
takes the supernet's weights for the architecture; without ``--weights`` the retrained weights
are used when they exist, else the inherited ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from invnas.rundir.records import PhaseStatus, RetrainedRecord, RunResults, TrialRecord

WeightsKind = Literal["retrained", "inherited"]
WEIGHTS_KINDS: tuple[str, ...] = ("retrained", "inherited")
PICK_FORMS = "best, rank:N (a retrained winner, 1 = best) or trial:ID (a search trial)"


@dataclass(frozen=True)
class Pick:
    """A parsed ``--pick``: ``kind`` is best, rank or trial; ``value`` the rank or trial id."""

    kind: Literal["best", "rank", "trial"]
    value: str | int | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"


@dataclass(frozen=True)
class Choice:
    """What will be exported: the search trial, its retrained entry if any, and the weights."""

    trial: TrialRecord
    retrained: RetrainedRecord | None
    weights: WeightsKind


def parse_pick(text: str) -> Pick:
    """``best``, ``rank:N`` or ``trial:ID``; ValueError (naming ``--pick``) for anything else."""
    text = text.strip()
    if text == "best":
        return Pick("best")
    match = re.fullmatch(r"rank:(\d+)", text)
    if match and int(match[1]) >= 1:
        return Pick("rank", int(match[1]))
    match = re.fullmatch(r"trial:(\S+)", text)
    if match:
        return Pick("trial", match[1])
    raise ValueError(f"--pick: {text!r} is not a pick; expected {PICK_FORMS}")


def check_weights_kind(weights: str | None) -> WeightsKind | None:
    """``weights`` if it is retrained, inherited or None; else ValueError naming ``--weights``."""
    if weights is not None and weights not in WEIGHTS_KINDS:
        raise ValueError(
            f"--weights: {weights!r} is not a weights kind; expected retrained or inherited"
        )
    return weights  # type: ignore[return-value]


def check_search_finished(results: RunResults, results_file: Path) -> None:
    """ValueError unless the run's search phase has completed."""
    status = results.phases.search.status
    if status is not PhaseStatus.COMPLETED:
        raise ValueError(
            f"{results_file}: phases.search.status: is {status.value!r}; export needs a finished "
            "search (completed): let the run finish or resume it with invnas search --resume"
        )


def _completed_trial(results: RunResults, trial_id: str, pick: Pick) -> TrialRecord:
    trial = results.trial(trial_id)
    if trial is None:
        known = [t.trial_id for t in results.trials if t.status == "completed"]
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        raise ValueError(
            f"--pick: {pick}: no search trial {trial_id!r} in this run; completed trials: "
            f"{shown or 'none'}"
        )
    if trial.status != "completed":
        raise ValueError(
            f"--pick: {pick}: trial {trial_id!r} is {trial.status!r} "
            f"({trial.error or 'no error recorded'}); pick a completed trial"
        )
    return trial


def _has_weights(record: RetrainedRecord) -> bool:
    return record.status == "completed" and record.weights is not None


def _retrained_for(results: RunResults, trial_id: str) -> RetrainedRecord | None:
    done = [r for r in results.retrained if r.trial_id == trial_id and _has_weights(r)]
    return min(done, key=lambda r: r.rank) if done else None


def _retrained_summary(results: RunResults) -> str:
    done = [r for r in results.retrained if r.status == "completed"]
    if not done:
        return "no model was retrained in this run"
    return "retrained: " + ", ".join(f"rank {r.rank} (trial {r.trial_id})" for r in done)


def choose(results: RunResults, pick: Pick, weights: WeightsKind | None) -> Choice:
    """Resolve ``pick`` and ``weights`` against a run's results; ValueError with the reason
    (naming ``--pick`` or ``--weights``) when they cannot be honoured."""
    retrained: RetrainedRecord | None = None
    if pick.kind == "best":
        if results.best is None:
            raise ValueError(
                "--pick: best: the run has no best trial (no completed feasible trial); "
                "pick one with trial:ID"
            )
        trial = _completed_trial(results, results.best.trial_id, pick)
    elif pick.kind == "rank":
        entries = [r for r in results.retrained if r.rank == pick.value]
        if not entries:
            summary = _retrained_summary(results)
            raise ValueError(f"--pick: {pick}: no retrained model of rank {pick.value}; {summary}")
        entry = entries[0]
        trial = _completed_trial(results, entry.trial_id, pick)
        if _has_weights(entry):
            retrained = entry
        elif weights == "retrained" or weights is None:
            raise ValueError(
                f"--pick: {pick}: retraining of rank {pick.value} is {entry.status!r} "
                f"({entry.error or 'no weights recorded'}); use --weights inherited for "
                "the supernet's weights"
            )
    else:
        trial = _completed_trial(results, str(pick.value), pick)
    if pick.kind != "rank":
        retrained = _retrained_for(results, trial.trial_id)
    if weights == "retrained" and retrained is None:
        raise ValueError(
            f"--weights: retrained: trial {trial.trial_id!r} was not retrained "
            f"({_retrained_summary(results)}); pick a retrained one with rank:N or use "
            "--weights inherited"
        )
    if weights is None:
        weights = "retrained" if retrained is not None else "inherited"
    return Choice(trial, retrained if weights == "retrained" else None, weights)
