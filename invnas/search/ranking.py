"""From search trial records to the Pareto front, the best trial and the retrain order."""

from __future__ import annotations

from collections.abc import Sequence

from invnas.search.objectives import Objective
from invnas.search.pareto import pareto_front, rank_by


def _eligible(records: Sequence[dict]) -> list[dict]:
    return [r for r in records if r["status"] == "completed" and r["feasible"]]


def summarise_front(records: Sequence[dict], objectives: Sequence[Objective]) -> dict:
    """``{"pareto": [trial_id, ...], "best": {...} | None}`` of results.json: the completed,
    feasible, non-dominated trials, and among them the best by the first objective."""
    eligible = _eligible(records)
    points = [r["metrics"] for r in eligible]
    front = [eligible[i] for i in pareto_front(points, objectives)]
    best = None
    if front:
        top = front[rank_by([r["metrics"] for r in front], objectives)[0]]
        best = {"trial_id": top["trial_id"], "arch": top["arch"], "metrics": top["metrics"]}
    return {"pareto": [r["trial_id"] for r in front], "best": best}


def rank_trials(records: Sequence[dict], objectives: Sequence[Objective]) -> list[dict]:
    """Completed feasible trials best first, one per architecture: the Pareto front first,
    then the front of what remains, and so on; within a front by the objectives in order."""
    remaining = _eligible(records)
    ranked: list[dict] = []
    seen: set[str] = set()
    while remaining:
        points = [r["metrics"] for r in remaining]
        front_indices = pareto_front(points, objectives)
        front = [remaining[i] for i in front_indices]
        for i in rank_by([r["metrics"] for r in front], objectives):
            if front[i]["arch"] not in seen:
                seen.add(front[i]["arch"])
                ranked.append(front[i])
        chosen = set(front_indices)
        remaining = [r for i, r in enumerate(remaining) if i not in chosen]
    return ranked
