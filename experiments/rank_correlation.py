"""Can the supernet's ranking be trusted? Kendall tau between supernet and stand-alone accuracy.

On the quickstart space (search_spaces/quickstart.yaml, scikit-learn's 8x8 digits) it

1. samples --archs distinct architectures (seeded);
2. trains each stand-alone from scratch with the space's retrain settings, --repeats times with
   different seeds, and scores it on the test split (accuracy averaged over the seeds; the
   agreement between two seeds is the noise ceiling of the whole measurement);
3. trains supernets with the space's supernet settings: ``uniform`` (single-path one-shot),
   ``fair`` (FairNAS strict fairness: every op candidate trained in every step, so several
   paths per step) and ``uniform-same-compute`` (uniform, as many paths in all as ``fair``);
4. scores every architecture with inherited weights after BatchNorm recalibration, exactly as a
   search trial does (``search.bn_batches`` training batches), on the validation split (what
   the search ranks by) and on the test split;
5. reports Kendall tau-b and Spearman rho between the two, with a 95% bootstrap interval over
   test images (paired resampling of the test split, which the stand-alone scores share).

Published anchors (13 models, ImageNet, FairNAS paper): single-path one-shot tau 0.62,
FairNAS 0.95.

Work runs in --workers processes (one torch thread each); finished pieces are cached under
experiments/results/cache/rank_correlation/ (keyed by the space's content) so an interrupted
run continues where it stopped.

    python experiments/rank_correlation.py                # 30 archs x 2 seeds, ~6 min on 2 cores
    python experiments/rank_correlation.py --quick        # 6 archs, 2 epochs: a smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outputs import write_json_atomically, write_outputs  # noqa: E402

from invnas.reporting.correlation import kendall_tau_b, spearman_rho  # noqa: E402

SPACE_FILE = ROOT / "search_spaces" / "quickstart.yaml"
RESULTS = ROOT / "experiments" / "results"
CACHE = RESULTS / "cache" / "rank_correlation"
PUBLISHED = {"uniform": 0.62, "fair": 0.95}  # Kendall tau, 13 ImageNet models (FairNAS paper)
BOOTSTRAP = 2000
ENGINE_STREAMS = "engine-1"  # random streams of invnas.engine's training functions
ARCH_KEYS = ("name", "input", "num_classes", "stem", "stages", "seed")
DATA_KEYS = ("dataset", "path", "val_fraction", "test_fraction", "batch_size", "augment")


def load_space(
    epochs: int | None = None, supernet_epochs: int | None = None, path: Path = SPACE_FILE
):
    """``(space, config)`` of the space file ``path`` (quickstart), its retrain / supernet
    epochs optionally overridden."""
    import dataclasses

    from invnas.space.loader import load_space_file

    space, config = load_space_file(path)
    if epochs is not None:
        retrain = dataclasses.replace(config.retrain, epochs=epochs)
        config = dataclasses.replace(config, retrain=retrain)
    if supernet_epochs is not None:
        supernet = dataclasses.replace(config.supernet, epochs=supernet_epochs)
        config = dataclasses.replace(config, supernet=supernet)
    return space, config


def digest(space, config, *settings: str) -> str:
    """Short hash of the architecture space, its data and the run settings named in
    ``settings`` (e.g. ``"retrain"``), and of the engine's streams: a cache entry is reused
    only while everything that shaped it is unchanged, and survives edits to the rest (a
    stand-alone score does not depend on the search's settings)."""
    from invnas.space.serialize import space_to_dict

    whole = space_to_dict(space, config)
    data = {key: whole["data"].get(key) for key in DATA_KEYS}
    kept = {key: whole[key] for key in (*ARCH_KEYS, *settings)}
    return _key(ENGINE_STREAMS, json.dumps({**kept, "data": data}, sort_keys=True, default=str))


def data_of(space, config):
    """The run's seeded data, read as a trial reads it; one torch thread per worker."""
    import torch

    from invnas.engine import load_data

    torch.set_num_threads(1)
    return load_data(space, config, Path(space.source).parent)


def sample_archs(space, count: int, seed: int) -> list[str]:
    """``count`` distinct architectures, uniformly sampled with ``seed``."""
    from invnas.space.arch import sample

    rng, found = random.Random(seed), []
    while len(found) < count:
        arch = sample(space, rng).encode()
        if arch not in found:
            found.append(arch)
    return found


def correct_flags(model, loader) -> list[int]:
    """1/0 per image of ``loader``: whether ``model`` classifies it correctly."""
    import torch

    flags: list[int] = []
    model.eval()
    with torch.no_grad():
        for images, labels in loader:
            flags += (model(images).argmax(1) == labels).int().tolist()
    return flags


def _cached(path: Path, compute):
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    write_json_atomically(path, value)
    return value


def _key(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16]


def train_standalone(space, config, arch: str, seed: int, cache: Path) -> dict:
    """Train ``arch`` from scratch with the space's retrain settings, as a retrain trial does
    (:func:`invnas.engine.train_standalone`); its per-image correctness on the test split
    (worker)."""

    def compute() -> dict:
        import torch

        from invnas.engine import train_standalone as train
        from invnas.space.arch import Arch
        from invnas.train import derive_seed

        data = data_of(space, config)
        settings = dataclasses.replace(config.retrain, mode="scratch")
        start = time.perf_counter()
        result = train(
            space,
            Arch.decode(arch),
            settings,
            data,
            torch.device("cpu"),
            seed=derive_seed(seed, "standalone", arch),
            latency_threads=1,
        )
        return {
            "arch": arch,
            "test_correct": correct_flags(result.model, data.eval_loader("test")),
            "seconds": time.perf_counter() - start,
        }

    key = _key(digest(space, config, "retrain"), arch, seed)
    return _cached(cache / f"standalone-{key}.json", compute)


def supernet_file(space, config, sampling: str, cache: Path) -> Path:
    epochs = config.supernet.epochs
    key = digest(space, config, "supernet", "search")
    return cache / f"supernet-{sampling}-{epochs}ep-{key}.pt"


def train_supernet(space, config, sampling: str, cache: Path) -> Path:
    """Train a supernet of ``space`` with path sampler ``sampling`` and the space's supernet
    settings, as the supernet phase does (:func:`invnas.engine.train_supernet`); its
    state_dict file (cached) (worker)."""
    import torch

    from invnas.engine import cpu_state_dict
    from invnas.engine import train_supernet as train

    path = supernet_file(space, config, sampling, cache)
    if path.exists():
        return path
    data = data_of(space, config)
    start = time.perf_counter()
    # no monitor accuracy: it only reports (the weights are the same) and would add to the time
    result = train(
        space,
        dataclasses.replace(config.supernet, sampling=sampling),
        data,
        torch.device("cpu"),
        bn_batches=config.search.bn_batches,
        monitor_archs=0,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cpu_state_dict(result.model), path.with_suffix(".partial"))
    path.with_suffix(".partial").replace(path)
    (path.with_suffix(".json")).write_text(json.dumps({"seconds": time.perf_counter() - start}))
    return path


def score_inherited(space, config, weights: Path, archs: list[str]) -> dict[str, dict]:
    """Each arch's per-image correctness (val and test) with weights inherited from the
    supernet in ``weights`` and BatchNorm recalibrated as a search trial does
    (:func:`invnas.engine.inherited_model`) (worker)."""
    from invnas.engine import inherited_model, load_supernet
    from invnas.space.arch import Arch

    data = data_of(space, config)
    supernet = load_supernet(space, weights)
    scores = {}
    for arch in archs:
        subnet = inherited_model(supernet, Arch.decode(arch), data, config.search.bn_batches)
        scores[arch] = {
            "val_correct": correct_flags(subnet.model, data.eval_loader("val")),
            "test_correct": correct_flags(subnet.model, data.eval_loader("test")),
        }
    return scores


def mean(flags: list[int]) -> float:
    return sum(flags) / len(flags)


def bootstrap_tau(x_flags: list[list[int]], y_flags: list[list[int]], seed: int) -> list[float]:
    """95% interval of tau-b over resamplings of the images that both sides were scored on."""
    rng = random.Random(seed)
    n = len(x_flags[0])
    taus = []
    for _ in range(BOOTSTRAP):
        picks = [rng.randrange(n) for _ in range(n)]
        x = [sum(f[i] for i in picks) for f in x_flags]
        y = [sum(f[i] for i in picks) for f in y_flags]
        tau = kendall_tau_b(x, y)
        if tau == tau:  # not NaN
            taus.append(tau)
    taus.sort()
    return [taus[int(0.025 * len(taus))], taus[int(0.975 * len(taus)) - 1]]


def variants(space, config) -> dict[str, tuple[str, object]]:
    """Supernets to compare: name -> (path sampler, settings with its supernet epochs). Besides
    ``uniform`` and ``fair`` at the space's epochs, ``uniform-same-compute`` trains uniform
    sampling for as many paths as ``fair`` does (fair trains several paths per step)."""
    from invnas.nn import FairSampler

    paths = FairSampler(space).paths_per_step
    settings = config.supernet
    longer = dataclasses.replace(settings, epochs=settings.epochs * paths)
    return {
        "uniform": ("uniform", config),
        "fair": ("fair", config),
        "uniform-same-compute": ("uniform", dataclasses.replace(config, supernet=longer)),
    }


def run(args: argparse.Namespace) -> dict:
    space, config = load_space(args.epochs, args.supernet_epochs, Path(args.space).resolve())
    archs = sample_archs(space, args.archs, args.seed)
    seeds = [args.seed + r for r in range(args.repeats)]
    cache = Path(args.cache)
    compared = variants(space, config)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
        supernets = {
            name: pool.submit(train_supernet, space, variant, sampling, cache)
            for name, (sampling, variant) in compared.items()
        }
        alone = {
            (a, seed): pool.submit(train_standalone, space, config, a, seed, cache)
            for seed in seeds
            for a in archs
        }
        inherited = {
            name: pool.submit(score_inherited, space, config, future.result(), archs)
            for name, future in supernets.items()
        }
        standalone = {key: future.result() for key, future in alone.items()}
        inherited_scores = {name: future.result() for name, future in inherited.items()}
    elapsed = time.perf_counter() - started
    per_seed = {seed: [mean(standalone[a, seed]["test_correct"]) for a in archs] for seed in seeds}
    # per image, how many of the seeds classify it correctly: sums rank like mean accuracies
    alone_flags = [
        [sum(bits) for bits in zip(*(standalone[a, s]["test_correct"] for s in seeds), strict=True)]
        for a in archs
    ]
    alone_acc = [mean(f) / len(seeds) for f in alone_flags]
    found = {}
    for name, (sampling, variant) in compared.items():
        scores = inherited_scores[name]
        on_val = [mean(scores[a]["val_correct"]) for a in archs]
        on_test = [mean(scores[a]["test_correct"]) for a in archs]
        test_flags = [scores[a]["test_correct"] for a in archs]
        timing = supernet_file(space, variant, sampling, cache).with_suffix(".json")
        found[name] = {
            "sampling": sampling,
            "epochs": variant.supernet.epochs,
            "published_kendall_tau": PUBLISHED.get(name),
            "supernet_train_seconds": json.loads(timing.read_text())["seconds"],
            "kendall_tau": kendall_tau_b(on_test, alone_acc),
            "kendall_tau_95ci": bootstrap_tau(test_flags, alone_flags, args.seed),
            "spearman_rho": spearman_rho(on_test, alone_acc),
            "kendall_tau_val": kendall_tau_b(on_val, alone_acc),
            "spearman_rho_val": spearman_rho(on_val, alone_acc),
            "inherited_test_accuracy": on_test,
            "inherited_val_accuracy": on_val,
        }
    ceiling = None
    if len(seeds) >= 2:
        ceiling = kendall_tau_b(per_seed[seeds[0]], per_seed[seeds[1]])
    return {
        "experiment": "rank_correlation",
        "command": "python experiments/rank_correlation.py " + " ".join(sys.argv[1:]),
        "space": args.space,
        "space_digest": digest(space, config, "supernet", "search", "retrain"),
        "archs": archs,
        "standalone_epochs": config.retrain.epochs,
        "standalone_seeds": seeds,
        "supernet_epochs": config.supernet.epochs,
        "bn_batches": config.search.bn_batches,
        "seed": args.seed,
        "test_images": len(alone_flags[0]),
        "standalone_test_accuracy": alone_acc,
        "standalone_test_accuracy_per_seed": {str(k): v for k, v in per_seed.items()},
        "standalone_seed_to_seed_kendall_tau": ceiling,
        "standalone_train_seconds": [standalone[key]["seconds"] for key in standalone],
        "supernets": found,
        "wall_seconds": elapsed,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }


def markdown(result: dict) -> str:
    rows = [
        "| supernet | epochs | Kendall tau (test) | 95% CI | Spearman rho (test) "
        "| Kendall tau (val) | supernet training | published tau |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, found in result["supernets"].items():
        low, high = found["kendall_tau_95ci"]
        published = found["published_kendall_tau"]
        rows.append(
            f"| {name} | {found['epochs']} | {found['kendall_tau']:.3f} | [{low:.2f}, {high:.2f}] "
            f"| {found['spearman_rho']:.3f} | {found['kendall_tau_val']:.3f} "
            f"| {found['supernet_train_seconds']:.0f} s | {published if published else '-'} |"
        )
    accuracies = result["standalone_test_accuracy"]
    seeds = len(result["standalone_seeds"])
    ceiling = result["standalone_seed_to_seed_kendall_tau"]
    noise = (
        f" Two stand-alone trainings of the same architectures (seeds differ) agree with Kendall "
        f"tau {ceiling:.3f}: the noise ceiling of this measurement."
        if ceiling is not None
        else ""
    )
    return "\n".join(
        [
            "# Rank correlation: supernet vs stand-alone accuracy",
            "",
            f"`{result['command'].strip()}`",
            "",
            f"{len(result['archs'])} architectures of `{result['space']}` sampled uniformly, each "
            f"trained stand-alone for {result['standalone_epochs']} epochs with {seeds} seed(s) "
            f"(accuracy averaged); inherited weights scored after BatchNorm recalibration on "
            f"{result['bn_batches']} batches. Stand-alone test accuracy ranges "
            f"{100 * min(accuracies):.1f}-{100 * max(accuracies):.1f}% over "
            f"{result['test_images']} test images. 'test': inherited accuracy on the test split "
            "(95% interval: bootstrap over test images); 'val': on the validation split, what "
            "the search ranks by. uniform-same-compute: uniform sampling trained on as many "
            "paths as fair (which trains one path per op candidate per step). Published: 13 "
            f"ImageNet models (FairNAS paper).{noise}",
            "",
            *rows,
            "",
            f"Wall time {result['wall_seconds'] / 60:.1f} min.",
            "",
        ]
    )


def add_space_argument(parser: argparse.ArgumentParser) -> None:
    """``--space``: the space file an experiment studies (default: the quickstart space)."""
    parser.add_argument(
        "--space",
        default=str(SPACE_FILE.relative_to(ROOT)),
        help="space file (default: the quickstart space)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_space_argument(parser)
    parser.add_argument("--archs", type=int, default=30, help="architectures to sample")
    parser.add_argument("--epochs", type=int, help="stand-alone epochs (default: the space's)")
    parser.add_argument("--supernet-epochs", type=int, help="default: the space's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="stand-alone seeds per arch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--out", default=str(RESULTS / "rank_correlation"), help="path stem")
    parser.add_argument("--quick", action="store_true", help="6 archs, 2 epochs each")
    args = parser.parse_args()
    if args.quick:
        args.archs, args.epochs, args.supernet_epochs, args.repeats = 6, 2, 1, 2
        args.out += "_quick"
    result = run(args)
    write_outputs(result, args.out, markdown)


if __name__ == "__main__":
    main()
