"""Tests of the deployment geometry helpers (netsim.phy.geometry)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

from netsim.phy.geometry import (
    grid_positions,
    hexagon_positions,
    random_positions,
    ula_element_offsets,
    ula_element_positions,
)


def test_grid_square_area_is_cell_centred() -> None:
    p = grid_positions(9, 30.0, 30.0)
    xs = np.unique(np.round(p[:, 0], 9))
    ys = np.unique(np.round(p[:, 1], 9))
    np.testing.assert_allclose(xs, [5.0, 15.0, 25.0])
    np.testing.assert_allclose(ys, [5.0, 15.0, 25.0])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    w=st.floats(1.0, 1000.0),
    h=st.floats(1.0, 1000.0),
)
def test_grid_inside_distinct_and_count(n: int, w: float, h: float) -> None:
    p = grid_positions(n, w, h)
    assert p.shape == (n, 2)
    assert np.all((p > 0) & (p < np.array([w, h])))
    assert len({(round(a, 9), round(b, 9)) for a, b in p}) == n


def test_grid_aspect_follows_area() -> None:
    p = grid_positions(8, 40.0, 10.0)  # cols = ceil(sqrt(32)) = 6 -> 6 x 2 grid
    assert np.unique(np.round(p[:, 1], 9)).size == 2


def test_random_positions_respect_min_distance_and_are_reproducible() -> None:
    p = random_positions(30, 50.0, 40.0, 5.0, np.random.default_rng(4))
    assert p.shape == (30, 2)
    assert np.all((p >= 0) & (p <= np.array([50.0, 40.0])))
    assert pdist(p).min() >= 5.0
    q = random_positions(30, 50.0, 40.0, 5.0, np.random.default_rng(4))
    np.testing.assert_array_equal(p, q)


def test_random_positions_infeasible_raises() -> None:
    with pytest.raises(ValueError, match="cannot place"):
        random_positions(100, 10.0, 10.0, 5.0, np.random.default_rng(0))
    # feasible by the packing bound but too few tries
    with pytest.raises(ValueError, match="after 5 tries"):
        random_positions(20, 10.0, 10.0, 2.0, np.random.default_rng(0), max_tries=5)


def test_ula_offsets_centred() -> None:
    np.testing.assert_allclose(ula_element_offsets(5, 0.5), [-1.0, -0.5, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(ula_element_offsets(4, 1.0), [-1.5, -0.5, 0.5, 1.5])


def test_ula_positions_shape_spacing_and_direction() -> None:
    centers = np.array([[0.0, 10.0], [10.0, 0.0], [20.0, 10.0]])
    angles = np.array([np.pi / 2, 0.0, np.pi / 2])
    q = ula_element_positions(centers, angles, 21, 0.025)
    assert q.shape == (3, 21, 2)
    np.testing.assert_allclose(q.mean(axis=1), centers, atol=1e-12)
    steps = np.diff(q, axis=1)  # [3, 20, 2]
    np.testing.assert_allclose(np.linalg.norm(steps, axis=-1), 0.025, rtol=1e-12)
    np.testing.assert_allclose(steps[0], np.tile([0.0, 0.025], (20, 1)), atol=1e-15)
    np.testing.assert_allclose(steps[1], np.tile([0.025, 0.0], (20, 1)), atol=1e-15)
    # centre element of an odd array sits on the centre (spec/isac.md 2.1)
    np.testing.assert_allclose(q[:, 10], centers, atol=1e-15)
    # scalar angle broadcasts over all centres
    assert ula_element_positions(centers, 0.0, 3, 1.0).shape == (3, 3, 2)


def test_hexagon_seven_sites() -> None:
    p = hexagon_positions(1, 200.0, (5.0, -3.0))
    assert p.shape == (7, 2)
    np.testing.assert_allclose(p[0], [5.0, -3.0])
    np.testing.assert_allclose(np.linalg.norm(p[1:] - p[0], axis=1), 200.0)
    np.testing.assert_allclose(pdist(p).min(), 200.0)


@pytest.mark.parametrize("rings", [0, 1, 2, 3])
def test_hexagon_rings_count_and_lattice(rings: int) -> None:
    p = hexagon_positions(rings, 1.0)
    assert p.shape == (1 + 3 * rings * (rings + 1), 2)
    if rings:
        d = pdist(p)
        assert d.min() == pytest.approx(1.0)
        assert np.unique(np.round(p, 9), axis=0).shape[0] == p.shape[0]
        # every site outside the centre has between 3 and 6 neighbours at distance ISD
        dm = np.linalg.norm(p[:, None] - p[None], axis=-1)
        nbrs = np.sum(np.isclose(dm, 1.0), axis=1)
        assert nbrs[0] == 6 and np.all(nbrs >= 2)
