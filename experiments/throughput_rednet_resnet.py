"""Training throughput of RedNet-26 (per involution backend) against ResNet-26 on the CPU.

Models: search_spaces/rednet26.yaml and resnet26.yaml, built by invnas with the input size
overridden to --size (64) and num_classes as in the files (1000). A training step is forward,
cross-entropy, backward and an SGD (momentum) update on a random batch of --batch (8) images,
with --threads (2) torch threads. RedNet-26 runs once per involution backend (``cpu``: the
native kernel, ``torch``: shift-and-add in PyTorch, ``reference``: unfold), set on every
Involution2d of the model, stem included.

The configurations are measured round-robin (--rounds rounds of --steps steps each, after
warm-up), so that a change in the machine's load hits them all alike. Reported: images/s of the
best round (the least disturbed; the usual estimate on a shared machine), the median round, and
the median over rounds of the ratio to ResNet-26 measured in the same round.

For scale: with the reference (unfold) involution, RedNet-50 trains 3 to 7 times slower than
ResNet-50 on GPUs (reported by users of the official code).

    python experiments/throughput_rednet_resnet.py            # ~2-4 min on 2 cores
    python experiments/throughput_rednet_resnet.py --quick    # 2 rounds of 2 steps
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from outputs import write_outputs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "experiments" / "results"
CONFIGS = [  # (name, space file, involution backend)
    ("rednet26-cpu", "rednet26.yaml", "cpu"),
    ("rednet26-torch", "rednet26.yaml", "torch"),
    ("rednet26-reference", "rednet26.yaml", "reference"),
    ("resnet26", "resnet26.yaml", None),
]


def build(space_file: str, size: int, backend: str | None):
    """The fixed architecture of ``space_file`` at ``size`` x ``size`` input, its involutions
    set to ``backend``; and the number of involution layers."""
    from invnas.nn import build_model
    from invnas.ops import Involution2d
    from invnas.space.loader import load_space
    from invnas.space.serialize import fixed_arch

    space = load_space(ROOT / "search_spaces" / space_file)
    space = dataclasses.replace(space, input=dataclasses.replace(space.input, size=size))
    model = build_model(space, fixed_arch(space))
    involutions = [m for m in model.modules() if isinstance(m, Involution2d)]
    for module in involutions:
        module.backend = backend
    return model, space, len(involutions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "throughput"), help="path stem")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 steps")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 2, 2, 1
        args.out += "_quick"

    import torch
    import torch.nn.functional as F

    from invnas.ops import available_backends

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backends = available_backends()
    setups = {}
    for name, space_file, backend in CONFIGS:
        if backend is not None and backend not in backends:
            print(f"skipping {name}: backend {backend} unavailable here ({backends})")
            continue
        model, space, involutions = build(space_file, args.size, backend)
        images = torch.randn(args.batch, space.input.channels, args.size, args.size)
        labels = torch.randint(0, space.num_classes, (args.batch,))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        setups[name] = (model, optimizer, images, labels, involutions, space.num_classes)

    def steps(name: str, count: int) -> float:
        model, optimizer, images, labels, *_ = setups[name]
        model.train()
        start = time.perf_counter()
        for _ in range(count):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        return time.perf_counter() - start

    for name in setups:
        steps(name, args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for round_index in range(args.rounds):
        for name in setups:
            rates[name].append(args.batch * args.steps / steps(name, args.steps))
        print(
            f"round {round_index + 1}/{args.rounds}: "
            + ", ".join(f"{name} {rates[name][-1]:.1f}" for name in setups),
            flush=True,
        )

    baseline = statistics.median(rates["resnet26"])
    results = {
        name: {
            "images_per_second": statistics.median(values),
            "best_round_images_per_second": max(values),
            "per_round": values,
            "relative_to_resnet26": statistics.median(values) / baseline,
            "best_round_relative_to_resnet26": max(values) / max(rates["resnet26"]),
            "median_of_round_ratios_to_resnet26": statistics.median(
                v / b for v, b in zip(values, rates["resnet26"], strict=True)
            ),
            "params": sum(p.numel() for p in setups[name][0].parameters()),
            "involution_layers": setups[name][4],
        }
        for name, values in rates.items()
    }
    result = {
        "experiment": "throughput_rednet_resnet",
        "command": "python experiments/throughput_rednet_resnet.py " + " ".join(sys.argv[1:]),
        "input": [3, args.size, args.size],
        "batch": args.batch,
        "threads": args.threads,
        "num_classes": setups["resnet26"][5],
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "results": results,
        "load_average": os.getloadavg(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
    }
    write_outputs(result, args.out, markdown)


def markdown(result: dict) -> str:
    rows = [
        "| model | involution backend | images/s (best round) | vs ResNet-26 "
        "| images/s (median round) | vs ResNet-26 (median of per-round ratios) | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, found in result["results"].items():
        model, _, backend = name.partition("-")
        rows.append(
            f"| {model} | {backend or '-'} | {found['best_round_images_per_second']:.1f} "
            f"| {found['best_round_relative_to_resnet26']:.2f}x "
            f"| {found['images_per_second']:.1f} "
            f"| {found['median_of_round_ratios_to_resnet26']:.2f}x | {found['params'] / 1e6:.2f}M |"
        )
    size = result["input"][1]
    return "\n".join(
        [
            "# Training throughput: RedNet-26 vs ResNet-26 on the CPU",
            "",
            f"`{result['command'].strip()}`",
            "",
            f"Input {size}x{size}, batch {result['batch']}, {result['num_classes']} classes, "
            f"{result['threads']} torch threads; forward + backward + SGD step; "
            f"{result['rounds']} round-robin rounds of {result['steps_per_round']} steps. "
            f"Load average at the end: {', '.join(f'{v:.1f}' for v in result['load_average'])} "
            f"on {result['machine']['cpus']} CPUs.",
            "",
            *rows,
            "",
        ]
    )


if __name__ == "__main__":
    main()
