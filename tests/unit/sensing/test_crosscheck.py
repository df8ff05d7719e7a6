"""Cross-cluster consistency (``netsim.sensing.crosscheck.consistent_set``, issue 9 dense scenes).

Scenes are our own random three-AP clusters (``sensing_scenes``), users off any grid. The planted
failure is the one the dense family showed (seeds 13 and 17): an acquisition that put one user,
or two, metres off on a local maximum of the wrong set while another cluster placed them right.
The references are independent of the check: the refined true set (the ML step started at the
truth) and the CRLB of the frame's own reflection draw; a wrong alternative (a ghost metres off,
the mirror image of a user across an AP's array line, another user's position) must never move
a correct set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from netsim.sensing.crosscheck import CROSS_MIN_M, consistent_set
from netsim.sensing.joint import joint_value, ml_step
from netsim.sensing.localize import mirror_points
from netsim.sensing.ml import MlProblem

sys.path.insert(0, str(Path(__file__).parent))
from sensing_scenes import NOISE, echo_frame, three_ap_cluster  # noqa: E402

STEP = 0.5  # acquisition grid step of the scenes [m]: the check's first stencil is STEP / 10


def _scene(seed: int, spacing_wl: float, n_users: int = 3, pair: bool = False):
    """A three-AP cluster, ``n_users`` random users (a close pair 0.4-1 m apart with ``pair``),
    one frame's echo; returns (problem, scale, truth refined, CRLB trace, truth)."""
    rng = np.random.default_rng(seed)
    g = three_ap_cluster(rng, spacing_wl)
    users = rng.uniform(4.0, 21.0, (n_users, 2))
    if pair:
        ang = rng.uniform(0, 2 * np.pi)
        users[1] = users[0] + rng.uniform(0.4, 1.0) * np.array([np.cos(ang), np.sin(ang)])
    st, crlb = echo_frame(g, users, rng)
    prob = MlProblem.from_statistics(g, st.cross, st.tx_cov, np.array([-10.0, -10.0]), np.array([35.0, 35.0]), 0.3)
    scale = st.n_snapshots / NOISE
    ref, _, _ = ml_step(prob, users, STEP / 10, 1e-7, sweeps=6)  # the set the truth's basin gives
    return prob, scale, ref, crlb, users


def _wrong_set(prob, ref, rows, rng):
    """``ref`` with the users ``rows`` moved 2.5-6 m off and the set refined there, each moved
    user kept within 0.3 m of its planted point (the best wrong set of that neighbourhood: a
    ridge or ghost point, as a wrong acquisition returns)."""
    start = ref.copy()
    box = np.stack([np.full((len(ref), 2), -np.inf), np.full((len(ref), 2), np.inf)], axis=1)  # [V, 2, 2]
    for j in rows:
        ang = rng.uniform(0, 2 * np.pi)
        start[j] = ref[j] + rng.uniform(2.5, 6.0) * np.array([np.cos(ang), np.sin(ang)])
        box[j] = [start[j] - 0.3, start[j] + 0.3]
    wrong, _, _ = ml_step(prob, start, STEP / 10, 1e-7, sweeps=6, box_m=box)
    return wrong


@pytest.mark.parametrize(("seed", "spacing_wl", "rows", "pair"),
                         [(1, 0.5, [0], False), (2, 1.0, [2], True), (3, 2.0, [1], False),
                          (4, 1.0, [0, 2], False), (5, 2.0, [1, 2], True), (6, 0.5, [0, 1], False)])
def test_a_wrong_acquisition_is_replaced_by_the_other_clusters_views(seed, spacing_wl, rows, pair):
    prob, scale, ref, crlb, users = _scene(seed, spacing_wl, pair=pair)
    rng = np.random.default_rng(100 + seed)
    wrong = _wrong_set(prob, ref, rows, rng)
    assert np.all(np.linalg.norm(wrong[rows] - users[rows], axis=1) > 1.0)  # the plant is metres off
    # other clusters' views: every user within a few mm of the truth (their own estimates), the
    # wrong users' views preceded by a decoy (a ghost 3 m off) that must not be taken
    views = []
    for j in range(len(users)):
        v = [users[j] + 0.003 * rng.standard_normal(2)]
        if j in rows:
            v.insert(0, users[j] + [3.0, -1.0])
        views.append(np.array(v))
    new, moved, gain = consistent_set(prob, wrong, views, scale, STEP / 10, 1e-7)
    err = np.linalg.norm(new - users, axis=1)
    assert np.all((err <= 3 * np.sqrt(crlb)) | (err <= 0.01)), (err, np.sqrt(crlb))
    # the planted users moved (and any other user the wrong set had pulled more than 2 cm off)
    assert set(rows) <= set(np.flatnonzero(moved))
    # the kept set is the ML set of the truth's basin: as likely (within a nat) and more likely
    # than the wrong one by the reported gain
    f_new, f_ref, f_wrong = (scale * float(joint_value(prob, p)) for p in (new, ref, wrong))
    assert f_new >= f_ref - 1.0
    assert gain == pytest.approx(f_new - f_wrong, rel=1e-9) and gain > 1.0


@pytest.mark.parametrize(("seed", "spacing_wl", "pair"),
                         [(11, 0.5, False), (12, 1.0, True), (13, 2.0, False), (14, 1.0, False),
                          (15, 2.0, True), (16, 0.5, True)])
def test_correct_sets_are_not_moved_by_wrong_views(seed, spacing_wl, pair):
    """Decoys of every kind for every user (ghosts metres off, the mirror images across each AP's
    array line, another user's position, a view 1 cm off: the same peak) leave a correct set
    exactly as it was."""
    prob, scale, ref, _, users = _scene(seed, spacing_wl, n_users=4, pair=pair)
    rng = np.random.default_rng(200 + seed)
    views = []
    for j in range(len(users)):
        ghosts = ref[j] + rng.uniform(-6.0, 6.0, (3, 2))
        mirrors = mirror_points(prob.geom, ref[j])  # [M, 2]
        near = ref[j] + [0.01, 0.0]
        other = ref[(j + 1) % len(users)]
        views.append(np.concatenate([ghosts, mirrors, near[None], other[None]]))
    new, moved, gain = consistent_set(prob, ref, views, scale, STEP / 10, 1e-7)
    assert not moved.any() and gain == 0.0
    np.testing.assert_array_equal(new, ref)


def test_no_alternative_costs_nothing_and_bad_input_is_refused():
    prob, scale, ref, _, _ = _scene(21, 1.0)
    same = [ref[j][None] + [CROSS_MIN_M / 2, 0.0] for j in range(3)]  # all the same peaks
    new, moved, gain = consistent_set(prob, ref, same, scale, STEP / 10, 1e-7)
    np.testing.assert_array_equal(new, ref)
    assert not moved.any() and gain == 0.0
    empty = [np.zeros((0, 2))] * 3
    assert consistent_set(prob, ref, empty, scale, STEP / 10, 1e-7)[2] == 0.0
    nan_views = [np.array([[np.nan, 1.0]])] * 3  # non-finite views are ignored
    assert consistent_set(prob, ref, nan_views, scale, STEP / 10, 1e-7)[2] == 0.0
    with pytest.raises(ValueError, match="finite"):
        consistent_set(prob, np.array([[np.nan, 0.0]] * 3), empty, scale, STEP / 10, 1e-7)
    with pytest.raises(ValueError, match="one entry per user"):
        consistent_set(prob, ref, empty[:2], scale, STEP / 10, 1e-7)
    with pytest.raises(ValueError, match="positive"):
        consistent_set(prob, ref, empty, 0.0, STEP / 10, 1e-7)
