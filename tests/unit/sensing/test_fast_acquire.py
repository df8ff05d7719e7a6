"""The fast acquisition on a central sub-aperture and its guard (``localize._sub_problem``,
``localize._clean_set``, the full-aperture fall back of ``localize_cluster``).

Independent references: the central elements of a ULA are a shorter ULA on the same centre and
axis (their responses are slices of the full responses, exactly); the ML image of the
sub-problem is the matched filter of those elements, recomputed here with einsum from the full
``D`` and the full responses; a missed user leaves its echo unexplained (spec isac.md 2.4, see
``test_unexplained.py``). Geometries are our own random three-AP clusters, users off any grid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import netsim.sensing.localize as loc
from netsim.sensing.acquire import echo_subspace
from netsim.sensing.config import IsacGeometry
from netsim.sensing.ml import MlProblem, ml_image, near_response

sys.path.insert(0, str(Path(__file__).parent))
from sensing_scenes import LAM, NOISE, echo_frame, three_ap_cluster  # noqa: E402


@pytest.mark.parametrize(("n", "n_sub"), [(16, 8), (21, 11), (17, 9)])
def test_sub_problem_is_the_central_elements_matched_filter(n, n_sub):
    rng = np.random.default_rng(n)
    g0 = three_ap_cluster(rng, 2.0)
    g = IsacGeometry(ap_centers_m=g0.ap_centers_m, ap_axis_rad=g0.ap_axis_rad, n_antennas=n,
                     spacing_m=g0.spacing_m, wavelength_m=LAM, kappa0=g0.kappa0)
    m = g.n_aps
    d = rng.standard_normal((m * n, m * n)) + 1j * rng.standard_normal((m * n, m * n))
    r = np.stack([np.diag(rng.uniform(0.5, 2.0, n)).astype(complex) for _ in range(m)])  # not isotropic
    prob = MlProblem.from_statistics(g, d, r)
    sp = loc._sub_problem(prob)
    assert sp.geom.n_antennas == n_sub
    i0 = (n - n_sub) // 2
    sl = slice(i0, i0 + n_sub)
    pts = rng.uniform(-5, 30, (40, 2))  # off-grid points
    a = near_response(g, pts)  # [P, M, N]
    np.testing.assert_allclose(near_response(sp.geom, pts), a[..., sl], atol=1e-12)
    # matched filter of the central elements: sum over paths |a_s^H D_st conj a_t|^2 / (N' a_t^T R_t conj a_t)
    asub = a[..., sl]  # [P, M, N']
    dsub = d.reshape(m, n, m, n)[:, sl][:, :, :, sl]  # [M(s), N', M(t), N']
    c = np.einsum("psi,sitj,ptj->pst", asub.conj(), dsub, asub.conj())  # [P, M, M]
    rsub = r[:, sl, sl]
    hpp = n_sub * np.einsum("pti,tij,ptj->pt", asub, rsub, asub.conj()).real  # [P, M(t)]
    ref = np.sum(np.abs(c) ** 2 / hpp[:, None, :], axis=(1, 2))
    np.testing.assert_allclose(ml_image(sp, pts), ref, rtol=2e-4)  # complex64 image


def test_small_arrays_are_not_sub_sampled():
    g = three_ap_cluster(np.random.default_rng(1), 0.5)
    g8 = IsacGeometry(ap_centers_m=g.ap_centers_m, ap_axis_rad=g.ap_axis_rad, n_antennas=8,
                      spacing_m=g.spacing_m, wavelength_m=LAM, kappa0=g.kappa0)
    prob = MlProblem.from_statistics(g8, np.eye(24, dtype=complex), np.stack([np.eye(8, dtype=complex)] * 3))
    assert loc._sub_problem(prob) is prob


def _cluster(seed, spacing_wl, users):
    rng = np.random.default_rng(seed)
    g = three_ap_cluster(rng, spacing_wl)
    st, crlb = echo_frame(g, users, rng)
    return g, st, crlb


@pytest.mark.parametrize(("seed", "spacing_wl"), [(3, 0.5), (5, 1.0), (8, 2.0)])
def test_clean_set_accepts_the_true_users_and_rejects_a_missed_user_or_a_ghost(seed, spacing_wl):
    rng = np.random.default_rng(7)
    users = np.array([[8.0, 9.0], [17.0, 6.0], [6.0, 18.0]]) + rng.uniform(-1, 1, (3, 2))
    g, st, _ = _cluster(seed, spacing_wl, users)
    sub = echo_subspace(st.cov, g.n_aps, g.n_antennas, NOISE, st.n_snapshots, 3 * g.n_aps)
    assert loc._clean_set(lambda: sub, g, users, 3)
    for k in range(3):
        assert not loc._clean_set(lambda: sub, g, np.delete(users, k, axis=0), 3)  # a user missed
        ghost = users.copy()
        ghost[k] += [4.0, -3.0]
        assert not loc._clean_set(lambda: sub, g, ghost, 3)  # a ghost 5 m off in its place
    nan = users.copy()
    nan[0] = np.nan
    assert not loc._clean_set(lambda: sub, g, nan, 3)


@pytest.mark.parametrize(("seed", "spacing_wl"), [(11, 2.0), (12, 0.5)])
def test_fast_acquisition_finds_off_grid_users_and_falls_back_on_a_close_pair(seed, spacing_wl, monkeypatch):
    """Off-grid users, one of them 1.2 m from an AP: the sub-aperture acquisition is kept and
    every user is within 3 sqrt(CRLB) (or 1 cm). Then two users 0.3 m apart at 15 m, which
    the half aperture cannot resolve: whichever path answers, every user is still found."""
    rng = np.random.default_rng(seed)
    g0 = three_ap_cluster(np.random.default_rng(seed), spacing_wl)
    near = g0.ap_centers_m[2] + 1.2 * np.array([0.8, -0.6])
    users = np.stack([[9.0, 7.0] + rng.uniform(-1, 1, 2), [15.0, 14.0] + rng.uniform(-1, 1, 2), near])
    calls: list[bool] = []
    orig = loc._acquire_set

    def spy(subspace, prob, img_prob, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(img_prob is prob)  # True: the full-aperture acquisition
        return orig(subspace, prob, img_prob, *a, **k)

    monkeypatch.setattr(loc, "_acquire_set", spy)
    lo, hi = np.array([-10.0, -10.0]), np.array([35.0, 35.0])
    for pts in (users, np.stack([users[0], users[1], users[1] + 0.3 * np.array([0.6, 0.8])])):
        g, st, crlb = _cluster(seed, spacing_wl, pts)
        calls.clear()
        res = loc.localize_cluster(st, g, NOISE, 3, lo, hi, 0.25, anchors_m=pts, exclusion_m=0.32)
        assert calls[0] is False  # the fast acquisition runs first
        err = np.linalg.norm(res.positions_m - pts, axis=1)
        assert np.all(res.detected)
        assert np.all((err <= 3 * np.sqrt(crlb)) | (err <= 0.01)), (err, np.sqrt(crlb), calls)
        if pts is users:
            assert calls == [False]  # kept: no full-aperture acquisition
