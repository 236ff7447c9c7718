"""Wall-clock and accuracy of the quickstart: runs the real ``invnas search`` command.

    python experiments/bench_quickstart.py [--space search_spaces/quickstart.yaml]

Runs ``invnas search SPACE --name bench-<time> --storage <tmp>`` in a subprocess (Ray start-up
included, a fresh local Ray), measures its wall-clock time, reads the run's results.json and
writes the figures to experiments/results/quickstart.json. Targets: at most 300 s on 2 CPU
cores, and at least 97% test accuracy for the best retrained architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 300.0
TARGET_TEST_ACCURACY = 0.97


@dataclass(frozen=True)
class Search:
    """One timed ``invnas search``: wall-clock seconds, its run directory, its results.json
    and its output."""

    seconds: float
    run_dir: Path
    results: dict
    output: str


def run_search(space: str, storage: Path, env: dict[str, str] | None = None) -> Search | None:
    """Run ``invnas search SPACE`` into ``storage`` (a fresh run name) with ``env`` added to
    this process's environment; None (its output's tail printed) if it fails."""
    name = f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    command = ["invnas", "search", space, "--name", name, "--storage", str(storage)]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", **(env or {}))
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=storage, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout[-4000:] + completed.stderr[-4000:])
        print(f"invnas search exited {completed.returncode}", file=sys.stderr)
        return None
    results = json.loads((storage / name / "results.json").read_text())
    return Search(seconds, storage / name, results, completed.stdout + completed.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "quickstart.yaml"))
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "quickstart.json"))
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    args = parser.parse_args()

    storage = Path(tempfile.mkdtemp(prefix="invnas-bench-"))
    search = run_search(args.space, storage)
    if search is None:
        return 1
    seconds, results = search.seconds, search.results
    retrained = [r for r in results["retrained"] if r["status"] == "completed"]
    best = max(retrained, key=lambda r: r["metrics"]["test_accuracy"], default=None)
    figures = {
        "command": " ".join(["invnas", "search", os.path.relpath(args.space, ROOT)]),
        "wall_clock_s": round(seconds, 1),
        "cpus": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}, python {platform.python_version()}",
        "best_test_accuracy": best["metrics"]["test_accuracy"] if best else None,
        "best_arch": best["arch"] if best else None,
        "best_rank": best["rank"] if best else None,
        "retrained": [
            {
                "rank": r["rank"],
                "arch": r["arch"],
                "status": r["status"],
                "test_accuracy": (r["metrics"] or {}).get("test_accuracy"),
                "supernet_accuracy": (r["metrics"] or {}).get("supernet_accuracy"),
                "macs": (r["metrics"] or {}).get("macs"),
            }
            for r in results["retrained"]
        ],
        "phases": {phase: entry["status"] for phase, entry in results["phases"].items()},
        "phase_seconds": {
            phase: entry.get("seconds") for phase, entry in results["phases"].items()
        },
        "trials_completed": results["phases"]["search"]["trials_completed"],
        "pareto_size": len(results["pareto"]),
        "meets_time_target": seconds <= TARGET_SECONDS,
        "meets_accuracy_target": bool(best and best["metrics"]["test_accuracy"] >= 0.97),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(storage, ignore_errors=True)
    else:
        print(f"run directory: {search.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
