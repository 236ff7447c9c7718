"""A trial whose loss turns NaN for a real reason (a diverging learning rate) is recorded as
failed with its error, the run goes on to the end, and the summary lists the failure."""

from __future__ import annotations

import json

from invnas.cli import main

from .conftest import write_space


def test_diverging_retrain_is_recorded_and_reported(local_ray, tmp_path, capsys):
    # lr 10 with weight decay 1.0 multiplies the weights by -9 every step: NaN within an epoch
    space = write_space(
        tmp_path,
        search={"trials": 2},
        retrain={"top_k": 2, "lr": 10.0, "weight_decay": 1.0, "epochs": 1},
    )
    code = main(["search", str(space), "--name", "nan", "--storage", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "runs" / "nan" / "results.json").read_text())

    assert code == 1  # a phase failed
    assert results["phases"]["search"]["status"] == "completed"
    retrain = results["phases"]["retrain"]
    assert retrain["status"] == "failed" and "all 2 retrain trials failed" in retrain["error"]
    assert [r["status"] for r in results["retrained"]] == ["failed", "failed"]
    for record in results["retrained"]:
        assert "non-finite training loss" in record["error"]
        assert record["weights"] is None and record["metrics"] is None
    failures = results["failures"]
    assert [f["phase"] for f in failures] == ["retrain", "retrain"]
    assert {f["arch"] for f in failures} == {r["arch"] for r in results["retrained"]}
    assert "Failures" in out and "non-finite training loss" in out
