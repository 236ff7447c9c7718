"""Round trips: space -> YAML -> space, and arch -> fixed space -> YAML -> the same arch."""

from __future__ import annotations

import random

import pytest
import yaml

from invnas.cli import main
from invnas.resources import search_spaces_dir
from invnas.space import (
    Arch,
    StageArch,
    cardinality,
    dump_space,
    enumerate_archs,
    fixed_arch,
    fixed_space,
    load_space,
    load_space_file,
    mutate,
    parse_space,
    parse_space_file,
    sample,
    space_to_dict,
)

EXAMPLES = ["quickstart", "cifar_hybrid", "imagenet_rednet"]


@pytest.fixture(scope="module")
def quickstart():
    return load_space(search_spaces_dir() / "quickstart.yaml")


@pytest.mark.parametrize("name", EXAMPLES)
def test_space_round_trips_through_a_dict_and_a_file(name, tmp_path):
    space, run = load_space_file(search_spaces_dir() / f"{name}.yaml")
    plain = space_to_dict(space, run)
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain  # plain YAML types only
    assert parse_space_file(plain) == (space, run)
    dump_space(space, tmp_path / "copy.yaml", run)
    again, again_run = load_space_file(tmp_path / "copy.yaml")
    assert again == space and again_run == run


def mixed_arch(space) -> Arch:
    """A quickstart arch whose last (block-granularity) stage uses a different op per block."""
    stages = []
    for spec in space.stages:
        candidates = spec.ops.candidates()
        if spec.granularity == "block":
            stages.append(StageArch(2, spec.width[-1], (candidates[0], candidates[-1])))
        else:
            stages.append(
                StageArch(max(spec.depth), spec.width[0], (candidates[-1],) * max(spec.depth))
            )
    return Arch(tuple(stages))


def test_fixed_space_of_a_mixed_arch_pins_the_blocks(quickstart, tmp_path):
    arch = mixed_arch(quickstart)
    fixed = fixed_space(quickstart, arch)
    assert fixed.name == "quickstart-fixed" and fixed.is_fixed and cardinality(fixed) == 1
    last = fixed.stages[2]
    assert quickstart.stages[2].granularity == "block"
    assert last.blocks == tuple(op.code for op in arch.stages[2].ops)
    assert len(set(last.blocks)) == 2
    assert fixed.stages[0].blocks is None and len(fixed.stages[0].ops.candidates()) == 1
    path = tmp_path / "arch.yaml"
    dump_space(fixed, path)
    loaded = load_space(path)
    assert loaded == fixed
    assert fixed_arch(loaded) == arch
    # every Arch helper sees exactly the one architecture
    assert list(enumerate_archs(loaded)) == [arch]
    assert sample(loaded, 3) == arch and mutate(loaded, arch, 3) == arch
    assert main(["validate", str(path)]) == 0


def test_fixed_space_round_trip_for_sampled_archs(quickstart, tmp_path):
    rng = random.Random(0)
    for index in range(8):
        arch = sample(quickstart, rng)
        fixed = fixed_space(quickstart, arch, name=f"pick{index}")
        assert fixed_arch(parse_space(space_to_dict(fixed))) == arch


def test_the_arch_needs_a_fixed_space(quickstart):
    expected = f"{cardinality(quickstart)} architectures; expected a fixed space"
    with pytest.raises(ValueError, match=expected):
        fixed_arch(quickstart)


def test_fixed_space_rejects_an_arch_from_elsewhere(quickstart):
    arch = mixed_arch(quickstart)
    too_deep = max(quickstart.stages[0].depth) + 1
    first = arch.stages[0]
    deeper = StageArch(too_deep, first.width, (first.ops[0],) * too_deep)
    wrong = Arch((deeper, *arch.stages[1:]))
    with pytest.raises(ValueError, match=f"depth {too_deep}"):
        fixed_space(quickstart, wrong)
