"""Exporting from a run directory: picks, retrained and inherited weights, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import invnas
from invnas.exporting import export_run
from invnas.nn.supernet import Supernet
from invnas.space.arch import Arch
from invnas.space.loader import load_space_file

from .conftest import BEST_ARCH, OTHER_ARCH, fresh_environment_max_error, make_run


def _metrics(directory: Path) -> dict:
    return json.loads((directory / "metrics.json").read_text())


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "weights.pt", weights_only=True)


def test_best_exports_the_retrained_weights(run_dir: Path, tmp_path: Path) -> None:
    out = export_run(run_dir, "best", None, tmp_path / "best")
    retrained = torch.load(run_dir / "weights" / "retrain" / "1.pt", weights_only=True)
    exported = _weights(out)
    assert list(exported) == list(retrained)
    assert all(torch.equal(exported[k], retrained[k]) for k in retrained)
    metrics = _metrics(out)
    assert metrics["arch"] == BEST_ARCH
    assert metrics["weights"] == {"kind": "retrained", "file": "weights/retrain/1.pt", "rank": 1}
    accuracy = metrics["accuracy"]
    assert (accuracy["value"], accuracy["phase"], accuracy["split"]) == (0.55, "retrain", "test")
    assert accuracy["trial_id"] == "t_best" and accuracy["run"] == str(run_dir.resolve())
    assert metrics["supernet_accuracy"]["value"] == 0.5
    assert metrics["latency_ms"]["value"] == 1.25
    assert fresh_environment_max_error(out) <= 1e-5
    sample = torch.load(out / "sample.pt", weights_only=True)
    with torch.no_grad():
        again = invnas.load_exported(out)(sample["input"])
    torch.testing.assert_close(again, sample["output"], atol=1e-5, rtol=0)


def test_rank_pick_is_the_same_model_as_best(run_dir: Path, tmp_path: Path) -> None:
    out = export_run(run_dir, "rank:1", "retrained", tmp_path / "rank1")
    assert _metrics(out)["source"]["pick"] == "rank:1"
    assert _metrics(out)["arch"] == BEST_ARCH


def _is_bn_buffer(key: str, model: nn.Module) -> bool:
    owner = model.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(owner, nn.BatchNorm2d) and key.rsplit(".", 1)[1] in (
        "running_mean",
        "running_var",
        "num_batches_tracked",
    )


def test_inherited_weights_are_the_supernets_with_recalibrated_bn(
    run_dir: Path, tmp_path: Path
) -> None:
    out = export_run(run_dir, "trial:t_other", None, tmp_path / "other")
    space, config = load_space_file(run_dir / "space.yaml")
    supernet = Supernet(space)
    supernet.load_state_dict(torch.load(run_dir / "weights" / "supernet.pt", weights_only=True))
    extracted = supernet.extract(Arch.decode(OTHER_ARCH))
    inherited = extracted.state_dict()
    exported = _weights(out)
    assert list(exported) == list(inherited)
    recalibrated = 0
    for key, value in exported.items():
        if not _is_bn_buffer(key, extracted):
            assert torch.equal(value, inherited[key]), key
        elif key.endswith("num_batches_tracked"):
            assert int(value) == config.search.bn_batches  # reset, then one per batch
            recalibrated += 1
        else:
            assert not torch.allclose(value, inherited[key]), key
    assert recalibrated == sum(isinstance(m, nn.BatchNorm2d) for m in extracted.modules())
    metrics = _metrics(out)
    assert metrics["weights"]["kind"] == "inherited"
    assert metrics["weights"]["bn_recalibration"]["batches"] == 3
    assert metrics["accuracy"]["phase"] == "export" and metrics["accuracy"]["split"] == "val"
    assert 0.0 <= metrics["accuracy"]["value"] <= 1.0
    assert metrics["supernet_accuracy"] | {"value": None} == {
        "value": None,
        "run": str(run_dir.resolve()),
        "trial_id": "t_other",
        "phase": "search",
        "split": "val",
        "weights": "supernet (inherited)",
    }
    assert fresh_environment_max_error(out) <= 1e-5


def test_inherited_weights_for_a_rank_whose_retraining_failed(
    run_dir: Path, tmp_path: Path
) -> None:
    out = export_run(run_dir, "rank:2", "inherited", tmp_path / "rank2")
    assert _metrics(out)["arch"] == OTHER_ARCH
    assert _metrics(out)["weights"]["kind"] == "inherited"


@pytest.mark.parametrize(
    ("pick", "weights", "message"),
    [
        ("worst", None, r"^--pick: 'worst' is not a pick; expected best, rank:N .* or trial:ID"),
        ("rank:0", None, r"^--pick: 'rank:0' is not a pick"),
        ("rank:7", None, r"^--pick: rank:7: no retrained model of rank 7; retrained: rank 1"),
        ("rank:2", None, r"^--pick: rank:2: retraining of rank 2 is 'failed' \(RuntimeError: out"),
        ("trial:nope", None, r"^--pick: trial:nope: no search trial 'nope' in this run; completed"),
        ("trial:t_failed", None, r"^--pick: trial:t_failed: trial 't_failed' is 'failed'"),
        ("trial:t_other", "retrained", r"^--weights: retrained: trial 't_other' was not retrained"),
        ("best", "fresh", r"^--weights: 'fresh' is not a weights kind; expected retrained or"),
    ],
)
def test_unusable_picks_are_refused(
    run_dir: Path, tmp_path: Path, pick: str, weights: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        export_run(run_dir, pick, weights, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_directory_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an invnas run directory; missing space.yaml"):
        export_run(tmp_path, "best", None, tmp_path / "out")


def test_a_run_whose_search_has_not_finished_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, search_status="running")
    with pytest.raises(ValueError, match=r"phases.search.status: is 'running'; export needs"):
        export_run(run, "best", None, tmp_path / "out")


REAL_SEARCH_SPACE = """\
name: realtiny
input: {channels: 1, size: 8}
num_classes: 10
stem: {kind: conv, channels: 8}
stages:
  - {name: s1, depth: [1, 2], width: [16], block: basic, granularity: block,
     ops: {conv: {kernel_size: [3]}, involution: {kernel_size: [3], group_channels: [4]}}}
  - {name: s2, depth: [1], width: [16, 24], stride: 2, block: basic,
     ops: {conv: {kernel_size: [3]}, involution: {kernel_size: [3], group_channels: [4]}}}
data: {dataset: digits, batch_size: 64}
supernet: {epochs: 1}
search: {trials: 2, bn_batches: 2, objectives: [accuracy, macs]}
retrain: {top_k: 1, epochs: 1}
"""


@pytest.mark.slow  # a real three-phase search on Ray Tune (~1 min)
def test_export_from_a_real_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from invnas.pipeline.driver import SearchOptions, run_search

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    space_file = tmp_path / "realtiny.yaml"
    space_file.write_text(REAL_SEARCH_SPACE)
    run, results = run_search(space_file, SearchOptions(name="real", storage=str(tmp_path)))
    best = results.best
    retrained = export_run(run.path, "best", None, tmp_path / "retrained")
    assert _metrics(retrained)["weights"]["kind"] == "retrained"
    assert _metrics(retrained)["accuracy"]["value"] == results.retrained[0].metrics.test_accuracy
    saved = torch.load(run.retrain_weights(1), weights_only=True)
    assert all(torch.equal(_weights(retrained)[k], v) for k, v in saved.items())
    inherited = export_run(run.path, "best", "inherited", tmp_path / "inherited")
    metrics = _metrics(inherited)
    assert metrics["arch"] == best.arch
    # BatchNorm recalibrated on the search's batches: the search's accuracy, reproduced.
    assert metrics["accuracy"]["value"] == best.metrics.accuracy
    assert fresh_environment_max_error(inherited) <= 1e-5
