"""Non-dominated sorting of trials under several objectives."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from invnas.strategy.objectives import Objective


def dominates(a: Mapping[str, float], b: Mapping[str, float], objectives: Sequence[Objective]):
    """True when ``a`` is at least as good as ``b`` on every objective and better on one."""
    strictly_better = False
    for objective in objectives:
        x, y = a[objective.metric], b[objective.metric]
        if objective.better(y, x):
            return False
        if objective.better(x, y):
            strictly_better = True
    return strictly_better


def pareto_front(
    points: Sequence[Mapping[str, float]], objectives: Sequence[Objective]
) -> list[int]:
    """Indices of the non-dominated ``points``, in their original order.

    Points with identical objective values do not dominate each other, so duplicates all stay.
    """
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p, objectives) for j, q in enumerate(points) if j != i)
    ]


def rank_by(points: Sequence[Mapping[str, float]], objectives: Sequence[Objective]) -> list[int]:
    """Indices of ``points`` best first: lexicographically by the objectives in order, ties
    kept in their original order."""

    def key(i: int) -> tuple:
        values = []
        for objective in objectives:
            value = float(points[i][objective.metric])
            values.append(-value if objective.mode == "max" else value)
        return (*values, i)

    return sorted(range(len(points)), key=key)
