"""Command line entry point: ``invnas COMMAND ...``.

Each subcommand is a ``_add_<name>(commands)`` function declaring its arguments and a
``cmd_<name>(args) -> int`` function doing the work; :func:`main` maps the errors a user can fix
(ValueError, including :class:`~invnas.space.errors.SpaceError`, and missing or unreadable files)
to ``invnas: ...`` lines on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from invnas import __version__
from invnas.config import RunConfig
from invnas.reporting.tables import count as count_text
from invnas.space.errors import SpaceError
from invnas.space.loader import load_space_file
from invnas.space.spec import SearchSpace
from invnas.space.summary import summarize

USAGE_ERROR = 2
MAX_PROBLEM_LINES = 50  # beyond this a summary line is printed instead

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, and usage errors (already printed, code 2)
        return stop.code if isinstance(stop.code, int) else 0
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return USAGE_ERROR
    return run_handler(handler, args)


def build_parser() -> argparse.ArgumentParser:
    """The ``invnas`` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="invnas",
        description="Neural architecture search for CNNs that mix convolution and involution.",
    )
    parser.add_argument("--version", action="version", version=f"invnas {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_validate(commands)
    _add_search(commands)
    _add_resume(commands)
    _add_export(commands)
    _add_report(commands)
    return parser


def run_handler(handler: Handler, args: argparse.Namespace) -> int:
    """Call ``handler``; turn user errors into ``invnas: ...`` lines and exit code 2."""
    try:
        return handler(args)
    except SpaceError as err:
        lines = [str(problem) for problem in err.problems]
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        lines = [f"{err.filename}: {err.strerror}" if err.filename else str(err)]
    except ValueError as err:
        lines = str(err).splitlines() or [type(err).__name__]
    except KeyboardInterrupt:
        print("invnas: interrupted", file=sys.stderr)
        return 130
    print_errors(lines)
    return USAGE_ERROR


def print_errors(lines: Sequence[str]) -> None:
    """Print ``invnas: <line>`` for each line (at most MAX_PROBLEM_LINES) to stderr."""
    for line in lines[:MAX_PROBLEM_LINES]:
        print(f"invnas: {line}", file=sys.stderr)
    if len(lines) > MAX_PROBLEM_LINES:
        print(f"invnas: ... and {len(lines) - MAX_PROBLEM_LINES} more problems", file=sys.stderr)


# --- invnas validate -------------------------------------------------------------------------


def _add_validate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "validate",
        help="check a search-space file and summarize it",
        description="Check a search-space YAML file; print its stages, number of "
        "architectures and the range of params and MACs (exit 2 listing every problem).",
    )
    parser.add_argument("space", metavar="SPACE.yaml", help="search-space file")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    space, run = load_space_file(args.space)
    summary = summarize(space, run)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(space, run, summary)
    from pathlib import Path

    from invnas.data.available import check_data_available

    try:
        check_data_available(run.data, Path(args.space).resolve().parent)
    except ValueError as missing:  # the file is valid; a search here would stop at once
        print(f"invnas: warning: {args.space}: {missing}", file=sys.stderr)
    return 0


def human(count: int | None) -> str:
    """``9.23M``-style text for a count (``n/a`` for None)."""
    return count_text(count, missing="n/a")


def _span(low: int, high: int) -> str:
    return human(low) if low == high else f"{human(low)} .. {human(high)}"


def _big(count: int) -> str:
    digits = str(count)
    if len(digits) <= 15:
        return f"{count:,}"
    return f"{digits[0]}.{digits[1:3]}e{len(digits) - 1}"


def _print_summary(space: SearchSpace, run: RunConfig, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 120  # pipes and logs: no need to squeeze into 80 columns
    stem = space.stem
    console.print(
        f"[bold]{space.name}[/bold]"
        + (f" ({space.source})" if space.source else "")
        + f": input {space.input.channels}x{space.input.size}x{space.input.size}, "
        f"{space.num_classes} classes, stem {stem.kind} ({stem.channels} channels)",
        highlight=False,
    )
    table = Table(show_lines=False)
    for column in ("stage", "depth", "width", "stride", "block", "granularity"):
        table.add_column(column, no_wrap=True)
    table.add_column("ops", overflow="fold", ratio=1)
    for stage in summary["stages"]:
        block = stage["block"] + (f" x{stage['expansion']}" if stage["expansion"] else "")
        ops = " ".join(stage["blocks"] or stage["ops"])
        table.add_row(
            stage["name"],
            " ".join(map(str, stage["depth"])),
            " ".join(map(str, stage["width"])),
            str(stage["stride"]),
            block,
            "per block (pinned)" if stage["blocks"] else stage["granularity"],
            ops,
        )
    console.print(table)
    console.print(
        f"architectures: {_big(summary['cardinality'])}\n"
        f"params: {_span(summary['params_min'], summary['params_max'])}\n"
        f"MACs:   {_span(summary['macs_min'], summary['macs_max'])}\n"
        f"run: data {run.data.dataset}, supernet {run.supernet.epochs} epochs, "
        f"search {run.search.sampler} x {run.search.trials} trials on "
        f"{', '.join(run.search.objectives)}, retrain top {run.retrain.top_k} for "
        f"{run.retrain.epochs} epochs\n"
        f"data: {_held_text(run, summary['data_held'])}",
        highlight=False,
    )
    for phase, share in summary["resources"].items():
        text = f"{_share_text(phase, share)}; {_workers_text(share)}"
        console.print(f"resources: {phase:<8} {text}", highlight=False)


def _share_text(phase: str, share: dict) -> str:
    def amount(value: float, unit: str) -> str:
        return f"{value:g} {unit}" + ("" if value == 1 else "s")

    each = amount(share["cpus_per_worker"], "CPU")
    if share["gpus_per_worker"]:
        each += ", " + amount(share["gpus_per_worker"], "GPU")
    if phase == "search":
        return f"{each} per trial"
    if share["workers"] == 1:
        return f"{each} ({share['source']}), 1 worker"
    total = amount(share["cpus"], "CPU") + (
        ", " + amount(share["gpus"], "GPU") if share["gpus"] else ""
    )
    return f"{share['workers']} workers of {each} = {total} ({share['source']})"


def _held_text(run: RunConfig, held: list[str]) -> str:
    ways = {"memory": "images in memory", "stream": "images streamed from their files"}
    text = (
        " ".join(ways[way] for way in held)
        if len(held) == 1
        else ("images in memory, streamed from their files above 1 GiB decoded")
    )
    if run.data.workers is None:
        return text + ", data.workers auto (from each process's CPUs)"
    return text + f", data.workers {run.data.workers}"


def _workers_text(share: dict) -> str:
    workers = share["data_workers"]
    each = " each" if share["workers"] > 1 else ""
    if len(set(workers.values())) == 1:
        count = next(iter(workers.values()))
        return f"{count} DataLoader worker{'' if count == 1 else 's'}{each}"
    return (
        f"{workers['memory']} DataLoader workers{each} in memory, {workers['stream']} if streamed"
    )


# --- invnas search / invnas resume -----------------------------------------------------------


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", help="join the Ray cluster at auto or HOST:PORT (default: start a local Ray)"
    )
    parser.add_argument("--cpus-per-trial", metavar="N", help="CPUs per trial")
    parser.add_argument("--gpus-per-trial", metavar="F", help="GPUs per trial (may be fractional)")


def _add_search(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "search",
        help="train a supernet, search it with Optuna on Ray Tune, retrain the winners",
        description="Run the three phases of a search (supernet training, Optuna-driven search, "
        "retraining) as Ray Tune experiments under STORAGE/NAME. Flags override the space "
        "file. An interrupted run finishes with --resume (or invnas resume RUN_DIR).",
    )
    parser.add_argument("space", metavar="SPACE.yaml", help="search-space file")
    parser.add_argument(
        "--name", help="run directory name (default: the space's name and a timestamp)"
    )
    parser.add_argument(
        "--storage",
        metavar="PATH_OR_URI",
        help="directory (or file:// URI) holding run directories (default: ./runs)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the existing run STORAGE/NAME"
    )
    parser.add_argument("--seed", metavar="N", help="random seed")
    parser.add_argument("--trials", metavar="N", help="number of completed search trials")
    parser.add_argument(
        "--train-workers",
        metavar="N",
        help="data-parallel workers (Ray Train) for the supernet and each retrained architecture",
    )
    _add_run_flags(parser)
    parser.set_defaults(handler=cmd_search)


def _add_resume(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "resume",
        help="finish an interrupted search run",
        description="Finish the run in RUN_DIR: completed phases are skipped and the phase in "
        "progress is restored from its Ray Tune experiment.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (e.g. runs/NAME)")
    _add_run_flags(parser)
    parser.set_defaults(handler=cmd_resume)


def _number(flag: str, text: str | None, kind: type, what: str):
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a number; expected {what}") from None


def _run_options(args: argparse.Namespace, **extra):
    from invnas.pipeline.driver import SearchOptions

    return SearchOptions(
        address=args.address,
        cpus_per_trial=_number("--cpus-per-trial", args.cpus_per_trial, float, "a CPU count"),
        gpus_per_trial=_number("--gpus-per-trial", args.gpus_per_trial, float, "a GPU count"),
        **extra,
    )


def cmd_search(args: argparse.Namespace) -> int:
    from invnas.pipeline.driver import run_search

    options = _run_options(
        args,
        name=args.name,
        storage=args.storage,
        resume=args.resume,
        seed=_number("--seed", args.seed, int, "an integer seed"),
        trials=_number("--trials", args.trials, int, "a positive integer"),
        train_workers=_number("--train-workers", args.train_workers, int, "a positive integer"),
    )
    return _run_with_progress(lambda: run_search(args.space, options))


def cmd_resume(args: argparse.Namespace) -> int:
    from invnas.pipeline.driver import resume_run

    options = _run_options(args)
    return _run_with_progress(lambda: resume_run(args.run_dir, options))


def _run_with_progress(start: Callable) -> int:
    """Run a search with progress on stderr and its summary on stdout; exit 0 when every
    phase completed, 1 when one failed (or the disk is full), 130 when interrupted (then
    resumable)."""
    from rich.console import Console

    from invnas.pipeline.driver import OutOfDiskSpace, PhaseInterrupted
    from invnas.pipeline.progress import LiveProgressDisplay, ProgressDisplay, showing
    from invnas.reporting import run_summary

    errors = Console(stderr=True)
    display = LiveProgressDisplay(errors) if errors.is_terminal else ProgressDisplay(errors)
    try:
        with showing(display):
            run, results = start()
    except PhaseInterrupted as stop:
        print(f"invnas: interrupted; resume with: invnas resume {stop.run_path}", file=sys.stderr)
        return stop.exit_code
    except OutOfDiskSpace as full:
        print(f"invnas: {full}", file=sys.stderr)
        return 1
    out = Console()
    if not out.is_terminal:
        out.width = 160
    out.print(run_summary(results, run), highlight=False)
    return 0 if results.succeeded else 1


# --- invnas export ---------------------------------------------------------------------------


def _add_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "export",
        help="write an architecture as standalone PyTorch source with its weights",
        description="Write the architecture a run chose (or the one of a fixed space file, "
        "randomly initialised) to DIR: model.py (standalone PyTorch, no invnas import), "
        "weights.pt, arch.yaml, metrics.json and sample.pt.",
    )
    parser.add_argument(
        "source", metavar="RUN_DIR|SPACE.yaml", help="a run directory or a fixed space file"
    )
    parser.add_argument(
        "--pick",
        metavar="best|rank:N|trial:ID",
        help="architecture of a run: its best trial (default), the retrained winner of rank N "
        "or search trial ID",
    )
    parser.add_argument(
        "--weights",
        metavar="retrained|inherited",
        help="weights of a run: retrained in phase 3, or inherited from the supernet with "
        "BatchNorm recalibrated (default: retrained when they exist)",
    )
    parser.add_argument("--out", metavar="DIR", required=True, help="directory to write")
    parser.add_argument("--force", action="store_true", help="write into a non-empty DIR")
    parser.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from invnas.exporting import export_run, export_space

    source = Path(args.source)
    if source.is_dir():
        out = export_run(source, args.pick or "best", args.weights, args.out, args.force)
    elif source.is_file():
        for flag, value in (("--pick", args.pick), ("--weights", args.weights)):
            if value is not None:
                raise ValueError(f"{flag}: applies to a run directory; {source} is a space file")
        out = export_space(source, args.out, args.force)
    else:
        raise ValueError(f"{source}: no such run directory or space file")
    metrics = json.loads((out / "metrics.json").read_text())
    print(
        f"exported {metrics['arch']} ({metrics['weights']['kind']} weights, "
        f"{human(metrics['params']['value'])} params, {human(metrics['macs']['value'])} MACs) "
        f"to {out}: model.py, weights.pt, arch.yaml, metrics.json, sample.pt"
    )
    return 0


# --- invnas report ---------------------------------------------------------------------------


def _add_report(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report",
        help="show what a search found and whether its supernet's ranking can be trusted",
        description="Print a run's phases, trial counts, Pareto front, retrained architectures "
        "(with the rank correlation of supernet and stand-alone accuracy from 5 retrained on) "
        "and failures; write pareto.png, progress.png and op_frequency.png into RUN_DIR "
        '(needs matplotlib: pip install "invnas[plot]").',
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (e.g. runs/NAME)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--no-plots", action="store_true", help="do not write the pictures")
    parser.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from invnas.reporting import report_run

    report_run(args.run_dir, as_json=args.json, plots=not args.no_plots)
    return 0
