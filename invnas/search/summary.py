"""The end-of-run summary: phase outcomes, the Pareto front (with retrained scores) and
failures, as rich renderables for the command line to print."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def _count(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def run_succeeded(results: dict) -> bool:
    """True when every phase of the run completed."""
    return all(p["status"] == "completed" for p in results["phases"].values())


def phase_lines(results: dict) -> Text:
    """One line per phase: its status and headline figures."""
    phases = results["phases"]
    supernet, search, retrain = phases["supernet"], phases["search"], phases["retrain"]
    lines = [
        f"supernet: {supernet['status']}, {supernet['epochs']} epochs"
        + (
            f", monitor accuracy {_percent(supernet['val_accuracy'])}"
            if supernet.get("val_accuracy") is not None
            else ""
        ),
        f"search:   {search['status']}, {search['trials_completed']}/{search['trials_requested']}"
        f" trials completed, {search['trials_failed']} failed ({search['sampler']})",
        f"retrain:  {retrain['status']} ({retrain['mode']}), "
        f"{sum(1 for r in results['retrained'] if r['status'] == 'completed')} retrained",
    ]
    for phase, entry in phases.items():
        if entry.get("error"):
            lines.append(f"{phase} error: {entry['error']}")
    return Text("\n".join(lines))


def pareto_table(results: dict) -> Table:
    """The Pareto front, best first by the first objective, with retrain results beside."""
    by_id = {t["trial_id"]: t for t in results["trials"]}
    retrained = {r["trial_id"]: r for r in results["retrained"]}
    objectives = ", ".join(f"{o['metric']} ({o['mode']})" for o in results.get("objectives", []))
    table = Table(title=f"Pareto front: {objectives}", title_justify="left")
    for column in ("trial", "arch", "val acc", "params", "MACs", "latency", "test acc"):
        table.add_column(column, overflow="fold" if column == "arch" else "ellipsis")
    first = (results.get("objectives") or [{"metric": "accuracy", "mode": "max"}])[0]
    front = [by_id[t] for t in results["pareto"] if t in by_id]
    front.sort(key=lambda t: t["metrics"][first["metric"]] * (-1 if first["mode"] == "max" else 1))
    for trial in front:
        metrics = trial["metrics"]
        again = retrained.get(trial["trial_id"])
        test = "-"
        if again is not None:
            test = (
                _percent(again["metrics"]["test_accuracy"])
                if again["status"] == "completed"
                else "failed"
            )
        table.add_row(
            trial["trial_id"],
            trial["arch"],
            _percent(metrics["accuracy"]),
            _count(metrics["params"]),
            _count(metrics["macs"]),
            f"{metrics['latency_ms']:.2f} ms",
            test,
        )
    return table


def retrained_table(results: dict) -> Table:
    """The retrained architectures by rank, with their test accuracy and weights file."""
    table = Table(title="Retrained", title_justify="left")
    for column in ("rank", "arch", "val acc", "test acc", "weights"):
        table.add_column(column, overflow="fold")
    for record in results["retrained"]:
        metrics = record["metrics"] or {}
        table.add_row(
            str(record["rank"]),
            record["arch"],
            _percent(metrics.get("val_accuracy")),
            _percent(metrics.get("test_accuracy")) if record["status"] == "completed" else "failed",
            record["weights"] or "-",
        )
    return table


def failures_table(results: dict) -> Table | None:
    """The failed trials of every phase, or None when there were none."""
    if not results["failures"]:
        return None
    table = Table(title="Failures", title_justify="left")
    for column in ("phase", "trial", "arch", "error"):
        table.add_column(column, overflow="fold")
    for failure in results["failures"]:
        table.add_row(
            failure["phase"], failure["trial_id"] or "-", failure["arch"] or "-", failure["error"]
        )
    return table


def summary(results: dict, run_path: str) -> RenderableType:
    """Everything printed at the end of ``invnas search``."""
    parts: list[RenderableType] = [phase_lines(results)]
    if results["pareto"]:
        parts.append(pareto_table(results))
    failures = failures_table(results)
    if failures is not None:
        parts.append(failures)
    if results["retrained"]:
        parts.append(retrained_table(results))
    parts.append(Text(f"run directory: {run_path}"))
    return Group(*parts)
