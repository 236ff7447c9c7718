"""Hybrid against pure designs: does mixing convolution and involution pay off?

From a finished search run (``--run runs/fashion``, read through invnas's typed records) it
takes

1. the winner: the run's retrained rank-1 architecture;
2. from the search's evaluated trials (inherited supernet accuracy), the best all-convolution
   and the best all-involution architecture whose MACs lie within ``--band`` of the winner's
   (the nearest by MACs, with a note, when none does);
3. a ResNet-style (every block a 3x3 convolution) and a RedNet-style (every block an
   involution with the space's largest kernel, as RedNet's 7x7) network with the winner's
   depths and widths;
4. with ``--budgets``, the same comparison at other budgets: the searched Pareto front's best
   architecture within each budget against the best pure designs at its MACs.

Each (architecture, seed) is trained from scratch with exactly the run's retrain recipe (epochs,
lr, weight decay, data, augmentation; :func:`invnas.engine.train_standalone`, as the retrain
phase trains) and scored on the test split. Its result is written, atomically, as soon as it is
done to ``<cache>/<arch digest>-seed<N>.json`` (the digest covers the space, the data and the
recipe), so an interrupted run continues and a changed recipe starts afresh.

Reports test accuracy over ``--seeds`` seeds (mean, min, max, std), params, MACs (cost model),
batch-1 CPU latency (median, the search's thread count, measured after the training so that no
training competes with it) and a verdict: a design beats another only when their seed ranges do
not overlap. Plot: test accuracy against MACs beside the searched Pareto front (matplotlib).

    python experiments/hybrid_vs_pure.py --run runs/fashion --plan    # the designs, no training
    python experiments/hybrid_vs_pure.py --run runs/fashion --workers 2
    python experiments/hybrid_vs_pure.py --run runs/fashion --quick   # 1 epoch: a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from outputs import write_json_atomically, write_outputs  # noqa: E402
from rank_correlation import _key, digest  # noqa: E402

from invnas.space.arch import Arch, StageArch, check_arch  # noqa: E402
from invnas.space.cost import cost  # noqa: E402

if TYPE_CHECKING:
    from invnas.config import RunConfig
    from invnas.rundir import RetrainedRecord, RunResults
    from invnas.space.spec import OpChoice, SearchSpace, StageSpec

RESULTS = ROOT / "experiments" / "results" / "fashion"
CACHE = RESULTS / "cache" / "hybrid_vs_pure"
KIND_NAMES = {"conv": "convolution", "involution": "involution"}


@dataclass(frozen=True)
class Study:
    """A finished run as this experiment reads it: its records, space, settings (with the
    run's overrides; ``--epochs`` applied), data root and supernet weights."""

    path: Path
    results: RunResults
    space: SearchSpace
    config: RunConfig
    data_root: str | None
    supernet_weights: str

    @property
    def latency_threads(self) -> int:
        """Threads of a latency measurement: a search trial's, as the run measures it."""
        return max(1, int(self.config.resources.cpus_per_trial))

    def recipe_key(self) -> str:
        """Digest of everything a stand-alone score depends on: space, data, retrain recipe
        (and the supernet and search settings when the recipe fine-tunes)."""
        finetune = self.config.retrain.mode == "finetune"
        return digest(self.space, self.config, "retrain", *(("supernet", "search") * finetune))


@dataclass(frozen=True)
class Design:
    """One architecture of the comparison: a short ``label`` for the plot, its ``role`` in
    words, its inherited (supernet, validation) accuracy when the search evaluated it."""

    label: str
    role: str
    arch: str
    inherited_accuracy: float | None
    note: str = ""


@dataclass(frozen=True)
class Group:
    """One budget's comparison: the searched ``anchor`` against the pure ``rivals``."""

    name: str
    anchor: Design
    rivals: tuple[Design, ...]
    notes: tuple[str, ...] = ()


def load_study(run_path: str | Path, epochs: int | None = None) -> Study:
    """The run in ``run_path``; ValueError when it is not a run or has no retrained winner."""
    import invnas
    from invnas.rundir import open_run

    run = invnas.load_run(run_path)
    rundir = open_run(run.path)
    space, config = rundir.settings()
    if epochs is not None:
        config = replace(config, retrain=replace(config.retrain, epochs=epochs))
    weights = str(rundir.supernet_weights)
    study = Study(run.path, run.results, space, config, run.info.data_root, weights)
    winner_of(study)
    return study


def winner_of(study: Study) -> RetrainedRecord:
    """The run's retrained rank-1 record; ValueError when there is none."""
    found = next((r for r in study.results.retrained if r.rank == 1), None)
    if found is None or found.status != "completed":
        phase = study.results.phases.retrain.status.value
        raise ValueError(
            f"{study.path}: no retrained rank-1 architecture (retrain phase: {phase}); run this "
            "experiment on a finished run"
        )
    return found


def kind_of(arch: str) -> str:
    """``conv`` or ``involution`` when every block of ``arch`` uses that op, else ``hybrid``."""
    kinds = {op.kind for stage in Arch.decode(arch).stages for op in stage.ops}
    return kinds.pop() if len(kinds) == 1 else "hybrid"


def macs_of(study: Study, arch: str) -> int:
    return cost(study.space, Arch.decode(arch)).macs


def matched(study: Study, kind: str, anchor: str, band: float, where: str) -> Design | str:
    """The best all-``kind`` architecture but ``anchor`` the search evaluated (by inherited
    accuracy) whose MACs lie within ``band`` (a fraction) of ``anchor``'s; the nearest by MACs
    when none does; a note when the search evaluated none."""
    target = macs_of(study, anchor)
    pure = [
        t
        for t in study.results.trials
        if t.eligible and t.arch != anchor and kind_of(t.arch) == kind
    ]
    name = f"all-{KIND_NAMES[kind]}"
    if not pure:
        return f"{where}: the search evaluated no feasible {name} architecture"
    inside = [t for t in pure if abs(macs_of(study, t.arch) - target) <= band * target]
    note = ""
    if inside:
        best = max(inside, key=lambda t: t.metrics.accuracy)
    else:
        best = min(pure, key=lambda t: (abs(macs_of(study, t.arch) - target), -t.metrics.accuracy))
        note = (
            f"no {name} trial within ±{band:.0%} of {target / 1e6:.2f}M MACs: the nearest by MACs"
        )
    role = f"best {name} of the search (trial {best.trial_id})"
    return Design(f"{name} {where}", role, best.arch, best.metrics.accuracy, note)


def style_op(stage: StageSpec, kind: str) -> OpChoice:
    """The op of a ResNet-style (``conv``: 3x3, else the smallest ungrouped kernel) or
    RedNet-style (``involution``: the largest kernel, RedNet's 16 channels per group and
    reduction 4 when offered) stage; ValueError when the stage offers no such op."""
    offered = [op for op in stage.ops.candidates() if op.kind == kind]
    if not offered:
        raise ValueError(f"stage {stage.name!r} offers no {KIND_NAMES[kind]}")
    if kind == "conv":
        return min(offered, key=lambda op: (op.groups != 1, op.kernel_size != 3, op.kernel_size))
    return min(
        offered,
        key=lambda op: (-op.kernel_size, op.group_channels != 16, op.reduction != 4),
    )


def styled(study: Study, winner: str, kind: str) -> Design | str:
    """The winner's depths and widths with every block the ResNet-style (``conv``) or
    RedNet-style (``involution``) op; a note when the space does not hold it."""
    name = "ResNet-style" if kind == "conv" else "RedNet-style"
    base = Arch.decode(winner)
    try:
        ops = [style_op(spec, kind) for spec in study.space.stages]
        arch = Arch(
            tuple(
                StageArch(s.depth, s.width, (op,) * s.depth)
                for s, op in zip(base.stages, ops, strict=True)
            )
        )
        check_arch(study.space, arch)
    except ValueError as error:
        return f"{name}: not in this space ({error})"
    codes = "/".join(dict.fromkeys(op.code for op in ops))
    role = f"{name}: {codes} in every block, the winner's depths and widths"
    return Design(name, role, arch.encode(), inherited(study, arch.encode()))


def inherited(study: Study, arch: str) -> float | None:
    """The best inherited accuracy the search measured for ``arch`` (None: not evaluated)."""
    scores = [t.metrics.accuracy for t in study.results.trials if t.eligible and t.arch == arch]
    return max(scores, default=None)


def group(name: str, anchor: Design, rivals: list[Design | str]) -> Group:
    designs = tuple(r for r in rivals if isinstance(r, Design))
    notes = tuple(r for r in rivals if isinstance(r, str))
    return Group(name, anchor, designs, notes)


def pick_groups(study: Study, band: float, budgets: list[float]) -> tuple[list[Group], list[str]]:
    """The comparisons: the winner's (with the ResNet- and RedNet-style networks) and one per
    budget (MACs) with the searched front's best architecture within it; and notes on budgets
    that add nothing."""
    if band <= 0:
        raise ValueError(f"band: {band}; expected a positive fraction such as 0.15")
    winner = winner_of(study)
    anchor = Design(
        "winner",
        "the search's winner (retrained rank 1)",
        winner.arch,
        inherited(study, winner.arch),
    )
    groups = [
        group(
            "winner",
            anchor,
            [matched(study, kind, winner.arch, band, "at the winner's MACs") for kind in KIND_NAMES]
            + [styled(study, winner.arch, kind) for kind in KIND_NAMES],
        )
    ]
    front = [study.results.trial(trial_id) for trial_id in study.results.pareto]
    front = [t for t in front if t is not None and t.eligible]
    notes = []
    for budget in sorted(budgets):
        where = f"within {budget / 1e6:g}M MACs"
        within = [t for t in front if macs_of(study, t.arch) <= budget]
        if not within:
            notes.append(f"budget {budget / 1e6:g}M MACs: no front architecture within it")
            continue
        best = max(within, key=lambda t: t.metrics.accuracy)
        if any(g.anchor.arch == best.arch for g in groups):
            notes.append(f"budget {budget / 1e6:g}M MACs: its best front architecture is compared")
            continue
        role = f"the searched front's best {where} (trial {best.trial_id})"
        design = Design(f"front {where}", role, best.arch, best.metrics.accuracy)
        at = f"at {macs_of(study, best.arch) / 1e6:.2f}M MACs"
        rivals = [matched(study, kind, best.arch, band, at) for kind in KIND_NAMES]
        groups.append(group(f"front {where}", design, rivals))
    return groups, notes


def cache_file(study: Study, cache: Path, arch: str, seed: int) -> Path:
    return cache / f"{_key(study.recipe_key(), arch)}-seed{seed}.json"


def train_design(study: Study, arch: str, seed: int, threads: int, path: Path) -> dict:
    """Train ``arch`` with the run's retrain recipe, its streams derived from the run's seed,
    ``seed`` and the architecture; score it on the test split and write the result to ``path``
    atomically (worker)."""
    import torch

    from invnas.engine import load_data, train_standalone
    from invnas.train import derive_seed

    torch.set_num_threads(threads)
    config = study.config
    data = load_data(study.space, config, study.data_root, cpus=threads)
    training_seed = derive_seed(config.seed, "hybrid_vs_pure", arch, seed)
    finetune = config.retrain.mode == "finetune"
    start = time.perf_counter()
    result = train_standalone(
        study.space,
        Arch.decode(arch),
        config.retrain,
        data,
        torch.device("cpu"),
        seed=training_seed,
        supernet_weights=study.supernet_weights if finetune else None,
        bn_batches=config.search.bn_batches,
        latency_threads=study.latency_threads,
    )
    last = result.history[-1]
    record = {
        "arch": arch,
        "seed": seed,
        "training_seed": training_seed,
        "epochs": config.retrain.epochs,
        "threads": threads,
        "test_accuracy": last.test_accuracy,
        "val_accuracy": last.val_accuracy,
        "latency_ms_while_training": last.latency_ms,
        "seconds": time.perf_counter() - start,
    }
    write_json_atomically(path, record)
    return record


def train_all(
    study: Study, archs: list[str], seeds: list[int], cache: Path, workers: int, threads: int
) -> tuple[dict[tuple[str, int], dict], int]:
    """Every (arch, seed)'s result, training only those not in ``cache`` (seed 0 of every
    arch first; in ``workers`` processes of ``threads`` torch threads, in this process for one
    worker), and how many were trained. Prints each result as it comes."""
    jobs = {(a, s): cache_file(study, cache, a, s) for s in seeds for a in archs}
    missing = [key for key, path in jobs.items() if not path.exists()]

    def done(record: dict) -> None:
        print(
            f"[{time.strftime('%H:%M:%S')}] {record['arch']} seed {record['seed']}: "
            f"{points(record['test_accuracy'])} test accuracy, {record['seconds'] / 60:.1f} min",
            flush=True,
        )

    if workers == 1:
        for arch, seed in missing:
            done(train_design(study, arch, seed, threads, jobs[arch, seed]))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(train_design, study, a, s, threads, jobs[a, s]) for a, s in missing
            ]
            for future in as_completed(futures):
                done(future.result())
    return {key: json.loads(path.read_text()) for key, path in jobs.items()}, len(missing)


def latency_ms(study: Study, arch: str) -> float:
    """Median batch-1 CPU latency of ``arch`` with the search's threads, measured as a search
    trial measures it (:func:`invnas.train.latency.measure_latency_ms`)."""
    from invnas.engine.scoring import LATENCY_REPEATS
    from invnas.nn.builder import build_model
    from invnas.train.latency import measure_latency_ms

    model = build_model(study.space, Arch.decode(arch))
    shape = (study.space.input.channels, study.space.input.size, study.space.input.size)
    return measure_latency_ms(model, shape, repeats=LATENCY_REPEATS, threads=study.latency_threads)


def summary(study: Study, arch: str, records: list[dict]) -> dict:
    """Cost, latency and test accuracy over the seeds of one architecture."""
    accuracies = [r["test_accuracy"] for r in records]
    counted = cost(study.space, Arch.decode(arch))
    search = study.config.search
    over = [
        name
        for name, value, limit in (
            ("max_params", counted.params, search.max_params),
            ("max_macs", counted.macs, search.max_macs),
        )
        if limit is not None and value > limit
    ]
    return {
        "arch": arch,
        "kind": kind_of(arch),
        "params": counted.params,
        "macs": counted.macs,
        "latency_ms": latency_ms(study, arch),
        "outside_constraints": over,
        "test_accuracy": accuracies,
        "mean": statistics.fmean(accuracies),
        "min": min(accuracies),
        "max": max(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
        "train_seconds": [r["seconds"] for r in records],
    }


def compare(anchor: dict, rival: dict) -> dict:
    """How the anchor fares against a rival: the difference of the means and whether it holds
    beyond the seed spread (the two ranges of test accuracy over seeds do not overlap)."""
    if len(anchor["test_accuracy"]) < 2 or len(rival["test_accuracy"]) < 2:
        outcome = "unknown (one seed: no spread)"
    elif anchor["min"] > rival["max"]:
        outcome = "wins"
    elif anchor["max"] < rival["min"]:
        outcome = "loses"
    else:
        outcome = "within the seed spread"
    return {"difference": anchor["mean"] - rival["mean"], "outcome": outcome}


def points(value: float) -> str:
    return f"{100 * value:.2f}%"


def verdict(groups: list[dict], archs: dict[str, dict]) -> list[str]:
    """The verdict in plain words, one line per comparison and a summary line."""
    lines, tally = [], {"wins": [], "loses": [], "within the seed spread": []}
    for g in groups:
        anchor = archs[g["anchor"]["arch"]]
        kind = "hybrid" if anchor["kind"] == "hybrid" else f"all-{KIND_NAMES[anchor['kind']]}"
        lines.append(
            f"{g['name']}: {g['anchor']['role']}, {kind}, {anchor['macs'] / 1e6:.2f}M MACs: "
            f"{points(anchor['mean'])} ({points(anchor['min'])}-{points(anchor['max'])} over "
            f"{len(anchor['test_accuracy'])} seeds)."
        )
        for rival, found in zip(g["rivals"], g["comparisons"], strict=True):
            scored = archs[rival["arch"]]
            said = {
                "wins": "the searched design wins by more than the seed spread",
                "loses": "the searched design loses by more than the seed spread",
                "within the seed spread": "within the seed spread: no winner",
            }.get(found["outcome"], found["outcome"])
            lines.append(
                f"- against the {rival['role']} ({scored['macs'] / 1e6:.2f}M MACs): "
                f"{points(scored['mean'])} ({points(scored['min'])}-{points(scored['max'])}); "
                f"{100 * found['difference']:+.2f} points (seed ranges "
                f"{100 * (anchor['max'] - anchor['min']):.2f} and "
                f"{100 * (scored['max'] - scored['min']):.2f} points wide), {said}."
            )
            if anchor["kind"] == "hybrid" and found["outcome"] in tally:
                tally[found["outcome"]].append(f"{g['name']} vs {rival['label']}")
    compared = sum(map(len, tally.values()))
    if compared:
        lines.append(
            f"In all: the hybrid beats {len(tally['wins'])} of {compared} pure designs by more "
            f"than the seed spread, loses to {len(tally['loses'])} and ties "
            f"{len(tally['within the seed spread'])}."
            + (f" Wins: {'; '.join(tally['wins'])}." if tally["wins"] else "")
            + (f" Losses: {'; '.join(tally['loses'])}." if tally["loses"] else "")
        )
    else:
        lines.append("No hybrid was compared: every searched anchor is a pure design.")
    return lines


def front_points(study: Study) -> dict[str, list[dict]]:
    """The searched trials for the plot: every feasible one and the Pareto front (MACs and
    inherited validation accuracy)."""

    def point(t) -> dict:
        return {"arch": t.arch, "macs": macs_of(study, t.arch), "accuracy": t.metrics.accuracy}

    trials = [t for t in study.results.trials if t.eligible]
    front = set(study.results.pareto)
    return {
        "trials": [point(t) for t in trials],
        "front": sorted((point(t) for t in trials if t.trial_id in front), key=lambda p: p["macs"]),
    }


def plot(result: dict, path: Path) -> str:
    """Test accuracy against MACs of every design beside the searched front; the file written,
    or why none was."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return "no plot: matplotlib is not installed (pip install matplotlib)"
    figure = Figure(figsize=(11, 5.5), layout="constrained")
    ax = figure.add_subplot()
    searched = result["searched"]
    ax.scatter(
        [p["macs"] / 1e6 for p in searched["trials"]],
        [100 * p["accuracy"] for p in searched["trials"]],
        s=10,
        color="lightgrey",
        label="searched (inherited weights, val)",
    )
    front = searched["front"]
    ax.step(
        [p["macs"] / 1e6 for p in front],
        [100 * p["accuracy"] for p in front],
        where="post",
        marker="o",
        markersize=4,
        color="grey",
        label="searched Pareto front (inherited, val)",
    )
    markers = {"hybrid": "*", "conv": "s", "involution": "^"}
    labels: dict[str, list[str]] = {}
    for g in result["groups"]:
        for d in (g["anchor"], *g["rivals"]):
            labels.setdefault(d["arch"], []).append(d["label"])
    for arch, found in result["archs"].items():
        label = ", ".join(dict.fromkeys(labels[arch]))
        mean = 100 * found["mean"]
        ax.errorbar(
            found["macs"] / 1e6,
            mean,
            yerr=[[mean - 100 * found["min"]], [100 * found["max"] - mean]],
            fmt=markers[found["kind"]],
            markersize=9,
            capsize=3,
            label=f"{label} (retrained, test)",
        )
    ax.set_xlabel("MACs (millions)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{result['space']}: retrained designs (test, min-max over seeds) vs the search")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(partial, dpi=120, format="png")
    partial.replace(path)
    return str(path)


def as_dict(design: Design) -> dict:
    return {
        "label": design.label,
        "role": design.role,
        "arch": design.arch,
        "inherited_accuracy": design.inherited_accuracy,
        "note": design.note,
    }


def run(study: Study, groups: list[Group], notes: list[str], args: argparse.Namespace) -> dict:
    """Train every design of ``groups`` (``args``: seeds, cache, workers, threads) and gather
    the results, comparisons and verdict."""
    archs = list(dict.fromkeys(d.arch for g in groups for d in (g.anchor, *g.rivals)))
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    records, trained = train_all(study, archs, seeds, Path(args.cache), args.workers, args.threads)
    elapsed = time.perf_counter() - started
    scored = {a: summary(study, a, [records[a, s] for s in seeds]) for a in archs}
    found_groups = []
    for g in groups:
        rivals = [as_dict(d) for d in g.rivals]
        found_groups.append(
            {
                "name": g.name,
                "anchor": as_dict(g.anchor),
                "rivals": rivals,
                "comparisons": [compare(scored[g.anchor.arch], scored[d.arch]) for d in g.rivals],
                "notes": list(g.notes),
            }
        )
    retrain, data = study.config.retrain, study.config.data
    winner = winner_of(study)
    result = {
        "experiment": "hybrid_vs_pure",
        "command": "python experiments/hybrid_vs_pure.py " + " ".join(sys.argv[1:]),
        "run": str(study.path),
        "space": study.space.name,
        "recipe": {
            "mode": retrain.mode,
            "epochs": retrain.epochs,
            "lr": retrain.lr,
            "momentum": retrain.momentum,
            "weight_decay": retrain.weight_decay,
            "dataset": data.dataset,
            "batch_size": data.batch_size,
            "augment": data.augment,
            "digest": study.recipe_key(),
        },
        "run_winner_test_accuracy": winner.metrics.test_accuracy if winner.metrics else None,
        "seeds": seeds,
        "band": args.band,
        "budgets_macs": [b * 1e6 for b in args.budgets],
        "latency_threads": study.latency_threads,
        "workers": args.workers,
        "threads": args.threads,
        "groups": found_groups,
        "notes": notes,
        "archs": scored,
        "searched": front_points(study),
        "trainings_run": trained,
        "trainings_cached": len(records) - trained,
        "wall_seconds": elapsed,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }
    result["verdict"] = verdict(found_groups, scored)
    return result


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def verdict_lines(verdict: list[str]) -> list[str]:
    """The verdict as markdown: a paragraph per comparison, its rivals a list below it."""
    lines: list[str] = []
    for line in verdict:
        lines += [line] if line.startswith("- ") or not lines else ["", line]
    return lines


def markdown(result: dict) -> str:
    recipe = result["recipe"]
    rows = [
        "| comparison | design | arch | params | MMACs | latency (ms) | test accuracy "
        "(mean) | min-max | std | inherited (val) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in result["groups"]:
        for d in (g["anchor"], *g["rivals"]):
            found = result["archs"][d["arch"]]
            std = "-" if found["std"] is None else f"{100 * found['std']:.2f}"
            inherited = d["inherited_accuracy"]
            extras = [d["note"]] if d["note"] else []
            if found["outside_constraints"]:
                extras.append("above the search's " + ", ".join(found["outside_constraints"]))
            design = d["role"] + "".join(f" ({e})" for e in extras)
            rows.append(
                f"| {g['name']} | {cell(design)} | {cell(d['arch'])} "
                f"| {found['params'] / 1e3:.0f}K | {found['macs'] / 1e6:.2f} "
                f"| {found['latency_ms']:.2f} | {points(found['mean'])} "
                f"| {points(found['min'])}-{points(found['max'])} | {std} "
                f"| {'-' if inherited is None else points(inherited)} |"
            )
    notes = [n for g in result["groups"] for n in g["notes"]] + result["notes"]
    reference = result["run_winner_test_accuracy"]
    return "\n".join(
        [
            "# Hybrid against pure designs",
            "",
            f"`{result['command'].strip()}`",
            "",
            f"Run `{result['run']}` (space `{result['space']}`). Every design is trained from "
            f"scratch with the run's retrain recipe ({recipe['mode']}, {recipe['epochs']} epochs, "
            f"lr {recipe['lr']}, momentum {recipe['momentum']}, weight decay "
            f"{recipe['weight_decay']}; {recipe['dataset']}, batch {recipe['batch_size']}, "
            f"augmentation {recipe['augment']}) with "
            f"{len(result['seeds'])} seeds and scored on the test split. Pure designs from the "
            f"search are matched to the searched design's MACs within ±{result['band']:.0%}. "
            f"Latency: batch 1, median, {result['latency_threads']} thread(s), untrained "
            "weights, measured after the training. 'inherited (val)': the search's estimate."
            + (
                f" The run's own retraining of the winner scored {points(reference)}."
                if reference is not None
                else ""
            ),
            "",
            *rows,
            "",
            "## Verdict",
            "",
            *verdict_lines(result["verdict"]),
            "",
            *([f"Notes: {'; '.join(notes)}.", ""] if notes else []),
            f"Plot: {result.get('plot', '-')}. {result['trainings_run']} trainings run, "
            f"{result['trainings_cached']} from the cache; wall time "
            f"{result['wall_seconds'] / 3600:.2f} h.",
            "",
        ]
    )


def plan_text(study: Study, groups: list[Group], notes: list[str], args) -> str:
    """What a run would train: the designs and how many trainings are not cached yet."""
    archs = list(dict.fromkeys(d.arch for g in groups for d in (g.anchor, *g.rivals)))
    missing = [
        (a, s)
        for a in archs
        for s in range(args.seeds)
        if not cache_file(study, Path(args.cache), a, s).exists()
    ]
    lines = []
    for g in groups:
        lines.append(f"{g.name}:")
        for d in (g.anchor, *g.rivals):
            note = f" ({d.note})" if d.note else ""
            macs = macs_of(study, d.arch) / 1e6
            lines.append(f"  [{kind_of(d.arch)}] {d.role}{note}: {d.arch}, {macs:.2f}M MACs")
        lines += [f"  note: {n}" for n in g.notes]
    lines += [f"note: {n}" for n in notes]
    lines.append(
        f"{len(archs)} architectures x {args.seeds} seeds: {len(missing)} trainings of "
        f"{study.config.retrain.epochs} epochs to run ({len(archs) * args.seeds - len(missing)} "
        "cached)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished run directory (runs/NAME)")
    parser.add_argument("--seeds", type=int, default=2, help="trainings per architecture")
    parser.add_argument(
        "--band", type=float, default=0.15, help="matched MACs: within this fraction (0.15)"
    )
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="*",
        default=[],
        help="more budgets in millions of MACs: the front's best within each, against pure",
    )
    parser.add_argument("--epochs", type=int, help="default: the run's retrain epochs")
    parser.add_argument("--workers", type=int, default=1, help="training processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--out", default=str(RESULTS / "hybrid_vs_pure"), help="path stem")
    parser.add_argument("--plan", action="store_true", help="list the designs; train nothing")
    parser.add_argument("--quick", action="store_true", help="1 epoch: a smoke run")
    args = parser.parse_args()
    for name in ("seeds", "workers", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be at least 1")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs: must be at least 1")
    if args.band <= 0 or any(b <= 0 for b in args.budgets):
        parser.error("--band and --budgets: must be positive")
    if args.quick:
        args.epochs = 1
        args.out += "_quick"
    try:
        study = load_study(args.run, args.epochs)
        groups, notes = pick_groups(study, args.band, [b * 1e6 for b in args.budgets])
    except ValueError as error:
        parser.error(str(error))
    if args.plan:
        print(plan_text(study, groups, notes, args))
        return
    result = run(study, groups, notes, args)
    result["plot"] = plot(result, Path(args.out).with_suffix(".png"))
    write_outputs(result, args.out, markdown)


if __name__ == "__main__":
    main()
