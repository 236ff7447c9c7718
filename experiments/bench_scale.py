"""Supernet training speed of the quick start's space: the whole machine, 2 data-parallel
workers, and the old one-trial share.

    python experiments/bench_scale.py [--epochs 3] [--rounds 2]

Trains the supernet of search_spaces/quickstart.yaml (its data and settings; no monitor
accuracy) with the engine in fresh processes, in three set-ups:

- ``whole machine``: 1 process with every core as torch threads (the supernet phase's default);
- ``2 workers``: 2 processes in a gloo group, each its half of every batch and half the cores
  (``resources.train_workers: 2``, the engine the Ray Train workers run);
- ``2 workers, local BatchNorm``: the same without synchronised BatchNorm (how much its one
  all-reduce per layer costs);
- ``one-trial share``: 1 process with 1 thread (the supernet phase before phases got their own
  resources: ``cpus_per_trial: 1``).

For each: images/s of the epochs after the first (the first pays for warm-up), and the cores
kept busy (CPU time of all its processes over wall-clock time). Set-ups alternate over
``--rounds`` rounds so that load changes hit them all; the best round is kept, and the worst
round's images/s shown beside it (on a machine shared with other work, several threads per
process can collapse when one of them is descheduled). Target: the
supernet phase keeps both cores of a 2-core machine busy (at least 1.6 cores on average).
Writes experiments/results/bench_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))

from outputs import write_outputs  # noqa: E402

from invnas.engine import load_data, process_group, train_supernet  # noqa: E402
from invnas.space.loader import load_space_file  # noqa: E402

SPACE = ROOT / "search_spaces" / "quickstart.yaml"
TARGET_CORES = 1.6


@dataclasses.dataclass(frozen=True)
class Setup:
    """One way to train the supernet: ``workers`` processes of ``threads`` threads each."""

    name: str
    workers: int
    threads: int
    sync_batch_norm: bool = True


def setups(cores: int) -> list[Setup]:
    return [
        Setup("whole machine", 1, cores),
        Setup("2 workers", 2, max(1, cores // 2)),
        Setup("2 workers, local BatchNorm", 2, max(1, cores // 2), sync_batch_norm=False),
        Setup("one-trial share", 1, 1),
    ]


def _train(rank: int, setup: Setup, epochs: int, port: int, out: str) -> None:
    torch.set_num_threads(setup.threads)
    space, config = load_space_file(SPACE)
    settings = dataclasses.replace(config.supernet, epochs=epochs)
    data = load_data(space, config, SPACE.parent)
    speeds: list[float] = []

    def record(report) -> None:
        speeds.append(report.metrics.images_per_s)

    def run(parallel=None) -> None:
        extra = {} if parallel is None else {"parallel": parallel}
        train_supernet(
            space,
            settings,
            data,
            torch.device("cpu"),
            bn_batches=0,
            monitor_archs=0,
            on_epoch=record,
            **extra,
        )

    began, cpu_began = time.perf_counter(), time.process_time()
    if setup.workers == 1:
        run()
    else:
        with process_group(rank, setup.workers, port=port) as parallel:
            parallel.sync_batch_norm = setup.sync_batch_norm
            run(parallel)
    figures = {
        "images_per_s": speeds,
        "cpu_s": time.process_time() - cpu_began,
        "wall_s": time.perf_counter() - began,
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(figures))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(setup: Setup, epochs: int) -> dict:
    """Train once in fresh processes; the set-up's speed and the cores it kept busy."""
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_train, args=(setup, epochs, _free_port(), out), nprocs=setup.workers)
        ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(setup.workers)]
    later = ranks[0]["images_per_s"][1:] or ranks[0]["images_per_s"]
    wall = max(r["wall_s"] for r in ranks)
    return {
        "images_per_s": round(sum(later) / len(later), 1),
        "cores_busy": round(sum(r["cpu_s"] for r in ranks) / wall, 2),
    }


def markdown(result: dict) -> str:
    lines = [
        f"Supernet training of `{result['space']}` ({result['machine']}, {result['cpus']} "
        f"cores; batch {result['batch_size']}, best of {result['rounds']} rounds)",
        "",
        "| set-up | workers x threads | images/s | worst round | cores busy | vs one-trial share |",
        "|---|---|---|---|---|---|",
    ]
    base = result["setups"]["one-trial share"]["images_per_s"]
    for name, entry in result["setups"].items():
        lines.append(
            f"| {name} | {entry['workers']} x {entry['threads']} | {entry['images_per_s']} | "
            f"{entry['worst_images_per_s']} | {entry['cores_busy']} | "
            f"{entry['images_per_s'] / base:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per measurement (>= 2)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_scale"))
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    chosen = setups(cores)
    best: dict[str, dict] = {}
    rounds: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for setup in chosen:
            figures = measure(setup, args.epochs)
            print(setup.name, figures, flush=True)
            rounds.setdefault(setup.name, []).append(figures["images_per_s"])
            if figures["images_per_s"] > best.get(setup.name, {}).get("images_per_s", 0):
                best[setup.name] = {"workers": setup.workers, "threads": setup.threads, **figures}
    for name, entry in best.items():
        entry["worst_images_per_s"] = min(rounds[name])
    _, config = load_space_file(SPACE)
    whole = best["whole machine"]
    result = {
        "command": "python experiments/bench_scale.py "
        + " ".join(f"--{k} {v}" for k, v in (("epochs", args.epochs), ("rounds", args.rounds))),
        "space": str(SPACE.relative_to(ROOT)),
        "machine": f"{platform.system()} {platform.machine()}, torch {torch.__version__}",
        "cpus": cores,
        "batch_size": config.data.batch_size,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "load_average": round(os.getloadavg()[0], 2),
        "setups": best,
        "target_cores_busy": TARGET_CORES,
        "meets_cores_target": max(whole["cores_busy"], best["2 workers"]["cores_busy"])
        >= TARGET_CORES,
    }
    write_outputs(result, args.out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
