"""From search trial records to the Pareto front, the best trial and the retrain order."""

from __future__ import annotations

from collections.abc import Sequence

from invnas.rundir.records import BestTrial, Objective, TrialRecord
from invnas.strategy.pareto import pareto_front, rank_by


def _points(records: Sequence[TrialRecord]) -> list[dict[str, float]]:
    return [r.metrics.as_mapping() for r in records if r.metrics is not None]


def summarize_front(
    records: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> tuple[tuple[str, ...], BestTrial | None]:
    """The trial ids of the Pareto front (the completed, feasible, non-dominated trials) and
    the best of them by the first objective."""
    eligible = [r for r in records if r.eligible]
    front = [eligible[i] for i in pareto_front(_points(eligible), objectives)]
    best = None
    if front:
        top = front[rank_by(_points(front), objectives)[0]]
        assert top.arch is not None and top.metrics is not None
        best = BestTrial(top.trial_id, top.arch, top.metrics)
    return tuple(r.trial_id for r in front), best


def rank_trials(
    records: Sequence[TrialRecord], objectives: Sequence[Objective]
) -> list[TrialRecord]:
    """Completed feasible trials best first, one per architecture: the Pareto front first,
    then the front of what remains, and so on; within a front by the objectives in order."""
    remaining = [r for r in records if r.eligible]
    ranked: list[TrialRecord] = []
    seen: set[str | None] = set()
    while remaining:
        front_indices = pareto_front(_points(remaining), objectives)
        front = [remaining[i] for i in front_indices]
        for i in rank_by(_points(front), objectives):
            if front[i].arch not in seen:
                seen.add(front[i].arch)
                ranked.append(front[i])
        chosen = set(front_indices)
        remaining = [r for i, r in enumerate(remaining) if i not in chosen]
    return ranked
