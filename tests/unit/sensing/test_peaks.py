"""Grid peak picking and the assignment (netsim.sensing.peaks) against SciPy and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment

from netsim.sensing.peaks import local_max_3x3, min_cost_assignment


def test_local_max_matches_maximum_filter_on_random_images():
    rng = np.random.default_rng(11)
    for _ in range(200):
        shape = tuple(rng.integers(1, 25, 2))
        img = rng.random(shape) * (1.0 if rng.random() < 0.5 else -1.0)
        img[rng.random(shape) < 0.3] = 0.0  # plateaus and ties
        ref = img == maximum_filter(img, size=3, mode="constant", cval=0.0)
        assert np.array_equal(local_max_3x3(img), ref)


def test_local_max_single_peak_and_border():
    img = np.zeros((5, 6))
    img[2, 3] = 1.0
    img[0, 0] = 0.5  # a corner peak: the outside counts as 0
    pk = local_max_3x3(img) & (img > 0)
    assert set(zip(*np.nonzero(pk), strict=True)) == {(2, 3), (0, 0)}
    with pytest.raises(ValueError):
        local_max_3x3(np.zeros(4))


def _brute(cost: np.ndarray) -> float:
    r, c = cost.shape
    if r <= c:
        return min(sum(cost[i, p[i]] for i in range(r)) for p in itertools.permutations(range(c), r))
    return _brute(cost.T)


def test_assignment_optimal_against_brute_force_and_scipy():
    rng = np.random.default_rng(5)
    for _ in range(300):
        r, c = (int(x) for x in rng.integers(0, 6, 2))
        cost = rng.random((r, c)) * 10.0
        rows, cols = min_cost_assignment(cost)
        assert rows.size == cols.size == min(r, c)
        assert np.all(np.diff(rows) > 0) and np.unique(cols).size == cols.size
        if min(r, c):
            assert cost[rows, cols].sum() == pytest.approx(_brute(cost), rel=1e-12)
        ri, ci = linear_sum_assignment(cost)  # distinct costs: the same unique matching
        assert np.array_equal(rows, ri) and np.array_equal(cols, ci)


def test_assignment_rejects_bad_input():
    with pytest.raises(ValueError):
        min_cost_assignment(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError):
        min_cost_assignment(np.zeros(3))
