"""What ``invnas report`` shows, as one JSON-ready dict built from a run's typed results.

The tables, the pictures and ``--json`` all render this one dict, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from invnas.reporting.correlation import kendall_tau_b, spearman_rho
from invnas.reporting.hypervolume import hypervolume, normalized_points
from invnas.rundir.records import RetrainedRecord, RunResults, TrialRecord, plain
from invnas.space.arch import Arch

MIN_RETRAINED_FOR_CORRELATION = 5
COST_REFERENCE = 1.1  # hypervolume reference of a cost, in units of its largest value in the run
PUBLISHED_TAU = {  # Kendall tau, supernet vs stand-alone accuracy, 13 models on ImageNet (FairNAS)
    "single-path one-shot": 0.62,
    "FairNAS": 0.95,
}


def build_report(run_path: str | Path, results: RunResults, stage_names: list[str] | None) -> dict:
    """The report of the run at ``run_path`` whose results are ``results``.

    ``stage_names`` label the stages of the architectures (default ``stage1``, ``stage2``...).
    """
    objectives = [plain(o) for o in results.objectives]
    completed = [t for t in results.trials if t.status == "completed" and t.metrics]
    feasible = [t for t in completed if t.feasible]
    by_id = {t.trial_id: t for t in results.trials}
    front = [by_id[i] for i in results.pareto if i in by_id]
    first = results.objectives[0]
    front.sort(key=lambda t: _sort_key(t.metrics.as_mapping()[first.metric], first.mode))
    search = results.phases.search
    return {
        "run": str(run_path),
        "name": results.name,
        "seed": results.seed,
        "phases": plain(results.phases),
        "objectives": objectives,
        "trials": {
            "requested": search.trials_requested,
            "completed": len(completed),
            "failed": sum(1 for t in results.trials if t.status == "failed"),
            "feasible": len(feasible),
            "pareto": len(front),
            "repeats_skipped": search.repeats_skipped,
        },
        "pareto": [
            _front_row(trial, stage_names, results.retrained_for(trial.trial_id)) for trial in front
        ],
        "best": plain(results.best),
        "retrained": plain(results.retrained),
        "rank_correlation": rank_correlation(results.retrained, results.phases.retrain.mode),
        "op_frequency": op_frequency([t.arch for t in front], stage_names),
        "progress": progress(feasible, objectives),
        "failures": plain(results.failures),
    }


def _sort_key(value: float, mode: str) -> float:
    return -value if mode == "max" else value


def stage_label(index: int, stage_names: list[str] | None) -> str:
    if stage_names is not None and index < len(stage_names):
        return stage_names[index]
    return f"stage{index + 1}"


def parse_arch(arch: str, stage_names: list[str] | None) -> list[dict]:
    """``d2w64:conv3g1,inv7c16r4|...`` as ``[{"stage", "depth", "width", "ops"}, ...]``."""
    return [
        {
            "stage": stage_label(index, stage_names),
            "depth": stage.depth,
            "width": stage.width,
            "ops": [op.code for op in stage.ops],
        }
        for index, stage in enumerate(Arch.decode(arch).stages)
    ]


def _front_row(
    trial: TrialRecord, stage_names: list[str] | None, retrained: RetrainedRecord | None
) -> dict:
    again = None
    if retrained is not None:
        metrics = retrained.metrics
        again = {
            "rank": retrained.rank,
            "status": retrained.status,
            "val_accuracy": metrics.val_accuracy if metrics else None,
            "test_accuracy": metrics.test_accuracy if metrics else None,
        }
    return {
        "trial_id": trial.trial_id,
        "number": trial.number,
        "arch": trial.arch,
        "metrics": trial.metrics.as_mapping(),
        "stages": parse_arch(trial.arch, stage_names),
        "retrained": again,
    }


def _coefficients(x: list[float], y: list[float]) -> dict[str, float | None]:
    def finite(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {"kendall_tau": finite(kendall_tau_b(x, y)), "spearman_rho": finite(spearman_rho(x, y))}


def rank_correlation(retrained: Sequence[RetrainedRecord], mode: str | None = "scratch") -> dict:
    """Kendall tau-b and Spearman rho between the supernet's accuracy of the retrained
    architectures and their stand-alone test (and validation) accuracy; the coefficients are
    None below :data:`MIN_RETRAINED_FOR_CORRELATION` retrained architectures. ``mode`` is how
    they were retrained (``scratch`` or ``finetune``)."""
    scored = [
        r.metrics
        for r in retrained
        if r.status == "completed" and r.metrics and r.metrics.supernet_accuracy is not None
    ]
    found: dict[str, Any] = {
        "n": len(scored),
        "min_n": MIN_RETRAINED_FOR_CORRELATION,
        "retrain_mode": mode,
        "test": None,
        "val": None,
        "published_kendall_tau": PUBLISHED_TAU,
    }
    if len(scored) >= MIN_RETRAINED_FOR_CORRELATION:
        supernet = [m.supernet_accuracy for m in scored]
        found["test"] = _coefficients(supernet, [m.test_accuracy for m in scored])
        found["val"] = _coefficients(supernet, [m.val_accuracy for m in scored])
    return found


def op_frequency(archs: list[str], stage_names: list[str] | None) -> dict[str, dict[str, int]]:
    """Per stage, how many of ``archs`` use each op code in that stage (an architecture counts
    once per op, however many of the stage's blocks use it); most frequent first."""
    counts: dict[str, Counter] = {}
    for arch in archs:
        for stage in parse_arch(arch, stage_names):
            counts.setdefault(stage["stage"], Counter()).update(set(stage["ops"]))
    return {
        stage: dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))
        for stage, counter in counts.items()
    }


def _weakly_dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True))


def progress(feasible: Sequence[TrialRecord], objectives: list[dict]) -> dict:
    """The search's progress over its completed feasible trials in order: the best value of
    the first objective so far, and (with two objectives or more) the hypervolume so far.

    Hypervolume coordinates: the error ``1 - accuracy`` with reference 1, and each cost divided
    by its largest value among these trials with reference :data:`COST_REFERENCE`.
    """
    ordered = sorted(feasible, key=lambda t: (t.number, t.trial_id))
    rows_metrics = [t.metrics.as_mapping() for t in ordered]
    first = objectives[0]
    several = len(objectives) > 1
    scales = {
        o["metric"]: max([float(m[o["metric"]]) for m in rows_metrics] + [1e-12])
        for o in objectives
        if o["metric"] != "accuracy"
    }
    reference = tuple(1.0 if o["metric"] == "accuracy" else COST_REFERENCE for o in objectives)
    points = normalized_points(rows_metrics, objectives, scales)
    rows, best, front, volume = [], None, [], 0.0
    for k, trial in enumerate(ordered):
        value = float(rows_metrics[k][first["metric"]])
        if best is None or _sort_key(value, first["mode"]) < _sort_key(best, first["mode"]):
            best = value
        rows.append(
            {
                "trial": k + 1,
                "trial_id": trial.trial_id,
                first["metric"]: value,
                "best": best,
                "hypervolume": None,
            }
        )
        if several:
            if not any(_weakly_dominates(q, points[k]) for q in front):
                front = [q for q in front if not _weakly_dominates(points[k], q)] + [points[k]]
                volume = hypervolume(front, reference)
            rows[-1]["hypervolume"] = volume
    return {
        "metric": first["metric"],
        "mode": first["mode"],
        "hypervolume_reference": list(reference) if several else None,
        "hypervolume_scales": scales if several else None,
        "trials": rows,
    }
