"""tasks.matching: hand cases, rectangular and empty matrices, non-finite entries, brute force."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from perception_r1.tasks.matching import maximize, minimize


def pairs(rows, cols):
    return sorted(zip(rows.tolist(), cols.tolist(), strict=True))


def test_hand_cases():
    assert pairs(*maximize([[1, 2], [3, 1]])) == [(0, 1), (1, 0)]
    assert pairs(*minimize([[1, 2], [3, 1]])) == [(0, 0), (1, 1)]
    # greedy would take the 0.9 and leave 0.0; the optimum is 0.8 + 0.8
    assert pairs(*maximize([[0.9, 0.8], [0.8, 0.0]])) == [(0, 1), (1, 0)]


def test_rectangular():
    assert pairs(*maximize([[0.1, 0.9, 0.2]])) == [(0, 1)]
    assert pairs(*maximize([[0.1], [0.7], [0.3]])) == [(1, 0)]
    assert pairs(*minimize([[5, 1, 9], [1, 8, 9]])) == [(0, 1), (1, 0)]


def test_empty():
    for m in ([], np.zeros((0, 3)), np.zeros((4, 0))):
        for fn in (maximize, minimize):
            rows, cols = fn(m)
            assert rows.size == 0 and cols.size == 0


def test_non_finite_entries_are_the_worst_and_never_raise():
    assert pairs(*maximize([[np.nan, 1.0], [1.0, np.inf]])) == [(0, 1), (1, 0)]
    assert pairs(*minimize([[np.nan, 1.0], [1.0, -np.inf]])) == [(0, 1), (1, 0)]
    assert pairs(*maximize([[np.nan, np.nan], [np.nan, np.nan]])) in ([(0, 0), (1, 1)], [(0, 1), (1, 0)])
    assert pairs(*maximize([[1e308, -1e308], [-np.inf, 1e308]])) == [(0, 0), (1, 1)]


def brute_best(m: np.ndarray, sign: float) -> float:
    p, g = m.shape
    if p <= g:
        return max(sign * sum(m[i, c] for i, c in enumerate(perm)) for perm in itertools.permutations(range(g), p))
    return max(sign * sum(m[r, j] for j, r in enumerate(perm)) for perm in itertools.permutations(range(p), g))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_optimal_against_brute_force(p, g, data):
    values = data.draw(st.lists(st.floats(-100, 100), min_size=p * g, max_size=p * g))
    m = np.array(values).reshape(p, g)
    for fn, sign in ((maximize, 1.0), (minimize, -1.0)):
        rows, cols = fn(m)
        assert len(rows) == min(p, g) and len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
        assert sign * m[rows, cols].sum() >= brute_best(m, sign) - 1e-9
