"""The generated model.py: only torch imported, same parameter names and outputs as ArchNet."""

from __future__ import annotations

import ast
import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from invnas.exporting.codegen import SourceInfo, generate_source
from invnas.nn import build_model
from invnas.space.arch import Arch
from invnas.space.loader import parse_space

from .conftest import randomize_batchnorm

INFO = SourceInfo(title="test model", origin="built by a test", version="0")

INVOLUTION_AND_CONV = {
    "conv": {"kernel_size": [3, 5], "groups": [1, 2]},
    "involution": {"kernel_size": [3, 7], "group_channels": [4], "reduction": [2]},
}


def _space(stem: dict, block: str, size: int = 17) -> dict:
    return {
        "name": "gen",
        "input": {"channels": 3, "size": size},
        "num_classes": 3,
        "stem": stem,
        "stages": [
            {"name": "a", "depth": [2], "width": [32], "block": block, "ops": INVOLUTION_AND_CONV,
             "granularity": "block"},
            {"name": "b", "depth": [2], "width": [16], "block": block, "stride": 2,
             "ops": INVOLUTION_AND_CONV, "granularity": "block"},
        ],
    }  # fmt: skip


CASES = {
    "conv-stem/bottleneck": (
        _space({"kind": "conv", "channels": 16, "stride": 2, "pool": True}, "bottleneck", 33),
        "d2w32:inv7c4r2,conv5g2|d2w16:conv3g1,inv3c4r2",
    ),
    "resnet-stem/basic": (
        _space({"kind": "resnet", "channels": 16}, "basic", 33),
        "d2w32:conv3g2,inv3c4r2|d2w16:inv7c4r2,conv5g1",
    ),
    "rednet-stem/basic": (
        _space({"kind": "rednet", "channels": 32}, "basic"),
        "d2w32:inv3c4r2,inv7c4r2|d2w16:inv7c4r2,inv3c4r2",
    ),
}


def import_file(path: Path, name: str):
    """Import the Python file ``path`` as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def import_source(source: str, directory: Path, name: str):
    path = directory / f"{name}.py"
    path.write_text(source)
    return import_file(path, name)


def _imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return found


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("case", list(CASES))
def test_generated_module_matches_archnet(case: str, tmp_path: Path) -> None:
    data, code = CASES[case]
    space, arch = parse_space(data), Arch.decode(code)
    torch.manual_seed(0)
    reference = build_model(space, arch)
    randomize_batchnorm(reference, seed=1)
    reference.eval()
    source = generate_source(space, arch, INFO)
    assert _imported_modules(source) <= {"os", "typing", "torch", "torch.nn.functional", "torch.nn"}
    module = import_source(source, tmp_path, f"gen_{case.replace('-', '_').replace('/', '_')}")
    net = module.build()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    net.load_state_dict(reference.state_dict())
    net.eval()
    images = torch.randn(3, 3, space.input.size, space.input.size)
    with torch.no_grad():
        expected = reference(images)
        torch.testing.assert_close(net(images), expected, atol=1e-5, rtol=1e-5)
        scripted = torch.jit.script(net)
        torch.testing.assert_close(scripted(images), expected, atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_gives_archnet_weights(case: str, tmp_path: Path) -> None:
    data, code = CASES[case]
    space, arch = parse_space(data), Arch.decode(code)
    name = f"seeded_{case.replace('-', '_').replace('/', '_')}"
    module = import_source(generate_source(space, arch, INFO), tmp_path, name)
    torch.manual_seed(0)
    expected = build_model(space, arch).state_dict()
    torch.manual_seed(0)
    created = module.build().state_dict()
    assert list(created) == list(expected)  # same modules, created in the same order
    for key, value in expected.items():
        assert torch.equal(created[key], value), key


def test_generated_source_is_clean_python(tmp_path: Path) -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for index, (data, code) in enumerate(CASES.values()):
        path = tmp_path / f"model{index}.py"
        path.write_text(generate_source(parse_space(data), Arch.decode(code), INFO))
    rules = ["--select", "E,W,F,I,B", "--line-length", "100"]
    done = subprocess.run([ruff, "check", "--isolated", *rules, str(tmp_path)], capture_output=True)
    assert done.returncode == 0, done.stdout.decode()


def test_only_the_parts_used_are_written(tmp_path: Path) -> None:
    data = _space({"kind": "conv", "channels": 16}, "bottleneck")
    arch = Arch.decode("d2w32:conv3g1,conv5g2|d2w16:conv3g1,conv3g1")
    source = generate_source(parse_space(data), arch, INFO)
    assert "def involution" not in source and "class Involution2d" not in source
    assert "class BasicBlock" not in source and "class Bottleneck" in source
    # every stage and every layer is written out with its numbers
    assert '# stage "a": 2 bottleneck blocks, 16 -> 32 channels, 17x17 -> 17x17' in source
    assert '# stage "b": 2 bottleneck blocks, 32 -> 16 channels, 17x17 -> 9x9' in source
    assert "conv1=ConvBNAct(16, 8, 1, 1)," in source
    assert "op=nn.Conv2d(8, 8, 5, 1, 2, groups=2, bias=False)," in source
    module = import_source(source, tmp_path, "gen_conv_only")
    assert module.build()(torch.randn(1, 3, 17, 17)).shape == (1, 3)


def test_docstring_survives_quotes_and_backslashes(tmp_path: Path) -> None:
    data, code = CASES["conv-stem/bottleneck"]
    info = SourceInfo(title='run """x""" at C:\\runs\\new', origin="\\n", version="0")
    source = generate_source(parse_space(data), Arch.decode(code), info)
    module = import_source(source, tmp_path, "gen_quotes")
    assert 'run """x""" at C:\\runs\\new' in module.__doc__
