"""The report's pictures, drawn with matplotlib (the optional ``plot`` extra).

:func:`write_plots` writes into the run directory:

- ``pareto.png``: every evaluated architecture (accuracy against its first cost objective), the
  Pareto front highlighted, and each retrained architecture's stand-alone test accuracy beside
  its supernet estimate;
- ``progress.png``: the best accuracy and the hypervolume against completed trials;
- ``op_frequency.png``: how many Pareto architectures use each op in each stage.

Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never pyplot, so
nothing depends on a display or a global backend.
"""

from __future__ import annotations

from pathlib import Path

from invnas.rundir.records import RunResults, TrialRecord

PLOT_HINT = (
    'plots: matplotlib is not installed; install it with pip install "invnas[plot]" to get '
    "pareto.png, progress.png and op_frequency.png in the run directory"
)
COST_LABELS = {"macs": "MACs", "params": "parameters", "latency_ms": "latency (ms)"}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(report: dict, results: RunResults, directory: Path) -> dict[str, str]:
    """Draw the pictures of ``report`` (of the run whose results are ``results``) into
    ``directory``; returns ``{kind: path}`` of the files written (nothing without completed
    trials). ImportError when matplotlib is missing."""
    from matplotlib.figure import Figure  # noqa: F401  (fail early, before any file is written)

    completed = [t for t in results.trials if t.status == "completed" and t.metrics]
    written: dict[str, str] = {}
    if not completed:
        return written
    written["pareto"] = str(_pareto_plot(report, completed, directory / "pareto.png"))
    written["progress"] = str(_progress_plot(report, directory / "progress.png"))
    if report["op_frequency"]:
        written["op_frequency"] = str(_op_plot(report, directory / "op_frequency.png"))
    return written


def cost_metric(objectives: list[dict]) -> str:
    """The x axis of the Pareto plot: the first cost objective, MACs when there is none."""
    return next((o["metric"] for o in objectives if o["metric"] != "accuracy"), "macs")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _columns(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


def _save(figure, path: Path) -> Path:
    partial = path.with_name(path.name + ".partial")
    figure.savefig(partial, dpi=120, format="png")
    partial.replace(path)
    return path


def _pareto_plot(report: dict, completed: list[TrialRecord], path: Path) -> Path:
    metric = cost_metric(report["objectives"])
    scale = 1e6 if metric in ("macs", "params") else 1.0
    unit = " (millions)" if scale == 1e6 else ""
    figure = _figure(7.5, 5.0)
    ax = figure.add_subplot()

    def xy(metrics: dict) -> tuple[float, float]:
        return float(metrics[metric]) / scale, 100 * float(metrics["accuracy"])

    feasible = [xy(t.metrics.as_mapping()) for t in completed if t.feasible]
    infeasible = [xy(t.metrics.as_mapping()) for t in completed if not t.feasible]
    if feasible:
        ax.scatter(*_columns(feasible), s=18, color="0.6", label="evaluated (supernet)")
    if infeasible:
        ax.scatter(*_columns(infeasible), s=18, marker="x", color="0.75", label="infeasible")
    front = sorted(xy(row["metrics"]) for row in report["pareto"])
    if front:
        ax.scatter(*_columns(front), s=40, color="tab:blue", zorder=3, label="Pareto front")
        if len(report["objectives"]) == 2 and report["objectives"][1]["metric"] == metric:
            ax.step(*_columns(front), where="post", color="tab:blue", linewidth=1, zorder=2)
    retrained = [r for r in report["retrained"] if r.get("status") == "completed"]
    for k, record in enumerate(retrained):
        metrics = record["metrics"]
        if metrics.get(metric) is None or metrics.get("supernet_accuracy") is None:
            continue
        x = float(metrics[metric]) / scale
        estimate, alone = 100 * metrics["supernet_accuracy"], 100 * metrics["test_accuracy"]
        ax.annotate(
            "",
            xy=(x, alone),
            xytext=(x, estimate),
            arrowprops={"arrowstyle": "->", "color": "tab:red", "linewidth": 0.8},
        )
        ax.scatter(
            [x],
            [alone],
            s=70,
            marker="*",
            color="tab:red",
            zorder=4,
            label="retrained (test), arrow from supernet estimate" if k == 0 else None,
        )
        ax.annotate(f"#{record['rank']}", (x, alone), textcoords="offset points", xytext=(5, 3))
    values = [x for x, _ in feasible + infeasible]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(COST_LABELS.get(metric, metric) + unit)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{report['name']}: {len(completed)} architectures evaluated")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(figure, path)


def _progress_plot(report: dict, path: Path) -> Path:
    rows = report["progress"]["trials"]
    with_volume = rows and rows[0]["hypervolume"] is not None
    figure = _figure(7.5, 3.6)
    axes = figure.subplots(1, 2 if with_volume else 1, squeeze=False)[0]
    trials = [r["trial"] for r in rows]
    metric = report["progress"]["metric"]
    factor = 100 if metric == "accuracy" else 1
    axes[0].scatter(trials, [factor * r[metric] for r in rows], s=10, color="0.6", label="trial")
    axes[0].plot(
        trials,
        [factor * r["best"] for r in rows],
        drawstyle="steps-post",
        color="tab:blue",
        label="best so far",
    )
    axes[0].set_xlabel("completed feasible trials")
    axes[0].set_ylabel(f"{metric} (%)" if metric == "accuracy" else metric)
    axes[0].legend(fontsize="small")
    axes[0].grid(alpha=0.3)
    if with_volume:
        axes[1].plot(trials, [r["hypervolume"] for r in rows], color="tab:green")
        axes[1].set_xlabel("completed feasible trials")
        names = ", ".join(o["metric"] for o in report["objectives"])
        axes[1].set_ylabel(f"hypervolume ({names})")
        axes[1].grid(alpha=0.3)
    figure.suptitle(f"{report['name']}: search progress")
    return _save(figure, path)


def _op_plot(report: dict, path: Path) -> Path:
    frequency = report["op_frequency"]
    stages = list(frequency)
    ops = sorted({op for counts in frequency.values() for op in counts})
    grid = [[frequency[stage].get(op, 0) for op in ops] for stage in stages]
    total = max(1, len(report["pareto"]))
    figure = _figure(max(5.5, 0.8 * len(ops) + 2.5), max(3.0, 0.6 * len(stages) + 1.8))
    ax = figure.add_subplot()
    image = ax.imshow(grid, cmap="Blues", vmin=0, vmax=total, aspect="auto")
    ax.set_xticks(range(len(ops)), ops, rotation=45, ha="right")
    ax.set_yticks(range(len(stages)), stages)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            color = "white" if value > total / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize="small")
    figure.colorbar(image, ax=ax, label="architectures")
    ax.set_title(f"ops used per stage by the {len(report['pareto'])} Pareto architectures")
    return _save(figure, path)
