"""Rank-one extraction, robust re-powering, certified worst-case SINRs, Monte-Carlo check and
the margin (15)-(16) of the robust designs (seed 003 Alg. 2 step 6, spec 3.6, 8.1 check 7)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.comm.robust_bisection import bi_rbo
from netsim.comm.robust_cache import ProblemCache
from netsim.comm.robust_cert_batch import certificate_sdp_batch
from netsim.comm.robust_model import (
    _CLARABEL_OPTS,
    _CLARABEL_RETRY_OPTS,
    _OK,
    ReducedProblem,
    _phi,
    _received_powers,
    _reraise_interrupt,
)


def rank_one(red: ReducedProblem, w_mats: NDArray[np.complex128]) -> NDArray[np.complex128]:
    """Principal-eigenvector extraction with per-AP feasibility scaling eta (Alg. 2 step 6).

    Returns normalised reduced beamformers x (K, d): ``x_k = sqrt(eta lambda_max) v_max``,
    ``eta = min(1, min_m pbar / sum_k ||D_m x_k||^2)``; with serving clusters, x_k is zeroed on
    the APs that do not serve user k.
    """
    w, v = np.linalg.eigh(w_mats)  # [K, d], [K, d, d]
    x = np.sqrt(np.maximum(w[:, -1], 0.0))[:, None] * v[:, :, -1]  # [K, d]
    if red.serving is not None:  # clusters: the SDP meets "no power on AP m" only to solver accuracy
        x = x * (red.indicator @ red.serving).T  # [K, d] zero on the coordinates of non-serving APs
    pw = (np.abs(x) ** 2) @ red.indicator  # [K, M]
    eta = min(1.0, float(np.min(red.pbar / np.maximum(pw.sum(axis=0), 1e-300))))
    return np.sqrt(eta) * x


def repower(red: ReducedProblem, x: NDArray[np.complex128], rho: float, zeta: float = 1e-2,
            guess: float | None = None, solver: str = "clarabel") -> NDArray[np.complex128] | None:
    """Robust power re-optimisation of fixed beam directions (netsim addition to Alg. 2 step 6).

    Bi-RBO restricted to ``W_k = p_k b_k b_k^H`` with ``b_k = x_k / ||x_k||`` (the model (26)
    with one direction per user): the scaling ``eta`` of the rank-one step shrinks every user
    alike, this gives each user the power the certificate needs. Returns normalised reduced
    beamformers (K, d) ``sqrt(p_k) b_k``, or None if nothing is feasible. ``guess`` is an
    expected threshold for the bisection, ``solver`` who decides its steps (see :func:`bi_rbo`).
    """
    return _repower(red, x, rho, zeta, guess, solver=solver)[0]


def _repower(red: ReducedProblem, x: NDArray[np.complex128], rho: float, zeta: float,
             guess: float | None, known: dict[float, bool] | None = None,
             solver: str = "clarabel") -> tuple[NDArray[np.complex128] | None, float, int]:
    """:func:`repower` plus its threshold t and the number of solves (``known``: see :func:`bi_rbo`)."""
    nrm = np.linalg.norm(x, axis=1)
    if np.any(nrm <= 0):
        return None, 0.0, 0
    b = x / nrm[:, None]
    res = bi_rbo(red, rho, zeta, directions=[bk[:, None] for bk in b], guess=guess, known=known, solver=solver)
    if not res.feasible or res.p_mats is None:
        return None, 0.0, res.n_solves
    p = np.maximum(np.array([np.real(pk.reshape(-1)[0]) for pk in res.p_mats]), 0.0)  # [K]
    return np.sqrt(p)[:, None] * b, float(res.t), res.n_solves


def _lmi_gamma_max(red: ReducedProblem, w_mats, lam, k, gamma_hi) -> float:  # noqa: ANN001
    """Largest gamma in [0, gamma_hi] with Phi_k(gamma, lam) >= 0 (Phi is decreasing in gamma).

    ``Phi(gamma) = B + gamma A1`` with ``B = Phi(0)`` and ``A1 = Phi(1) - Phi(0) <= 0``; for B
    positive definite the boundary is ``gamma* = 1 / mu_max`` with ``mu_max`` the largest
    generalised eigenvalue of ``(-A1, B)``. That value (or the next smaller float multiples of
    it) is accepted only where the same numerical test as the bisection's
    (``lambda_min(Phi) >= 0``) passes; otherwise the bisection on gamma decides (60 halvings).
    """
    from scipy.linalg import LinAlgError, eigh

    p0 = _phi(red, w_mats, lam, 0.0, k)
    if np.linalg.eigvalsh(p0)[0] < 0:
        return 0.0
    lo, hi = 0.0, gamma_hi
    if np.linalg.eigvalsh(_phi(red, w_mats, lam, hi, k))[0] >= 0:
        return hi
    try:
        mu = eigh(p0 - _phi(red, w_mats, lam, 1.0, k), p0, eigvals_only=True, check_finite=False)[-1]
    except (LinAlgError, ValueError):  # B singular (not positive definite): bisection below
        mu = 0.0
    if mu > 0 and np.isfinite(mu):
        g_cf = min(1.0 / float(mu), hi)
        for shrink in (0.0, 1e-13, 1e-11, 1e-9):
            g_try = g_cf * (1.0 - shrink)
            if np.linalg.eigvalsh(_phi(red, w_mats, lam, g_try, k))[0] >= 0:
                return g_try
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.linalg.eigvalsh(_phi(red, w_mats, lam, mid, k))[0] >= 0:
            lo = mid
        else:
            hi = mid
    return lo


def worst_case_sinr(red: ReducedProblem, x: NDArray[np.complex128], w_mats: NDArray[np.complex128] | None = None,
                    cache: ProblemCache | None = None, solver: str = "clarabel") -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Certified worst-case SINR of fixed beamformers (spec 3.6 post-processing).

    Per user k: ``max gamma`` s.t. ``Phi_k(gamma, lam_{.,k}) >= 0``, ``lam >= 0`` (affine in both,
    one small SDP), then the lam found is verified by an exact numpy bisection on gamma.

    Parameters
    ----------
    red : ReducedProblem (radii set with :meth:`ReducedProblem.with_eps`)
    x : ndarray (K, d) complex, normalised reduced beamformers (ignored if ``w_mats`` given).
    w_mats : ndarray (K, d, d) complex or None
        Certify general (SDR) covariances W_k instead of ``x x^H``.
    cache : ProblemCache or None
        Keeps the compiled per-user SDP for later calls of the same (d, M) (same results).
    solver : {"clarabel", "ipm"}
        Who solves the per-user SDP: cvxpy + Clarabel, or the interior-point method of
        :func:`netsim.comm.robust_cert_batch.certificate_sdp_batch`, every user in one batched run
        (Clarabel where it does not apply or converge). Either way the multipliers are verified
        by the exact test on gamma.

    Returns
    -------
    gamma : ndarray (K,) certified SINR; lam : ndarray (M, K).
    """
    k_users, m, d = red.n_users, red.n_aps, red.dim
    if w_mats is None:
        w_mats = np.einsum("ki,kj->kij", x, x.conj())  # [K, d, d]
    e = red.indicator
    gam_out = np.zeros(k_users)
    lam_out = np.zeros((m, k_users))
    exact = red.exact_users
    prob = None
    s_all = w_mats.sum(axis=0)  # [d, d]
    terms = {}
    for k in np.nonzero(~exact)[0]:
        s_other = s_all - w_mats[k]
        g = red.g[k]
        # Phi(gamma, lam) = A0 + gamma A1 + sum_m lam_m Lm  (all constants)
        a0 = np.block([[w_mats[k], (w_mats[k] @ g)[:, None]], [(g.conj() @ w_mats[k])[None, :], np.array([[np.real(g.conj() @ w_mats[k] @ g)]])]])
        a1 = -np.block([[s_other, (s_other @ g)[:, None]], [(g.conj() @ s_other)[None, :], np.array([[np.real(g.conj() @ s_other @ g) + 1.0]])]])
        # sum_m lam_m L_m with L_m = blkdiag(D_m, -eps_mk^2), as one affine map (fast compile)
        lmat = np.zeros((d + 1, m))  # diagonal of every L_m, stacked
        lmat[:d] = e
        lmat[d] = -red.eps2[:, k]
        terms[int(k)] = (a0, a1, lmat)
    batch: dict[int, tuple[float, NDArray[np.float64]] | None] = {}
    if solver == "ipm" and terms:  # every user's certificate SDP in one batched run
        ks = list(terms)
        got = certificate_sdp_batch(*(np.stack([terms[k][i] for k in ks]) for i in range(3)))
        batch = dict(zip(ks, got, strict=True))
    for k in range(k_users):
        if exact[k]:  # no error ball: the certified SINR is the SINR itself
            sig, intf = _received_powers(red, w_mats, k)
            gam_out[k] = max(sig, 0.0) / (max(intf, 0.0) + 1.0)
            continue
        a0, a1, lmat = terms[k]
        got_ipm = batch.get(k)
        if got_ipm is not None:
            gam_sdp, lam_k = got_ipm
            lam_full = np.zeros((m, k_users))
            lam_full[:, k] = lam_k
            gam_out[k] = _lmi_gamma_max(red, w_mats, lam_full, k, max(gam_sdp * 1.001, 1e-9))
            lam_out[:, k] = lam_k
            continue
        if prob is None:  # one parametrised (DPP) problem, compiled once for every user
            import cvxpy as cp  # only here: the interior-point path needs no cvxpy

            got = None if cache is None else cache.get(("worst_case_sinr", d, m))
            if got is None:
                gv = cp.Variable(nonneg=True)
                lv = cp.Variable(m, nonneg=True)
                p_a0 = cp.Parameter((d + 1, d + 1), complex=True)
                p_a1 = cp.Parameter((d + 1, d + 1), complex=True)
                p_l = cp.Parameter((d + 1, m))
                expr = p_a0 + gv * p_a1 + cp.diag(p_l @ lv)
                got = (cp.Problem(cp.Maximize(gv), [0.5 * (expr + expr.H) >> 0]), gv, lv, p_a0, p_a1, p_l)
                if cache is not None:
                    cache.put(("worst_case_sinr", d, m), got)
            prob, gv, lv, p_a0, p_a1, p_l = got
        p_a0.value = a0
        p_a1.value = a1
        p_l.value = lmat
        lam_k = np.zeros(m)
        gam_sdp = 0.0
        # a Clarabel failure is retried with more static regularisation before SCS, as the design
        # SDPs do (an SCS solve costs tens of Clarabel solves)
        for sv, opts in (("CLARABEL", _CLARABEL_OPTS), ("CLARABEL", _CLARABEL_RETRY_OPTS), ("SCS", {})):
            try:
                prob.solve(solver=sv, warm_start=False, **opts)
                if prob.status in _OK and lv.value is not None:
                    lam_k = np.maximum(np.asarray(lv.value, dtype=float), 0.0)
                    gam_sdp = float(gv.value)
                    break
            except BaseException as exc:  # noqa: BLE001 - includes pyo3 PanicException
                _reraise_interrupt(exc)
                continue
        lam_full = np.zeros((m, k_users))
        lam_full[:, k] = lam_k
        hi = max(gam_sdp * 1.001, 1e-9)
        gam_out[k] = _lmi_gamma_max(red, w_mats, lam_full, k, hi)
        lam_out[:, k] = lam_k
    return gam_out, lam_out


def monte_carlo_min_sinr(
    h_hat: ArrayLike, eps: ArrayLike, w: ArrayLike, noise_w: float, rng: np.random.Generator, n_draws: int = 10_000
) -> NDArray[np.float64]:
    """Smallest SINR per user over random errors on the ball boundaries plus the adversarial ones.

    Draws ``e_{m,k}`` uniformly on the spheres ``||e_{m,k}|| = eps_{m,k}`` and adds the draw
    ``e_{m,k} = -eps_{m,k} h_hat_{m,k}/||h_hat_{m,k}||`` (spec 8.1 check 7).

    Parameters
    ----------
    h_hat : (K, MN) complex; eps : (M, K); w : (K, MN) complex physical beamformers.

    Returns
    -------
    ndarray (K,) minimum SINR seen.
    """
    h = np.asarray(h_hat)
    k_users, mn = h.shape
    ep = np.asarray(eps, dtype=float)
    m = ep.shape[0]
    n = mn // m
    z = rng.standard_normal((n_draws, k_users, m, n)) + 1j * rng.standard_normal((n_draws, k_users, m, n))
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    hb = h.reshape(k_users, m, n)
    adv = -hb / np.maximum(np.linalg.norm(hb, axis=-1, keepdims=True), 1e-300)
    z = np.concatenate([z, adv[None]], axis=0)  # [S+1, K, M, N]
    e = z * ep.T[None, :, :, None]
    ht = (hb[None] + e).reshape(-1, k_users, mn)  # [S+1, K, MN]
    ww = np.asarray(w)  # [K, MN]
    gains = np.abs(np.einsum("skn,jn->skj", ht.conj(), ww)) ** 2  # [S+1, K(user), K(beam)]
    sig = np.einsum("skk->sk", gains)
    intf = gains.sum(axis=-1) - sig
    return (sig / (intf + noise_w)).min(axis=0)


def certify(red: ReducedProblem, x: NDArray[np.complex128], rho: float,
            cache: ProblemCache | None = None, solver: str = "clarabel") -> tuple[NDArray[np.float64], float]:
    """Certified worst-case SINRs and minimum rate of normalised reduced beamformers x
    (``solver``: see :func:`worst_case_sinr`)."""
    gam, _ = worst_case_sinr(red, x, cache=cache, solver=solver)
    return gam, float(rho * np.log2(1.0 + max(float(np.min(gam)), 0.0)))


# --------------------------------------------------------------------------------------------
# margin (15)-(16)
# --------------------------------------------------------------------------------------------
def margin_over_rho(
    red_unit: ReducedProblem,
    w_mats: NDArray[np.complex128],
    lam: NDArray[np.float64],
    t: float,
    rhos: ArrayLike,
    eps_scale: ArrayLike,
    tol: float = 1e-9,
) -> NDArray[np.float64]:
    """Constraint margin (15) of fixed (W, lam, t) at each candidate rho.

    Parameters
    ----------
    red_unit : ReducedProblem whose ``eps2`` is the normalised squared radius at unit scale
        (the radii at rho are ``eps2 * eps_scale(rho)^2``).
    rhos : (R,) candidates; eps_scale : (R,) radius multiplier at each rho (``1/sqrt(L(rho))``).

    Returns
    -------
    ndarray (R,) ``min_k s_k(rho)`` (``-inf`` where ``A_k`` is not PSD).
    """
    rr = np.asarray(rhos, dtype=float)
    sc = np.asarray(eps_scale, dtype=float)
    e = red_unit.indicator
    s_all = w_mats.sum(axis=0)
    out = np.empty(rr.size)
    for i, (rho, s) in enumerate(zip(rr, sc, strict=True)):
        if not np.isfinite(s):
            out[i] = -np.inf
            continue
        gamma = 2.0 ** (t / rho) - 1.0
        worst = np.inf
        for k in range(red_unit.n_users):
            q = w_mats[k] - gamma * (s_all - w_mats[k])
            a = q + np.diag(e @ lam[:, k])
            a = 0.5 * (a + a.conj().T)
            ev, evec = np.linalg.eigh(a)
            scale = max(1.0, float(np.max(np.abs(ev))))
            if ev[0] < -tol * scale:
                worst = -np.inf
                break
            g = red_unit.g[k]
            qg = q @ g
            inv = np.where(ev > tol * scale, 1.0 / np.where(ev > tol * scale, ev, 1.0), 0.0)
            proj = evec.conj().T @ qg
            sk = float(np.real(g.conj() @ qg)) - gamma - float(red_unit.eps2[:, k] @ lam[:, k]) * s * s - float(np.sum(inv * np.abs(proj) ** 2))
            worst = min(worst, sk)
        out[i] = worst
    return out
