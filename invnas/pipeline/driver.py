"""``invnas search`` and ``invnas resume``: the three phases in order, each skipped once
completed, so that a run interrupted at any moment finishes when resumed.

Example::

    run, results = run_search("search_spaces/quickstart.yaml", SearchOptions(name="demo"))
    print(results.best)  # the same as run.read_results().best
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from invnas.config import Machine, PhasePlan, ResourcesConfig, RunConfig, plan_phases
from invnas.data import check_data_available
from invnas.pipeline.context import TrialContext
from invnas.pipeline.progress import current_display
from invnas.pipeline.ray_session import (
    check_address,
    check_resources,
    check_storage_on_nodes,
    largest_node,
    ray_session,
    resolve_storage,
    session_processes,
    stop_processes,
)
from invnas.pipeline.signals import catching_signals
from invnas.rundir import (
    Failure,
    Overrides,
    PhaseName,
    PhaseRecordT,
    PhaseStatus,
    RetrainPhase,
    RunDir,
    RunInfo,
    RunResults,
    empty_results,
    open_run,
)
from invnas.rundir.disk import disk_full_message
from invnas.rundir.info import check_same_settings, settings_digest
from invnas.space.spec import SearchSpace
from invnas.strategy.objectives import objectives_of
from invnas.strategy.ranking import rank_trials, summarize_front

log = logging.getLogger(__name__)

_NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class OutOfDiskSpace(RuntimeError):
    """The run stopped because a write found its disk full (or its quota or the file size
    limit reached); results.json records the phase as failed with this one-line message."""


class PhaseInterrupted(KeyboardInterrupt):
    """The run stopped before its end (Ctrl-C or another stop signal); ``run_path`` can be
    resumed; ``exit_code`` is 128 + the signal's number."""

    def __init__(self, run_path: Path | str | None = None, exit_code: int = 130) -> None:
        super().__init__(str(run_path or ""))
        self.run_path = run_path
        self.exit_code = exit_code


@dataclass(frozen=True)
class SearchOptions:
    """Command-line settings of a search; None leaves the space file's value."""

    name: str | None = None
    storage: str | None = None
    address: str | None = None
    resume: bool = False
    seed: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    trials: int | None = None
    train_workers: int | None = None
    ray_temp_dir: str | None = None  # a local Ray's session directory (default: Ray's own)

    def overrides(self) -> Overrides:
        """The settings that override the space file (recorded in run.json)."""
        return Overrides(
            seed=self.seed,
            trials=self.trials,
            cpus_per_trial=self.cpus_per_trial,
            gpus_per_trial=self.gpus_per_trial,
            train_workers=self.train_workers,
            address=self.address,
            storage=self.storage,
        )


def check_options(options: SearchOptions) -> None:
    """ValueError naming the flag of the first invalid option."""
    if options.trials is not None and options.trials < 1:
        raise ValueError(f"--trials: {options.trials}; expected a positive number of trials")
    if options.seed is not None and not 0 <= options.seed < 2**31:
        raise ValueError(f"--seed: {options.seed}; expected 0 <= seed < 2**31")
    if options.cpus_per_trial is not None and not options.cpus_per_trial > 0:
        raise ValueError(f"--cpus-per-trial: {options.cpus_per_trial:g}; expected more than 0")
    if options.gpus_per_trial is not None and not options.gpus_per_trial >= 0:
        raise ValueError(f"--gpus-per-trial: {options.gpus_per_trial:g}; expected 0 or more")
    if options.train_workers is not None and options.train_workers < 1:
        raise ValueError(
            f"--train-workers: {options.train_workers}; expected a positive number of workers"
        )
    if options.name is not None and not _NAME_RULE.fullmatch(options.name):
        raise ValueError(
            f"--name: {options.name!r} cannot name a run directory; allowed: letters, digits, "
            "'_', '.' and '-', starting with a letter or digit"
        )
    check_address(options.address)


def run_search(
    space_path: str | Path, options: SearchOptions = SearchOptions()
) -> tuple[RunDir, RunResults]:
    """Start (or with ``options.resume``, continue) a search of the space file ``space_path``.

    Returns the run directory and its final results. ValueError (a SpaceError for the space
    file) for bad input, raised before the run directory is made.
    """
    from invnas.space.loader import load_space_file

    check_options(options)
    space_path = Path(space_path)
    space, written = load_space_file(space_path)
    config = options.overrides().apply(written)
    check_data_available(config.data, space_path.resolve().parent)  # before Ray starts
    address = check_address(config.resources.address)
    storage = resolve_storage(config.resources.storage, joining=address is not None)
    name = options.name or f"{space.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    path = storage / name
    if options.resume:
        if not path.is_dir():
            raise ValueError(f"--resume: {path}: no such run to resume; check --name and --storage")
        recorded = open_run(path).read_info().settings_digest
        check_same_settings(recorded, space, written, str(space_path))
        return resume_run(path, options)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(
            f"{path}: run directory exists; use --resume to continue it or choose another --name"
        )
    info = RunInfo(
        name=name,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        invnas_version=_version(),
        seed=config.seed,
        overrides=options.overrides(),
        storage=str(storage),
        address=address,
        space_source=str(space_path.resolve()),
        data_root=str(space_path.resolve().parent),
        settings_digest=settings_digest(space, written),
    )
    space_text = space_path.read_text(encoding="utf-8")
    with _ray_for(config, address, storage, options.ray_temp_dir) as (plan, session):
        run = RunDir.create(path, space_text, info)
        run.write_results(empty_results(name, config, objectives_of(config.search)))
        return run, _execute(run, space, config, info, plan, session)


def resume_run(
    path: str | Path, options: SearchOptions = SearchOptions()
) -> tuple[RunDir, RunResults]:
    """Finish the run at ``path``: completed phases are skipped, the phase in progress is
    restored from its Tune experiment. The run's recorded settings apply; ``options`` may
    change where it runs (address, cpus/gpus per trial), not what it computes."""
    check_options(options)
    run = open_run(path)
    info = run.read_info()
    recorded = info.overrides
    for key in ("seed", "trials"):
        given, started = getattr(options, key), getattr(recorded, key)
        if given is not None and started is not None and given != started:
            raise ValueError(
                f"--{key}: {given}; the run was started with {started} and resumes with it"
            )
    where = {
        key: getattr(options, key)
        for key in ("cpus_per_trial", "gpus_per_trial")
        if getattr(options, key) is not None
    }
    overrides = dataclasses.replace(recorded, address=options.address, **where)
    space, config = run.load_space_file()
    check_same_settings(info.settings_digest, space, config, str(run.space_file))
    config = overrides.apply(config)
    check_data_available(config.data, info.data_root)
    address = check_address(config.resources.address)
    if run.results_file.is_file():
        run.read_results()  # a damaged one is a clear error before Ray starts
    stop_dead_driver_ray(run)
    with _ray_for(config, address, run.path.parent, options.ray_temp_dir) as (plan, session):
        if not run.results_file.is_file():  # killed before its first results.json
            run.write_results(empty_results(info.name, config, objectives_of(config.search)))
        log.info("resuming run %s", run.path)
        return run, _execute(run, space, config, info, plan, session)


def stop_dead_driver_ray(run: RunDir) -> list[int]:
    """Stop what is left of the local Ray of the run's last driver when that driver died
    (kill -9) on this host: Ray's agents outlive it. Returns the PIDs stopped; a live driver's
    Ray and a cluster the run joined (no session recorded) are never touched."""
    driver = run.read_driver()
    if driver is None or driver.ray_session is None or driver.alive:
        return []
    stopped = stop_processes(session_processes(driver.ray_session))
    if stopped:
        log.warning(
            "stopped %d Ray processes left by the dead driver (PID %d) of %s",
            len(stopped),
            driver.pid,
            run.path,
        )
    return stopped


@contextlib.contextmanager
def _ray_for(
    config: RunConfig, address: str | None, storage: Path, temp_dir: str | None
) -> Iterator[tuple[PhasePlan, str | None]]:
    """Ray up for the run, checked to be able to host every phase's trials and reach its
    storage; yields what each phase gets there and the session directory of a local Ray
    started for it."""
    # a local Ray gets this machine; a cluster's size is only known once joined
    before = Machine.local() if address is None else Machine.unbounded()
    plan_phases(config.resources, config.retrain.top_k, before)  # bad settings: no Ray
    with ray_session(address, temp_dir=temp_dir) as session:
        if address is not None:
            check_storage_on_nodes(storage)
        plan = plan_phases(config.resources, config.retrain.top_k, largest_node())
        check_resources(plan)
        yield plan, session


def _version() -> str:
    import invnas

    return invnas.__version__


def build_involution_kernel(space: SearchSpace, resources: ResourcesConfig) -> None:
    """Compile the native involution CPU kernel now, saying so, when a local run's trials will
    need it and it is not in the build cache yet; otherwise the first trials would wait about a
    minute on the build without a word. A failed build is logged and the trials then fall back
    to the pure-PyTorch backend, as they would have anyway."""
    import os

    from invnas.ops.backends import cpu
    from invnas.ops.functional import ENV_VAR

    if (
        resources.address is not None  # trials run on the cluster's nodes, which build their own
        or resources.gpus_per_trial > 0
        or not space.uses_involution
        or (os.environ.get(ENV_VAR) or "auto").strip().lower() not in ("auto", "cpu")
        or cpu.is_built()
    ):
        return
    display = current_display()
    if display is not None:  # without one, the cpu backend's own log line says it
        display.console.print(
            "compiling the native involution CPU kernel (once per machine, about a minute)",
            highlight=False,
        )
    cpu.load_extension()


def _execute(
    run: RunDir,
    space: SearchSpace,
    config: RunConfig,
    info: RunInfo,
    plan: PhasePlan,
    ray_session: str | None,
) -> RunResults:
    build_involution_kernel(space, config.resources)
    context = TrialContext(space=space, run=config, data_root=info.data_root)
    try:
        with run.driving(ray_session), catching_signals() as stop:
            try:
                return _run_phases(run, context, plan)
            except KeyboardInterrupt:
                raise PhaseInterrupted(run.path, stop.exit_code) from None
    except OSError as error:  # e.g. no room for driver.json: nothing was recorded yet
        message = disk_full_message(error, run.path)
        if message is None:
            raise
        raise OutOfDiskSpace(f"{message}: invnas resume {run.path}") from None


PhaseRunner = Callable[[RunDir, TrialContext, RunResults], RunResults]


def _run_phases(run: RunDir, context: TrialContext, plan: PhasePlan) -> RunResults:
    """Run every phase not completed yet, in order; stop after a phase that fails."""
    from invnas.pipeline.supernet_phase import restore_supernet_weights

    results = run.read_results()
    if results.phases.supernet.status is PhaseStatus.COMPLETED and not results.succeeded:
        restore_supernet_weights(run)
    phases: tuple[tuple[PhaseName, PhaseRunner], ...] = (
        ("supernet", _supernet),
        ("search", _search),
        ("retrain", _retrain),
    )
    for phase, run_phase in phases:
        record = getattr(results.phases, phase)
        if record.status is PhaseStatus.COMPLETED:
            continue
        display = current_display()
        try:
            results = results.with_phase(
                phase, dataclasses.replace(record, status=PhaseStatus.RUNNING)
            )
            run.write_results(results)
            if display is not None:
                display.start_phase(phase, *_amount_of_work(context.run, phase))
            share = getattr(plan, phase)
            began = time.monotonic()
            results = _timed(
                run_phase(run, context.for_phase(share), results),
                phase,
                (record.seconds or 0.0) + time.monotonic() - began,
            )
            full = _disk_full_in_trials(results, phase, run.path)
            if full is None:
                run.write_results(results)
        except OSError as error:
            full = disk_full_message(error, run.path)
            if full is None:
                raise
        if full is not None:
            if display is not None:
                display.end_phase(phase, PhaseStatus.FAILED.value)
            _record_disk_full(run, results, phase, f"{full}: invnas resume {run.path}")
        status = getattr(results.phases, phase).status
        if display is not None:
            display.end_phase(phase, status.value)
        if status is not PhaseStatus.COMPLETED:
            break
    return results


def _timed(results: RunResults, phase: PhaseName, seconds: float) -> RunResults:
    """``results`` with ``phase``'s wall-clock ``seconds``."""
    record = dataclasses.replace(getattr(results.phases, phase), seconds=round(seconds, 1))
    return dataclasses.replace(
        results, phases=dataclasses.replace(results.phases, **{phase: record})
    )


def _disk_full_in_trials(results: RunResults, phase: PhaseName, run_path: Path) -> str | None:
    """The message of the first of ``phase``'s trial failures that a full disk caused."""
    for failure in results.failures:
        if failure.phase == phase:
            message = disk_full_message(failure.error, run_path)
            if message is not None:
                return message
    return None


def _record_disk_full(run: RunDir, results: RunResults, phase: PhaseName, message: str) -> None:
    """Record ``phase`` as failed for lack of disk space, in the room the driver held for
    it, then stop the run with ``message``."""
    record = dataclasses.replace(
        getattr(results.phases, phase), status=PhaseStatus.FAILED, error=message
    )
    failures = tuple(f for f in results.failures if f.phase == phase)
    results = results.with_phase(phase, record, (*failures, Failure(phase, None, None, message)))
    run.release_reserve()
    try:
        run.write_results(results)
    except OSError as error:
        log.error("%s: could not record the failure (%s); it keeps its last state", run, error)
    raise OutOfDiskSpace(message)


def _amount_of_work(config: RunConfig, phase: str) -> tuple[int, str]:
    if phase == "supernet":
        return config.supernet.epochs, "epochs"
    if phase == "search":
        return config.search.trials, "trials"
    return config.retrain.top_k, "trials"


def _supernet(run: RunDir, context: TrialContext, results: RunResults) -> RunResults:
    from invnas.pipeline.supernet_phase import run_supernet_phase

    record = _guard(run_supernet_phase(run, context))
    failures = ()
    if record.status is PhaseStatus.FAILED:
        failures = (Failure("supernet", None, None, record.error or "failed"),)
    return results.with_phase("supernet", record, failures)


def _search(run: RunDir, context: TrialContext, results: RunResults) -> RunResults:
    from invnas.pipeline.search_phase import run_search_phase

    settings = context.run.search
    record, trials, failures = run_search_phase(run, context, settings.trials)
    _guard(record)
    pareto, best = summarize_front(trials, objectives_of(settings))
    results = dataclasses.replace(results, trials=trials, pareto=pareto, best=best)
    return results.with_phase("search", record, failures)


def _retrain(run: RunDir, context: TrialContext, results: RunResults) -> RunResults:
    from invnas.pipeline.retrain_phase import run_retrain_phase

    settings = context.run.retrain
    ranked = rank_trials(results.trials, objectives_of(context.run.search))
    if not ranked and settings.top_k > 0:
        error = "no completed feasible architecture to retrain"
        return results.with_phase("retrain", RetrainPhase(PhaseStatus.FAILED, settings.mode, error))
    record, retrained, failures = run_retrain_phase(run, context, ranked)
    _guard(record)
    results = dataclasses.replace(results, retrained=retrained)
    return results.with_phase("retrain", record, failures)


def _guard(record: PhaseRecordT) -> PhaseRecordT:
    """``record``, unless its phase was interrupted by Ctrl-C (Tune then returns early instead
    of raising): that raises KeyboardInterrupt rather than passing for finished."""
    if record.status is PhaseStatus.INTERRUPTED:
        raise KeyboardInterrupt
    return record
