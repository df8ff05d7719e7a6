"""Interior-point solves of the fixed-basis robust model (26) (netsim.comm.robust_dir_ipm): the
MRT model and the re-powering of extracted directions.

Reference: cvxpy + Clarabel on the same model (netsim.comm.robust_sdp._RobustSdp, an independent
solver) on random instances of our own (random channels, radii and beams; not the bundled
scenario): the same Bi-RBO threshold (the plain bisection path, so the same decisions), the same
minimum power at a feasible threshold, and a point that passes the numerical check of (13).
"""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm import robust_dir_ipm as dip
from netsim.comm.robust import bi_rbo, reduce_problem
from netsim.comm.robust_model import mrt_bases
from netsim.comm.robust_sdp import _RobustSdp, verified_point


def _instance(seed: int, k: int = 3, m: int = 2, n: int = 3, exact_user: bool = False):
    rng = np.random.default_rng(seed)
    h = (rng.standard_normal((k, m * n)) + 1j * rng.standard_normal((k, m * n))) * 10 ** rng.uniform(-4, -3)
    nrm = np.linalg.norm(h.reshape(k, m, n), axis=-1).T  # [M, K]
    eps = nrm * rng.uniform(0.03, 0.15, size=(m, k))
    if exact_user:
        eps[:, 0] = 0.0
    red = reduce_problem(h, eps, p_max_w=0.1, noise_w=1e-10, n_aps=m)
    beams = red.g.conj() + 0.4 * (rng.standard_normal(red.g.shape) + 1j * rng.standard_normal(red.g.shape))  # [K, d]
    dirs = [b[:, None] / np.linalg.norm(b) for b in beams]
    return red, dirs


@pytest.mark.parametrize("seed,kind,exact_user", [(51, "dirs", False), (52, "mrt", False), (53, "dirs", True)])
def test_same_threshold_and_min_power_as_clarabel(seed, kind, exact_user):  # noqa: ANN001
    red, dirs = _instance(seed, exact_user=exact_user)
    kw = {"directions": dirs} if kind == "dirs" else {"mrt": True}
    rho, zeta = 0.8, 0.05
    ref = bi_rbo(red, rho, zeta, solver="clarabel", **kw)
    got = bi_rbo(red, rho, zeta, solver="ipm", **kw)
    assert ref.feasible and got.feasible
    assert got.t == ref.t  # the same midpoints of the plain path were feasible
    gamma = 2.0 ** (got.t / rho) - 1.0
    assert verified_point(red, got.w_mats, got.lam, gamma)
    p_ref = float(np.real(np.trace(ref.w_mats, axis1=1, axis2=2)).sum())
    p_got = float(np.real(np.trace(got.w_mats, axis1=1, axis2=2)).sum())
    assert abs(p_got - p_ref) <= 1e-5 * p_ref
    # the P_k it reports are the covariances: W_k = B_k P_k B_k^H
    bases = [d for d in dirs] if kind == "dirs" else mrt_bases(red)
    for b, pk, wk in zip(bases, got.p_mats, got.w_mats, strict=True):
        assert np.allclose(b @ pk @ b.conj().T, wk, atol=1e-9 * np.abs(wk).max())


def test_decisions_on_both_sides_of_the_boundary():
    red, dirs = _instance(54)
    rho = 0.8
    t_star = bi_rbo(red, rho, 0.01, directions=dirs, solver="clarabel").t
    data = dip.dir_structure(dirs, red.g, red.indicator, red.eps2, red.pbar)
    sdp = _RobustSdp(red, directions=dirs)
    for t in (0.5 * t_star, 0.9 * t_star, 1.1 * t_star + 0.02, 2.0 * t_star):
        gamma = 2.0 ** (t / rho) - 1.0
        dec = dip.decide_dir(data, gamma, lambda w, lam, g=gamma: verified_point(red, w, lam, g))
        ok_ref, _, _ = sdp.solve(gamma)
        assert dec.feasible is ok_ref


def test_structure_refuses_what_it_cannot_solve():
    red, dirs = _instance(55)
    eps2 = red.eps2.copy()
    eps2[0, 1] = 0.0  # one zero radius of a user with others non-zero: unbounded multiplier
    assert dip.dir_structure(dirs, red.g, red.indicator, eps2, red.pbar) is None
    flat = [np.zeros_like(dirs[0])] + dirs[1:]  # an empty direction
    assert dip.dir_structure(flat, red.g, red.indicator, red.eps2, red.pbar) is None
    # bi_rbo then solves with Clarabel, same answer as asking for it
    bad = reduce_problem(red.g @ red.basis.T * np.sqrt(red.eta2), np.sqrt(eps2 * red.eta2), 0.1, 1e-10, 2)
    a = bi_rbo(bad, 0.8, 0.05, directions=dirs, solver="ipm")
    b = bi_rbo(bad, 0.8, 0.05, directions=dirs, solver="clarabel")
    assert a.t == b.t
