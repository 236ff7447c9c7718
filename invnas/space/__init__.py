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
from invnas.space.spec import OpChoice, SearchSpace, StageSpec

__all__ = [
    "Arch",
    "OpChoice",
    "SearchSpace",
    "StageArch",
    "StageSpec",
    "cardinality",
    "check_arch",
    "enumerate_archs",
    "mutate",
    "sample",
]
