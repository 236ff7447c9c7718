"""Hypervolume of a set of points, every coordinate minimised, bounded by a reference point.

The hypervolume is the measure of the region that the points dominate and that dominates the
reference point; it grows when a front moves towards better values or spreads out, so it
scores a whole Pareto front with one number. Computed exactly by slicing along the last
coordinate (quadratic in the number of points per dimension beyond two; fine for the few
hundred trials of a search).

Example::

    hypervolume([(0.2, 0.5), (0.4, 0.1)], reference=(1.0, 1.0))   # 0.8 * 0.5 + 0.6 * 0.4 = 0.64
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Point = Sequence[float]


def hypervolume(points: Sequence[Point], reference: Point) -> float:
    """Volume dominated by ``points`` (all coordinates minimised) up to ``reference``.

    Points not strictly better than the reference in every coordinate add nothing.
    """
    dims = len(reference)
    if any(len(p) != dims for p in points):
        raise ValueError(f"hypervolume: every point needs {dims} coordinates like the reference")
    inside = [
        tuple(map(float, p))
        for p in points
        if all(a < r for a, r in zip(p, reference, strict=True))
    ]
    return _volume(inside, tuple(map(float, reference)))


def _volume(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    if not points:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    if len(reference) == 2:
        area, level = 0.0, reference[1]
        for x, y in sorted(points):
            if y < level:
                area += (reference[0] - x) * (level - y)
                level = y
        return area
    points = sorted(points, key=lambda p: p[-1])
    total = 0.0
    for i, point in enumerate(points):
        top = points[i + 1][-1] if i + 1 < len(points) else reference[-1]
        if top > point[-1]:
            total += (top - point[-1]) * _volume([p[:-1] for p in points[: i + 1]], reference[:-1])
    return total


def normalized_points(
    rows: Sequence[Mapping[str, float]],
    objectives: Sequence[Mapping[str, str]],
    scales: Mapping[str, float],
) -> list[tuple[float, ...]]:
    """Objective vectors to minimise, on comparable scales: ``accuracy`` (0..1) becomes the
    error ``1 - accuracy``; another metric is divided by ``scales[metric]`` (and subtracted
    from 1 when it is maximised)."""
    points = []
    for row in rows:
        point = []
        for objective in objectives:
            metric, value = objective["metric"], float(row[objective["metric"]])
            if metric == "accuracy":
                point.append(1.0 - value)
            else:
                scaled = value / scales[metric]
                point.append(1.0 - scaled if objective["mode"] == "max" else scaled)
        points.append(tuple(point))
    return points
