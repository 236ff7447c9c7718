"""Loading spaces: the example files, value conventions, defaults and error reporting."""

from __future__ import annotations

import pytest

from invnas.config import RunConfig
from invnas.resources import search_spaces_dir
from invnas.space import SpaceError, cardinality, load_space, load_space_file, parse_space
from invnas.space.loader import parse_space_file
from invnas.space.spec import ConvSpace, InvolutionSpace

EXAMPLES = ["quickstart", "cifar_hybrid", "imagenet_rednet"]


def tiny(**changes) -> dict:
    """A small valid space as a mapping; ``changes`` replace top-level keys."""
    space = {
        "input": {"channels": 1, "size": 16},
        "num_classes": 10,
        "stem": {"kind": "conv", "channels": 16},
        "stages": [
            {
                "name": "a",
                "depth": [1, 2],
                "width": [32, 48],
                "expansion": 2,
                "ops": {
                    "conv": {"kernel_size": [3, 5]},
                    "involution": {"kernel_size": [3, 7], "group_channels": [4, 8]},
                },
            }
        ],
    }
    space.update(changes)
    return space


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_spaces_load(name):
    space = load_space(search_spaces_dir() / f"{name}.yaml")
    assert space.name == name
    assert space.source == str(search_spaces_dir() / f"{name}.yaml")
    assert cardinality(space) > 1000
    assert all(stage.ops.conv and stage.ops.involution for stage in space.stages)


def test_quickstart_is_small_and_set_up_for_the_digits():
    space, run = load_space_file(search_spaces_dir() / "quickstart.yaml")
    assert (space.input.channels, space.num_classes) == (1, 10)
    assert run.data.dataset == "digits"
    assert (run.search.sampler, run.search.objectives) == ("nsga2", ("accuracy", "macs"))
    assert run.search.trials == 16 and run.retrain.top_k == 2
    assert max(w for stage in space.stages for w in stage.width) <= 128


def test_imagenet_space_mirrors_rednet50():
    space, run = load_space_file(search_spaces_dir() / "imagenet_rednet.yaml")
    assert [stage.width for stage in space.stages] == [(256,), (512,), (1024,), (2048,)]
    for stage, rednet_depth in zip(space.stages, [3, 4, 6, 3], strict=True):
        assert rednet_depth in stage.depth
    assert space.stem.kind == "rednet" and run.resources.gpus_per_trial == 1
    assert run.data.augment == "photo"


def test_augment_takes_a_mode_and_its_former_booleans():
    for given, mode in ((True, "crop_flip"), (False, "none"), ("photo", "photo")):
        data = {"dataset": "imagefolder", "path": "x", "augment": given}
        space = tiny(input={"channels": 3, "size": 16}, data=data)
        assert parse_space_file(space).run.data.augment == mode
    with pytest.raises(SpaceError, match="data.augment: 1 is not allowed"):
        parse_space(tiny(data={"augment": 1}))  # an integer is no boolean


def test_scalar_means_a_single_choice_and_defaults_fill_in():
    stage = tiny()["stages"][0] | {"depth": 2, "width": 32}
    stage["ops"] = {"conv": None, "involution": {"kernel_size": 7}}
    space, run = parse_space_file(tiny(stages=[stage]))
    parsed = space.stages[0]
    assert (parsed.depth, parsed.width) == ((2,), (32,))
    assert parsed.ops.conv == ConvSpace()  # an op kind given empty takes its defaults
    # neither groups nor group_channels: RedNet's 16 channels per group
    assert parsed.ops.involution == InvolutionSpace(kernel_size=(7,), group_channels=(16,))
    assert space.name == "space" and space.source is None
    assert run == RunConfig()  # run sections default


def test_ints_are_accepted_for_floats_but_booleans_are_not_numbers():
    run = parse_space_file(tiny(supernet={"lr": 1})).run
    assert run.supernet.lr == 1.0 and isinstance(run.supernet.lr, float)
    with pytest.raises(SpaceError) as caught:
        parse_space(tiny(supernet={"lr": True}, seed=False))
    assert [p.path for p in caught.value.problems] == ["supernet.lr", "seed"]


def test_workers_default_to_auto_and_num_workers_still_reads():
    assert parse_space_file(tiny()).run.data.workers is None
    assert parse_space_file(tiny(data={"workers": "auto"})).run.data.workers is None
    assert parse_space_file(tiny(data={"num_workers": 3})).run.data.workers == 3
    assert parse_space_file(tiny(data={"workers": 0})).run.data.workers == 0


@pytest.mark.parametrize(
    ("workers", "cpus", "streamed", "expected"),
    [(None, 1, True, 0), (None, 2, True, 1), (None, 4.5, True, 3), (None, 32, True, 4)]
    + [(None, 8, False, 0), (2, 1, False, 2), (0, 8, True, 0)],
)
def test_auto_workers_follow_the_trial_cpus_when_streaming(workers, cpus, streamed, expected):
    from invnas.config import DataConfig

    assert DataConfig(workers=workers).workers_for(cpus, streamed) == expected


def test_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my space.yaml"
    path.write_text(
        "input: {channels: 1, size: 16}\nnum_classes: 10\nstem: {}\n"
        "stages: [{name: a, depth: 1, width: 32, ops: {conv: {}}}]\n"
    )
    space = load_space(path)
    assert space.name == "my_space"
    assert space.stem.channels == 32 and space.source == str(path)


def test_space_error_is_a_value_error_with_one_line_per_problem():
    data = tiny(num_classes=0, stem={"kind": "conv", "channels": 16, "pool": "yes"})
    with pytest.raises(ValueError) as caught:
        parse_space(data, source="given.yaml")
    err = caught.value
    assert isinstance(err, SpaceError)
    assert [(p.source, p.path) for p in err.problems] == [
        ("given.yaml", "num_classes"),
        ("given.yaml", "stem.pool"),
    ]
    assert str(err).splitlines() == [
        "given.yaml: num_classes: 0 is too small; expected an integer 1..1000000",
        "given.yaml: stem.pool: 'yes' is not a boolean; expected true or false",
    ]


def test_problems_in_one_stage_do_not_hide_other_stages():
    good = tiny()["stages"][0]
    bad = good | {"name": "b", "depth": [0]}
    worse = good | {"name": "b", "width": [33]}
    with pytest.raises(SpaceError) as caught:
        parse_space(tiny(stages=[good, bad, worse]))
    assert [p.path for p in caught.value.problems] == [
        "stages[1].depth[0]",
        "stages[2].width[0]",
        "stages[2].name",
    ]


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_space(tmp_path / "absent.yaml")
    with pytest.raises(IsADirectoryError):
        load_space(tmp_path)
