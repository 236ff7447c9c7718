"""Path samplers for supernet training: which architectures to train on the next batch.

Every sampler has one method, :meth:`PathSampler.step`, returning the architectures of one
training step: the gradients of all of them are accumulated before a single optimizer step.

Example::

    sampler = make_path_sampler("fair", space, seed=0)
    for x, y in loader:
        optimizer.zero_grad()
        for arch in sampler.step():
            loss_fn(supernet(x, arch), y).backward()
        optimizer.step()
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal, TypeVar

from invnas.space.arch import Arch, StageArch, sample
from invnas.space.spec import SearchSpace

T = TypeVar("T")

PathSamplerName = Literal["uniform", "fair"]


class PathSampler(ABC):
    """Chooses the architectures (paths through the supernet) of each training step."""

    @abstractmethod
    def step(self) -> list[Arch]:
        """The architectures to train on the next batch, gradients accumulated over them."""


class UniformSampler(PathSampler):
    """One architecture per step, every choice drawn uniformly (single-path one-shot)."""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self._rng = random.Random(seed)

    def step(self) -> list[Arch]:
        return [sample(self.space, self._rng)]


def fair_sequence(candidates: Sequence[T], length: int, rng: random.Random) -> list[T]:
    """``length`` draws in which every candidate appears and the counts differ by at most one.

    Random permutations of ``candidates`` are chained and the chain cut at ``length``, so with
    ``length >= len(candidates)`` every candidate appears at least once.
    """
    drawn: list[T] = []
    while len(drawn) < length:
        drawn.extend(rng.sample(list(candidates), len(candidates)))
    return drawn[:length]


class FairSampler(PathSampler):
    """Strict fairness (FairNAS): within a step every candidate of every choice is trained.

    A step returns ``n`` architectures, ``n`` being the largest number of candidates of any
    single choice. The choices are each stage's depth, its width and its op (one op choice per
    stage with ``granularity: stage``, one per block position with ``block``). For each choice a
    :func:`fair_sequence` of length ``n`` is drawn, and architecture ``k`` takes the ``k``-th
    draw of every choice, so each candidate is trained at least once per step and no candidate
    more than once more than another.

    An op at block position ``j`` only runs in the architectures deeper than ``j``. Its draws
    are dealt to those architectures first, so among the blocks that do run, candidates still
    appear at most once more than one another and as many distinct ones as possible are
    trained; full coverage of such a position in every step is impossible when fewer
    architectures reach it than it has candidates.
    """

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self._rng = random.Random(seed)
        sizes = [1]
        for stage in space.stages:
            sizes += [len(stage.depth), len(stage.width), len(stage.ops.candidates())]
        self.paths_per_step = max(sizes)

    def step(self) -> list[Arch]:
        n, rng = self.paths_per_step, self._rng
        per_stage: list[list[StageArch]] = []
        for spec in self.space.stages:
            candidates = spec.ops.candidates()
            depths = fair_sequence(spec.depth, n, rng)
            widths = fair_sequence(spec.width, n, rng)
            if spec.granularity == "stage":
                stage_ops = fair_sequence(candidates, n, rng)
                ops = [(op,) * depth for op, depth in zip(stage_ops, depths, strict=True)]
            else:
                ops = [[] for _ in range(n)]
                for position in range(max(spec.depth)):
                    draws = fair_sequence(candidates, n, rng)
                    reaching = [k for k in range(n) if depths[k] > position]
                    for k, op in zip(reaching, draws, strict=False):
                        ops[k].append(op)
                ops = [tuple(block_ops) for block_ops in ops]
            per_stage.append(
                [StageArch(d, w, o) for d, w, o in zip(depths, widths, ops, strict=True)]
            )
        return [Arch(tuple(stages[k] for stages in per_stage)) for k in range(n)]


def make_path_sampler(name: PathSamplerName, space: SearchSpace, seed: int = 0) -> PathSampler:
    """The path sampler called ``name`` (``uniform`` or ``fair``), seeded by ``seed``."""
    if name == "uniform":
        return UniformSampler(space, seed)
    if name == "fair":
        return FairSampler(space, seed)
    raise ValueError(f"path sampler {name!r}: unknown; expected uniform or fair")
