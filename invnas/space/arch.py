"""Architectures: one concrete choice for every stage and block of a search space.

Text encoding (stable, round-trips through :meth:`Arch.encode` / :meth:`Arch.decode`): stages
separated by ``|``, each ``d<depth>w<width>:<op>,<op>,...`` with one op code per block, e.g.
``d2w64:conv3g1,inv7c16r4|d1w128:inv7g4r4``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from invnas.space.spec import OpChoice, SearchSpace, StageSpec


@dataclass(frozen=True)
class StageArch:
    """The choices made for one stage: its depth, width and the op of each block."""

    depth: int
    width: int
    ops: tuple[OpChoice, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != self.depth:
            raise ValueError(f"stage: {len(self.ops)} ops given for depth {self.depth}")


@dataclass(frozen=True)
class Arch:
    """A concrete architecture of a :class:`SearchSpace`."""

    stages: tuple[StageArch, ...]

    def encode(self) -> str:
        """Stable text form, e.g. ``d2w64:conv3g1,inv7c16r4|d1w128:inv7g4r4``."""
        return "|".join(
            f"d{s.depth}w{s.width}:" + ",".join(op.code for op in s.ops) for s in self.stages
        )

    @classmethod
    def decode(cls, text: str) -> Arch:
        """Parse :meth:`encode` output; raises ValueError naming the bad part."""
        import re

        stages = []
        for index, part in enumerate(text.strip().split("|")):
            match = re.fullmatch(r"d(\d+)w(\d+):(.+)", part)
            if match is None:
                raise ValueError(
                    f"arch {text!r}: stage {index} is {part!r}; expected d<depth>w<width>:<ops>"
                )
            ops = tuple(OpChoice.from_code(code) for code in match[3].split(","))
            depth = int(match[1])
            if len(ops) != depth:
                raise ValueError(
                    f"arch {text!r}: stage {index} has depth {depth} but {len(ops)} ops"
                )
            stages.append(StageArch(depth, int(match[2]), ops))
        return cls(tuple(stages))

    def __str__(self) -> str:
        return self.encode()


def stage_choices(stage: StageSpec) -> Iterator[StageArch]:
    """Every :class:`StageArch` a stage allows, in a stable order."""
    candidates = stage.ops.candidates()
    pinned = stage.pinned_ops
    for depth, width in itertools.product(stage.depth, stage.width):
        if pinned is not None:
            yield StageArch(depth, width, pinned)
        elif stage.granularity == "stage":
            for op in candidates:
                yield StageArch(depth, width, (op,) * depth)
        else:
            for ops in itertools.product(candidates, repeat=depth):
                yield StageArch(depth, width, ops)


def stage_cardinality(stage: StageSpec) -> int:
    """Number of distinct choices of one stage."""
    if stage.blocks is not None:
        return len(stage.width) * len(stage.depth)
    n = len(stage.ops.candidates())
    per_depth = [1 if stage.granularity == "stage" else n ** (d - 1) for d in stage.depth]
    return len(stage.width) * n * sum(per_depth)


def cardinality(space: SearchSpace) -> int:
    """Number of distinct architectures in ``space``."""
    total = 1
    for stage in space.stages:
        total *= stage_cardinality(stage)
    return total


def enumerate_archs(space: SearchSpace, limit: int = 100_000) -> Iterator[Arch]:
    """Every architecture of a small space; ValueError if it has more than ``limit``."""
    size = cardinality(space)
    if size > limit:
        raise ValueError(f"space {space.name!r}: {size} architectures; enumeration limit {limit}")
    for stages in itertools.product(*(list(stage_choices(s)) for s in space.stages)):
        yield Arch(tuple(stages))


def _sample_stage(stage: StageSpec, rng: random.Random) -> StageArch:
    candidates = stage.ops.candidates()
    depth, width = rng.choice(stage.depth), rng.choice(stage.width)
    if stage.pinned_ops is not None:
        ops = stage.pinned_ops
    elif stage.granularity == "stage":
        ops = (rng.choice(candidates),) * depth
    else:
        ops = tuple(rng.choice(candidates) for _ in range(depth))
    return StageArch(depth, width, ops)


def sample(space: SearchSpace, rng: random.Random | int | None = None) -> Arch:
    """Uniformly sample each choice (seeded by ``rng``, an int seed or a Random)."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    return Arch(tuple(_sample_stage(stage, rng) for stage in space.stages))


def mutate(
    space: SearchSpace, arch: Arch, rng: random.Random | int | None = None, prob: float = 0.2
) -> Arch:
    """Resample each choice of ``arch`` with probability ``prob``; at least one choice changes
    when the space has more than one architecture."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)
    if cardinality(space) == 1:
        return arch
    while True:
        stages = []
        for spec, current in zip(space.stages, arch.stages, strict=True):
            fresh = _sample_stage(spec, rng)
            depth = fresh.depth if rng.random() < prob else current.depth
            width = fresh.width if rng.random() < prob else current.width
            old_ops = current.ops[:depth] + (current.ops[-1],) * max(0, depth - current.depth)
            if spec.pinned_ops is not None:
                ops = spec.pinned_ops
            elif spec.granularity == "stage":
                op = fresh.ops[0] if rng.random() < prob else old_ops[0]
                ops = (op,) * depth
            else:
                ops = tuple(
                    rng.choice(spec.ops.candidates()) if rng.random() < prob else old
                    for old in old_ops
                )
            stages.append(StageArch(depth, width, ops))
        mutated = Arch(tuple(stages))
        if mutated != arch:
            return mutated


def check_arch(space: SearchSpace, arch: Arch) -> None:
    """Raise ValueError if ``arch`` is not an architecture of ``space``."""
    if len(arch.stages) != len(space.stages):
        raise ValueError(
            f"arch {arch.encode()!r}: {len(arch.stages)} stages; "
            f"space {space.name!r} has {len(space.stages)}"
        )
    for spec, stage in zip(space.stages, arch.stages, strict=True):
        where = f"arch {arch.encode()!r}: stage {spec.name!r}"
        if stage.depth not in spec.depth:
            raise ValueError(f"{where}: depth {stage.depth}; allowed {list(spec.depth)}")
        if stage.width not in spec.width:
            raise ValueError(f"{where}: width {stage.width}; allowed {list(spec.width)}")
        allowed = spec.ops.candidates()
        for op in stage.ops:
            if op not in allowed:
                raise ValueError(f"{where}: op {op.code}; allowed {[c.code for c in allowed]}")
        pinned = spec.pinned_ops
        if pinned is not None and stage.ops != pinned:
            raise ValueError(f"{where}: ops are pinned to {list(spec.blocks)}")
        if pinned is None and spec.granularity == "stage" and len(set(stage.ops)) > 1:
            raise ValueError(f"{where}: granularity 'stage' needs one op for every block")
