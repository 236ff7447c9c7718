"""Path samplers: strict fairness per step, uniform coverage, seeding."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from invnas.nn.sampling import FairSampler, UniformSampler, fair_sequence, make_path_sampler
from invnas.space.arch import check_arch
from invnas.space.spec import StageSpec, StemSpec
from tests.spaces import conv_and_involution, small_space

OPS4 = conv_and_involution(conv_kernels=(3, 5), inv_kernels=(3, 7), groups=(1,))
OPS2 = conv_and_involution(groups=(2,))

SPACE = small_space(
    "fair",
    16,
    StemSpec(),
    (
        StageSpec("s1", depth=(2, 3), width=(16, 32, 48), ops=OPS4, granularity="stage"),
        StageSpec("s2", depth=(1, 2), width=(32,), ops=OPS2, stride=2, granularity="block"),
        StageSpec("s3", depth=(3,), width=(64, 96), ops=OPS4, stride=2, granularity="block"),
    ),
    num_classes=10,
)


def _assert_fair(values: list, candidates: tuple, n: int) -> None:
    counts = Counter(values)
    assert set(counts) == set(candidates), "every candidate appears"
    assert sum(counts.values()) == n
    assert max(counts.values()) - min(counts.values()) <= 1


def test_fair_covers_every_candidate_of_every_choice_each_step() -> None:
    sampler = FairSampler(SPACE, seed=3)
    assert sampler.paths_per_step == 4  # the 4 op candidates of s1 and s3
    for _ in range(25):
        archs = sampler.step()
        assert len(archs) == 4
        for arch in archs:
            check_arch(SPACE, arch)
        s1 = [a.stages[0] for a in archs]
        assert Counter(s.depth for s in s1) == {2: 2, 3: 2}
        assert sorted(Counter(s.width for s in s1).values()) == [1, 1, 2]
        assert Counter(s.ops[0] for s in s1) == dict.fromkeys(OPS4.candidates(), 1)
        s3 = [a.stages[2] for a in archs]  # fixed depth 3: every position fully fair
        for position in range(3):
            assert Counter(s.ops[position] for s in s3) == dict.fromkeys(OPS4.candidates(), 1)
        s2 = [a.stages[1] for a in archs]
        assert Counter(s.depth for s in s2) == {1: 2, 2: 2}
        _assert_fair([s.ops[0] for s in s2], OPS2.candidates(), 4)
        # position 1 runs only in the depth-2 archs; both of its candidates still train
        assert Counter(s.ops[1] for s in s2 if s.depth == 2) == dict.fromkeys(OPS2.candidates(), 1)


def test_fair_sequence_counts_differ_by_at_most_one() -> None:
    rng = random.Random(0)
    for n in range(3, 12):
        _assert_fair(fair_sequence("abc", n, rng), tuple("abc"), n)


def test_samplers_are_seeded() -> None:
    for name in ("uniform", "fair"):
        a, b, c = (make_path_sampler(name, SPACE, seed) for seed in (7, 7, 8))
        first = [arch for _ in range(10) for arch in a.step()]
        assert first == [arch for _ in range(10) for arch in b.step()]
        assert first != [arch for _ in range(10) for arch in c.step()]


def test_uniform_samples_one_arch_per_step_and_covers_candidates() -> None:
    sampler = make_path_sampler("uniform", SPACE, seed=0)
    assert isinstance(sampler, UniformSampler)
    steps = [sampler.step() for _ in range(300)]
    assert all(len(step) == 1 for step in steps)
    archs = [step[0] for step in steps]
    for arch in archs[:20]:
        check_arch(SPACE, arch)
    widths = Counter(a.stages[0].width for a in archs)
    assert set(widths) == {16, 32, 48} and min(widths.values()) > 60
    ops = Counter(op for a in archs for op in a.stages[2].ops)
    assert set(ops) == set(OPS4.candidates()) and min(ops.values()) > 150
    assert len(set(archs)) > 250


def test_unknown_sampler_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="uniform or fair"):
        make_path_sampler("greedy", SPACE, 0)  # type: ignore[arg-type]
