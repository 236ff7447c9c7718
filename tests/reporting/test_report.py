"""invnas report on a hand-built finished run: tables, --json, the pictures, the rank
correlation threshold, user errors, and the path without matplotlib."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console
from scipy import stats

from invnas.cli import main
from invnas.reporting.tables import phases_table
from tests.reporting.conftest import PARETO, RETRAINED, TRIALS, write_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PICTURES = ("pareto.png", "progress.png", "op_frequency.png")
ROOT = Path(__file__).resolve().parents[2]


def report_json(run: Path, capsys, *extra: str) -> dict:
    assert main(["report", str(run), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_tables_show_phases_front_correlation_failures_and_pictures(finished_run, capsys):
    assert main(["report", str(finished_run)]) == 0
    out = capsys.readouterr().out
    for text in ("supernet", "completed", "nsga2: 10/12 trials completed, 2 failed, 9 feasible"):
        assert text in out
    for trial_id in PARETO:
        assert trial_id in out
    assert "t05" not in out.split("Pareto front")[1].split("Retrained")[0]  # infeasible
    assert "first" in out and "second" in out  # stage names from space.yaml
    assert "d2 w24 conv3g1,inv3c4r2" in out
    assert "Kendall tau-b" in out and "Spearman rho" in out
    assert "RuntimeError: out of memory" in out
    for name in PICTURES:
        assert str(finished_run / name) in out


def test_pictures_are_valid_png_images(finished_run, capsys):
    from matplotlib import image

    assert main(["report", str(finished_run)]) == 0
    for name in PICTURES:
        path = finished_run / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0.01  # something was drawn


def test_json_has_the_tables_content(finished_run, capsys):
    report = report_json(finished_run, capsys)
    assert report["trials"] == {
        "requested": 12,
        "completed": 10,
        "failed": 2,
        "feasible": 9,
        "pareto": 8,
        "repeats_skipped": 3,
    }
    accuracies = [row["metrics"]["accuracy"] for row in report["pareto"]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert {row["trial_id"] for row in report["pareto"]} == set(PARETO)
    top = report["pareto"][0]
    assert top["trial_id"] == "t02"
    assert top["stages"][1] == {
        "stage": "second",
        "depth": 2,
        "width": 24,
        "ops": ["conv3g1", "inv3c4r2"],
    }
    assert top["retrained"] == {
        "rank": 1,
        "status": "completed",
        "val_accuracy": 0.94,
        "test_accuracy": 0.93,
    }
    assert report["op_frequency"] == {
        "first": {"conv3g1": 5, "inv3c4r2": 3},
        "second": {"inv3c4r2": 6, "conv3g1": 5},
    }
    assert [f["phase"] for f in report["failures"]] == ["search", "search", "retrain"]
    assert {Path(p).name for p in report["plots"].values()} == set(PICTURES)
    assert report["plot_hint"] is None


def test_rank_correlation_matches_scipy(finished_run, capsys):
    found = report_json(finished_run, capsys, "--no-plots")["rank_correlation"]
    supernet = [TRIALS[index][1] for index, _, _ in RETRAINED.values()]
    test = [t for _, _, t in RETRAINED.values()]
    val = [v for _, v, _ in RETRAINED.values()]
    assert found["n"] == 6  # the failed rank 7 does not count
    assert found["test"]["kendall_tau"] == pytest.approx(stats.kendalltau(supernet, test)[0])
    assert found["test"]["spearman_rho"] == pytest.approx(stats.spearmanr(supernet, test)[0])
    assert found["val"]["kendall_tau"] == pytest.approx(stats.kendalltau(supernet, val)[0])
    assert found["published_kendall_tau"] == {"single-path one-shot": 0.62, "FairNAS": 0.95}


def test_progress_tracks_best_accuracy_and_hypervolume(finished_run, capsys):
    progress = report_json(finished_run, capsys, "--no-plots")["progress"]
    rows = progress["trials"]
    assert len(rows) == 9  # completed and feasible
    assert [r["trial_id"] for r in rows][:3] == ["t00", "t01", "t02"]
    assert [r["best"] for r in rows][:3] == [0.62, 0.62, 0.91]
    assert rows[-1]["best"] == 0.91
    volumes = [r["hypervolume"] for r in rows]
    assert all(b >= a for a, b in zip(volumes, volumes[1:], strict=False))
    assert volumes[1] > volumes[0]  # t01 is cheaper: it widens the front
    assert volumes[6] == volumes[5]  # t08 is dominated by t04: the front does not change
    assert volumes[8] > volumes[7]  # t11 joins the front between t00 and t07
    assert 0 < volumes[-1] < 1.1


def test_correlation_needs_five_retrained(tmp_path, results, capsys):
    results["retrained"] = results["retrained"][:4]
    run = write_run(tmp_path / "few", results)
    report = report_json(run, capsys, "--no-plots")
    assert report["rank_correlation"]["n"] == 4
    assert report["rank_correlation"]["test"] is None
    assert main(["report", str(run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "needs at least 5 retrained architectures, this run has 4" in out
    assert "Kendall tau-b" not in out


def test_no_plots_writes_nothing(finished_run, capsys):
    assert "plots" not in report_json(finished_run, capsys, "--no-plots")
    assert not any((finished_run / name).exists() for name in PICTURES)


def test_run_that_has_not_searched_yet(tmp_path, results, capsys):
    results["phases"]["supernet"]["status"] = "running"
    for phase in ("search", "retrain"):
        results["phases"][phase]["status"] = "pending"
    results.update(trials=[], pareto=[], best=None, retrained=[], failures=[])
    run = write_run(tmp_path / "early", results)
    driver = {"host": socket.gethostname(), "pid": os.getpid()}  # this process drives it
    (run / "driver.json").write_text(json.dumps(driver))
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "running" in out and "pending" in out and "no live driver" not in out
    assert "plots: none (no completed trials yet)" in out
    assert not any((run / name).exists() for name in PICTURES)


def test_a_run_whose_driver_died_says_how_to_resume_it(tmp_path, results, capsys):
    results["phases"]["search"]["status"] = "running"
    run = write_run(tmp_path / "dead", results)
    record = {"host": socket.gethostname(), "pid": 2**22 + 7}  # above Linux's largest PID
    (run / "driver.json").write_text(json.dumps(record))
    report = report_json(run, capsys, "--no-plots")
    assert report["driver"] == "none"
    assert main(["report", str(run), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "no live driver; resume with invnas resume" in out


def test_not_a_run_directory_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"invnas: {tmp_path}: not an invnas run directory; missing")


def test_run_without_results_is_a_one_line_error(finished_run, capsys):
    (finished_run / "results.json").unlink()
    assert main(["report", str(finished_run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"invnas: {finished_run / 'results.json'}: missing; the run has not started"]


BLOCK_MATPLOTLIB = textwrap.dedent(
    """
    import sys

    class BlockMatplotlib:
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, BlockMatplotlib())
    from invnas.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("as_json", [False, True])
def test_without_matplotlib_tables_print_and_the_hint_appears(finished_run, as_json):
    args = ["report", str(finished_run)] + (["--json"] if as_json else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_MATPLOTLIB, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    hint = 'pip install "invnas[plot]"'
    if as_json:
        report = json.loads(done.stdout)
        assert report["plots"] == {} and hint in report["plot_hint"]
    else:
        assert "Pareto front" in done.stdout and "Kendall tau-b" in done.stdout
        assert hint in done.stdout
    assert not any((finished_run / name).exists() for name in PICTURES)


def test_single_objective_run_has_no_hypervolume_but_all_pictures(tmp_path, results, capsys):
    results["objectives"] = [{"metric": "accuracy", "mode": "max"}]
    results["pareto"] = ["t02"]
    run = write_run(tmp_path / "single", results)
    report = report_json(run, capsys)
    assert report["progress"]["hypervolume_reference"] is None
    assert all(r["hypervolume"] is None for r in report["progress"]["trials"])
    assert [row["trial_id"] for row in report["pareto"]] == ["t02"]
    assert report["op_frequency"] == {
        "first": {"conv3g1": 1},
        "second": {"conv3g1": 1, "inv3c4r2": 1},
    }
    for name in PICTURES:
        assert (run / name).read_bytes()[:8] == PNG_SIGNATURE


def test_finetuned_retraining_is_flagged_beside_the_correlation(tmp_path, results, capsys):
    results["phases"]["retrain"]["mode"] = "finetune"
    run = write_run(tmp_path / "finetuned", results)
    assert report_json(run, capsys, "--no-plots")["rank_correlation"]["retrain_mode"] == "finetune"
    assert main(["report", str(run), "--no-plots"]) == 0
    assert "fine-tuned from the supernet's weights" in capsys.readouterr().out


def test_phases_table_counts_repeated_suggestions(finished_run, capsys):
    report = report_json(finished_run, capsys, "--no-plots")
    console = Console(width=400, file=io.StringIO())
    console.print(phases_table(report))
    assert "; 3 repeated suggestions answered from earlier trials" in console.file.getvalue()
    report["trials"]["repeats_skipped"] = 0
    console = Console(width=400, file=io.StringIO())
    console.print(phases_table(report))
    assert "repeated" not in console.file.getvalue()
