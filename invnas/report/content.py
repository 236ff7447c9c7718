"""What ``invnas report`` shows, as one JSON-ready dict built from a run's ``results.json``.

The tables, the pictures and ``--json`` all render this one dict, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from invnas.report.correlation import kendall_tau_b, spearman_rho
from invnas.report.hypervolume import hypervolume, normalized_points
from invnas.space.arch import Arch

MIN_RETRAINED_FOR_CORRELATION = 5
COST_REFERENCE = 1.1  # hypervolume reference of a cost, in units of its largest value in the run
PUBLISHED_TAU = {  # Kendall tau, supernet vs stand-alone accuracy, 13 models on ImageNet (FairNAS)
    "single-path one-shot": 0.62,
    "FairNAS": 0.95,
}
DEFAULT_OBJECTIVES = [{"metric": "accuracy", "mode": "max"}]


def build_report(run_path: str | Path, results: dict, stage_names: list[str] | None) -> dict:
    """The report of the run at ``run_path`` whose parsed ``results.json`` is ``results``.

    ``stage_names`` label the stages of the architectures (default ``stage1``, ``stage2``...).
    """
    objectives = results.get("objectives") or DEFAULT_OBJECTIVES
    trials = results.get("trials", [])
    completed = [t for t in trials if t.get("status") == "completed" and t.get("metrics")]
    feasible = [t for t in completed if t.get("feasible", True)]
    by_id = {t["trial_id"]: t for t in trials}
    front = [by_id[i] for i in results.get("pareto", []) if i in by_id]
    first = objectives[0]
    front.sort(key=lambda t: _sort_key(t["metrics"][first["metric"]], first["mode"]))
    retrained = results.get("retrained", [])
    retrained_by_trial = {r["trial_id"]: r for r in retrained}
    search = results.get("phases", {}).get("search", {})
    return {
        "run": str(run_path),
        "name": results.get("name"),
        "seed": results.get("seed"),
        "phases": results.get("phases", {}),
        "objectives": objectives,
        "trials": {
            "requested": search.get("trials_requested"),
            "completed": len(completed),
            "failed": sum(1 for t in trials if t.get("status") == "failed"),
            "feasible": len(feasible),
            "pareto": len(front),
            "repeats_skipped": search.get("repeats_skipped", 0),
        },
        "pareto": [
            _front_row(trial, stage_names, retrained_by_trial.get(trial["trial_id"]))
            for trial in front
        ],
        "best": results.get("best"),
        "retrained": retrained,
        "rank_correlation": rank_correlation(
            retrained, results.get("phases", {}).get("retrain", {}).get("mode")
        ),
        "op_frequency": op_frequency([t["arch"] for t in front], stage_names),
        "progress": progress(feasible, objectives),
        "failures": results.get("failures", []),
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


def _front_row(trial: dict, stage_names: list[str] | None, retrained: dict | None) -> dict:
    again = None
    if retrained is not None:
        metrics = retrained.get("metrics") or {}
        again = {
            "rank": retrained["rank"],
            "status": retrained["status"],
            "val_accuracy": metrics.get("val_accuracy"),
            "test_accuracy": metrics.get("test_accuracy"),
        }
    return {
        "trial_id": trial["trial_id"],
        "number": trial.get("number"),
        "arch": trial["arch"],
        "metrics": trial["metrics"],
        "stages": parse_arch(trial["arch"], stage_names),
        "retrained": again,
    }


def _coefficients(x: list[float], y: list[float]) -> dict[str, float | None]:
    def finite(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {"kendall_tau": finite(kendall_tau_b(x, y)), "spearman_rho": finite(spearman_rho(x, y))}


def rank_correlation(retrained: list[dict], mode: str | None = "scratch") -> dict:
    """Kendall tau-b and Spearman rho between the supernet's accuracy of the retrained
    architectures and their stand-alone test (and validation) accuracy; the coefficients are
    None below :data:`MIN_RETRAINED_FOR_CORRELATION` retrained architectures. ``mode`` is how
    they were retrained (``scratch`` or ``finetune``)."""
    scored = [
        r["metrics"]
        for r in retrained
        if r.get("status") == "completed"
        and r.get("metrics")
        and r["metrics"].get("supernet_accuracy") is not None
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
        supernet = [m["supernet_accuracy"] for m in scored]
        for split in ("test", "val"):
            found[split] = _coefficients(supernet, [m[f"{split}_accuracy"] for m in scored])
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


def progress(feasible: list[dict], objectives: list[dict]) -> dict:
    """The search's progress over its completed feasible trials in order: the best value of
    the first objective so far, and (with two objectives or more) the hypervolume so far.

    Hypervolume coordinates: the error ``1 - accuracy`` with reference 1, and each cost divided
    by its largest value among these trials with reference :data:`COST_REFERENCE`.
    """
    ordered = sorted(feasible, key=lambda t: (t.get("number", 0), t["trial_id"]))
    first = objectives[0]
    several = len(objectives) > 1
    scales = {
        o["metric"]: max([float(t["metrics"][o["metric"]]) for t in ordered] + [1e-12])
        for o in objectives
        if o["metric"] != "accuracy"
    }
    reference = tuple(1.0 if o["metric"] == "accuracy" else COST_REFERENCE for o in objectives)
    points = normalized_points([t["metrics"] for t in ordered], objectives, scales)
    rows, best, front, volume = [], None, [], 0.0
    for k, trial in enumerate(ordered):
        value = float(trial["metrics"][first["metric"]])
        if best is None or _sort_key(value, first["mode"]) < _sort_key(best, first["mode"]):
            best = value
        rows.append(
            {
                "trial": k + 1,
                "trial_id": trial["trial_id"],
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
