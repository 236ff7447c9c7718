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
from invnas.space.loader import (
    SpaceFile,
    load_space,
    load_space_file,
    parse_space,
    parse_space_file,
)
from invnas.space.serialize import dump_space, fixed_arch, fixed_space, space_to_dict
from invnas.space.spec import OpChoice, SearchSpace, StageSpec

__all__ = [
    "Arch",
    "OpChoice",
    "Problem",
    "SearchSpace",
    "SpaceFile",
    "SpaceError",
    "StageArch",
    "StageSpec",
    "cardinality",
    "check_arch",
    "dump_space",
    "enumerate_archs",
    "fixed_arch",
    "fixed_space",
    "load_space",
    "load_space_file",
    "mutate",
    "parse_space",
    "parse_space_file",
    "sample",
    "space_to_dict",
]
