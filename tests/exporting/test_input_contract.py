"""The exported model's input contract: model.py's preprocess/predict and metrics.json agree with
how the run's data was prepared, so raw images give the recorded accuracy without invnas."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from invnas.engine import load_data
from invnas.exporting import export_run
from invnas.rundir import open_run

from .conftest import run_without_invnas

# Raw images through model.predict, the accuracy printed (run where only torch imports).
PREDICT = """
import torch
import model

raw = torch.load(sys.argv[1], weights_only=True)
predicted = model.predict(raw["images"])
print(float((predicted == raw["labels"]).double().mean()))
"""


def test_raw_images_through_preprocess_give_the_recorded_accuracy(
    run_dir: Path, tmp_path: Path
) -> None:
    out = export_run(run_dir, "trial:t_other", None, tmp_path / "export")
    metrics = json.loads((out / "metrics.json").read_text())
    run = open_run(run_dir)
    space, config = run.settings()
    splits = load_data(space, config, run.read_info().data_root).splits
    contract = metrics["input"]
    assert contract["channels"] == space.input.channels and contract["size"] == space.input.size
    assert contract["mean"] == list(splits.mean) and contract["std"] == list(splits.std)
    assert contract["class_names"] == list(splits.class_names)
    assert metrics["accuracy"]["split"] == "val"

    raw_file = tmp_path / "raw_val.pt"  # the split's images as the dataset stores them
    every = torch.arange(len(splits.val))
    torch.save({"images": splits.val.pool.read(every), "labels": splits.val.labels}, raw_file)
    assert float(run_without_invnas(out, PREDICT, str(raw_file))) == metrics["accuracy"]["value"]


def test_preprocess_reproduces_the_training_inputs(run_dir: Path, tmp_path: Path) -> None:
    out = export_run(run_dir, "best", None, tmp_path / "export")
    run = open_run(run_dir)
    space, config = run.settings()
    val = load_data(space, config, run.read_info().data_root).splits.val
    namespace: dict[str, object] = {}
    exec(compile((out / "model.py").read_text(), str(out / "model.py"), "exec"), namespace)
    rows = list(range(len(val)))
    expected, _ = val.batch(rows)
    preprocess = namespace["preprocess"]
    assert callable(preprocess)
    assert torch.equal(preprocess(val.pool.read(torch.tensor(rows))), expected)
    as_uint8 = (val.pool.read(torch.tensor(rows)) * 255).round().to(torch.uint8)
    assert torch.equal(preprocess(as_uint8), preprocess(as_uint8.float() / 255))
