"""How fast does a space's architectures train on this machine? The compute plan of a study.

Samples --archs architectures of the space (seeded), sorts them by MACs, and times
--steps training steps of each (SGD with momentum, the space's batch size, the real training
split through the engine's loader, augmentation as configured) with 1 and with --threads torch
threads. Reports images/s and the seconds one epoch of the training split takes, so that a
study's epochs and architecture counts can be planned from measured figures.

    python experiments/bench_train.py --space search_spaces/fashion.yaml
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from outputs import write_outputs  # noqa: E402


def time_training(model, batches, steps: int) -> float:
    """Seconds per training step over ``steps`` steps, after two warm-up steps."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step(images, labels) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    for images, labels in itertools.islice(batches, 2):
        step(images, labels)
    started = time.perf_counter()
    for images, labels in itertools.islice(batches, steps):
        step(images, labels)
    return (time.perf_counter() - started) / steps


def run(args: argparse.Namespace) -> dict:
    import torch

    from invnas.engine import load_data
    from invnas.nn.builder import build_model
    from invnas.space.arch import sample
    from invnas.space.cost import cost
    from invnas.space.loader import load_space_file

    space_file = Path(args.space).resolve()
    space, config = load_space_file(space_file)
    data = load_data(space, config, space_file.parent)
    rng = random.Random(args.seed)
    sampled = [sample(space, rng) for _ in range(args.archs)]
    archs = sorted(sampled, key=lambda arch: cost(space, arch).macs)
    batch = config.data.batch_size
    train_images = data.steps_per_epoch * batch
    rows = []
    for arch in archs:
        measured = cost(space, arch)
        row = {"arch": arch.encode(), "params": measured.params, "macs": measured.macs}
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            torch.manual_seed(args.seed)
            batches = itertools.cycle(data.train_loader(args.seed))
            seconds = time_training(build_model(space, arch), batches, args.steps)
            row[f"images_per_s_{threads}t"] = batch / seconds
            row[f"epoch_s_{threads}t"] = seconds * data.steps_per_epoch
        rows.append(row)
        print(row, flush=True)
    return {
        "experiment": "bench_train",
        "command": "python experiments/bench_train.py " + " ".join(sys.argv[1:]),
        "space": args.space,
        "batch_size": batch,
        "train_images_per_epoch": train_images,
        "steps_timed": args.steps,
        "threads": sorted({1, args.threads}),
        "rows": rows,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
    }


def markdown(result: dict) -> str:
    threads = result["threads"]
    head = "| arch | params | MMACs | " + " | ".join(
        f"img/s ({t} thr) | epoch s ({t} thr)" for t in threads
    )
    lines = [head + " |", "|" + " --- |" * (3 + 2 * len(threads))]
    for row in result["rows"]:
        arch = row["arch"].replace("|", "\\|")  # a table cell
        cells = [arch, f"{row['params'] / 1e3:.0f}K", f"{row['macs'] / 1e6:.1f}"]
        for t in threads:
            cells += [f"{row[f'images_per_s_{t}t']:.0f}", f"{row[f'epoch_s_{t}t']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n`{result['command']}`\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="search_spaces/fashion.yaml", help="space file")
    parser.add_argument("--archs", type=int, default=6, help="architectures to sample")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps each")
    parser.add_argument("--threads", type=int, default=2, help="threads besides 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "bench_train"))
    args = parser.parse_args()
    for name in ("archs", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be at least 1")
    write_outputs(run(args), args.out, markdown)


if __name__ == "__main__":
    main()
