"""Writing spaces back to YAML, and fixed (single-architecture) spaces for an :class:`Arch`.

``parse_space_file(space_to_dict(space, run)) == (space, run)`` for every space file the loader
produces, and ``fixed_arch(fixed_space(space, arch)) == arch``::

    fixed = fixed_space(space, arch)         # one architecture
    dump_space(fixed, "arch.yaml", run)      # passes `invnas validate arch.yaml`
    assert fixed_arch(load_space("arch.yaml")) == arch
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from invnas.config import RunConfig
from invnas.space.arch import Arch, cardinality, check_arch, stage_choices
from invnas.space.spec import (
    ConvSpace,
    InvolutionSpace,
    OpChoice,
    OpSpace,
    SearchSpace,
    StageSpec,
)


def _plain(value: object) -> object:
    """Dataclasses to mappings (None fields left out, as the loader reads absence as None),
    tuples to lists."""
    if dataclasses.is_dataclass(value):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def space_to_dict(space: SearchSpace, run: RunConfig | None = None) -> dict:
    """The space as a plain mapping in the file layout, with the sections of ``run`` (default:
    the default settings) at the top level."""
    data = {
        "name": space.name,
        "input": _plain(space.input),
        "num_classes": space.num_classes,
        "stem": _plain(space.stem),
        "stages": _plain(space.stages),
    }
    run = RunConfig() if run is None else run
    for f in dataclasses.fields(RunConfig):
        data[f.name] = _plain(getattr(run, f.name))
    return data


def dump_space(space: SearchSpace, path: str | Path, run: RunConfig | None = None) -> None:
    """Write ``space`` and the settings ``run`` as a YAML space file that
    :func:`~invnas.space.loader.load_space_file` reads back into equal objects."""
    text = yaml.safe_dump(space_to_dict(space, run), sort_keys=False, default_flow_style=None)
    Path(path).write_text(f"# invnas search space '{space.name}'\n{text}", encoding="utf-8")


def _covering(ops: list[OpChoice]) -> OpSpace:
    """The smallest op space whose candidates include every op of ``ops``."""

    def values(kind: str, attribute: str) -> tuple | None:
        found = sorted({getattr(op, attribute) for op in ops if op.kind == kind} - {None})
        return tuple(found) or None

    conv = involution = None
    if any(op.kind == "conv" for op in ops):
        conv = ConvSpace(kernel_size=values("conv", "kernel_size"), groups=values("conv", "groups"))
    if any(op.kind == "involution" for op in ops):
        involution = InvolutionSpace(
            kernel_size=values("involution", "kernel_size"),
            groups=values("involution", "groups"),
            group_channels=values("involution", "group_channels"),
            reduction=values("involution", "reduction"),
        )
    return OpSpace(conv=conv, involution=involution)


def _fixed_stage(spec: StageSpec, depth: int, width: int, ops: tuple[OpChoice, ...]) -> StageSpec:
    distinct = list(dict.fromkeys(ops))
    return dataclasses.replace(
        spec,
        depth=(depth,),
        width=(width,),
        ops=_covering(distinct),
        blocks=None if len(distinct) == 1 else tuple(op.code for op in ops),
    )


def fixed_space(space: SearchSpace, arch: Arch, name: str | None = None) -> SearchSpace:
    """The space holding only ``arch`` (ValueError if ``arch`` is not in ``space``).

    Each stage gets its one depth and width; a stage whose blocks all use one op gets that op as
    its only candidate, otherwise ``blocks`` pins the op of every block. ``name`` defaults to
    ``<space name>-fixed``.
    """
    check_arch(space, arch)
    stages = tuple(
        _fixed_stage(spec, stage.depth, stage.width, stage.ops)
        for spec, stage in zip(space.stages, arch.stages, strict=True)
    )
    return dataclasses.replace(
        space, name=name or f"{space.name}-fixed", stages=stages, source=None
    )


def fixed_arch(space: SearchSpace) -> Arch:
    """The one architecture of a fixed space (ValueError naming the space's file, or its name,
    if the space has several)."""
    if not space.is_fixed:
        raise ValueError(
            f"{space.source or space.name}: stages: the space holds {cardinality(space)} "
            "architectures; expected a fixed space (one depth, one width and one op per block in "
            "every stage)"
        )
    return Arch(tuple(next(stage_choices(stage)) for stage in space.stages))
