"""experiments/hybrid_vs_pure.py on the reporting fixture's finished run (8x8 digits, 12 search
trials, real architectures): which pure designs it picks, that each (arch, seed) trains once and
is cached, the table and verdict, and the command line's answers to bad input."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reporting.conftest import TRIALS, _search_trials, results_of, write_run

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "experiments" / "hybrid_vs_pure.py"
WINNER = TRIALS[2][0]  # retrained rank 1: d2w16:conv3g1,conv3g1|d2w24:conv3g1,inv3c4r2
BAND = 0.3
BUDGET = 0.2  # millions of MACs: the front's best within it is trial 6 (188,576 MACs)


@pytest.fixture(scope="module")
def hvp():
    spec = importlib.util.spec_from_file_location("hybrid_vs_pure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["hybrid_vs_pure"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "runs" / "reportfixture", results_of(_search_trials()))


def test_the_pure_designs_are_pure_and_matched_by_macs(hvp, run_dir):
    study = hvp.load_study(run_dir, epochs=1)
    groups, notes = hvp.pick_groups(study, BAND, [BUDGET * 1e6, 0.01e6, 0.1e6])
    names = ["winner", "front within 0.1M MACs", "front within 0.2M MACs"]
    assert [g.name for g in groups] == names
    assert notes == ["budget 0.01M MACs: no front architecture within it"]
    winner, pure, budget = groups
    # within 0.1M MACs the front's best is the only all-involution trial: not its own rival
    assert pure.anchor.arch == TRIALS[1][0] and [d.label[:8] for d in pure.rivals] == ["all-conv"]
    assert pure.notes == (
        "at 0.06M MACs: the search evaluated no feasible all-involution architecture",
    )
    assert winner.anchor.arch == WINNER and budget.anchor.arch == TRIALS[6][0]
    for g in groups:
        target = hvp.macs_of(study, g.anchor.arch)
        for design in g.rivals:
            if design.label.startswith("all-"):
                kind = "conv" if design.label.startswith("all-conv") else "involution"
                assert hvp.kind_of(design.arch) == kind
                inside = abs(hvp.macs_of(study, design.arch) - target) <= BAND * target
                assert inside != ("nearest by MACs" in design.note)
    # no all-convolution trial lies within 30% of the winner's 844,528 MACs: the nearest
    conv, inv, resnet, rednet = winner.rivals
    assert conv.arch == TRIALS[8][0] and "nearest" in conv.note
    assert inv.arch == TRIALS[1][0] and "nearest" in inv.note
    # within 30% of 188,576 MACs: trial 7 (0.70) beats the nearer trial 0 (0.62)
    assert budget.rivals[0].arch == TRIALS[7][0] and budget.rivals[0].note == ""
    assert resnet.arch == "d2w16:conv3g1,conv3g1|d2w24:conv3g1,conv3g1"
    assert resnet.inherited_accuracy is None  # its trial was infeasible
    assert rednet.arch == "d2w16:inv3c4r2,inv3c4r2|d2w24:inv3c4r2,inv3c4r2"


def test_each_training_runs_once_and_the_table_has_every_design(hvp, run_dir, tmp_path):
    study = hvp.load_study(run_dir, epochs=1)
    groups, notes = hvp.pick_groups(study, BAND, [BUDGET * 1e6])
    args = argparse.Namespace(
        seeds=2, cache=str(tmp_path / "cache"), workers=1, threads=1, band=BAND, budgets=[BUDGET]
    )
    first = hvp.run(study, groups, notes, args)
    archs = {d.arch for g in groups for d in (g.anchor, *g.rivals)}
    assert len(archs) == 7 and first["trainings_run"] == 14
    assert len(list((tmp_path / "cache").glob("*-seed[01].json"))) == 14
    again = hvp.run(study, groups, notes, args)
    assert again["trainings_run"] == 0 and again["trainings_cached"] == 14
    assert again["archs"][WINNER]["test_accuracy"] == first["archs"][WINNER]["test_accuracy"]
    hvp.cache_file(study, tmp_path / "cache", WINNER, 1).unlink()  # as if interrupted there
    assert hvp.run(study, groups, notes, args)["trainings_run"] == 1
    assert not list((tmp_path / "cache").glob("*.partial"))
    for found in first["archs"].values():
        assert len(found["test_accuracy"]) == 2 and found["min"] <= found["mean"] <= found["max"]
        assert found["latency_ms"] > 0 and found["params"] > 0
    resnet = first["archs"]["d2w16:conv3g1,conv3g1|d2w24:conv3g1,conv3g1"]
    assert resnet["outside_constraints"] == ["max_macs"]
    first["plot"] = hvp.plot(first, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0
    table = hvp.markdown(first)
    for arch in archs:
        assert hvp.cell(arch) in table
    assert "In all: the hybrid beats" in table and "above the search's max_macs" in table


def test_the_verdict_needs_ranges_that_do_not_overlap(hvp):
    def scored(*accuracies: float) -> dict:
        return {
            "test_accuracy": list(accuracies),
            "mean": sum(accuracies) / len(accuracies),
            "min": min(accuracies),
            "max": max(accuracies),
        }

    assert hvp.compare(scored(0.91, 0.92), scored(0.89, 0.90))["outcome"] == "wins"
    assert (
        hvp.compare(scored(0.88, 0.89), scored(0.89, 0.90))["outcome"] == "within the seed spread"
    )
    assert hvp.compare(scored(0.85, 0.86), scored(0.89, 0.90))["outcome"] == "loses"
    assert hvp.compare(scored(0.9), scored(0.8))["outcome"].startswith("unknown")


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_the_command_line_plans_and_refuses_bad_input(run_dir, tmp_path):
    planned = script("--run", str(run_dir), "--plan", "--cache", str(tmp_path / "cache"))
    assert planned.returncode == 0, planned.stderr
    assert "5 architectures x 2 seeds: 10 trainings of 15 epochs to run" in planned.stdout
    missing = script("--run", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    unfinished = results_of(_search_trials())
    unfinished["retrained"] = []
    bare = write_run(tmp_path / "runs" / "bare", unfinished)
    refused = script("--run", str(bare), "--plan")
    assert refused.returncode == 2 and "no retrained rank-1 architecture" in refused.stderr
    assert script("--run", str(run_dir), "--band", "0").returncode == 2
