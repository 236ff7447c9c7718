"""`invnas validate`: the summary, the JSON object and the command-line plumbing."""

from __future__ import annotations

import json
import re

import pytest

from invnas import __version__
from invnas.cli import human, main
from invnas.config import Machine
from invnas.data.mnist import FASHION_MNIST_DIR
from invnas.resources import search_spaces_dir
from invnas.space import cardinality, load_space
from invnas.space.cost import bounds, cost
from invnas.space.serialize import fixed_arch

FASHION_MNIST = pytest.param(
    "fashion",
    marks=pytest.mark.skipif(
        not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
        reason="validate checks the data: apt-get install dataset-fashion-mnist",
    ),
)
EXAMPLES = ["quickstart", FASHION_MNIST, "cifar_hybrid", "imagenet_rednet"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_validate_with_a_summary(name, capsys):
    path = search_spaces_dir() / f"{name}.yaml"
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    space = load_space(path)
    for stage in space.stages:
        assert re.search(rf"\W {stage.name} +\W", out), stage.name  # a table row
    assert f"architectures: {cardinality(space):,}" in out
    limits = bounds(space)
    assert f"params: {human(limits.params_min)} .. {human(limits.params_max)}" in out
    assert f"MACs:   {human(limits.macs_min)} .. {human(limits.macs_max)}" in out


@pytest.mark.parametrize("name", EXAMPLES)
def test_json_summary(name, capsys):
    path = search_spaces_dir() / f"{name}.yaml"
    assert main(["validate", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    space = load_space(path)
    limits = bounds(space)
    assert summary["name"] == name
    assert summary["cardinality"] == cardinality(space)
    assert (summary["params_min"], summary["params_max"]) == (limits.params_min, limits.params_max)
    assert (summary["macs_min"], summary["macs_max"]) == (limits.macs_min, limits.macs_max)
    assert summary["params_min"] < summary["params_max"]
    assert [s["name"] for s in summary["stages"]] == [s.name for s in space.stages]
    assert summary["stages"][0]["ops"] == [op.code for op in space.stages[0].ops.candidates()]


LOCAL_CPUS = int(Machine.local().cpus)


@pytest.mark.parametrize(
    ("data", "cpus", "line", "search", "supernet"),
    [
        (
            "{}",
            4,
            "data: images in memory, data.workers auto (from each process's CPUs)",
            "0 DataLoader workers",
            {"memory": 0},
        ),
        (
            "{dataset: imagefolder, path: x, loading: stream}",
            4,
            "data: images streamed from their files, data.workers auto",
            "3 DataLoader workers",
            {"stream": min(LOCAL_CPUS - 1, 4)},
        ),
        (
            "{dataset: imagefolder, path: x}",
            2,
            "data: images in memory, streamed from their files above 1 GiB decoded",
            "0 DataLoader workers in memory, 1 if streamed",
            {"memory": 0, "stream": min(LOCAL_CPUS - 1, 4)},
        ),
        (
            "{num_workers: 2}",
            4,
            "data: images in memory, data.workers 2\n",
            "2 DataLoader workers",
            {"memory": 2},
        ),
    ],
)
def test_validate_shows_the_data_workers_of_each_phase(
    tmp_path, capsys, data, cpus, line, search, supernet
):
    text = (search_spaces_dir() / "quickstart.yaml").read_text().split("\ndata:")[0]
    path = tmp_path / "space.yaml"
    path.write_text(f"{text}\ndata: {data}\nresources: {{cpus_per_trial: {cpus}}}\n")
    if "imagefolder" in data:
        path.write_text(path.read_text().replace("{channels: 1,", "{channels: 3,"))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert line in out
    (search_line,) = [x for x in out.splitlines() if x.startswith("resources: search")]
    assert search_line.endswith(f"per trial; {search}")
    assert main(["validate", "--json", str(path)]) == 0
    resources = json.loads(capsys.readouterr().out)["resources"]
    assert resources["supernet"]["data_workers"] == supernet  # from the whole machine's CPUs
    assert resources["retrain"]["data_workers"] == resources["search"]["data_workers"]


def test_json_of_a_fixed_space_gives_its_exact_cost(capsys):
    path = search_spaces_dir() / "rednet26.yaml"
    assert main(["validate", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    space = load_space(path)
    exact = cost(space, fixed_arch(space))
    assert summary["cardinality"] == 1 and summary["fixed"] is True
    assert summary["params_min"] == summary["params_max"] == exact.params
    assert summary["macs_min"] == summary["macs_max"] == exact.macs


def test_human_units():
    assert [human(n) for n in (None, 999, 1234, 9_230_000, 1_730_000_000)] == [
        "n/a",
        "999",
        "1.23K",
        "9.23M",
        "1.73G",
    ]


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"invnas {__version__}"


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["validate"]) == 2
    assert main(["validate", "a.yaml", "--bogus"]) == 2
    assert "usage: invnas" in capsys.readouterr().err
