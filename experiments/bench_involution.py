"""Benchmark the involution backends against convolutions of the same width, on the CPU.

For every RedNet stage (B=8, K=7, G=C/16) and every method it reports the forward time, the
forward+backward time (median of --repeats runs after warm-up) and the peak memory of one
forward+backward.

Methods: the involution backends reference (unfold), torch (shift-and-add with its explicit
backward) and cpu (native kernel, through the registered op invnas::involution), given a
ready-made kernel tensor (B, G, 49, H, W) and differentiated w.r.t. the input and that tensor;
torch-autograd (the same shift-and-add forward differentiated by autograd through its views,
the torch backend before it had its own backward); torch-compile and cpu-compile (those two
backends under torch.compile(fullgraph=True), Inductor; compile time excluded, warm-up
compiles); a dense 3x3 conv C->C and a depthwise 7x7 conv, differentiated w.r.t. the input and
their weight. The forward is timed under torch.no_grad().

Memory: each (stage, method) runs in a fresh subprocess. After the inputs exist and a tiny call
has loaded the method's libraries, it records ru_maxrss, runs ONE forward+backward, and reports
the growth of ru_maxrss: the peak resident memory that the operation added on top of its inputs
(outputs, saved tensors, workspaces, gradients). Timing runs afterwards in the same process.

    python experiments/bench_involution.py            # full run, 2-5 min on 2 cores
    python experiments/bench_involution.py --quick    # smoke run, a few seconds per case
    python experiments/bench_involution.py --stages 1 --methods torch cpu torch-compile
    python experiments/bench_involution.py --methods torch --update   # re-run rows, keep others
    python experiments/bench_involution.py --methods torch --chunk-elements 65536 --out /tmp/c.json

Each row also has bwd_fwd_ratio: (fwd+bwd - fwd) / fwd of the medians, the backward's cost in
forwards (robust to the load of a shared machine, which slows both alike).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "experiments" / "results" / "bench_involution.json"
STAGES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # (channels, size) of RedNet's four stages
METHODS = [
    "reference",
    "torch",
    "cpu",
    "conv3x3",
    "dwconv7x7",
    "torch-autograd",
    "torch-compile",
    "cpu-compile",
]
COMPILED = "-compile"
KERNEL = 7
GROUP_CHANNELS = 16


def _make_case(method: str, batch: int, channels: int, size: int) -> Callable[[bool], None]:
    """A closure running one forward (and backward if asked) of ``method`` on fixed inputs."""
    from invnas.ops import involution

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=gen, requires_grad=True)
    if method in ("conv3x3", "dwconv7x7"):
        k, groups = (3, 1) if method == "conv3x3" else (7, channels)
        weight = torch.randn(channels, channels // groups, k, k, generator=gen) * 0.05

        def op(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return F.conv2d(a, w, padding=k // 2, groups=groups)

    elif method == "torch-autograd":
        from invnas.ops.backends import torch_backend

        groups = channels // GROUP_CHANNELS
        weight = torch.randn(batch, groups, KERNEL * KERNEL, size, size, generator=gen)
        geometry = (KERNEL, KERNEL, 1, 1, KERNEL // 2, KERNEL // 2, 1, 1)

        def op(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return torch_backend.forward(a, w, geometry)

    else:
        groups = channels // GROUP_CHANNELS
        weight = torch.randn(batch, groups, KERNEL * KERNEL, size, size, generator=gen)
        backend = method.removesuffix(COMPILED)

        def op(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return involution(a, w, KERNEL, padding=KERNEL // 2, backend=backend)

        if method.endswith(COMPILED):
            op = torch.compile(op, fullgraph=True, dynamic=False)

    weight.requires_grad_()
    grad_out = torch.randn(batch, channels, size, size, generator=gen)

    def run(backward: bool) -> None:
        if backward:
            x.grad = weight.grad = None
            op(x, weight).backward(grad_out)
        else:
            with torch.no_grad():
                op(x, weight)

    return run


def _times_ms(fn: Callable[[], None], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _worker(spec: dict) -> dict:
    """Runs in a fresh process: memory first (one fwd+bwd), then the timings."""
    torch.set_num_threads(spec["threads"])
    if spec.get("chunk_elements"):
        from invnas.ops.backends import torch_backend

        torch_backend.CHUNK_ELEMENTS = spec["chunk_elements"]
    tiny = _make_case(spec["method"], 1, GROUP_CHANNELS, 8)
    tiny(True)  # loads the method's libraries (and the compiled kernel) before measuring memory
    run = _make_case(spec["method"], spec["batch"], spec["channels"], spec["size"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(True)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before  # KiB on Linux
    fwd = _times_ms(lambda: run(False), spec["repeats"], spec["warmup"])
    fwd_bwd = _times_ms(lambda: run(True), spec["repeats"], spec["warmup"])
    fwd_ms, fwd_bwd_ms = statistics.median(fwd), statistics.median(fwd_bwd)
    return {
        **spec,
        "fwd_ms": fwd_ms,
        "fwd_bwd_ms": fwd_bwd_ms,
        "bwd_fwd_ratio": (fwd_bwd_ms - fwd_ms) / fwd_ms,
        "fwd_min_ms": min(fwd),
        "fwd_bwd_min_ms": min(fwd_bwd),
        "peak_mem_mib": peak_kib / 1024,
    }


def _run_case(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {spec}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(results: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    batch = results[0]["batch"]
    table = Table(title=f"Involution on CPU, B={batch} K=7 G=C/16 (ms: medians; peak: fwd+bwd)")
    columns = ("stage", "method", "fwd ms", "fwd+bwd ms", "min", "bwd/fwd", "peak MiB", "speed")
    for col in (*columns, "memory"):
        table.add_column(col, justify="left" if col in ("stage", "method") else "right")
    reference = {(r["channels"], r["size"]): r for r in results if r["method"] == "reference"}
    for r in results:
        ref = reference.get((r["channels"], r["size"]))
        speed = memory = ""
        if ref and r["method"] != "reference":
            speed = f"{ref['fwd_bwd_ms'] / r['fwd_bwd_ms']:.1f}x"
            memory = f"1/{ref['peak_mem_mib'] / max(r['peak_mem_mib'], 1e-3):.1f}"
        table.add_row(
            f"C={r['channels']} {r['size']}x{r['size']}",
            r["method"],
            f"{r['fwd_ms']:.1f}",
            f"{r['fwd_bwd_ms']:.1f}",
            f"{r['fwd_bwd_min_ms']:.1f}",
            f"{r['bwd_fwd_ratio']:.2f}",
            f"{r['peak_mem_mib']:.1f}",
            speed,
            memory,
        )
    Console(width=max(100, Console().width)).print(table)
    print("speed, memory: relative to the reference backend at the same stage (fwd+bwd)")


def _targets(results: list[dict]) -> list[str]:
    """The first stage's targets: cpu >= 25x faster than reference and <= 1/5 of its memory,
    and no slower than the dense 3x3 conv (fwd+bwd medians)."""
    lines = [
        f"torch backward / forward at C={r['channels']} {r['size']}x{r['size']}: "
        f"{r['bwd_fwd_ratio']:.2f} (target <= 2)"
        for r in results
        if r["method"] == "torch"
    ]
    first = (results[0]["channels"], results[0]["size"])
    by = {r["method"]: r for r in results if (r["channels"], r["size"]) == first}
    if "cpu" in by and "reference" in by:
        cpu, ref = by["cpu"], by["reference"]
        speed = ref["fwd_bwd_ms"] / cpu["fwd_bwd_ms"]
        mem = cpu["peak_mem_mib"] / max(ref["peak_mem_mib"], 1e-3)
        lines.append(f"cpu vs reference fwd+bwd: {speed:.1f}x faster (target >= 25x)")
        lines.append(f"cpu vs reference peak memory: {mem:.3f} of it (target <= 0.2)")
    if "cpu" in by and "conv3x3" in by:
        ratio = by["cpu"]["fwd_bwd_ms"] / by["conv3x3"]["fwd_bwd_ms"]
        lines.append(f"cpu vs dense 3x3 conv fwd+bwd: {ratio:.2f}x its time (target <= 1)")
    return lines


def _merged(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with each row that ``new`` re-measured (same method and stage) replaced, in
    place; rows of ``new`` that ``old`` lacks go at the end."""
    key = lambda r: (r["method"], r["channels"], r["size"])  # noqa: E731
    fresh = {key(r): r for r in new}
    merged = [fresh.pop(key(r), r) for r in old]
    for r in merged:  # rows measured before the ratio was recorded
        r.setdefault("bwd_fwd_ratio", (r["fwd_bwd_ms"] - r["fwd_ms"]) / r["fwd_ms"])
    return merged + list(fresh.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="smoke run: B=2, first two stages")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS[:5])
    parser.add_argument("--stages", type=int, default=None, help="only the first N stages")
    parser.add_argument(
        "--chunk-elements",
        type=int,
        default=None,
        help="the torch backend's CHUNK_ELEMENTS (per thread), to check its tuning",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="replace only the re-run (method, stage) rows of --out, keeping the others",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return

    # Build the native kernel once here, so no worker pays for (or races on) the compile.
    from invnas.ops.backends import cpu as cpu_backend

    if {"cpu", "cpu-compile"} & set(args.methods) and not cpu_backend.is_available():
        sys.exit("bench_involution: the native cpu backend did not build; see the log above")
    batch, stages = (2, STAGES[:2]) if args.quick else (8, STAGES)
    stages = stages[: args.stages] if args.stages else stages
    repeats = args.repeats or (3 if args.quick else 7)
    results = []
    load_start = os.getloadavg()[0]
    for channels, size in stages:
        for method in args.methods:
            spec = {
                "method": method,
                "batch": batch,
                "channels": channels,
                "size": size,
                "threads": args.threads,
                "repeats": repeats,
                "warmup": 1 if args.quick else 2,
            }
            if args.chunk_elements:
                spec["chunk_elements"] = args.chunk_elements
            results.append(_run_case(spec))
            r = results[-1]
            print(
                f"  {method:>10} C={channels:<4} {size}x{size}: fwd {r['fwd_ms']:.1f} ms, "
                f"fwd+bwd {r['fwd_bwd_ms']:.1f} ms, peak {r['peak_mem_mib']:.1f} MiB",
                file=sys.stderr,
            )
    command = " ".join(["python", "experiments/bench_involution.py", *(argv or sys.argv[1:])])
    previous = json.loads(args.out.read_text()) if args.update and args.out.exists() else None
    if previous:
        results = _merged(previous["results"], results)
    _table(results)
    checks = _targets(results)
    for line in checks:
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "command": command,
        "torch": torch.__version__,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "kernel_size": KERNEL,
        "group_channels": GROUP_CHANNELS,
        "memory": "growth of ru_maxrss over one fwd+bwd in a fresh process (inputs excluded)",
        "time": f"median (and min) of {repeats} runs after warm-up; forward under no_grad",
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
    }
    if previous:
        updates = previous["meta"].get("updates", [])
        meta = {**previous["meta"], "updates": [*updates, {**meta, "command": command}]}
    out = {"meta": meta, "targets": checks, "results": results}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
