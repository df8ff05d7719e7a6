"""The structured interior-point method of the robust SDR (netsim.comm.robust_ipm).

References: identities of the Hermitian basis against plain traces, a problem with a closed-form
optimum, and cvxpy + Clarabel (an independent solver of the same SDR (14)) on random instances
of our own (not the bundled scenario): same feasibility decisions away from the boundary, the
same minimum power, and the same Bi-RBO threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm import robust_ipm as ipm
from netsim.comm.robust import bi_rbo, reduce_problem
from netsim.comm.robust_model import rate_upper_bound, zf_coordinates
from netsim.comm.robust_sdp import _RobustSdp, verified_point


def _herm(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d)) + 1j * rng.standard_normal((d, d))
    return a @ a.conj().T + 0.1 * np.eye(d)


def test_hermitian_basis_identities():
    rng = np.random.default_rng(11)
    hb = ipm.HermBasis(5)
    y, y2 = rng.standard_normal(25), rng.standard_normal(25)
    ym, ym2 = hb.unpack(y), hb.unpack(y2)
    assert np.allclose(ym, ym.conj().T)
    assert np.allclose(hb.pack(ym), y)
    u, v = _herm(rng, 5), _herm(rng, 5)
    assert np.isclose(y @ hb.dual(u), np.real(np.trace(ym @ u)))
    assert np.isclose(y @ hb.kron(v) @ y2, np.real(np.trace(v @ ym @ v @ ym2)))


def test_closed_form_optimum():
    # min tr Y  s.t.  Y >= 0, Y - I >= 0  (optimum Y = I, value d)
    d = 3
    hb = ipm.HermBasis(d)
    none = (np.zeros(0, dtype=np.int64), np.zeros((0, d, d), dtype=complex))
    blocks = [ipm._Block(np.eye(d, dtype=complex), np.ones(1), *none, np.zeros((d, d), dtype=complex)),
              ipm._Block(np.eye(d, dtype=complex), np.ones(1), *none, -np.eye(d, dtype=complex))]
    prob = ipm._Conic(hb, 1, 0, blocks, np.zeros((0, d * d)), np.zeros(0))
    x0 = hb.pack(4.0 * np.eye(d, dtype=complex))
    z0 = ([0.5 * np.eye(d, dtype=complex)] * 2, np.zeros(0))  # dual feasible: Z1 + Z2 = I
    res = ipm._ipm(prob, hb.dual(np.eye(d, dtype=complex)), x0, (z0[0], z0[1]), max_iter=40)
    assert res.status == "optimal"
    assert abs(res.pobj - d) < 1e-7
    assert np.allclose(hb.unpack(res.x), np.eye(d), atol=1e-6)


def _instance(seed: int, k: int = 2, m: int = 2, n: int = 3, exact_user: bool = False):
    rng = np.random.default_rng(seed)
    h = (rng.standard_normal((k, m * n)) + 1j * rng.standard_normal((k, m * n))) * 10 ** rng.uniform(-4, -3)
    nrm = np.linalg.norm(h.reshape(k, m, n), axis=-1).T  # [M, K]
    eps = nrm * rng.uniform(0.05, 0.3, size=(m, k))
    if exact_user:
        eps[:, 0] = 0.0
    return reduce_problem(h, eps, p_max_w=0.1, noise_w=1e-10, n_aps=m)


@pytest.mark.parametrize("seed,exact_user", [(1, False), (2, False), (3, True)])
def test_decisions_and_min_power_match_clarabel(seed, exact_user):
    red = _instance(seed, exact_user=exact_user)
    rho = 0.8
    ref = bi_rbo(red, rho, 0.05, solver="clarabel")
    assert ref.feasible
    sdp = _RobustSdp(red, dpp=True)
    for coords in (zf_coordinates(red.g), None):  # zero-forcing and direct coordinates
        data = ipm.sdr_structure(red.g, red.eps2, red.indicator, red.pbar, coords)
        for t, expect in ((0.5 * ref.t, True), (ref.t - 0.1, True), (ref.t + 0.15, False),
                          (rate_upper_bound(red, rho), False)):
            gamma = 2.0 ** (t / rho) - 1.0
            dec = ipm.decide(data, gamma, lambda w, lam, g=gamma: verified_point(red, w, lam, g))
            assert dec.feasible is expect, (t, ref.t)
            if expect:
                assert verified_point(red, dec.w, dec.lam, gamma)
        gamma = 2.0 ** ((ref.t - 0.1) / rho) - 1.0
        ok, w_ref, _ = sdp.solve(gamma)
        assert ok
        start = ipm.decide(data, gamma, lambda w, lam, g=gamma: verified_point(red, w, lam, g), interior=True)
        got = ipm.solve_min_power(data, gamma, start.x, lambda w, lam, g=gamma: verified_point(red, w, lam, g))
        assert got is not None
        p_ref = np.real(np.trace(w_ref, axis1=1, axis2=2)).sum()
        p_ipm = np.real(np.trace(got[0], axis1=1, axis2=2)).sum()
        assert abs(p_ipm - p_ref) <= 1e-5 * p_ref
    res = bi_rbo(red, rho, 0.05, solver="ipm")
    assert res.t == ref.t  # the same plain-path midpoint
    assert verified_point(red, res.w_mats, res.lam, 2.0 ** (res.t / rho) - 1.0)


def test_structure_refuses_partly_exact_users_and_bad_solver_name():
    red = _instance(4)
    eps2 = red.eps2.copy()
    eps2[0, 0] = 0.0  # one zero radius, the other not: unbounded multiplier
    assert ipm.sdr_structure(red.g, eps2, red.indicator, red.pbar, None) is None
    with pytest.raises(ValueError, match="SDR solver"):
        bi_rbo(red, 0.8, 0.05, solver="mosek")


def test_certificate_sdp_is_sound_and_at_least_clarabels():
    from netsim.comm.robust_cert_ipm import certificate_sdp
    from netsim.comm.robust_certify import monte_carlo_min_sinr, rank_one, worst_case_sinr

    for seed in (5, 6):
        red = _instance(seed, k=3)
        rho = 0.8
        res = bi_rbo(red, rho, 0.1, solver="ipm")
        x = rank_one(red, res.w_mats)  # [K, d]
        g_ref, _ = worst_case_sinr(red, x, solver="clarabel")
        g_ipm, _ = worst_case_sinr(red, x, solver="ipm")
        assert np.all(g_ipm >= g_ref * (1 - 1e-6))  # the optimum of the same SDP: never below
        # sound: no error on the balls (random boundary draws plus the adversarial one) does worse
        h_phys = red.g @ red.basis.T * np.sqrt(red.eta2)  # [K, MN] back to the estimates
        eps = np.sqrt(red.eps2 * red.eta2)  # [M, K]
        mc = monte_carlo_min_sinr(h_phys, eps, red.lift(x), red.noise_w, np.random.default_rng(seed), 2000)
        assert np.all(mc >= g_ipm * (1 - 1e-6))
    # a zero radius is refused (the caller then uses Clarabel)
    lmat = np.zeros((3, 2))
    lmat[:2, 0] = 1.0
    lmat[2] = [-0.1, 0.0]
    assert certificate_sdp(np.eye(3, dtype=complex), -np.eye(3, dtype=complex), lmat) is None
