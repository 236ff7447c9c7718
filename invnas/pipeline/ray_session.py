"""Ray for a search: start a quiet local instance or join a cluster, and check that the run's
storage and the trials' resources are usable there before any work starts."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from invnas.config import Machine, PhasePlan, PhaseResources

log = logging.getLogger(__name__)

LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # trials exchange files, not objects
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d+)")


def check_address(address: str | None) -> str | None:
    """``address`` if it names a Ray cluster (``auto`` or ``HOST:PORT``), None for a local Ray;
    ValueError otherwise."""
    if address is None or address == "local":
        return None
    if address == "auto":
        return address
    match = _HOST_PORT.fullmatch(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError(
            f"--address: {address!r} is not a Ray address; expected auto or HOST:PORT "
            "(e.g. 10.0.0.5:6379)"
        )
    return address


def resolve_storage(storage: str | None, joining: bool) -> Path:
    """The absolute directory that holds run directories.

    ``storage`` is a path or a ``file://`` URI; default ``./runs``. When ``joining`` a cluster
    a relative path is an error (other nodes have other working directories). The directory
    is created if need be; ValueError when it cannot be, or is not writable.
    """
    if storage is None:
        path = Path.cwd() / "runs"
    else:
        parsed = urlparse(storage)
        if parsed.scheme == "file":
            path = Path(parsed.path)
        elif parsed.scheme and len(parsed.scheme) > 1:
            raise ValueError(
                f"--storage: {storage!r}: {parsed.scheme}:// storage is not supported; give a "
                "directory (local, or a shared mount every node reaches) or a file:// URI"
            )
        else:
            path = Path(storage).expanduser()
        if not path.is_absolute():
            if joining:
                raise ValueError(
                    f"--storage: {storage!r} is a relative path; with --address give an "
                    "absolute path (or file:// URI) that every node of the cluster reaches"
                )
            path = Path.cwd() / path
    path = path.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"--storage: {str(path)!r}: cannot create the directory ({error.strerror}); "
            "give a writable directory"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"--storage: {str(path)!r}: not writable; give a writable directory")
    return path


def _check_reachable(address: str) -> None:
    if address == "auto":
        return
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as error:
        raise ValueError(
            f"--address: {address!r}: nothing answers there ({error.strerror or error}); "
            "expected the address of a running Ray head node (ray start --head)"
        ) from None


@contextlib.contextmanager
def ray_session(
    address: str | None,
    *,
    num_cpus: int | None = None,
    temp_dir: str | None = None,
) -> Iterator[str | None]:
    """Run the body with Ray up: an already initialised Ray is used as it is (and left
    running); otherwise a local instance is started (no dashboard, warnings only), or the
    cluster at ``address`` is joined, and shut down afterwards. Yields the session directory
    of a local Ray started here (None for any other), whose processes are all stopped at the
    end (Ray leaves some agents behind otherwise)."""
    import ray

    if ray.is_initialized():
        yield None
        return
    options: dict = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
    }
    if address is None:
        options.update(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 1,
            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        )
        if temp_dir is not None:
            options["_temp_dir"] = temp_dir
    else:
        _check_reachable(address)
        options["address"] = address
    try:
        context = ray.init(**options)
    except ConnectionError as error:
        raise ValueError(
            f"--address: {address!r}: cannot join the Ray cluster ({error}); if it uses token "
            "authentication (ray start's default), set RAY_AUTH_MODE=token and give its token "
            "in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        ) from None
    session = context.address_info.get("session_dir") if address is None else None
    try:
        yield session
    finally:
        ray.shutdown()
        if session:
            stop_processes(session_processes(session))


def session_processes(session_dir: str) -> list[int]:
    """PIDs of this user's processes (but this one) that name ``session_dir`` on their command
    line or hold a file open under it: every process of that local Ray, also the agents that
    renamed themselves (``ray::DashboardAgent``). Linux only (``/proc``); none elsewhere."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    prefixes = {os.path.join(path, "") for path in (session_dir, os.path.realpath(session_dir))}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            files = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(prefix in text for prefix in prefixes for text in (command, *files)):
            found.append(int(entry.name))
    return found


def stop_processes(pids: list[int], grace_s: float = 5.0) -> list[int]:
    """SIGTERM ``pids``, then SIGKILL those still running after ``grace_s``; returns the PIDs
    that were running."""
    running = [pid for pid in pids if _running(pid)]
    left = running
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [pid for pid in left if _running(pid)]
        if not left:
            break
    return running


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (one waiting for its parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def largest_node() -> Machine:
    """The CPUs and GPUs of the running Ray's largest node (by CPUs, then GPUs): the "whole
    machine" a phase gets by default."""
    sizes = [
        (n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in _alive_nodes()
    ]
    cpus, gpus = max(sizes, default=(1.0, 0.0))
    return Machine(cpus, gpus, f"the largest Ray node ({cpus:g} CPUs, {gpus:g} GPUs)")


def _placeable(share: PhaseResources, nodes: list[dict]) -> int:
    """How many workers of ``share`` the nodes can host at once."""
    total = 0
    for node in nodes:
        free = node["Resources"]
        fits = [int(free.get("CPU", 0) / share.cpus + 1e-9)]
        if share.gpus > 0:
            fits.append(int(free.get("GPU", 0) / share.gpus + 1e-9))
        total += min(fits)
    return total


_SETTING = {"supernet": "resources.supernet_cpus", "retrain": "resources.retrain_cpus"}


def check_resources(plan: PhasePlan) -> None:
    """ValueError when the running Ray cannot host some phase's trial (one worker) or all of
    its data-parallel workers at once (Tune or Ray Train would wait forever)."""
    nodes = _alive_nodes()
    for phase, share in plan.named():
        placeable = _placeable(share, nodes)
        if placeable >= share.workers:
            continue
        if share.gpus > 0 and not any(n["Resources"].get("GPU", 0) for n in nodes):
            flag = "--gpus-per-trial" if phase == "search" else f"resources ({phase} phase)"
            raise ValueError(
                f"{flag}: {share.gpus:g} GPUs per worker: the Ray cluster has no GPU; use 0 "
                "for CPU training"
            )
        most_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
        if share.workers > 1:
            raise ValueError(
                f"resources.train_workers: {share.workers} workers of {share.cpus:g} CPUs and "
                f"{share.gpus:g} GPUs each for the {phase} phase: the Ray cluster can place "
                f"{placeable} (largest node: {most_cpus:g} CPUs); ask for fewer workers or "
                "less per worker (cpus_per_worker, gpus_per_worker)"
            )
        flag = "--cpus-per-trial" if phase == "search" else _SETTING[phase]
        raise ValueError(
            f"{flag}: {share.cpus:g} CPUs (and {share.gpus:g} GPUs) per {phase} trial fit on "
            f"no Ray node (the largest has {most_cpus:g} CPUs); ask for less"
        )


def _probe(directory: str, marker: str) -> str | None:
    """Run on one node: None if ``directory`` holds ``marker`` and is writable there."""
    path = Path(directory)
    if not (path / marker).is_file():
        return f"{directory} is not there or is another directory (no {marker})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"{directory} is not writable"
    return None


def check_storage_on_nodes(storage: Path, timeout_s: float = 120.0) -> None:
    """ValueError unless every alive node of the running Ray sees ``storage`` (the same
    directory, writable): a marker file written here must be visible there."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = f".invnas-probe-{uuid.uuid4().hex}"
    (storage / marker).write_text("invnas storage probe\n")
    probe = ray.remote(num_cpus=0)(_probe)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {
            n["NodeManagerAddress"] + " (" + n["NodeID"][:8] + ")": probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(str(storage), marker)
            for n in nodes
        }
        problems = []
        for node, ref in refs.items():
            try:
                problem = ray.get(ref, timeout=timeout_s)
            except Exception as error:  # a node that cannot even run the probe
                problem = f"the check did not run ({type(error).__name__}: {error})"
            if problem:
                problems.append(f"node {node}: {problem}")
        if problems:
            raise ValueError(
                f"--storage: {str(storage)!r} is not shared by every Ray node ("
                + "; ".join(problems)
                + "); give a directory on a shared file system"
            )
    finally:
        (storage / marker).unlink(missing_ok=True)
