"""``invnas search --address HOST:PORT`` joins a separately started two-node Ray cluster and runs
its trials on the node that is not the head (the head has no CPUs): the run directory, the
supernet checkpoint and the Optuna journal must work from another node."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import write_space


@pytest.mark.slow
def test_search_on_a_two_node_cluster(two_node_cluster, tmp_path):
    space = write_space(tmp_path, search={"trials": 4, "max_concurrent": 2})
    run = _search_on(two_node_cluster, space, tmp_path / "shared" / "c")
    results = json.loads((run / "results.json").read_text())
    assert [e["status"] for e in results["phases"].values()] == ["completed"] * 3
    assert results["phases"]["search"]["trials_completed"] == 4
    assert json.loads((run / "run.json").read_text())["address"] == two_node_cluster
    trial_nodes = set()
    for result_file in run.glob("search/trial_*/result.json"):
        lines = result_file.read_text().splitlines()
        trial_nodes.update(json.loads(line)["node_id"] for line in lines)
    assert trial_nodes == {_worker_node_id(two_node_cluster, _ENV)}


# ray start turns token authentication on; a driver given an address presents the token
# (~/.ray/auth_token) only when asked to
_ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token")


def _search_on(address: str, space, run):
    """``invnas search`` of ``space`` into the run directory ``run`` on the cluster at
    ``address``; ``run`` once it finished."""
    command = ["invnas", "search", str(space), "--name", run.name, "--storage", str(run.parent)]
    finished = subprocess.run(
        [*command, "--address", address], env=_ENV, capture_output=True, text=True, timeout=900
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    return run


def _worker_node_id(address: str, env: dict[str, str]) -> str:
    """The ID of the one node of the cluster with CPUs (asked from a separate driver)."""
    script = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR'); "
        "print(*[n['NodeID'] for n in ray.nodes() if n['Alive'] and n['Resources'].get('CPU')])"
    )
    listed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    (node_id,) = listed.stdout.split()
    return node_id


@pytest.mark.slow
def test_two_workers_are_placed_on_both_nodes(two_one_cpu_nodes, tmp_path):
    space = write_space(
        tmp_path,
        search={"trials": 2},
        resources={"train_workers": 2, "cpus_per_worker": 1, "cpus_per_trial": 1},
    )
    run = _search_on(two_one_cpu_nodes, space, tmp_path / "shared" / "w")
    phases = json.loads((run / "results.json").read_text())["phases"]
    for phase in ("supernet", "retrain"):
        scale = phases[phase]["scale"]
        assert scale["workers"] == 2 and len(scale["nodes"]) == 2, scale  # one worker per node
