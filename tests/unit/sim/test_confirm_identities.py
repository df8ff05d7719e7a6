"""Identities of frame 1's kept local confirmation (netsim.sensing.associate.confirm_identities)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.sensing.associate import confirm_identities


def test_an_exchanged_pair_is_put_back_and_separate_users_are_never_moved():
    """300 random scenes: a pair inside each other's windows whose answers came out exchanged
    is put back when each answer is nearer the other user's previous estimate; users whose
    windows do not overlap keep their answers; a correct order is never changed."""
    rng = np.random.default_rng(7)
    put_back = 0
    for _ in range(300):
        v = int(rng.integers(2, 7))
        truth = rng.uniform(0.0, 100.0, (v, 2))
        truth[1] = truth[0] + rng.uniform(0.2, 0.6) * np.array([1.0, 0.0]) @ _rot(rng.uniform(0, 2 * np.pi))
        win = np.full(v, 0.5)
        prev = truth + rng.normal(0.0, 0.08, (v, 2))  # frame 0: decimetre errors, inside the windows
        est = truth + rng.normal(0.0, 1e-3, (v, 2))  # frame 1's answers: millimetres off
        assert np.array_equal(confirm_identities(est, prev, win), np.arange(v)) or \
            _cost(est, prev, win, confirm_identities(est, prev, win)) < _cost(est, prev, win, np.arange(v))
        swapped = est.copy()
        swapped[[0, 1]] = est[[1, 0]]
        if not np.all(np.abs(swapped[:2] - prev[:2]) <= 0.5):
            continue  # an exchanged answer would have left its window (the caller falls back)
        perm = confirm_identities(swapped, prev, win)
        assert np.array_equal(perm[2:], np.arange(2, v))  # far users untouched
        if _cost(swapped, prev, win, np.array([1, 0, *range(2, v)])) < _cost(swapped, prev, win, np.arange(v)):
            assert np.array_equal(perm[:2], [1, 0])
            put_back += 1
            np.testing.assert_allclose(swapped[perm], est)
    assert put_back > 100, put_back


def _rot(a: float) -> np.ndarray:
    return np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])


def _cost(est, prev, win, perm) -> float:  # noqa: ANN001
    return float(np.sum(np.sum((est[perm] - prev) ** 2, axis=1) / win ** 2))


def test_identity_when_windows_do_not_overlap_or_nothing_is_gained():
    prev = np.array([[0.0, 0.0], [10.0, 0.0]])
    est = np.array([[0.1, 0.0], [9.9, 0.0]])
    assert np.array_equal(confirm_identities(est, prev, np.array([0.5, 0.5])), [0, 1])
    # symmetric tie: both assignments cost the same, the order is kept
    prev = np.array([[0.0, 0.0], [0.4, 0.0]])
    est = np.array([[0.2, 0.1], [0.2, -0.1]])
    assert np.array_equal(confirm_identities(est, prev, np.array([0.5, 0.5])), [0, 1])
    assert np.array_equal(confirm_identities(est[:1], prev[:1], np.array([0.5])), [0])


@pytest.mark.parametrize("est, prev, win", [
    (np.zeros((2, 2)), np.zeros((3, 2)), np.ones(2)),
    (np.zeros((2, 3)), np.zeros((2, 3)), np.ones(2)),
    (np.array([[np.nan, 0.0], [0.0, 0.0]]), np.zeros((2, 2)), np.ones(2)),
    (np.zeros((2, 2)), np.zeros((2, 2)), np.array([1.0, 0.0])),
])
def test_bad_input_is_refused(est, prev, win):
    with pytest.raises(ValueError, match="confirm_identities"):
        confirm_identities(est, prev, win)
