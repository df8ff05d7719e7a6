"""Gated identity association of a confirming acquisition (netsim/sensing/associate.py)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.sensing.associate import GATE_SIGMAS, SWAP_NATS, gated_association, resolve_flagged


def _spread_users(rng: np.random.Generator, k: int, min_sep: float, size: float = 60.0) -> np.ndarray:
    pts: list[np.ndarray] = []
    while len(pts) < k:
        p = rng.uniform(0.0, size, 2)
        if all(np.hypot(*(p - q)) >= min_sep for q in pts):
            pts.append(p)
    return np.array(pts)


def test_gate_rate_matches_rayleigh_tail():
    """Well separated users, anchors = truth + N(0, sigma^2 I): identities always right, and a
    match is flagged exactly when it falls outside the gate, with the 2-D Gaussian's tail
    probability P(|x| > g sigma) = exp(-g^2 / 2) (1.1 % for g = 3)."""
    rng = np.random.default_rng(11)
    n_ok, n_flag, n_all = 0, 0, 0
    for _ in range(400):
        truth = _spread_users(rng, 5, 5.0)
        sigma = rng.uniform(0.01, 0.3, 5)
        anchors = truth + sigma[:, None] * rng.standard_normal((5, 2))
        perm = rng.permutation(5)
        est = truth[perm] + 1e-4 * rng.standard_normal((5, 2))  # off-grid, mm-accurate
        col, flagged = gated_association(est, anchors, sigma)
        n_ok += int(np.sum(perm[col] == np.arange(5)))
        n_flag += int(flagged.sum())
        n_all += 5
        out = np.linalg.norm(est[col] - anchors, axis=1) > GATE_SIGMAS * sigma
        assert np.array_equal(flagged, out)  # separated users: only the gate flags
    assert n_ok == n_all
    p = np.exp(-GATE_SIGMAS ** 2 / 2)
    assert abs(n_flag / n_all - p) < 4 * np.sqrt(p * (1 - p) / n_all), n_flag / n_all


def test_close_pair_is_flagged_when_gates_overlap():
    """A pair 0.41 m apart (family seed 1): with frame-0 uncertainty of 0.3 m both identities
    are exchangeable (cost of the exchange < SWAP_NATS, worked out here in closed form); with
    1 cm it is not."""
    a = np.array([[20.0, 30.0], [20.41, 30.0]])
    est = np.array([[20.41, 30.0], [20.0, 30.0]])  # found in the other order
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((2, 2))
    for sig, amb in ((0.3, True), (0.01, False)):
        anchors = a + 0.1 * sig * noise
        col, flagged = gated_association(est, anchors, np.full(2, sig))
        assert list(col) == [1, 0]
        c = np.sum((anchors[:, None] - est[None]) ** 2, axis=-1) / (2 * sig ** 2)
        swap = c[0, 0] + c[1, 1] - c[0, 1] - c[1, 0]
        assert (swap < SWAP_NATS) == amb
        assert flagged.all() == amb and flagged.any() == amb


def test_unclaimed_estimate_inside_gate_is_ambiguous():
    """One user, two echoes inside its gate (a ghost 5 cm away, sigma 10 cm): flagged."""
    col, flagged = gated_association([[10.0, 10.0], [10.05, 10.0]], [[10.01, 10.0]], [0.1])
    assert col[0] == 0 and flagged[0]
    col, flagged = gated_association([[10.0, 10.0], [12.0, 10.0]], [[10.01, 10.0]], [0.1])
    assert col[0] == 0 and not flagged[0]


def test_resolve_single_left_and_uplink():
    est = np.array([[0.0, 0.0], [5.0, 0.0], [9.0, 9.0]])
    # user 2's anchor was a frame-0 ghost 6 m off: the only unclaimed echo is its
    col, flagged = gated_association(est, [[0.01, 0.0], [5.0, 0.02], [3.0, 3.0]], [0.05, 0.05, 0.05])
    assert list(flagged) == [False, False, True]
    c, up = resolve_flagged(col, flagged, 3, np.full((3, 2), np.nan), est)
    assert list(c) == [0, 1, 2] and not up.any()
    # two users flagged, two echoes left: the uplink decides (nearest registered positions)
    flagged2 = np.array([False, True, True])
    c, up = resolve_flagged([0, 2, 1], flagged2, 3, [[0, 0], [5.1, 0.0], [8.0, 9.0]], est)
    assert list(c) == [0, 1, 2] and list(up) == [False, True, True]
    # fewer echoes than users: the one left without an echo gets none
    c, up = resolve_flagged([0, -1, 1], [False, True, True], 2, [[0, 0], [5, 0], [9, 9]], est[:2])
    assert c[0] == 0 and sorted(c[1:].tolist()) == [-1, 1]


def test_hostile_input():
    with pytest.raises(ValueError):
        gated_association([[np.nan, 0.0]], [[0.0, 0.0]], [0.1])
    with pytest.raises(ValueError):
        gated_association([[0.0, 0.0]], [[0.0, 0.0]], [0.0])
    with pytest.raises(ValueError):
        gated_association([[0.0, 0.0]], [[0.0, 0.0]], [0.1, 0.2])
    col, flagged = gated_association(np.zeros((0, 2)), [[0.0, 0.0]], [0.1])
    assert col[0] == -1 and flagged[0]
