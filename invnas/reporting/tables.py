"""Rich renderables of a report dict (see :func:`invnas.reporting.content.build_report`)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from invnas.reporting.content import MIN_RETRAINED_FOR_CORRELATION


def count(value: int | float | None, missing: str = "-") -> str:
    """``1.23M``-style text for a count (``missing`` for None)."""
    if value is None:
        return missing
    for unit, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def coefficient(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3f}"


def scale_text(scale: dict) -> str:
    """``2 workers on 10.0.0.5, 1234 images/s``: how a training phase ran."""
    workers = scale["workers"]
    text = f"{workers} worker{'s' if workers != 1 else ''}"
    if scale.get("nodes"):
        text += " on " + ", ".join(scale["nodes"])
    if scale.get("images_per_s") is not None:
        text += f", {scale['images_per_s']:.0f} images/s"
    return text


def phases_table(report: dict) -> Table:
    """One row per phase: status, headline figures and error."""
    table = Table(title=f"Run {report['name']} (seed {report['seed']})", title_justify="left")
    for column in ("phase", "status", "details", "error"):
        table.add_column(column, overflow="fold")
    phases = report["phases"]
    details = {}
    if "supernet" in phases:
        supernet = phases["supernet"]
        monitor = supernet.get("val_accuracy")
        details["supernet"] = f"{supernet.get('epochs')} epochs" + (
            f", monitor accuracy {percent(monitor)}" if monitor is not None else ""
        )
    if "search" in phases:
        search, trials = phases["search"], report["trials"]
        details["search"] = (
            f"{search.get('sampler')}: {trials['completed']}/{trials['requested']} trials "
            f"completed, {trials['failed']} failed, {trials['feasible']} feasible, "
            f"{trials['pareto']} on the Pareto front"
        )
        if trials.get("repeats_skipped"):
            details["search"] += (
                f"; {trials['repeats_skipped']} repeated suggestions answered from earlier trials"
            )
    if "retrain" in phases:
        done = sum(1 for r in report["retrained"] if r.get("status") == "completed")
        details["retrain"] = f"{phases['retrain'].get('mode')}: {done} retrained"
    for name in ("supernet", "retrain"):
        if name in phases and phases[name].get("scale"):
            details[name] += "; " + scale_text(phases[name]["scale"])
    for name, entry in phases.items():
        if entry.get("seconds") is not None:
            details[name] = details.get(name, "") + f"; {entry['seconds']:.0f} s"
        status = entry.get("status", "?")
        if status == "running" and report.get("driver") == "none":
            status = f"stopped: no live driver; resume with invnas resume {report['run']}"
        table.add_row(name, status, details.get(name, ""), entry.get("error") or "")
    return table


def pareto_table(report: dict) -> Table:
    """The Pareto front, best first by the first objective, one column per stage."""
    objectives = ", ".join(f"{o['metric']} ({o['mode']})" for o in report["objectives"])
    table = Table(title=f"Pareto front: {objectives}", title_justify="left")
    stage_names = [s["stage"] for s in report["pareto"][0]["stages"]] if report["pareto"] else []
    for column in ("trial", "accuracy", "params", "MACs", "latency"):
        table.add_column(column, no_wrap=True)
    for name in stage_names:
        table.add_column(name, overflow="fold")
    table.add_column("retrained test", no_wrap=True)
    for row in report["pareto"]:
        metrics, again = row["metrics"], row["retrained"]
        retrained = "-"
        if again is not None:
            completed = again["status"] == "completed"
            retrained = f"#{again['rank']} " + (
                percent(again["test_accuracy"]) if completed else "failed"
            )
        latency = metrics.get("latency_ms")
        table.add_row(
            row["trial_id"],
            percent(metrics.get("accuracy")),
            count(metrics.get("params")),
            count(metrics.get("macs")),
            "-" if latency is None else f"{latency:.2f} ms",
            *(f"d{s['depth']} w{s['width']} {','.join(s['ops'])}" for s in row["stages"]),
            retrained,
        )
    return table


def retrained_table(report: dict) -> Table:
    """The retrained architectures by rank: supernet estimate beside stand-alone accuracy."""
    table = Table(title="Retrained", title_justify="left")
    for column in ("rank", "trial", "arch", "supernet acc", "val acc", "test acc", "weights"):
        table.add_column(column, overflow="fold")
    for record in report["retrained"]:
        metrics = record.get("metrics") or {}
        failed = record.get("status") != "completed"
        table.add_row(
            str(record["rank"]),
            record["trial_id"],
            record["arch"],
            percent(metrics.get("supernet_accuracy")),
            "failed" if failed else percent(metrics.get("val_accuracy")),
            "failed" if failed else percent(metrics.get("test_accuracy")),
            record.get("weights") or "-",
        )
    return table


def correlation_part(report: dict) -> RenderableType:
    """Kendall tau-b and Spearman rho, or why they are not shown."""
    found = report["rank_correlation"]
    if found["test"] is None:
        return Text(
            f"rank correlation: needs at least {MIN_RETRAINED_FOR_CORRELATION} retrained "
            f"architectures, this run has {found['n']}; raise retrain.top_k to judge whether "
            "the supernet's ranking can be trusted"
        )
    table = Table(
        title=f"Can the supernet's ranking be trusted? ({found['n']} retrained architectures)",
        title_justify="left",
    )
    for column in ("stand-alone accuracy", "Kendall tau-b", "Spearman rho"):
        table.add_column(column)
    for split in ("test", "val"):
        values = found[split]
        table.add_row(
            f"{split} split",
            coefficient(values["kendall_tau"]),
            coefficient(values["spearman_rho"]),
        )
    published = ", ".join(f"{k} {v}" for k, v in found["published_kendall_tau"].items())
    note = Text(
        "Supernet accuracy (inherited weights, validation split) against stand-alone accuracy. "
        f"Published Kendall tau over 13 ImageNet models (FairNAS): {published}. The retrained "
        "architectures are the search's best, a narrow range, where tau is typically lower "
        "than over random architectures."
        + (
            " They were fine-tuned from the supernet's weights, so the two accuracies are not "
            "independent; retrain.mode: scratch measures the ranking without that bias."
            if found.get("retrain_mode") == "finetune"
            else ""
        ),
        style="dim",
    )
    return Group(table, note)


def failures_table(report: dict) -> Table | None:
    """Failed trials of every phase, or None when there were none."""
    if not report["failures"]:
        return None
    table = Table(title="Failures", title_justify="left")
    for column in ("phase", "trial", "arch", "error"):
        table.add_column(column, overflow="fold")
    for failure in report["failures"]:
        table.add_row(
            failure.get("phase") or "-",
            failure.get("trial_id") or "-",
            failure.get("arch") or "-",
            failure.get("error") or "-",
        )
    return table


def plots_part(report: dict) -> Text:
    """Where the pictures went, or how to get them."""
    if report.get("plot_hint"):
        return Text(report["plot_hint"])
    plots = report.get("plots") or {}
    if not plots:
        return Text("plots: none (no completed trials yet)")
    return Text("\n".join(f"{kind}: {path}" for kind, path in plots.items()))


def report_renderable(report: dict) -> RenderableType:
    """Everything ``invnas report`` prints, in order."""
    parts: list[RenderableType] = [phases_table(report)]
    if report["pareto"]:
        parts.append(pareto_table(report))
    elif report["trials"]["completed"]:
        parts.append(Text("Pareto front: empty (no completed trial is feasible)"))
    if report["retrained"]:
        parts.append(retrained_table(report))
    parts.append(correlation_part(report))
    failures = failures_table(report)
    if failures is not None:
        parts.append(failures)
    if "plots" in report or "plot_hint" in report:
        parts.append(plots_part(report))
    return Group(*parts)
