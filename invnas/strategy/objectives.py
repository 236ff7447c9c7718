"""What the search optimises (objectives) and what it must respect (constraints).

A search trial reports the metrics ``accuracy`` (validation, 0..1), ``params``, ``macs`` and
``latency_ms``. The space file's ``search.objectives`` names them (``latency`` stands for
``latency_ms``); accuracy is maximised, the costs minimised. ``max_params``, ``max_macs`` and
``max_latency_ms`` are constraints: a trial over any of them is *infeasible* and never enters
the Pareto front.
"""

from __future__ import annotations

from collections.abc import Mapping

from invnas.config import SearchConfig
from invnas.rundir.records import Objective

METRIC_OF_OBJECTIVE = {
    "accuracy": "accuracy",
    "params": "params",
    "macs": "macs",
    "latency": "latency_ms",
}
TRIAL_METRICS = ("accuracy", "params", "macs", "latency_ms")


def objectives_of(search: SearchConfig) -> list[Objective]:
    """The objectives of ``search`` in the order given; ValueError on a repeated one."""
    seen = set()
    found = []
    for name in search.objectives:
        if name in seen:
            raise ValueError(
                f"search.objectives: {name!r} is listed twice; list each objective once"
            )
        seen.add(name)
        metric = METRIC_OF_OBJECTIVE[name]
        found.append(Objective(metric, "max" if metric == "accuracy" else "min"))
    if not found:
        raise ValueError("search.objectives: empty; give at least one of accuracy, params, ...")
    return found


def constraint_violations(search: SearchConfig, metrics: Mapping[str, float]) -> dict[str, float]:
    """One value per constraint of ``search``, keyed by its setting (``max_params``, ...):
    > 0 means violated by that much (Optuna's convention), <= 0 satisfied. Empty when
    ``search`` has no constraints."""
    limits = (
        ("max_params", "params", search.max_params),
        ("max_macs", "macs", search.max_macs),
        ("max_latency_ms", "latency_ms", search.max_latency_ms),
    )
    return {
        key: float(metrics[metric]) - float(limit)
        for key, metric, limit in limits
        if limit is not None
    }


def is_feasible(search: SearchConfig, metrics: Mapping[str, float]) -> bool:
    """True when ``metrics`` respect every constraint of ``search``."""
    return all(v <= 0 for v in constraint_violations(search, metrics).values())
