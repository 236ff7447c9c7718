"""Rank correlation between two scorings of the same architectures (e.g. the accuracy a
supernet predicts and the accuracy after training stand-alone).

Both coefficients handle ties the standard way and return NaN when a side is constant (the
coefficient is undefined there), as SciPy does:

- :func:`kendall_tau_b`: Kendall's tau-b, ``(C - D) / sqrt((n0 - tx) * (n0 - ty))`` with C and D
  the concordant and discordant pairs, ``n0`` all pairs, ``tx`` / ``ty`` the pairs tied in x / y.
- :func:`spearman_rho`: Pearson's correlation of the average ranks (ties share their mean rank).

Example::

    tau = kendall_tau_b([0.61, 0.70, 0.65], [0.90, 0.93, 0.91])   # 1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _check_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    if len(xs) != len(ys):
        raise ValueError(f"rank correlation: {len(xs)} x values but {len(ys)} y values")
    if any(math.isnan(v) for v in xs + ys):
        raise ValueError("rank correlation: NaN among the values; drop the unscored items first")
    return xs, ys


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of the paired values ``x`` and ``y`` (NaN with fewer than two pairs or
    a constant side)."""
    xs, ys = _check_pairs(x, y)
    n = len(xs)
    concordant_minus_discordant = 0
    tied_x = tied_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx = (xs[i] > xs[j]) - (xs[i] < xs[j])
            dy = (ys[i] > ys[j]) - (ys[i] < ys[j])
            tied_x += dx == 0
            tied_y += dy == 0
            concordant_minus_discordant += dx * dy
    pairs = n * (n - 1) // 2
    denominator = (pairs - tied_x) * (pairs - tied_y)
    if denominator == 0:
        return math.nan
    return concordant_minus_discordant / math.sqrt(denominator)


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``values``, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = shared
        start = end + 1
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho of the paired values ``x`` and ``y`` (NaN with fewer than two pairs or
    a constant side)."""
    xs, ys = _check_pairs(x, y)
    if len(xs) < 2:
        return math.nan
    rx, ry = average_ranks(xs), average_ranks(ys)
    mean = (len(xs) + 1) / 2  # the mean rank, ties or not
    cov = sum((a - mean) * (b - mean) for a, b in zip(rx, ry, strict=True))
    var_x = sum((a - mean) ** 2 for a in rx)
    var_y = sum((b - mean) ** 2 for b in ry)
    if var_x == 0 or var_y == 0:
        return math.nan
    return cov / math.sqrt(var_x * var_y)
