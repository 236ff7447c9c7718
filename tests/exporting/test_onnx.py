"""An exported model with involution blocks converts to ONNX (torch.onnx.export, dynamo=True)
and onnxruntime computes what PyTorch does. Needs the optional extra ``invnas[onnx]``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from invnas.exporting import export_space

from .test_codegen import import_file

pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")


def test_exported_model_runs_in_onnxruntime(fixed_space_file: Path, tmp_path: Path) -> None:
    out = export_space(fixed_space_file, tmp_path / "export")
    module = import_file(out / "model.py", "exported_onnx_model")
    assert "def involution(" in (out / "model.py").read_text()
    net = module.load(str(out / "weights.pt"))
    images = torch.rand(2, module.IN_CHANNELS, 20, 20)  # raw images, resized by preprocess
    inputs = module.preprocess(images)
    with torch.no_grad():
        expected = net(inputs)
    program = torch.onnx.export(net, (inputs,), dynamo=True, verbose=False)
    assert program is not None
    path = tmp_path / "model.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    assert float((torch.from_numpy(actual) - expected).abs().max()) <= 1e-4
