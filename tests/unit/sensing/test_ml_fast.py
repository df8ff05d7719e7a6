"""Fast evaluation kernels of the ML step (issue 9, speed) against slow, independent oracles:
the steering vectors of ``netsim.sensing.steering``, per-point loops over paths, and the
concentrated likelihood written out with explicit matrix inverses. Geometries of our own
(random orientations, 2-wavelength spacing, off-grid points, points near an AP)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.sensing.config import IsacGeometry
from netsim.sensing.fim import isotropic_covariance
from netsim.sensing.ml import MlImage, MlImageCache, MlProblem, ml_image, near_response
from netsim.sensing.steering import array_response

LAM = 299_792_458.0 / 28e9


def geometry(rng: np.random.Generator, m: int = 3, n: int = 8) -> IsacGeometry:
    c = rng.uniform(0, 30, (m, 2))
    return IsacGeometry(ap_centers_m=c, ap_axis_rad=rng.uniform(0, np.pi, m), n_antennas=n,
                        spacing_m=2 * LAM, wavelength_m=LAM, kappa0=LAM / (4 * np.pi) ** 1.5)


def problem(rng: np.random.Generator, g: IsacGeometry, iso: bool) -> MlProblem:
    m, n = g.n_aps, g.n_antennas
    d = rng.standard_normal((m * n, m * n)) + 1j * rng.standard_normal((m * n, m * n))
    if iso:
        r = isotropic_covariance(g, 2.0)
    else:
        v = rng.standard_normal((m, n, n)) + 1j * rng.standard_normal((m, n, n))
        r = np.einsum("mij,mkj->mik", v, v.conj()) / n
    return MlProblem.from_statistics(g, d, r)


def slow_c(prob: MlProblem, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``c_st = a_s^H D_st conj(a_t)`` and ``H_pp,t = N a_t^T R_t conj(a_t)`` at one point, by loops."""
    g = prob.geom
    m, n = g.n_aps, g.n_antennas
    a = array_response(g, p[None])[0]  # [M, N]
    c = np.zeros((m, m), complex)
    for s in range(m):
        for t in range(m):
            c[s, t] = a[s].conj() @ prob.d[s, :, t, :] @ a[t].conj()
    hpp = np.array([n * (a[t] @ prob.r[t] @ a[t].conj()).real for t in range(m)])
    return c, hpp


def test_near_response_matches_the_steering_module_for_any_chunk():
    rng = np.random.default_rng(3)
    g = geometry(rng)
    pts = rng.uniform(-5, 35, (2500, 2))
    ref = array_response(g, pts)  # [P, M, N]
    for chunk in (1, 7, 1024, 10_000):
        np.testing.assert_allclose(near_response(g, pts, chunk=chunk), ref, rtol=0, atol=1e-9)
        a32 = near_response(g, pts, np.complex64, chunk=chunk)
        assert a32.dtype == np.complex64
        np.testing.assert_allclose(a32, ref, rtol=0, atol=1e-4)  # phase in float32: <= 1e-5 rad
    assert near_response(g, np.zeros((0, 2))).shape == (0, g.n_aps, g.n_antennas)
    assert near_response(g, pts[:6].reshape(2, 3, 2)).shape == (2, 3, g.n_aps, g.n_antennas)


@pytest.mark.parametrize("iso", [True, False])
def test_ml_image_equals_a_per_point_loop(iso):
    rng = np.random.default_rng(4 + iso)
    g = geometry(rng)
    prob = problem(rng, g, iso)
    pts = np.concatenate([rng.uniform(0, 30, (40, 2)), g.ap_centers_m + 0.2])  # near APs too
    img = ml_image(prob, pts)
    ref = []
    for p in pts:
        c, hpp = slow_c(prob, p)
        ref.append(np.sum(np.abs(c) ** 2 / hpp[None, :]))
    np.testing.assert_allclose(img, ref, rtol=2e-5)  # complex64 responses


@pytest.mark.parametrize("iso", [True, False])
def test_residual_image_equals_the_image_of_the_explicit_residual(iso):
    """Rank-J update of :class:`MlImage` vs the image of ``D - sum_j beta a_s a_t^T R_t`` formed
    block by block (the fitted echo written out)."""
    rng = np.random.default_rng(6 + iso)
    g = geometry(rng)
    prob = problem(rng, g, iso)
    pts = rng.uniform(0, 30, (300, 2))
    fit = rng.uniform(0, 30, (3, 2))
    cache = MlImageCache(prob)
    im = cache.get(pts)
    assert cache.get(pts.copy()) is im  # same points: same image terms
    a, beta = prob.fit_gains(fit)  # [J, M, N], [M, M, J]
    m = g.n_aps
    d2 = prob.d.copy()
    for s in range(m):
        for t in range(m):
            for j in range(fit.shape[0]):
                d2[s, :, t, :] -= beta[s, t, j] * np.outer(a[j, s], a[j, t] @ prob.r[t])
    ref = ml_image(MlProblem(g, d2, prob.r), pts)
    got = im.values(fit)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * ref.max())
    np.testing.assert_allclose(im.values(None), ml_image(prob, pts), rtol=1e-6)
    # the fitted users explain their own echo: the residual image there is (nearly) zero
    at_fit = MlImage(prob, fit).values(fit)
    assert np.all(at_fit < 1e-3 * ml_image(prob, fit))


def concentrated(prob: MlProblem, pos: np.ndarray) -> float:
    """``sum_paths c_S^H H_SS^{-1} c_S`` with explicit inverses (the ML criterion's definition)."""
    g = prob.geom
    m = g.n_aps
    a = array_response(g, pos)  # [J, M, N]
    tot = 0.0
    for s in range(m):
        for t in range(m):
            c = np.array([a[i, s].conj() @ prob.d[s, :, t, :] @ a[i, t].conj() for i in range(len(pos))])
            h = np.array([[(a[i, s].conj() @ a[j, s]) * (a[j, t] @ prob.r[t] @ a[i, t].conj())
                           for j in range(len(pos))] for i in range(len(pos))])
            tot += float(np.real(c.conj() @ np.linalg.solve(h, c)))
    return tot


@pytest.mark.parametrize("iso", [True, False])
def test_criterion_is_the_likelihood_gain_of_one_more_user(iso):
    """``f_k(p) = f(others + p) - f(others)`` (Schur complement) at trial points, for 0 and 2 others."""
    rng = np.random.default_rng(8 + iso)
    g = geometry(rng)
    prob = problem(rng, g, iso)
    trial = rng.uniform(0, 30, (1, 5, 2))
    for n_others in (0, 2):
        others = rng.uniform(0, 30, (n_others, 2))
        a_o, w, minv = prob.new_user_terms(others if n_others else None)
        got = prob.criterion(trial, a_o, w, minv)[0]  # [5]
        per = prob.criterion(trial, a_o, w, minv, per_path=True)[0]  # [5, M, M]
        np.testing.assert_allclose(per.sum(axis=(-2, -1)), got, rtol=1e-12)
        base = concentrated(prob, others) if n_others else 0.0
        ref = [concentrated(prob, np.concatenate([others, p[None]])) - base for p in trial[0]]
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9 * max(abs(base), 1.0))


def test_stencil_follow_reaches_the_same_peak_with_fewer_stages():
    """``maximize_2d(follow=16)`` (the ML step's setting) vs the default: same maximiser of a
    smooth anisotropic peak (closed-form location) to the tolerance, no more objective calls."""
    from netsim.sensing.optimize import maximize_2d

    rng = np.random.default_rng(11)
    p0 = rng.uniform(-1, 1, (6, 2))  # [B, 2] true peaks
    a = np.array([[3.0, 1.0], [1.0, 2.0]]) * 1e3  # curvature [1/m^2]
    calls = {4.0: 0, 16.0: 0}

    def make(follow):
        def fun(idx, pts):
            calls[follow] += 1
            d = pts - p0[idx][:, None, :]  # [b, S, 2]
            return np.exp(-np.einsum("bsi,ij,bsj->bs", d, a, d))
        return fun

    start = p0 + rng.uniform(-0.02, 0.02, p0.shape)
    for follow in (4.0, 16.0):
        p, f = maximize_2d(make(follow), start, 0.03, 1e-7, follow=follow)
        np.testing.assert_allclose(p, p0, atol=1e-6)
    assert calls[16.0] <= calls[4.0]


def test_grid_cache_gives_the_same_images_and_is_not_pickled():
    """GridCache (frame 0's acquisition grids reused by frame 1): the same points, masks and
    images as computed afresh, for two problems (two frames) on one geometry; another geometry
    gets its own entry; the cap keeps nothing beyond it; a pickle carries no arrays."""
    import pickle

    from netsim.sensing.acquire import _exclude
    from netsim.sensing.steering import GridCache

    rng = np.random.default_rng(21)
    g = geometry(rng)
    lo, hi = np.array([-1.3, 0.2]), np.array([31.7, 29.9])
    cache = GridCache()
    for frame in range(2):
        prob = problem(rng, g, iso=frame == 0)
        pts, ok = cache.grid(g, lo, hi, 57, 41, 0.3)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 57), np.linspace(lo[1], hi[1], 41))
        ref = np.stack([gx, gy], axis=-1)
        assert np.array_equal(pts, ref) and np.array_equal(ok, _exclude(g, ref, 0.3))
        fresh = MlImageCache(prob).get(pts[ok])
        kept = MlImageCache(prob, cache).get(pts[ok])
        assert np.array_equal(kept.a, fresh.a) and np.array_equal(kept.values(), fresh.values())
        others = pts[ok][:2] + 0.013
        assert np.array_equal(kept.values(others), fresh.values(others))
    g2 = geometry(rng)
    assert not np.array_equal(cache.response(g2, pts[ok][:5]), cache.response(g, pts[ok][:5]))
    assert len(cache._resp) == 3
    small = GridCache(max_entries=10)
    small.response(g, pts[ok][:5])
    assert small._n == 0 and not small._resp
    back = pickle.loads(pickle.dumps(cache))
    assert not back._resp and not back._grids and back.max_entries == cache.max_entries


def test_isotropic_shortcut_and_batched_others_terms_change_no_bit():
    """The criterion's ``R_t = sigma_t I`` shortcut (``sigma_t conj(a_t)`` for ``R_t conj(a_t)``)
    gives the bits of the general product, and :meth:`MlProblem.others_terms` (every user's
    leave-one-out inverse in one batched call) equals a per-user loop of explicit inverses
    (random geometries, 1-4 others, points off any grid; in the box and outside it)."""
    for seed in range(6):
        rng = np.random.default_rng(40 + seed)
        g = geometry(rng, m=int(rng.integers(1, 4)), n=int(rng.integers(4, 17)))
        prob = MlProblem.from_statistics(g, problem(rng, g, True).d, isotropic_covariance(g, 2.0),
                                         [2.0, 2.0], [28.0, 28.0], 0.3)
        assert prob._r_iso is not None
        general = MlProblem(prob.geom, prob.d, prob.r, prob.lo, prob.hi, prob.exclusion_m)
        general.__dict__["_r_iso"] = None  # the matmul path
        k = int(rng.integers(2, 6))
        pos = rng.uniform(0, 30, (k, 2))
        a, w, minv = prob.others_terms(pos)
        trial = rng.uniform(-2, 32, (k, 7, 2))
        for per_path in (False, True):
            np.testing.assert_array_equal(prob.criterion(trial, a, w, minv, per_path=per_path),
                                          general.criterion(trial, a, w, minv, per_path=per_path))
        # per-user loop: H_OO of the others, regularised as documented, inverted explicitly
        c, rv, _ = prob._path_terms(a)
        h = np.einsum("isn,jsn->sij", a.conj(), a)[:, None] * np.einsum("jtn,itn->tij", a, rv)[None]
        for kk in range(k):
            o = np.delete(np.arange(k), kk)
            hoo = h[:, :, o[:, None], o[None, :]]
            reg = 1e-10 * np.abs(np.trace(hoo, axis1=-2, axis2=-1))[..., None, None] * np.eye(o.size)
            inv = np.linalg.inv(hoo + reg)  # [M, M, |O|, |O|]
            np.testing.assert_array_equal(minv[kk][..., o[:, None], o[None, :]], inv)
            np.testing.assert_allclose(w[kk][..., o], np.einsum("stij,stj->sti", inv, np.moveaxis(c[o], 0, -1)),
                                       rtol=1e-12, atol=0)
            assert not np.any(w[kk][..., kk]) and not np.any(minv[kk][..., kk, :]) and not np.any(minv[kk][..., kk])


def test_others_terms_rows_are_the_full_rows_bit_for_bit():
    """``others_terms(pos, rows)`` (only the users the climbs move) returns the rows of the full
    call with the same bits, in the order asked (random geometries, 2-9 users, any subset,
    repeated and unsorted rows); ``new_user_terms`` (one row) equals the last row of the full
    call; no row, or a single user, gives empty/zero terms of the documented shapes."""
    for seed in range(8):
        rng = np.random.default_rng(70 + seed)
        g = geometry(rng, m=int(rng.integers(1, 5)), n=int(rng.integers(4, 17)))
        prob = problem(rng, g, bool(seed % 2))
        k = int(rng.integers(2, 10))
        pos = rng.uniform(0, 30, (k, 2))
        a, w, minv = prob.others_terms(pos)
        for rows in (rng.permutation(k)[: int(rng.integers(1, k + 1))], np.array([k - 1, 0, k - 1])):
            a_r, w_r, minv_r = prob.others_terms(pos, rows)
            assert np.array_equal(a_r, a)
            assert w_r.shape == (rows.size, g.n_aps, g.n_aps, k) and minv_r.shape == (rows.size, g.n_aps, g.n_aps, k, k)
            assert np.array_equal(w_r, w[rows]) and np.array_equal(minv_r, minv[rows])
        a_n, w_n, minv_n = prob.new_user_terms(pos[:-1])
        _, w_f, minv_f = prob.others_terms(np.concatenate([pos[:-1], pos[:1]]))
        assert np.array_equal(w_n, w_f[-1:, :, :, :-1]) and np.array_equal(minv_n, minv_f[-1:, :, :, :-1, :-1])
        _, w0, minv0 = prob.others_terms(pos, np.zeros(0, dtype=int))
        assert w0.shape == (0, g.n_aps, g.n_aps, k) and minv0.shape == (0, g.n_aps, g.n_aps, k, k)
        _, w1, minv1 = prob.others_terms(pos[:1], [0])
        assert w1.shape == (1, g.n_aps, g.n_aps, 1) and not np.any(w1) and not np.any(minv1)
