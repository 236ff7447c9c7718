"""Search spaces: the typed schema, architectures and (in sibling modules) loading and cost."""

from invnas.space.arch import (
    Arch,
    StageArch,
    cardinality,
    check_arch,
    enumerate_archs,
    mutate,
    sample,
)
from invnas.space.errors import Problem, SpaceError
from invnas.space.loader import load_space, parse_space
from invnas.space.serialize import dump_space, fixed_space, space_to_dict, the_arch
from invnas.space.spec import OpChoice, SearchSpace, StageSpec

__all__ = [
    "Arch",
    "OpChoice",
    "Problem",
    "SearchSpace",
    "SpaceError",
    "StageArch",
    "StageSpec",
    "cardinality",
    "check_arch",
    "dump_space",
    "enumerate_archs",
    "fixed_space",
    "load_space",
    "mutate",
    "parse_space",
    "sample",
    "space_to_dict",
    "the_arch",
]
