"""A corpus of malformed space files: each must give exit code 2 from `invnas validate` and a
one-line message naming the key path, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from invnas.cli import main

BASE = """\
name: tiny
input: {channels: 1, size: 16}
num_classes: 10
stem: {kind: conv, channels: 16}
stages:
  - name: a
    depth: [1, 2]
    width: [32, 48]
    expansion: 2
    ops:
      conv: {kernel_size: [3, 5], groups: [1]}
      involution: {kernel_size: [3, 7], group_channels: [4, 8], reduction: [2, 4]}
  - name: b
    depth: [1]
    width: [64]
    stride: 2
    expansion: 2
    granularity: block
    ops:
      involution: {kernel_size: [7], groups: [2, 4], reduction: [4]}
search: {sampler: tpe, objectives: [accuracy, macs]}
"""


def variant(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


# (case id, YAML text, expected key path in the message, expected fragment of the message)
CASES = [
    (
        "str-in-int-list",
        variant("depth: [1, 2]", "depth: [1, two]"),
        "stages[0].depth[1]:",
        "'two' is not an integer",
    ),
    ("bool-for-int", variant("size: 16}", "size: true}"), "input.size:", "true is not an integer"),
    (
        "float-for-int",
        variant("width: [64]", "width: [64.0]"),
        "stages[1].width[0]:",
        "not an integer",
    ),
    (
        "list-for-int",
        variant("num_classes: 10", "num_classes: [10]"),
        "num_classes:",
        "not an integer",
    ),
    (
        "scalar-for-section",
        variant("stem: {kind: conv, channels: 16}", "stem: conv"),
        "stem:",
        "expected a mapping",
    ),
    ("null-value", variant("channels: 16}", "channels: }"), "stem.channels:", "no value"),
    ("missing-top-key", variant("num_classes: 10\n", ""), "num_classes:", "missing"),
    ("missing-stage-key", variant("    depth: [1]\n", ""), "stages[1].depth:", "missing"),
    ("unknown-top-key", BASE + "optimizer: sgd\n", "optimizer:", "unknown key"),
    (
        "misspelled-key",
        variant("kernel_size: [3, 5]", "kernal_size: [3, 5]"),
        "stages[0].ops.conv.kernal_size:",
        "did you mean 'kernel_size'?",
    ),
    (
        "bad-literal",
        variant("granularity: block", "granularity: blok"),
        "stages[1].granularity:",
        "did you mean 'block'?",
    ),
    (
        "even-kernel",
        variant("kernel_size: [3, 7]", "kernel_size: [3, 4]"),
        "stages[0].ops.involution.kernel_size[1]:",
        "4 is even",
    ),
    (
        "inv-groups-not-dividing",
        variant("groups: [2, 4]", "groups: [2, 3]"),
        "stages[1].ops.involution.groups[1]:",
        "does not divide",
    ),
    (
        "conv-groups-not-dividing",
        variant("groups: [1]}", "groups: [1, 5]}"),
        "stages[0].ops.conv.groups[1]:",
        "does not divide",
    ),
    (
        "group-channels-not-dividing",
        variant("group_channels: [4, 8]", "group_channels: [4, 7]"),
        "stages[0].ops.involution.group_channels[1]:",
        "does not divide",
    ),
    (
        "groups-and-group-channels",
        variant("groups: [2, 4], reduction", "groups: [2, 4], group_channels: [8], reduction"),
        "stages[1].ops.involution.group_channels:",
        "not both",
    ),
    (
        "reduction-too-large",
        variant("reduction: [4]}", "reduction: [64]}"),
        "stages[1].ops.involution.reduction[0]:",
        "expected 1..32",
    ),
    (
        "no-op-kinds",
        variant(
            "    ops:\n      involution: {kernel_size: [7], groups: [2, 4], reduction: [4]}",
            "    ops: {}",
        ),
        "stages[1].ops:",
        "no op kinds",
    ),
    (
        "width-not-multiple-of-expansion",
        variant("width: [32, 48]", "width: [32, 47]"),
        "stages[0].width[1]:",
        "expansion 2",
    ),
    ("empty-choice-list", variant("width: [64]", "width: []"), "stages[1].width:", "empty"),
    (
        "duplicate-choice",
        variant("depth: [1, 2]", "depth: [2, 2]"),
        "stages[0].depth[1]:",
        "repeats stages[0].depth[0]",
    ),
    ("zero-depth", variant("depth: [1]", "depth: [0]"), "stages[1].depth[0]:", "too small"),
    (
        "negative-depth",
        variant("depth: [1, 2]", "depth: [-1, 2]"),
        "stages[0].depth[0]:",
        "too small",
    ),
    (
        "absurd-width",
        variant("width: [64]", "width: [99999999999999999999999999]"),
        "stages[1].width[0]:",
        "too large",
    ),
    ("absurd-input-size", variant("size: 16}", "size: 1000000}"), "input.size:", "1..4096"),
    ("infinite-float", BASE + "supernet: {lr: .inf}\n", "supernet.lr:", "not a finite number"),
    (
        "duplicate-stage-names",
        variant("- name: b", "- name: a"),
        "stages[1].name:",
        "already the name of stages[0]",
    ),
    (
        "spatial-size-below-one",
        variant("size: 16}", "size: 1}"),
        "stages[1].stride:",
        "1x1 feature map",
    ),
    (
        "cmaes-several-objectives",
        variant("sampler: tpe", "sampler: cmaes"),
        "search.sampler:",
        "cmaes is single-objective",
    ),
    (
        "duplicate-objective",
        variant("[accuracy, macs]", "[accuracy, accuracy]"),
        "search.objectives[1]:",
        "repeats",
    ),
    ("no-objectives", variant("[accuracy, macs]", "[]"), "search.objectives:", "empty"),
    (
        "dataset-without-path",
        BASE + "data: {dataset: cifar10}\n",
        "data.path:",
        "reads its images from data.path",
    ),
    (
        "mnist-without-path",
        BASE + "data: {dataset: mnist}\n",
        "data.path:",
        "reads its images from data.path",
    ),
    ("unsafe-name", variant("name: tiny", "name: ../evil"), "name:", "cannot name a run"),
    (
        "rednet-stem-channels",
        variant("kind: conv, channels: 16", "kind: rednet, channels: 48"),
        "stem.channels:",
        "multiple of 32",
    ),
    (
        "pinned-blocks-wrong-count",
        variant("granularity: block", "granularity: block\n    blocks: [inv7g2r4, inv7g4r4]"),
        "stages[1].blocks:",
        "2 op codes for depth 1",
    ),
    (
        "pinned-block-not-an-op",
        variant("granularity: block", "granularity: block\n    blocks: [conv3g1]"),
        "stages[1].blocks[0]:",
        "not among the stage's ops",
    ),
    ("yaml-syntax-error", variant("size: 16}", "size: 16"), "line 3, column 12", "invalid YAML"),
    (
        "yaml-duplicate-key",
        BASE + "num_classes: 5\n",
        "line 22, column 1",
        "duplicate key 'num_classes'",
    ),
    (
        "yaml-unsafe-tag",
        BASE + "seed: !!python/object/apply:os.system [ls]\n",
        "line 22, column 7",
        "could not determine a constructor",
    ),
    ("non-mapping-root", "- 1\n- 2\n", "space.yaml:", "the top level is a list"),
    ("scalar-root", "42\n", "space.yaml:", "the top level is 42"),
    ("empty-file", "", "space.yaml:", "the space is empty"),
    (
        "classes-for-dataset",
        BASE.replace("num_classes: 10", "num_classes: 7") + "data: {dataset: digits}\n",
        "num_classes:",
        "which has 10 classes",
    ),
    (
        "classes-for-fashion-mnist",
        BASE.replace("num_classes: 10", "num_classes: 12") + "data: {dataset: fashion_mnist}\n",
        "num_classes:",
        "data.dataset 'fashion_mnist', which has 10 classes",
    ),
    (
        "channels-for-dataset",
        BASE + "data: {dataset: cifar10, path: x}\n",
        "input.channels:",
        "1 does not fit data.dataset 'cifar10'; expected 3",
    ),
    (
        "augment-not-a-mode",
        BASE + "data: {augment: flip}\n",
        "data.augment:",
        "expected one of 'none', 'crop_flip', 'photo' (or true for 'crop_flip', false for 'none')",
    ),
    (
        "photo-augment-for-handwriting",
        BASE + "data: {dataset: digits, augment: photo}\n",
        "data.augment:",
        "'photo' is for datasets of photographs (cifar10, cifar100, imagefolder), not 'digits'",
    ),
    (
        "workers-and-their-old-name",
        BASE + "data: {workers: 2, num_workers: 2}\n",
        "data.num_workers:",
        "the old name of 'workers', which is also given",
    ),
    (
        "workers-by-their-old-name",
        BASE + "data: {num_workers: -1}\n",
        "data.num_workers:",
        "-1 is too small; expected an integer 0..64 (or 'auto' for null)",
    ),
    ("too-deep", "stages: " + "[" * 5000 + "]" * 5000, "space.yaml:", "nested too deeply"),
    ("non-string-key", BASE + "7: seven\n", "space.yaml:", "key 7 is not a string"),
    ("date-for-int", BASE + "seed: 2024-01-01\n", "seed:", "a date (2024-01-01) is not an integer"),
]


@pytest.mark.parametrize(
    ("text", "key_path", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_malformed_space_exits_2_naming_the_key(tmp_path, capsys, text, key_path, fragment):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines and all(line.startswith(f"invnas: {path}") for line in lines), err
    matching = [line for line in lines if key_path in line and fragment in line]
    assert matching, f"no line with {key_path!r} and {fragment!r} in:\n{err}"


def test_base_of_the_corpus_is_valid(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(BASE)
    assert main(["validate", "--json", str(path)]) == 0


def test_all_problems_are_reported_at_once(tmp_path, capsys):
    text = variant("depth: [1, 2]", "depth: [0, 2]")
    text = text.replace("kernel_size: [7]", "kernel_size: [6]").replace(
        "sampler: tpe", "sampler: x"
    )
    path = tmp_path / "space.yaml"
    path.write_text(text + "extra: 1\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    for key_path in (
        "stages[0].depth[0]",
        "stages[1].ops.involution.kernel_size[0]",
        "search.sampler",
        "extra",
    ):
        assert f": {key_path}: " in err
    assert len(err.splitlines()) == 4


@pytest.mark.parametrize("where", ["missing", "directory", "not-utf8"])
def test_unreadable_paths_exit_2(tmp_path, capsys, where):
    path = {
        "missing": tmp_path / "nope.yaml",
        "directory": tmp_path,
        "not-utf8": tmp_path / "binary.yaml",
    }[where]
    if where == "not-utf8":
        path.write_bytes(b"\xff\xfe\x00")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"invnas: {path}: ") and len(err.splitlines()) == 1


def _console_script() -> list[str]:
    beside_python = Path(sys.executable).parent / "invnas"
    found = str(beside_python) if beside_python.exists() else shutil.which("invnas")
    assert found, "the invnas console script is not installed (pip install -e .)"
    return [found]


def test_console_script_exits_2_without_traceback(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(variant("kernel_size: [3, 7]", "kernel_size: [3, 4]"))
    done = subprocess.run(
        [*_console_script(), "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"invnas: {path}: stages[0].ops.involution.kernel_size[1]: 4 is even" in done.stderr
