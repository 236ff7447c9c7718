"""Benchmark the streamed ImageFolder: loader throughput and peak memory against folder size.

For generated ImageFolders of 2,000 and 20,000 64x64 PNG images (10 classes of tinted noise,
written once under --dir), it reports:

- the training loader's images/s (``data.loading: stream``, batch 64, input 32x32, one torch
  thread in the main process) with 0, 1 and 2 DataLoader workers, over at most --batches
  batches after one warm-up batch: the median of --repeats measurements (the machine is shared
  and noisy), and each of them;
- the peak resident memory (ru_maxrss of the process plus that of its largest worker) of a
  fresh process that loads the splits streamed and trains a tiny supernet for one epoch with
  2 workers.

Targets (issue 12): peak memory at 20,000 images within 50 MB of that at 2,000; throughput with
2 workers at least 1.5x that with 0 on 2 cores.

    python experiments/bench_data.py                  # writes experiments/results/bench_data.json
    python experiments/bench_data.py --sizes 500 --batches 5 --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SPACE = {
    "name": "bench_data",
    "input": {"channels": 3, "size": 32},
    "num_classes": 10,
    "stem": {"kind": "conv", "channels": 16, "stride": 2},
    "stages": [
        {
            "name": "a",
            "depth": [1],
            "width": [32],
            "stride": 2,
            "block": "basic",
            "ops": {"conv": {"kernel_size": [3]}},
        }
    ],
    "data": {"dataset": "imagefolder", "loading": "stream", "batch_size": 64},
}


def make_folder(root: Path, count: int, size: int = 64, classes: int = 10) -> Path:
    """``count`` PNG images under ``root/<class>/`` (kept if already complete)."""
    from PIL import Image

    done = root / ".complete"
    if done.is_file():
        return root
    rng = np.random.default_rng(count)
    tints = rng.integers(0, 256, size=(classes, 3))
    for i in range(count):
        label = i % classes
        directory = root / f"class{label}"
        directory.mkdir(parents=True, exist_ok=True)
        noise = rng.integers(0, 96, size=(size, size, 3))
        pixels = np.clip(tints[label] * 0.6 + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(directory / f"{i:06d}.png")
    done.touch()
    return root


def _splits(folder: Path):
    from invnas.data import load_splits
    from invnas.space.loader import parse_space_file

    space, run = parse_space_file({**SPACE, "data": {**SPACE["data"], "path": str(folder)}})
    return space, run, load_splits(run.data, space.input, seed=0, num_classes=10)


def throughput(folder: Path, workers: int, batches: int) -> float:
    """Images/s of the streamed training loader with ``workers`` worker processes; the main
    process runs one torch thread, as a one-CPU trial does (workers always run one)."""
    import torch

    from invnas.data import make_loader

    torch.set_num_threads(1)
    _, run, splits = _splits(folder)
    loader = make_loader(splits.train, run.data.batch_size, True, 0, num_workers=workers)
    iterator = iter(loader)
    next(iterator)  # workers started, first batch decoded
    start, seen = time.perf_counter(), 0
    for step, (images, _) in enumerate(iterator):
        if step >= batches:
            break
        seen += images.shape[0]
    return seen / (time.perf_counter() - start)


def one_epoch(folder: Path) -> dict:
    """Train a tiny supernet for one epoch on the streamed folder; peak memory in MB."""
    import torch

    from invnas.data import make_loader
    from invnas.nn import Supernet, make_path_sampler
    from invnas.train import make_optimizer, train_supernet_epoch

    torch.set_num_threads(1)
    space, run, splits = _splits(folder)
    supernet = Supernet(space)
    loader = make_loader(splits.train, run.data.batch_size, True, 0, num_workers=2)
    optimizer = make_optimizer(supernet, lr=0.05, momentum=0.9, weight_decay=5e-5)
    start = time.perf_counter()
    stats = train_supernet_epoch(
        supernet, loader, optimizer, make_path_sampler("uniform", space, seed=0)
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "images": stats.samples,
        "epoch_s": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(own, 1),
        "peak_worker_rss_mb": round(worker, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5, help="throughput measurements per case")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/invnas_bench_data"))
    parser.add_argument("--out", type=Path, default=Path("experiments/results/bench_data.json"))
    parser.add_argument("--epoch-of", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.epoch_of:
        print(json.dumps(one_epoch(args.epoch_of)))
        return
    results = {"machine": platform.platform(), "cases": []}
    for count in args.sizes:
        folder = make_folder(args.dir / str(count), count)
        case = {"images": count}
        for workers in (0, 1, 2):
            runs = [throughput(folder, workers, args.batches) for _ in range(args.repeats)]
            case[f"images_per_s_{workers}_workers"] = round(statistics.median(runs), 1)
            case[f"images_per_s_{workers}_workers_runs"] = [round(r, 1) for r in runs]
        case["speedup_2_workers"] = round(
            case["images_per_s_2_workers"] / case["images_per_s_0_workers"], 2
        )
        child = [sys.executable, __file__, "--epoch-of", str(folder)]
        case["supernet_epoch"] = json.loads(subprocess.check_output(child, text=True))
        print(json.dumps(case), flush=True)
        results["cases"].append(case)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
