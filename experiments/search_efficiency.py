"""Search efficiency: NSGA-II and TPE against random search at the same trial budget.

Every search runs Optuna directly (no Ray) over one trained supernet of the space (--space,
default search_spaces/quickstart.yaml; uniform path sampling, the space's supernet settings;
trained once and cached, shared with experiments/rank_correlation.py). A trial scores its
architecture exactly as an ``invnas search`` trial does: weights inherited from the supernet,
BatchNorm recalibrated on ``search.bn_batches`` training batches, accuracy on the validation
split; MACs from the cost model. The samplers are built by
``invnas.strategy.samplers.make_sampler`` with the budget, as the search builds them (NSGA-II
population budget/4, TPE budget/3 start-up trials), and the architecture is suggested by
``invnas.strategy.suggest.suggest_arch``.

Quality of a search: the hypervolume of its (accuracy, MACs) front, with coordinates error =
1 - accuracy (reference 1) and MACs / the space's largest MACs (reference 1), reported after
each number of trials, mean and standard deviation over --seeds seeds, and the final
hypervolume's difference to random search's seed by seed (with the same seed the first trials
of every sampler are the same random architectures). Evaluations are
deterministic, so they are cached per architecture (experiments/results/cache/).

    python experiments/search_efficiency.py                  # 3 samplers x 20 seeds x 60 trials
    python experiments/search_efficiency.py --quick          # 2 seeds x 12 trials
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from outputs import write_outputs  # noqa: E402
from rank_correlation import (  # noqa: E402
    CACHE,
    RESULTS,
    add_space_argument,
    data_of,
    digest,
    load_space,
    train_supernet,
)

from invnas.reporting.hypervolume import hypervolume  # noqa: E402

SAMPLERS = ("nsga2", "tpe", "random")
EVAL_CACHE = RESULTS / "cache" / "search_efficiency"


class Evaluator:
    """Inherited-weight validation accuracy and MACs of the space's architectures, scored as a
    search trial scores them (:func:`invnas.engine.score_arch`), memoized."""

    def __init__(self, space, config, weights: Path, memo_file: Path) -> None:
        from invnas.engine import load_supernet

        self.config = config
        self.data = data_of(space, config)
        self.supernet = load_supernet(space, weights)
        self.memo_file = memo_file
        self.memo: dict[str, list[float]] = {}
        for earlier in sorted(memo_file.parent.glob("evaluations-*.json")):
            self.memo.update(json.loads(earlier.read_text()))
        self.fresh = 0

    def __call__(self, arch: str) -> tuple[float, int]:
        if arch not in self.memo:
            from invnas.engine import score_arch
            from invnas.space.arch import Arch

            bn_batches = self.config.search.bn_batches
            score = score_arch(
                self.supernet, Arch.decode(arch), self.data, bn_batches, measure_latency=False
            )
            self.memo[arch] = [score.accuracy, score.macs]
            self.fresh += 1
        accuracy, macs = self.memo[arch]
        return accuracy, int(macs)


def one_search(
    space, config, sampler_name: str, seed: int, budget: int, weights: Path, cache: Path
):
    """One Optuna study of ``budget`` trials with sampler ``sampler_name`` (worker)."""
    import optuna

    from invnas.strategy.samplers import make_sampler, uses_categorical
    from invnas.strategy.suggest import suggest_arch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cache = cache / digest(space, config, "supernet", "search")  # this supernet's scores
    memo_file = cache / f"evaluations-{sampler_name}-{seed}.json"
    evaluator = Evaluator(space, config, weights, memo_file)
    suggest = functools.partial(
        suggest_arch, space=space, categorical=uses_categorical(sampler_name)
    )

    def objective(trial) -> tuple[float, int]:
        return evaluator(suggest(trial)["arch"])

    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=make_sampler(sampler_name, n_objectives=2, trials=budget, seed=seed),
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=budget)
    seconds = time.perf_counter() - start
    cache.mkdir(parents=True, exist_ok=True)
    evaluator.memo_file.write_text(json.dumps(evaluator.memo))
    trials = [
        {"arch": t.user_attrs["arch"], "accuracy": t.values[0], "macs": t.values[1]}
        for t in study.trials
    ]
    return {
        "sampler": sampler_name,
        "seed": seed,
        "trials": trials,
        "seconds": seconds,
        "fresh_evaluations": evaluator.fresh,
    }


def _paired(searches: list[dict], name: str, macs_max: int) -> dict[str, float]:
    """Final hypervolume of ``name`` minus random search's, seed by seed (the searches of one
    seed start from the same random architectures): mean, std and how many seeds it won."""
    final = {(s["sampler"], s["seed"]): volume_curve(s["trials"], macs_max)[-1] for s in searches}
    seeds = sorted({s["seed"] for s in searches})
    gaps = [final[name, seed] - final["random", seed] for seed in seeds]
    return {
        "mean": statistics.fmean(gaps),
        "std": statistics.stdev(gaps) if len(gaps) > 1 else 0.0,
        "seeds_better": sum(g > 0 for g in gaps),
        "seeds": len(gaps),
    }


def _compact(search: dict, checkpoints: list[int], macs_max: int) -> dict:
    """One search for the results file: its hypervolume at the checkpoints and final front."""
    from invnas.strategy.objectives import Objective
    from invnas.strategy.pareto import pareto_front

    trials = search["trials"]
    curve = volume_curve(trials, macs_max)
    objectives = [Objective("accuracy", "max"), Objective("macs", "min")]
    return {
        "sampler": search["sampler"],
        "seed": search["seed"],
        "seconds": search["seconds"],
        "distinct_archs": len({t["arch"] for t in trials}),
        "hypervolume": {str(k): curve[k - 1] for k in checkpoints},
        "front": sorted(
            {trials[i]["arch"]: trials[i] for i in pareto_front(trials, objectives)}.values(),
            key=lambda t: t["macs"],
        ),
    }


def volume_curve(trials: list[dict], macs_max: int) -> list[float]:
    """Hypervolume of the first k trials, for k = 1..len(trials)."""
    points = [(1 - t["accuracy"], t["macs"] / macs_max) for t in trials]
    return [hypervolume(points[: k + 1], (1.0, 1.0)) for k in range(len(points))]


def run(args: argparse.Namespace) -> dict:
    from invnas.space.cost import bounds

    space_file = Path(args.space).resolve()
    space, config = load_space(supernet_epochs=args.supernet_epochs, path=space_file)
    supernet_epochs = config.supernet.epochs
    macs_max = bounds(space).macs_max
    started = time.perf_counter()
    weights = train_supernet(space, config, "uniform", Path(args.supernet_cache))
    cache = Path(args.cache)
    jobs = [(s, seed) for seed in range(args.seeds) for s in SAMPLERS]
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(one_search, space, config, s, seed, args.trials, weights, cache)
            for s, seed in jobs
        ]
        searches = [f.result() for f in futures]
    elapsed = time.perf_counter() - started
    checkpoints = sorted({k for k in (10, 20, 30, 40, 60, 80, args.trials) if k <= args.trials})
    pooled = [t for s in searches for t in s["trials"]]
    summary = {}
    for name in SAMPLERS:
        curves = [volume_curve(s["trials"], macs_max) for s in searches if s["sampler"] == name]
        best = [max(t["accuracy"] for t in s["trials"]) for s in searches if s["sampler"] == name]
        summary[name] = {
            "hypervolume": {
                str(k): {
                    "mean": statistics.fmean(c[k - 1] for c in curves),
                    "std": statistics.stdev(c[k - 1] for c in curves) if len(curves) > 1 else 0.0,
                }
                for k in checkpoints
            },
            "final_hypervolume_per_seed": [c[-1] for c in curves],
            "final_minus_random": _paired(searches, name, macs_max),
            "best_accuracy_mean": statistics.fmean(best),
            "distinct_archs_mean": statistics.fmean(
                len({t["arch"] for t in s["trials"]}) for s in searches if s["sampler"] == name
            ),
        }
    return {
        "experiment": "search_efficiency",
        "command": "python experiments/search_efficiency.py " + " ".join(sys.argv[1:]),
        "space": args.space,
        "supernet": {"sampling": "uniform", "epochs": supernet_epochs},
        "trials": args.trials,
        "seeds": args.seeds,
        "hypervolume_definition": "points (1 - val accuracy, MACs / space max MACs), "
        "reference (1, 1)",
        "macs_max": macs_max,
        "checkpoints": checkpoints,
        "summary": summary,
        "pooled_front_hypervolume": volume_curve(pooled, macs_max)[-1],
        "pooled_distinct_archs": len({t["arch"] for t in pooled}),
        "searches": [_compact(s, checkpoints, macs_max) for s in searches],
        "wall_seconds": elapsed,
        "fresh_evaluations": sum(s["fresh_evaluations"] for s in searches),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }


def markdown(result: dict) -> str:
    checkpoints = result["checkpoints"]
    rows = [
        "| sampler | "
        + " | ".join(f"HV @ {k}" for k in checkpoints)
        + " | final HV - random (paired) | seeds better than random | best val acc |",
        "|---|" + "---|" * (len(checkpoints) + 3),
    ]
    for name, found in result["summary"].items():
        volumes = [found["hypervolume"][str(k)] for k in checkpoints]
        cells = [f"{v['mean']:.4f} ± {v['std']:.4f}" for v in volumes]
        gap = found["final_minus_random"]
        rows.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {gap['mean']:+.4f} ± {gap['std']:.4f} | {gap['seeds_better']}/{gap['seeds']} "
            f"| {100 * found['best_accuracy_mean']:.1f}% |"
        )
    return "\n".join(
        [
            "# Search efficiency: hypervolume of (accuracy, MACs) against trials",
            "",
            f"`{result['command'].strip()}`",
            "",
            f"Optuna over one supernet of {result['space']} (uniform sampling, "
            f"{result['supernet']['epochs']} epochs); each trial = inherited weights + BatchNorm "
            f"recalibration, validation accuracy. Hypervolume of {result['hypervolume_definition']}"
            f"; mean ± std over {result['seeds']} seeds at the same budget of {result['trials']} "
            f"trials. Union of all {result['pooled_distinct_archs']} evaluated architectures: "
            f"hypervolume {result['pooled_front_hypervolume']:.4f}.",
            "",
            *rows,
            "",
            f"Wall time {result['wall_seconds'] / 60:.1f} min, "
            f"{result['fresh_evaluations']} supernet evaluations (the other trials repeated an "
            "architecture already evaluated, or found it in the cache of an earlier run).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_space_argument(parser)
    parser.add_argument("--trials", type=int, default=60, help="trials per search")
    parser.add_argument("--seeds", type=int, default=20, help="searches per sampler")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", default=str(EVAL_CACHE))
    parser.add_argument("--supernet-cache", default=str(CACHE))
    parser.add_argument("--supernet-epochs", type=int, help="default: the space's")
    parser.add_argument("--out", default=str(RESULTS / "search_efficiency"), help="path stem")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 12 trials, 1 epoch")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.supernet_epochs = 12, 2, 1
        args.out += "_quick"
    result = run(args)
    write_outputs(result, args.out, markdown)


if __name__ == "__main__":
    main()
