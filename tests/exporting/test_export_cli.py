"""``invnas export`` on the command line: success output and one-line errors with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from invnas.cli import main


def test_export_a_run_and_a_space(
    run_dir: Path, fixed_space_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["export", str(run_dir), "--pick", "rank:1", "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("exported d2w32:inv3c4r2,conv3g1|d1w32:inv5g2r4 (retrained weights")
    assert (tmp_path / "a" / "model.py").is_file()
    assert main(["export", str(fixed_space_file), "--out", str(tmp_path / "b")]) == 0
    assert "(random weights" in capsys.readouterr().out
    assert (tmp_path / "b" / "weights.pt").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing", "--out", "{tmp}/o"], "{tmp}/missing: no such run directory or space"),
        (["{tmp}", "--out", "{tmp}/o"], "{tmp}: not an invnas run directory; missing space.yaml"),
        (["{run}", "--pick", "top", "--out", "{tmp}/o"], "--pick: 'top' is not a pick; expected"),
        (["{run}", "--weights", "new", "--out", "{tmp}/o"], "--weights: 'new' is not a weights"),
        (["{run}", "--out", "{run}"], "--out: {run}: exists and is not empty; use --force"),
        (["{space}", "--pick", "best", "--out", "{tmp}/o"], "--pick: applies to a run directory"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    run_dir: Path,
    fixed_space_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    args: list[str],
    message: str,
) -> None:
    names = {"tmp": str(tmp_path), "run": str(run_dir), "space": str(fixed_space_file)}
    assert main(["export", *(a.format(**names) for a in args)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("invnas: " + message.format(**names))
