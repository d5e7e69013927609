"""The incremental average linkage of interest/clusters.py against its definition.

The reference below recomputes every pair's average similarity from scratch and keeps the
first maximum in row-major order of group names, as the docstring promises. Similarities
are multiples of 1/8, so every sum both compute is exact and ties are frequent: the two
must agree on every merge, ties included, not only up to rounding.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from interest_stream.streams.interest.clusters import _average_linkage


def _reference(similarity: list[list[float]], max_groups: int, threshold: float) -> list[list[int]]:
    groups = [[i] for i in range(len(similarity))]
    while len(groups) > 1:
        best: tuple[float, int, int] | None = None
        for x in range(len(groups)):
            for y in range(x + 1, len(groups)):
                total = sum(similarity[p][q] for p in groups[x] for q in groups[y])
                average = total / (len(groups[x]) * len(groups[y]))
                if best is None or average > best[0]:
                    best = (average, x, y)
        assert best is not None
        average, x, y = best
        if average < threshold and len(groups) <= max_groups:
            break
        groups[x] = groups[x] + groups[y]
        del groups[y]
    return groups


@st.composite
def _similarities(draw: st.DrawFn) -> list[list[float]]:
    n = draw(st.integers(0, 14))
    eighths = st.integers(-8, 8)
    matrix = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            matrix[i][j] = matrix[j][i] = draw(eighths) / 8
    return matrix


@settings(max_examples=300, deadline=None)
@given(
    similarity=_similarities(),
    max_groups=st.integers(1, 6),
    threshold=st.integers(-8, 9).map(lambda k: k / 8),
)
def test_merges_are_those_of_the_definition_ties_included(
    similarity: list[list[float]], max_groups: int, threshold: float
) -> None:
    n = len(similarity)
    matrix = np.array(similarity, dtype=np.float64).reshape(n, n)
    assert _average_linkage(matrix, max_groups, threshold) == _reference(
        similarity, max_groups, threshold
    )


def test_groups_stop_at_the_threshold_and_at_the_allowed_count() -> None:
    # Two tight pairs far apart: the threshold keeps them apart, the count may not.
    similarity = np.array(
        [[1.0, 0.9, 0.1, 0.0], [0.9, 1.0, 0.0, 0.1], [0.1, 0.0, 1.0, 0.8], [0.0, 0.1, 0.8, 1.0]]
    )
    assert _average_linkage(similarity, 4, 0.5) == [[0, 1], [2, 3]]
    assert _average_linkage(similarity, 1, 0.5) == [[0, 1, 2, 3]]
    assert _average_linkage(similarity, 4, 0.95) == [[0], [1], [2], [3]]
