"""Exporting a fixed space file: the five files and the guarantees made about them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import invnas
from invnas.exporting import export_space
from invnas.exporting.exporter import EXPORT_FILES
from invnas.nn import ArchNet
from invnas.space.cost import cost
from invnas.space.loader import load_space
from invnas.space.serialize import fixed_arch

from .conftest import fresh_environment_max_error
from .test_codegen import import_file


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .conftest import FIXED_SPACE

    root = tmp_path_factory.mktemp("space_export")
    space_file = root / "tiny.yaml"
    space_file.write_text(FIXED_SPACE)
    return export_space(space_file, root / "out")


def _sample(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "sample.pt", weights_only=True)


def test_directory_holds_the_five_files(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(EXPORT_FILES)
    metrics = json.loads((exported / "metrics.json").read_text())
    assert metrics["weights"]["kind"] == "random"
    assert metrics["accuracy"]["value"] is None
    assert metrics["latency_ms"]["value"] > 0
    space = load_space(exported / "arch.yaml")
    assert metrics["params"]["value"] == cost(space, fixed_arch(space)).params


def test_model_py_reproduces_sample_without_invnas(exported: Path) -> None:
    assert fresh_environment_max_error(exported) <= 1e-5


def test_arch_yaml_round_trip_costs_the_same(exported: Path, fixed_space_file: Path) -> None:
    from invnas.cli import main

    assert main(["validate", str(exported / "arch.yaml")]) == 0
    original = load_space(fixed_space_file)
    again = load_space(exported / "arch.yaml")
    assert fixed_arch(again) == fixed_arch(original)
    assert cost(again, fixed_arch(again)) == cost(original, fixed_arch(original))
    net = import_file(exported / "model.py", "tiny_model").build()
    assert sum(p.numel() for p in net.parameters()) == cost(original, fixed_arch(original)).params


def test_load_exported_is_the_invnas_model_with_the_same_outputs(exported: Path) -> None:
    model = invnas.load_exported(exported)
    assert isinstance(model, ArchNet) and not model.training
    standalone = import_file(exported / "model.py", "tiny_b")
    assert list(model.state_dict()) == list(standalone.load().state_dict())
    sample = _sample(exported)
    with torch.no_grad():
        torch.testing.assert_close(model(sample["input"]), sample["output"], atol=1e-5, rtol=0)


@pytest.mark.slow  # ~20 s: torch.export and torch.compile tracing
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_scripted_exported_and_compiled_modules_agree(exported: Path) -> None:
    module = import_file(exported / "model.py", "tiny_c")
    net = module.load()
    sample = _sample(exported)
    images, expected = sample["input"], sample["output"]
    with torch.no_grad():
        scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted(images), expected, atol=1e-5, rtol=0)
        program = torch.export.export(net, (images,))
        torch.testing.assert_close(program.module()(images), expected, atol=1e-5, rtol=0)
        # aot_eager traces through dynamo and AOTAutograd like inductor does, but skips the C++
        # code generation, which takes minutes on a 2-core machine.
        compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(images), expected, atol=1e-5, rtol=0)


def test_refuses_a_space_with_choices(tmp_path: Path) -> None:
    from .conftest import SEARCH_SPACE

    space_file = tmp_path / "search.yaml"
    space_file.write_text(SEARCH_SPACE)
    with pytest.raises(ValueError, match="stages: the space holds 24 architectures"):
        export_space(space_file, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_empty_out_needs_force(fixed_space_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"^--out: .*exists and is not empty; use --force"):
        export_space(fixed_space_file, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    export_space(fixed_space_file, out, force=True)
    assert (out / "model.py").is_file() and (out / "notes.txt").read_text() == "mine"
