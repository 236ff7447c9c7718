"""Everything invnas does on a GPU, in one script for a single-GPU machine (within 8 minutes):

    python experiments/gpu_check.py [--batch 32] [--repeats 20] [--skip-tests]

1. the GPU-marked tests (``pytest -m gpu``);
2. the involution backends on CUDA at RedNet-50's stage shapes (B=--batch, K=7, G=C/16):
   cupy (the CUDA kernels) against torch (pure-PyTorch shift-and-add) against reference
   (unfold), forward and forward+backward, float32 and bfloat16, median of --repeats runs
   timed with CUDA events, with each backend's largest difference from the reference;
3. one short supernet epoch of the quick start's space on 1 worker, in float32 and under
   bfloat16 autocast (the default ``resources.amp`` on CUDA): images/s and training loss.

Writes experiments/results/gpu_check.{json,md}. Without a GPU it says so and exits 2; its
parts are functions that take the device, so a CPU run of them checks the plumbing.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))

from outputs import write_outputs  # noqa: E402

STAGES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # RedNet-50's stages: (channels, size)
KERNEL = 7
GROUP_CHANNELS = 16
BACKENDS = ("cupy", "torch", "reference")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
TEST_TIMEOUT_S = 240


def gpu_tests(timeout_s: float = TEST_TIMEOUT_S) -> dict:
    """Run ``pytest -m gpu`` in a subprocess; its exit code, summary line and duration."""
    began = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        summary, code = (lines[-1] if lines else done.stderr.strip()[-300:]), done.returncode
    except subprocess.TimeoutExpired:
        summary, code = f"timed out after {timeout_s:.0f} s", None
    return {"exit_code": code, "summary": summary, "seconds": round(time.perf_counter() - began)}


def _timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    """Milliseconds one call of a function takes on ``device`` (CUDA events on a GPU)."""
    if device.type != "cuda":

        def wall(fn: Callable[[], None]) -> float:
            began = time.perf_counter()
            fn()
            return (time.perf_counter() - began) * 1000

        return wall

    def events(fn: Callable[[], None]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)

    return events


def bench_case(
    backend: str,
    dtype: torch.dtype,
    batch: int,
    channels: int,
    size: int,
    device: torch.device,
    repeats: int,
) -> dict:
    """One backend at one shape: median forward and forward+backward milliseconds, and the
    largest difference of its output and input gradient from the unfold reference."""
    from invnas.ops import involution

    generator = torch.Generator().manual_seed(0)
    groups = channels // GROUP_CHANNELS
    x = torch.randn(batch, channels, size, size, generator=generator)
    w = torch.randn(batch, groups, KERNEL * KERNEL, size, size, generator=generator) * 0.1
    grad = torch.randn(batch, channels, size, size, generator=generator)
    x, w, grad = (t.to(device, dtype) for t in (x, w, grad))
    x.requires_grad_()
    w.requires_grad_()

    def forward(name: str) -> torch.Tensor:
        return involution(x, w, KERNEL, padding=KERNEL // 2, backend=name)

    def fwd() -> None:
        with torch.no_grad():
            forward(backend)

    def fwd_bwd() -> None:
        x.grad = w.grad = None
        forward(backend).backward(grad)

    out = forward(backend)
    out.backward(grad)
    got = (out.detach().float(), x.grad.float())
    x.grad = w.grad = None
    expected = forward("reference")
    expected.backward(grad)
    error = max(
        float((a - b).abs().max())
        for a, b in zip(got, (expected.detach().float(), x.grad.float()), strict=True)
    )
    timer = _timer(device)
    times = {}
    for name, fn in (("fwd_ms", fwd), ("fwd_bwd_ms", fwd_bwd)):
        for _ in range(3):
            fn()
        times[name] = round(statistics.median(timer(fn) for _ in range(repeats)), 3)
    return {"max_abs_error": error, **times}


def bench_backends(
    device: torch.device,
    batch: int,
    repeats: int,
    stages: list[tuple[int, int]] = STAGES,
    backends: tuple[str, ...] = BACKENDS,
) -> list[dict]:
    """Every backend and dtype at every stage shape; a backend that fails is recorded with
    its error (e.g. cupy not installed) and the others go on."""
    rows = []
    for channels, size in stages:
        for dtype_name, dtype in DTYPES.items():
            for backend in backends:
                row = {"stage": f"C{channels} {size}x{size}", "dtype": dtype_name}
                row["backend"] = backend
                try:
                    row |= bench_case(backend, dtype, batch, channels, size, device, repeats)
                except Exception as error:  # recorded, not fatal: the check goes on
                    row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
                rows.append(row)
                print(row, flush=True)
    return rows


def supernet_epoch(device: torch.device, precision: torch.dtype | None) -> dict:
    """One epoch of the quick start's supernet on ``device`` (1 worker, no monitor)."""
    from invnas.engine import load_data, train_supernet
    from invnas.space.loader import load_space_file

    space_file = ROOT / "search_spaces" / "quickstart.yaml"
    space, config = load_space_file(space_file)
    settings = dataclasses.replace(config.supernet, epochs=1)
    data = load_data(space, config, space_file.parent)
    began = time.perf_counter()
    result = train_supernet(
        space, settings, data, device, bn_batches=0, monitor_archs=0, precision=precision
    )
    metrics = result.history[-1]
    return {
        "precision": "float32" if precision is None else str(precision).removeprefix("torch."),
        "images_per_s": round(metrics.images_per_s or 0.0, 1),
        "train_loss": metrics.train_loss,
        "seconds": round(time.perf_counter() - began, 1),
    }


def markdown(result: dict) -> str:
    lines = [f"GPU check on {result['gpu']} ({result['machine']})", ""]
    tests = result["gpu_tests"]
    lines += [f"GPU-marked tests: exit {tests['exit_code']}, {tests['summary']}", ""]
    lines += ["| stage | dtype | backend | fwd ms | fwd+bwd ms | max error |", "|" + "---|" * 6]
    for row in result["involution"]:
        if "error" in row:
            lines.append(f"| {row['stage']} | {row['dtype']} | {row['backend']} | {row['error']} |")
            continue
        lines.append(
            f"| {row['stage']} | {row['dtype']} | {row['backend']} | {row['fwd_ms']} | "
            f"{row['fwd_bwd_ms']} | {row['max_abs_error']:.2e} |"
        )
    lines += ["", "| supernet epoch | images/s | train loss |", "|---|---|---|"]
    for row in result["supernet"]:
        lines.append(f"| {row['precision']} | {row['images_per_s']} | {row['train_loss']:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-tests", action="store_true", help="leave out pytest -m gpu")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "gpu_check"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run it on a machine with one", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    began = time.perf_counter()
    tests = {"skipped": True} if args.skip_tests else gpu_tests()
    print("gpu tests:", tests, flush=True)
    involution_rows = bench_backends(device, args.batch, args.repeats)
    supernet = [supernet_epoch(device, None), supernet_epoch(device, torch.bfloat16)]
    print("supernet:", supernet, flush=True)
    result = {
        "command": "python experiments/gpu_check.py " + " ".join(sys.argv[1:]),
        "gpu": torch.cuda.get_device_name(device),
        "machine": f"{platform.machine()}, torch {torch.__version__}, CUDA {torch.version.cuda}",
        "batch": args.batch,
        "gpu_tests": tests,
        "involution": involution_rows,
        "supernet": supernet,
        "seconds": round(time.perf_counter() - began),
    }
    write_outputs(result, args.out, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
