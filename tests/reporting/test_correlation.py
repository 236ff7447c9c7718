"""Kendall tau-b, Spearman rho and average ranks against SciPy; the hypervolume against exact
cell counting."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from scipy import stats

from invnas.reporting import average_ranks, hypervolume, kendall_tau_b, spearman_rho

CASES = {
    "perfect": ([1, 2, 3, 4, 5], [10, 20, 30, 40, 50]),
    "reversed": ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),
    "mixed": ([0.61, 0.70, 0.65, 0.72, 0.58, 0.69], [0.90, 0.93, 0.94, 0.95, 0.89, 0.91]),
    "ties in x": ([1, 1, 2, 2, 3, 4, 4], [3, 1, 2, 5, 4, 7, 6]),
    "ties in y": ([1, 2, 3, 4, 5, 6], [0.9, 0.9, 0.8, 0.95, 0.95, 0.95]),
    "ties in both": ([1, 1, 1, 2, 2, 3, 3, 3], [2, 2, 1, 1, 3, 3, 3, 2]),
    "joint ties": ([0.5, 0.5, 0.6, 0.6, 0.7], [0.8, 0.8, 0.9, 0.9, 0.7]),
    "two": ([1.0, 2.0], [3.0, 1.0]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kendall_tau_b_matches_scipy(name):
    x, y = CASES[name]
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_spearman_rho_matches_scipy(name):
    x, y = CASES[name]
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_random_tied_samples_match_scipy():
    rng = random.Random(7)
    for _ in range(25):
        n = rng.randint(3, 30)
        x = [rng.randint(0, 5) for _ in range(n)]
        y = [rng.choice([0.1, 0.2, 0.3, 0.4]) + 0.1 * xi * rng.random() for xi in x]
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
        assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_average_ranks_match_scipy():
    values = [0.3, 0.1, 0.3, 0.2, 0.3, 0.1, 0.9]
    assert average_ranks(values) == list(stats.rankdata(values))


def test_known_values_by_hand():
    # 10 pairs: one tied in x, one tied in y, the other 8 concordant: 8 / sqrt(9 * 9).
    x, y = [1, 1, 2, 3, 4], [1, 2, 3, 3, 5]
    assert kendall_tau_b(x, y) == pytest.approx(8 / 9)
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == -1.0
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


@pytest.mark.parametrize("x, y", [([1, 1, 1], [1, 2, 3]), ([1, 2, 3], [4, 4, 4]), ([1], [2])])
def test_undefined_is_nan(x, y):
    assert math.isnan(kendall_tau_b(x, y))
    assert math.isnan(spearman_rho(x, y))


def test_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        kendall_tau_b([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        spearman_rho([1, math.nan], [1, 2])


def _cells_dominated(points, reference, step):
    """Exact hypervolume of points on a grid of ``step``: count the dominated grid cells."""
    ranges = [range(round(r / step)) for r in reference]
    count = 0
    for cell in itertools.product(*ranges):
        corner = [c * step for c in cell]
        if any(all(p[d] <= corner[d] + 1e-9 for d in range(len(p))) for p in points):
            count += 1
    return count * step ** len(reference)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_hypervolume_matches_cell_counting(dims):
    rng = random.Random(dims)
    reference = (1.0,) * dims
    for _ in range(5):
        points = [tuple(rng.randint(0, 10) / 10 for _ in range(dims)) for _ in range(6)]
        expected = _cells_dominated(points, reference, 0.1)
        assert hypervolume(points, reference) == pytest.approx(expected, abs=1e-9)


def test_hypervolume_edge_cases():
    assert hypervolume([], (1.0, 1.0)) == 0.0
    assert hypervolume([(1.0, 0.5), (0.5, 2.0)], (1.0, 1.0)) == 0.0  # not inside the box
    assert hypervolume([(0.2, 0.5), (0.2, 0.5)], (1.0, 1.0)) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="2 coordinates"):
        hypervolume([(0.1, 0.2, 0.3)], (1.0, 1.0))
