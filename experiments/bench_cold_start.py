"""What does a cold first search cost over a warm one, against the native kernel's compile?

    python experiments/bench_cold_start.py [--space search_spaces/quickstart.yaml]

In one go, each cold part with its own fresh, empty TORCH_EXTENSIONS_DIR:

1. compile alone: ``python -c`` that imports invnas and calls ``cpu.load_extension()``, timed
   inside (the build) and outside (the whole command, Python and torch start-up included);
2. cold search: ``invnas search SPACE`` on an empty extensions dir (it compiles the kernel);
3. warm search: the same command again on that dir, now holding the built kernel.

After each search it reads the extensions dir: the kernel's build directories (one expected)
and their ``.ninja_log`` (one entry per translation unit and one for the link: an output logged
twice, or a second directory, means a rebuild), and the ninja build's span. Target: the cold
search costs no more than the compile itself over the warm one (cold - warm <= compile). Writes
experiments/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))

from bench_quickstart import run_search  # noqa: E402

KERNEL_PREFIX = "invnas_involution_cpu_"
COMPILE_LINE = re.compile(r"compiling the (native )?involution CPU kernel")  # driver's or log's
COMPILE_ALONE = """
import json, time
start = time.perf_counter()
from invnas.ops.backends import cpu
imported = time.perf_counter()
assert cpu.load_extension() is not None, "the kernel did not build"
print(json.dumps({"import_s": imported - start, "build_s": time.perf_counter() - imported}))
"""


def ninja_builds(extensions: Path) -> list[dict]:
    """Each kernel build directory under ``extensions``: its ninja log's entries (output, start
    and end in ms), outputs logged more than once, and the span from first start to last end."""
    builds = []
    for directory in sorted(extensions.glob(f"{KERNEL_PREFIX}*")):
        log = directory / ".ninja_log"
        lines = log.read_text().splitlines()[1:] if log.is_file() else []
        entries = [line.split("\t") for line in lines if line.strip()]
        outputs = [entry[3] for entry in entries]
        span = (
            (max(int(e[1]) for e in entries) - min(int(e[0]) for e in entries)) / 1000
            if entries
            else 0.0
        )
        builds.append(
            {
                "directory": directory.name,
                "entries": len(entries),
                "outputs": sorted(set(outputs)),
                "rebuilt": sorted({o for o in outputs if outputs.count(o) > 1}),
                "span_s": span,
            }
        )
    return builds


def compile_alone(extensions: Path) -> dict:
    """Time ``cpu.load_extension()`` on the empty ``extensions`` dir in a fresh Python."""
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(extensions))
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", COMPILE_ALONE], env=env, capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - start
    if completed.returncode != 0:
        sys.exit(f"bench_cold_start: the compile failed:\n{completed.stderr[-4000:]}")
    inside = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"command_s": round(wall, 1), **{k: round(v, 1) for k, v in inside.items()}}


def timed_search(space: str, extensions: Path, work: Path) -> dict:
    """One ``invnas search`` with TORCH_EXTENSIONS_DIR=``extensions``: its time and the kernel
    builds found there afterwards."""
    storage = Path(tempfile.mkdtemp(prefix="search-", dir=work))
    search = run_search(space, storage, {"TORCH_EXTENSIONS_DIR": str(extensions)})
    if search is None:
        sys.exit("bench_cold_start: invnas search failed")
    return {
        "wall_clock_s": round(search.seconds, 1),
        "compile_announced": len(COMPILE_LINE.findall(search.output)),
        "phases": {k: v["status"] for k, v in search.results["phases"].items()},
        "builds": ninja_builds(extensions),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "quickstart.yaml"))
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "cold_start.json"))
    args = parser.parse_args()
    if shutil.which("invnas") is None:
        sys.exit("bench_cold_start: the invnas command is not on PATH (pip install -e .)")

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="invnas-cold-") as tmp:
        work = Path(tmp)
        alone_dir, search_dir = work / "ext-alone", work / "ext-search"
        alone_dir.mkdir()
        search_dir.mkdir()
        print("compiling the kernel alone ...", file=sys.stderr)
        alone = {**compile_alone(alone_dir), "builds": ninja_builds(alone_dir)}
        print(f"  {alone['build_s']} s; cold search ...", file=sys.stderr)
        cold = timed_search(args.space, search_dir, work)
        print(f"  {cold['wall_clock_s']} s; warm search ...", file=sys.stderr)
        warm = timed_search(args.space, search_dir, work)
        print(f"  {warm['wall_clock_s']} s", file=sys.stderr)

    extra = cold["wall_clock_s"] - warm["wall_clock_s"]
    builds = cold["builds"]
    figures = {
        "command": "python experiments/bench_cold_start.py",
        "space": os.path.relpath(args.space, ROOT),
        "cpus": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}, python {platform.python_version()}",
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "compile_alone": alone,
        "cold_search": cold,
        "warm_search": warm,
        "cold_extra_s": round(extra, 1),
        "compiled_once": len(builds) == 1 and not builds[0]["rebuilt"],
        "warm_rebuilt_nothing": warm["builds"] == builds,
        "meets_target": extra <= alone["build_s"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if not isinstance(v, dict)}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
