"""Acquisition bounded by the users' uplink registrations (``acquire.uplink_boxes``,
``acquire.in_boxes``, ``localize_cluster(boxes_m=)`` and its fall back).

Independent references: a user registers with its nearest APs, so its true position always
lies in the order-s cell of its serving set (brute force over a fine grid here); the box
test is checked against a plain loop; the acquisition against the users we placed (off any
grid, random AP orientations: ``sensing_scenes.three_ap_cluster``) and their CRLB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import netsim.sensing.localize as loc
from netsim.sensing.acquire import box_interior, in_boxes, uplink_boxes

sys.path.insert(0, str(Path(__file__).parent))
from sensing_scenes import NOISE, echo_frame, three_ap_cluster  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uplink_box_holds_the_user_and_its_whole_cell(seed):
    rng = np.random.default_rng(seed)
    aps = rng.uniform(0, 100, (9, 2))  # our own random layout
    users = rng.uniform(0, 100, (12, 2))  # off any grid
    d = np.linalg.norm(users[:, None] - aps[None], axis=-1)
    serving = np.argsort(d, axis=1)[:, :3]  # [V, 3] the nearest APs (the registration)
    lo, hi = np.array([0.0, 0.0]), np.array([100.0, 100.0])
    box = uplink_boxes(aps, serving, lo, hi, margin_m=0.0)  # [V, 2, 2]
    assert box.shape == (12, 2, 2)
    assert np.all(box[:, 0] >= lo) and np.all(box[:, 1] <= hi)
    assert np.all((users >= box[:, 0]) & (users <= box[:, 1]))  # the truth is always inside
    # brute force: every point of a 0.5 m grid whose 3 nearest APs are the serving set is inside
    g = np.stack(np.meshgrid(np.arange(0.25, 100, 0.5), np.arange(0.25, 100, 0.5)), -1).reshape(-1, 2)
    near = np.sort(np.argsort(np.linalg.norm(g[:, None] - aps[None], axis=-1), axis=1)[:, :3], axis=1)
    for v in range(12):
        cell = g[np.all(near == np.sort(serving[v]), axis=1)]
        assert np.all((cell >= box[v, 0] - 1e-9) & (cell <= box[v, 1] + 1e-9))
    # a margin only grows the boxes; cells are small next to the region on this layout
    wide = uplink_boxes(aps, serving, lo, hi, margin_m=5.0)
    assert np.all(wide[:, 0] <= box[:, 0]) and np.all(wide[:, 1] >= box[:, 1])
    assert np.mean(np.prod(box[:, 1] - box[:, 0], axis=-1)) < 0.5 * 100 * 100


def test_uplink_boxes_degenerate_and_hostile_input():
    aps = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    lo, hi = np.array([-5.0, -5.0]), np.array([15.0, 15.0])
    # every AP serves: no constraint, the whole region
    np.testing.assert_array_equal(uplink_boxes(aps, [[0, 1, 2]], lo, hi, 1.0)[0], np.stack([lo, hi]))
    assert uplink_boxes(aps, np.zeros((0, 2), dtype=int), lo, hi, 1.0).shape == (0, 2, 2)
    with pytest.raises(ValueError, match="rows of ap_xy_m"):
        uplink_boxes(aps, [[0, 3]], lo, hi, 1.0)
    with pytest.raises(ValueError, match="margin_m"):
        uplink_boxes(aps, [[0, 1]], lo, hi, -1.0)


def test_in_boxes_is_the_union_of_the_boxes():
    rng = np.random.default_rng(4)
    boxes = np.sort(rng.uniform(0, 10, (3, 2, 2)), axis=1)  # [B, lo/hi, 2]
    pts = rng.uniform(-1, 11, (7, 5, 2))
    want = np.zeros((7, 5), dtype=bool)
    for i in range(7):
        for j in range(5):
            for lo, hi in boxes:
                want[i, j] |= bool(np.all(pts[i, j] >= lo) and np.all(pts[i, j] <= hi))
    np.testing.assert_array_equal(in_boxes(pts, boxes), want)
    assert np.all(in_boxes(pts, None))


@pytest.mark.parametrize(("seed", "spacing_wl"), [(21, 2.0), (22, 0.5)])
def test_boxed_acquisition_finds_the_users_and_falls_back_on_a_wrong_box(seed, spacing_wl, monkeypatch):
    """Off-grid users, each in a 10 m box: the boxed pass images fewer points, is kept, and
    every user is within 3 sqrt(CRLB) (or 1 cm). With one user's box moved away from it (a
    wrong registration) the boxed answer cannot cover the boxes: the unbounded passes run
    and still find every user."""
    rng = np.random.default_rng(seed)
    g = three_ap_cluster(np.random.default_rng(seed), spacing_wl)
    users = np.array([[9.0, 7.0], [15.0, 14.0], [5.0, 17.0]]) + rng.uniform(-1, 1, (3, 2))
    st, crlb = echo_frame(g, users, rng)
    lo, hi = np.array([-10.0, -10.0]), np.array([35.0, 35.0])
    boxes = np.stack([users - 5.0 + rng.uniform(-1, 1, (3, 2)), users + 5.0 + rng.uniform(-1, 1, (3, 2))], axis=1)
    seen: list[bool] = []
    orig = loc._acquire_set

    def spy(*a, **k):  # noqa: ANN002, ANN003, ANN202
        seen.append(a[-1] is not None)  # boxes given to this pass
        return orig(*a, **k)

    monkeypatch.setattr(loc, "_acquire_set", spy)
    res = loc.localize_cluster(st, g, NOISE, 3, lo, hi, 0.25, anchors_m=users, exclusion_m=0.32, boxes_m=boxes)
    assert seen == [True]  # the boxed pass was kept
    err = np.linalg.norm(res.positions_m - users, axis=1)
    assert np.all(res.detected)
    assert np.all((err <= 3 * np.sqrt(crlb)) | (err <= 0.01)), (err, np.sqrt(crlb))
    seen.clear()
    free = loc.localize_cluster(st, g, NOISE, 3, lo, hi, 0.25, anchors_m=users, exclusion_m=0.32)
    assert seen == [False] or seen[0] is False
    assert res.n_points < 0.5 * free.n_points
    wrong = boxes.copy()
    wrong[0] += 20.0  # user 0 registered far from where it is
    seen.clear()
    res = loc.localize_cluster(st, g, NOISE, 3, lo, hi, 0.25, anchors_m=users, exclusion_m=0.32, boxes_m=wrong)
    assert seen[0] is True and len(seen) >= 2  # the boxed answer was not kept
    err = np.linalg.norm(res.positions_m - users, axis=1)
    assert np.all((err <= 3 * np.sqrt(crlb)) | (err <= 0.01)), (err, np.sqrt(crlb))


def test_box_interior_drops_the_box_edges_but_not_the_grid_border():
    g = np.stack(np.meshgrid(np.arange(10.0), np.arange(8.0)), -1)  # [8, 10, 2], 1 m grid
    inner = box_interior(g, np.array([[[2.0, 1.0], [6.0, 5.0]]]))  # x 2..6, y 1..5
    rows, cols = np.nonzero(inner)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 4, 3, 5)  # one point in from each edge
    # a box holding a grid corner keeps that corner (the grid's own border is no box edge)
    corner = box_interior(g, np.array([[[-1.0, -1.0], [3.0, 3.0]]]))
    assert corner[0, 0] and corner[2, 2] and not corner[3, 3]
