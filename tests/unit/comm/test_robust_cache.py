"""Compiled-problem cache of the robust designs (netsim.comm.robust_cache.ProblemCache).

The certificate SDP (worst_case_sinr) through a cache must give bit-identical SINRs and
multipliers to a fresh compile, for problems of different sizes in any order; the EI SOCP with
its channels as parameters must be the same problem as one written with the channels as
constants (same bisection threshold, a feasible point of the SOCP); a pickled cache is empty.
"""

from __future__ import annotations

import pickle

import numpy as np

from netsim.comm.robust import ei_socp, reduce_problem, worst_case_sinr
from netsim.comm.robust_cache import ProblemCache


def _instance(rng: np.random.Generator, m: int, n: int, k: int):  # noqa: ANN202
    h = (rng.standard_normal((k, m * n)) + 1j * rng.standard_normal((k, m * n))) * 1e-5
    eps = rng.uniform(0.002, 0.02, size=(m, k)) * np.linalg.norm(h.reshape(k, m, n), axis=2).T
    red = reduce_problem(h, eps, 1.0, 1e-11, m)
    x = rng.standard_normal((k, red.dim)) + 1j * rng.standard_normal((k, red.dim))
    return red, x * np.sqrt(red.pbar / (4.0 * np.sum(np.abs(x) ** 2)))


def test_certificate_through_the_cache_is_bit_identical():
    rng = np.random.default_rng(31)
    cache = ProblemCache()
    sizes = [(2, 3, 2), (3, 2, 3), (2, 3, 2), (3, 2, 3)]  # two structures, each met twice
    for m, n, k in sizes:
        red, x = _instance(rng, m, n, k)
        gam0, lam0 = worst_case_sinr(red, x)
        gam1, lam1 = worst_case_sinr(red, x, cache=cache)
        np.testing.assert_array_equal(gam1, gam0)
        np.testing.assert_array_equal(lam1, lam0)
        assert np.any(gam0 > 0)  # a non-trivial certificate
    assert len(cache) == 2
    assert len(pickle.loads(pickle.dumps(cache))) == 0


def test_ei_socp_parameters_match_a_constant_model():
    """Threshold decisions of the cached parametrised SOCP against an independent cvxpy model of
    (22) with the channels as constants, on random instances solved in turn through one cache."""
    import cvxpy as cp

    rng = np.random.default_rng(5)
    cache = ProblemCache()
    for _ in range(3):
        red, _ = _instance(rng, 2, 3, 2)
        rho = 0.8
        t, x, _ = ei_socp(red, rho, 1e-2, cache=cache)
        assert x is not None and t > 0
        t_fresh, x_fresh, _ = ei_socp(red, rho, 1e-2)  # no cache (a resumed run): the same design
        assert t_fresh == t
        np.testing.assert_array_equal(x_fresh, x)
        for tt, expect in ((t, True), (t + 0.02, False)):
            gam = 2.0 ** (tt / rho) - 1.0
            xv = cp.Variable(x.shape, complex=True)
            cons = []
            for k in range(red.n_users):
                g = red.g[k]
                others = [g.conj() @ xv[j] for j in range(red.n_users) if j != k]
                cons += [cp.imag(g.conj() @ xv[k]) == 0,
                         cp.real(g.conj() @ xv[k]) >= np.sqrt(gam) * cp.norm(cp.hstack(others + [1.0]), 2)]
            for mm in range(red.n_aps):
                cons.append(cp.sum_squares(xv[:, red.ap_of == mm]) <= red.pbar)
            prob = cp.Problem(cp.Minimize(0), cons)
            prob.solve(solver="CLARABEL")
            assert (prob.status == "optimal") == expect
        # the returned point meets the SINR threshold at t (error-free) and every budget
        gam = 2.0 ** (t / rho) - 1.0
        gains = np.abs(red.g.conj() @ x.T) ** 2  # [K(user), K(beam)]
        sinr = np.diag(gains) / (gains.sum(axis=1) - np.diag(gains) + 1.0)
        assert np.all(sinr >= gam * (1 - 1e-4))
        per_ap = np.array([np.sum(np.abs(x[:, red.ap_of == mm]) ** 2) for mm in range(red.n_aps)])
        assert np.all(per_ap <= red.pbar * (1 + 1e-6))
    assert len(cache) == 1
