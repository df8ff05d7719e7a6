"""The echo-subspace residual check of the confirming frame (``acquire.unexplained_echo``).

Independent reference: with per-path RCS draws a user's echo spans the M per-AP blocks
``e_m (x) a_m(p)`` of the echo covariance (spec isac.md 2.4), so projecting the signal basis off
the true users' blocks leaves only noise perturbation (a singular value well below 1), while a
user left out leaves its blocks orthogonal to every other block of a resolved geometry
(singular value 1 up to the sidelobe level). Geometries are our own random three-AP clusters,
users off any grid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from netsim.sensing.acquire import echo_subspace, unexplained_echo

sys.path.insert(0, str(Path(__file__).parent))
from sensing_scenes import NOISE, echo_frame, three_ap_cluster  # noqa: E402


def _scene(seed: int, spacing_wl: float, users: np.ndarray):
    rng = np.random.default_rng(seed)
    g = three_ap_cluster(rng, spacing_wl)
    st, crlb = echo_frame(g, users, rng)
    sub = echo_subspace(st.cov, g.n_aps, g.n_antennas, NOISE, st.n_snapshots, len(users) * g.n_aps)
    return g, sub, crlb


@pytest.mark.parametrize(("seed", "spacing_wl"), [(3, 0.5), (8, 2.0)])
def test_true_users_explain_the_echo_and_a_missing_or_ghost_user_does_not(seed, spacing_wl):
    rng = np.random.default_rng(100 + seed)
    users = np.array([[8.0, 9.0], [17.0, 6.0], [6.0, 18.0]]) + rng.uniform(-1, 1, (3, 2))  # off-grid
    g, sub, crlb = _scene(seed, spacing_wl, users)
    assert sub.dim >= 6  # several of each user's M blocks are above the noise edge
    assert unexplained_echo(sub, g, users) < 0.5
    # estimates a few sqrt(CRLB) off (a correct but noisy answer) still explain the echo
    noisy = users + 3 * np.sqrt(crlb)[:, None] * rng.standard_normal((3, 2))
    assert unexplained_echo(sub, g, noisy) < 0.5
    for k in range(3):
        assert unexplained_echo(sub, g, np.delete(users, k, axis=0)) > 0.9  # a user missed
        ghost = users.copy()
        ghost[k] += [4.0, -3.0]  # an estimate on a ghost 5 m off
        assert unexplained_echo(sub, g, ghost) > 0.5
    assert unexplained_echo(sub, g, np.zeros((0, 2))) == pytest.approx(1.0)


def test_close_pair_and_near_ap_user_at_their_true_positions_are_explained():
    """Hostile geometry: two users 0.4 m apart (one resolution cell of 2-wavelength arrays at
    10 m) and one user 1.5 m from an AP; the true set explains the echo."""
    rng = np.random.default_rng(21)
    g0 = three_ap_cluster(np.random.default_rng(5), 1.0)
    ang = rng.uniform(0, 2 * np.pi)
    a = np.array([9.3, 11.1])
    users = np.stack([a, a + 0.4 * np.array([np.cos(ang), np.sin(ang)]),
                      g0.ap_centers_m[1] + 1.5 * np.array([-0.6, 0.8])])
    g, sub, _ = _scene(5, 1.0, users)
    np.testing.assert_array_equal(g.ap_centers_m, g0.ap_centers_m)
    assert unexplained_echo(sub, g, users) < 0.5
    assert unexplained_echo(sub, g, users[:2]) > 0.9  # the near-AP user left out
