"""The error-ignorant design TD-ISAC-EI: bisection with the SOCP (22)-(23) (seed 003, spec 3.7)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from netsim.comm.robust_bisection import path_bisection
from netsim.comm.robust_cache import ProblemCache
from netsim.comm.robust_model import (
    _CLARABEL_OPTS,
    _CLARABEL_RETRY_OPTS,
    _OK,
    ReducedProblem,
    _reraise_interrupt,
    rate_upper_bound,
)


def _ei_problem(red: ReducedProblem):  # noqa: ANN202 - cvxpy objects
    """The SOCP (22) with channels (``p_g``: rows g_k^H), ``sqrt(gamma)`` (``sg``),
    ``sqrt(gamma) g_k^H`` (``p_gs``, so the problem stays DPP) and budget as parameters."""
    import cvxpy as cp

    k_users, d = red.n_users, red.dim
    e = red.indicator
    sg = cp.Parameter(nonneg=True, value=1.0)
    p_g = cp.Parameter((k_users, d), complex=True)
    p_gs = cp.Parameter((k_users, d), complex=True)
    p_pbar = cp.Parameter(nonneg=True)
    x = cp.Variable((k_users, d), complex=True)
    cons = []
    for k in range(k_users):
        cons.append(cp.imag(p_g[k] @ x[k]) == 0)
        others = [p_gs[k] @ x[j] for j in range(k_users) if j != k]
        # sqrt(gamma) ||[g^H x_j (j != k), 1]|| = ||[sqrt(gamma) g^H x_j, sqrt(gamma)]||
        vec = cp.hstack(others + [cp.reshape(sg, (1,), order="C")]) if others else cp.reshape(sg, (1,), order="C")
        cons.append(cp.real(p_g[k] @ x[k]) >= cp.norm(vec, 2))
    serves = red.serves
    for mm in range(red.n_aps):
        idx = np.nonzero(e[:, mm])[0]
        if idx.size == 0:
            continue
        cons.append(cp.sum_squares(x[:, idx]) <= p_pbar)
        for kk in np.nonzero(~serves[mm])[0]:
            cons.append(x[kk, idx] == 0)
    return cp.Problem(cp.Minimize(0), cons), x, sg, p_g, p_gs, p_pbar


def ei_socp(red: ReducedProblem, rho: float, zeta: float = 1e-2,
            guess: float | None = None, cache: ProblemCache | None = None) -> tuple[float, NDArray[np.complex128] | None, int]:
    """Bisection on t with the SOCP (22) (eps = 0); returns (t, x (K, d) normalised reduced, n_solves).

    ``guess``: expected threshold (same result, fewer solves; see :func:`path_bisection`).
    ``cache``: keeps the compiled SOCP (channels, threshold and budget are parameters) for the
    next call with the same dimensions and serving pattern; each call starts a fresh solver.
    """
    k_users, d = red.n_users, red.dim
    key = ("ei_socp", k_users, d, red.n_aps, red.ap_of.tobytes(), red.serves.tobytes())
    got = None if cache is None else cache.get(key)
    if got is None:
        got = _ei_problem(red)
        if cache is not None:
            cache.put(key, got)
    prob, x, sg, p_g, p_gs, p_pbar = got
    prob._solver_cache = {}  # a fresh solver per design (the bisection below warm-starts it)
    gc = red.g.conj()  # [K, d]
    p_g.value = gc
    p_pbar.value = float(red.pbar)

    def solve_at(t: float) -> tuple[bool, NDArray[np.complex128] | None]:
        sg.value = float(np.sqrt(2.0 ** (t / rho) - 1.0))
        p_gs.value = sg.value * gc
        # Clarabel, then Clarabel again with more regularisation (on isac_paper its rare
        # numerical failures are all decided by that retry, at ~1/40 of an SCS fallback's cost),
        # then SCS
        for sv, opts, warm in (("CLARABEL", _CLARABEL_OPTS, True), ("CLARABEL", _CLARABEL_RETRY_OPTS, False),
                               ("SCS", {}, True)):
            try:
                # cvxpy's cached solver, as before: EI's accepted points are not re-verified and its
                # certificate moved a lot with fresh solvers (0.67 vs 1.19 on an isac_paper frame)
                prob.solve(solver=sv, warm_start=warm, **opts)
                if prob.status in _OK:
                    return True, np.asarray(x.value)
                if prob.status in ("infeasible", "infeasible_inaccurate"):
                    return False, None
            except BaseException as exc:  # noqa: BLE001 - includes pyo3 PanicException
                _reraise_interrupt(exc)
                continue
        return False, None

    lo, best, n = path_bisection(solve_at, 0.0, rate_upper_bound(red, rho), zeta, guess)
    return lo, best, n
