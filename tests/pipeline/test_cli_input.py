"""Bad command-line input to ``invnas search`` / ``invnas resume``: exit code 2, one
``invnas: ...`` line, and no run directory left behind (nothing starts)."""

from __future__ import annotations

import socket

import pytest

from invnas.cli import main

from .conftest import TINY, write_space


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


CASES = {
    "missing file": (["search", "{tmp}/nope.yaml"], "nope.yaml: no such file"),
    "negative trials": (["search", "{tiny}", "--trials", "-3"], "--trials: -3"),
    "trials not a number": (["search", "{tiny}", "--trials", "many"], "--trials: 'many'"),
    "negative cpus": (["search", "{tiny}", "--cpus-per-trial", "0"], "--cpus-per-trial: 0"),
    "bad address": (["search", "{tiny}", "--address", "nowhere"], "--address: 'nowhere'"),
    "nothing at address": (
        ["search", "{tiny}", "--address", "127.0.0.1:{port}", "--storage", "{tmp}/runs"],
        "nothing answers there",
    ),
    "relative storage on a cluster": (
        ["search", "{tiny}", "--address", "auto", "--storage", "runs"],
        "--storage: 'runs' is a relative path",
    ),
    "uri scheme not supported": (
        ["search", "{tiny}", "--storage", "s3://bucket/runs"],
        "s3:// storage is not supported",
    ),
    "bad run name": (["search", "{tiny}", "--name", "../up"], "--name: '../up'"),
    "resume without a run": (
        ["search", "{tiny}", "--resume", "--name", "never", "--storage", "{tmp}/runs"],
        "no such run to resume",
    ),
    "resume a directory that is no run": (["resume", "{tmp}"], "not an invnas run directory"),
    "unknown sampler": (["search", "{annealing}"], "search.sampler"),
    "cmaes with two objectives": (["search", "{cmaes}"], "cmaes is single-objective"),
    "dataset files missing": (
        ["search", "{no_data}"],
        "/absent does not exist; expected a directory",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv, expected = CASES[case]
    values = {
        "tmp": tmp_path,
        "tiny": TINY,
        "port": closed_port(),
        "annealing": write_space(tmp_path, "annealing.yaml", search={"sampler": "annealing"}),
        "cmaes": write_space(tmp_path, "cmaes.yaml", search={"sampler": "cmaes"}),
        "no_data": write_space(
            tmp_path, "nodata.yaml", data={"dataset": "mnist", "path": "absent"}
        ),
    }
    code = main([part.format(**values) for part in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("invnas: ")
    assert expected in err[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
