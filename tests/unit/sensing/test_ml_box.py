"""The per-user box of the ML sweeps (``ml.boxed``, ``ml_refine(box_m=)``; tracking's
``TRACK_BOX_OTHERS``, off by default): structural checks on a random scene of our own."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from netsim.sensing.ml import MlProblem, boxed, ml_refine

sys.path.insert(0, str(Path(__file__).parent))
from sensing_scenes import echo_frame, three_ap_cluster  # noqa: E402


def test_boxed_zeroes_exactly_the_points_outside_each_rows_box():
    rng = np.random.default_rng(11)
    pts = rng.uniform(-1, 1, (4, 9, 2))  # [b, S, 2]
    vals = rng.uniform(0.1, 1.0, (4, 9))
    box = np.array([[[-0.5, -0.5], [0.5, 0.5]], [[-np.inf, -np.inf], [np.inf, np.inf]]])  # [K, 2, 2]
    rows = np.array([0, 1, 0, 1])
    out = boxed(vals, pts, box, rows)
    inside = np.all(np.abs(pts) <= 0.5, axis=-1)  # row 0 and 2's box
    np.testing.assert_array_equal(out[[0, 2]], np.where(inside[[0, 2]], vals[[0, 2]], 0.0))
    np.testing.assert_array_equal(out[[1, 3]], vals[[1, 3]])  # unbounded box: unchanged
    assert boxed(vals, pts, None, rows) is vals


def test_a_boxed_refinement_stays_in_its_box_and_an_unbounded_box_changes_nothing():
    """A user whose box excludes its true position ends inside the box (on its edge nearest the
    peak); the other user, unboxed, reaches the same estimate as without any box."""
    rng = np.random.default_rng(5)
    g = three_ap_cluster(rng, 1.0)
    users = np.array([[9.3, 12.1], [16.7, 6.4]])  # [K, 2] m, off any grid
    st, _ = echo_frame(g, users, rng)
    prob = MlProblem.from_statistics(g, st.cross, st.tx_cov, np.full(2, -10.0), np.full(2, 35.0), 0.3)
    start = users + np.array([[0.02, -0.015], [0.01, 0.01]])
    free_pos, _ = ml_refine(prob, start, 0.01, 1e-7)
    lo = users[0] + np.array([0.01, -0.05])  # the box of user 0 stops 1 cm short of its peak in x
    box = np.array([[lo, lo + 0.1], [[-np.inf, -np.inf], [np.inf, np.inf]]])  # [K, lo/hi, 2]
    pos, _ = ml_refine(prob, start, 0.01, 1e-7, box_m=box)
    assert np.all(pos[0] >= box[0, 0] - 1e-12) and np.all(pos[0] <= box[0, 1] + 1e-12)
    assert abs(pos[0, 0] - lo[0]) < 1e-4  # pressed against the edge between it and the peak
    assert np.linalg.norm(free_pos[0] - users[0]) < 5e-3  # unboxed, user 0 finds its echo
    np.testing.assert_allclose(pos[1], free_pos[1], atol=2e-3)
