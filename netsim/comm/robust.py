"""Robust beamforming for location-aware CSI (seed 003 eqs. (10)-(14), (19)-(27); spec 3.4-3.7).

Model: ``h_k = h_hat_k + e_k`` with one ball per AP-user pair ``||e_{m,k}|| <= eps_{m,k}``; the
worst-case SINR constraint of user k with threshold ``gamma = 2^{t/rho} - 1`` is made an LMI by
the generalised S-procedure (Theorem 1, sufficient for M > 1):

``Phi_k = [[Q_k + sum_m lam_{m,k} D_m, Q_k h_k], [h_k^H Q_k, h_k^H Q_k h_k - gamma sigma^2
- sum_m lam_{m,k} eps_{m,k}^2]] >= 0``, ``Q_k = W_k - gamma sum_{j != k} W_j``, ``lam >= 0``  (13)

Scalable formulation (this module's default)
--------------------------------------------
1. Normalisation (spec 3.4 requires one; ours is better conditioned): ``g_k = h_hat_k / eta``
   with ``eta^2 = mean_k ||h_hat_k||^2``, ``eps~ = eps / eta``, ``W = s W~`` with
   ``s = sigma^2 / eta^2``. Then the noise term is ``gamma * 1`` and the per-AP power bound is
   ``pbar = P_c / s = P_c eta^2 / sigma^2``. (The spec's ``g = h sqrt(P_c)/sigma`` gives
   ``|g|^2 ~ 1e5`` and W ~ 1e-4 in the interference-limited regime; Clarabel then fails and SCS
   needs a minute per solve even at dimension 12.)
2. Exact dimension reduction (spec 7.3): with ``B = blkdiag(B_1..B_M)``, ``B_m`` an orthonormal
   basis of AP m's K channel blocks, every feasible W can be projected to ``B X B^H`` without
   loss (the LMI transforms by congruence and the power falls), so the SDP is solved in
   ``d = sum_m rank_m <= M K`` dimensions (12 instead of 63 at the paper's size). The lifted
   LMI is block diagonal (reduced part plus ``sum lam D_m`` on the complement), so it is exact.
3. Parametrised (DPP) cvxpy problem: gamma is a ``cp.Parameter``; the problem is compiled once per
   Bi-RBO call and re-solved at every bisection step (Clarabel, SCS as fallback).
4. Warm start across AO iterations: the previous (W, lam, t) stays feasible at the new rho
   (margin >= 0), so the bisection starts from ``t_lo = t_prev``.

A solver failure counts as infeasible (never raised); every accepted SDP point is re-checked
numerically (``lambda_min(Phi_k) >= -tol``). Certified worst-case rates are computed for the
final (rank-one) beamformers by :func:`worst_case_sinr`: per user an SDP over (gamma, lam), whose
lam is then verified by an exact numpy bisection on gamma (so the reported rate is a sound
S-procedure certificate).

The "plain" formulation (``reduce=False, dpp=False``) is the direct full-dimension cvxpy model,
kept for the benchmark.

Modules: :mod:`netsim.comm.robust_model` (data, reduction, numpy LMI helpers),
:mod:`netsim.comm.robust_sdp` (the cvxpy SDP), :mod:`netsim.comm.robust_bisection` (Bi-RBO and
the plain-path search), :mod:`netsim.comm.robust_certify` (rank-one step, repower, certificates,
margin), :mod:`netsim.comm.robust_ei` (the EI SOCP); this module designs one frame's beamformers
and re-exports the public names of the others.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.comm.robust_bisection import BiRboResult, bi_rbo, path_bisection
from netsim.comm.robust_cache import ProblemCache
from netsim.comm.robust_certify import (
    _lmi_gamma_max,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    _repower,
    certify,
    margin_over_rho,
    monte_carlo_min_sinr,
    rank_one,
    repower,
    worst_case_sinr,
)
from netsim.comm.robust_ei import _ei_problem, ei_socp  # noqa: F401 - _ei_problem re-exported
from netsim.comm.robust_model import (
    _CLARABEL_OPTS,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    _CLARABEL_RETRY_OPTS,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    _OK,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    ReducedProblem,
    _phi,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    _received_powers,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    _reraise_interrupt,
    _sinr_margin,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    lmi_min_eig,
    mrt_bases,
    rate_upper_bound,  # noqa: F401 - re-exported (tests, benchmarks, isac_time)
    reduce_problem,
    zf_coordinates,
)
from netsim.comm.robust_sdp import _RobustSdp  # noqa: F401 - re-exported (tests, benchmarks, isac_time)

__all__ = [
    "BeamformingResult",
    "BiRboResult",
    "ReducedProblem",
    "bi_rbo",
    "design_beamformers",
    "ei_socp",
    "lmi_min_eig",
    "margin_over_rho",
    "monte_carlo_min_sinr",
    "mrt_bases",
    "path_bisection",
    "rank_one",
    "reduce_problem",
    "repower",
    "worst_case_sinr",
    "zf_coordinates",
]

# --------------------------------------------------------------------------------------------
# engine-facing entry at a fixed rho
# --------------------------------------------------------------------------------------------
@dataclass
class BeamformingResult:
    """Beamformers for one frame.

    Attributes
    ----------
    w : ndarray (K, M*N) complex [sqrt(W)]
        Physical beamformers (row k = w_k); per-AP power ``sum_k ||w_{m,k}||^2 <= P_c``.
    rho : float
        Communication fraction used.
    t_sdr : float
        Rate threshold of the relaxation/SOCP [bit/s/Hz] (0 for plain MRT).
    gamma_wc : ndarray (K,)
        Certified worst-case SINR of the final w over the error balls.
    rate_wc : float
        Certified worst-case minimum user rate ``rho log2(1 + min_k gamma_wc)`` [bit/s/Hz].
    status : str
        "ok", "infeasible" (nothing feasible; w is zero), "too_large" (see ``max_sdp_dim``) or
        "solver_error".
    n_solves : int
    solve_s : float
    """

    w: NDArray[np.complex128]
    rho: float
    t_sdr: float
    gamma_wc: NDArray[np.float64]
    rate_wc: float
    status: str
    n_solves: int = 0
    solve_s: float = 0.0
    extra: dict = field(default_factory=dict)


def _mrt_plain(red: ReducedProblem) -> NDArray[np.complex128]:
    """Equal-power MRT in normalised reduced coordinates (K, d)."""
    full = red.g @ red.basis.T  # [K, MN]
    k_users, mn = full.shape
    n = mn // red.n_aps
    hb = full.reshape(k_users, red.n_aps, n)
    serves = red.serves  # [M, K]
    load = np.maximum(serves.sum(axis=1), 1)  # [M] users per AP
    amp = np.where(serves.T, np.sqrt(red.pbar / load)[None, :], 0.0)  # [K, M]
    w = hb / np.maximum(np.linalg.norm(hb, axis=-1, keepdims=True), 1e-300) * amp[:, :, None]
    return w.reshape(k_users, mn) @ red.basis.conj()

def design_beamformers(
    scheme: str,
    h_hat: ArrayLike,
    eps: ArrayLike,
    p_max_w: float,
    noise_w: float,
    rho: float,
    n_aps: int,
    zeta: float = 1e-2,
    reduce: bool = True,
    repower_directions: bool = True,
    serving: ArrayLike | None = None,
    max_sdp_dim: int = 96,
    hint: BeamformingResult | None = None,
    cache: ProblemCache | None = None,
    sdr_solver: str = "ipm",
    cert_solver: str = "ipm",
) -> BeamformingResult:
    """Design beamformers at a fixed time allocation rho (one frame; no rho search).

    Parameters
    ----------
    scheme : {"main", "ei", "mrt", "mrt_plain"}
        Robust SDR (Bi-RBO), error-ignorant SOCP, MRT with robust power allocation
        (Bi-RPO-MRT), or equal-power MRT. All are certified against the balls ``eps``.
    h_hat : array_like (K, M*N) complex
        Location-aware channel estimates.
    eps : array_like (M, K)
        Ball radii of eq. (4) at this rho (:func:`netsim.comm.location_csi.channel_error_radius`).
    p_max_w : float
        Per-AP communication budget P_c [W].
    noise_w : float
        sigma^2 [W].
    rho : float
    n_aps : int
    zeta : float
        Bisection tolerance [bit/s/Hz].
    reduce : bool
        Exact dimension reduction (default) or the plain full-dimension model.
    repower_directions : bool
        Main/MRT: also try :func:`repower` on the extracted directions, keep the better certificate.
    serving : array_like (M, K) bool or None
        User-centric clusters (None: every AP serves every user, the paper's model). The MRT
        schemes then work in the span of the served channels only (exact, and small: one
        coordinate per served pair), which is what makes large deployments tractable.
    max_sdp_dim : int
        Main/MRT: refuse (status "too_large") when the reduced dimension d exceeds this, instead
        of an interior-point solve that would exhaust memory (96: Main at d = 108 needs six
        108 x 108 Hermitian blocks; the paper size is d = 12).
    hint : BeamformingResult or None
        The previous frame's design of the same scheme: its thresholds (``t_sdr`` and
        ``extra["t_repower"]``) are the guesses of this frame's bisections. The bisections then
        take the same decisions as without a hint (the result does not depend on it, up to a
        solver that contradicts itself at the feasibility boundary) with about two SDP solves
        each instead of ``log2(t_up / zeta)``; see :func:`path_bisection`.
    cache : ProblemCache or None
        Compiled cvxpy problems kept for the next design of the same dimensions (the engine
        passes one per run); results are the same with and without it.

    sdr_solver : {"ipm", "clarabel"}
        Main and MRT: who decides the bisection steps of the SDR (14), of the MRT model (26)
        and of the re-powering (see :func:`bi_rbo`): the structured interior-point methods of
        :mod:`netsim.comm.robust_ipm` and :mod:`netsim.comm.robust_dir_ipm` (default, 4-10x
        cheaper at the paper's size) or cvxpy + Clarabel (the reference).
    cert_solver : {"ipm", "clarabel"}
        Who solves the per-user certificate SDPs (:func:`worst_case_sinr`; the exact bisection
        on gamma verifies either): the interior-point method of
        :mod:`netsim.comm.robust_cert_ipm` (default; it reaches the SDP's optimum, where
        Clarabel's points certified 1-38 % lower SINRs on isac_paper frames) or Clarabel.

    Returns
    -------
    BeamformingResult (never raises on solver failure: status says what happened).
    """
    t0 = time.perf_counter()
    hh = np.asarray(h_hat, dtype=complex)
    k_users = hh.shape[0]
    zero = np.zeros_like(hh)
    if scheme not in ("main", "mrt", "ei", "mrt_plain"):
        raise ValueError(f"unknown scheme {scheme!r}")
    try:
        with warnings.catch_warnings():
            # cvxpy's "solution may be inaccurate"/compilation hints: every status is checked and
            # every accepted point re-verified, so they are not the user's concern in a run
            warnings.simplefilter("ignore", UserWarning)
            return _design(scheme, hh, eps, p_max_w, noise_w, rho, n_aps, zeta, reduce, repower_directions, serving,
                           max_sdp_dim, t0, _hints(hint, scheme), cache, sdr_solver, cert_solver)
    except BaseException as exc:  # noqa: BLE001 - a solver failure (even a Rust panic) is a status
        _reraise_interrupt(exc)
        return BeamformingResult(zero, rho, 0.0, np.zeros(k_users), 0.0, "solver_error", 0, time.perf_counter() - t0, {"error": repr(exc)})


def _zf_seed(red: ReducedProblem, rho: float, cache: ProblemCache | None = None,
             cert_solver: str = "clarabel") -> dict[float, bool]:
    """``{t_zf: True}`` with t_zf the certified worst-case rate of zero-forcing at full power, a
    feasible threshold of the SDR (14) (empty with serving clusters, ill-conditioned ZF or no
    certificate).

    ``x_k = sqrt(p) T e_k`` (:func:`zf_coordinates`: ``g_i^H x_k = sqrt(p) delta_ik``) with the
    largest p within every per-AP budget; ``W_k = x_k x_k^H`` and the multipliers of its
    certificate (:func:`worst_case_sinr`, exact in gamma) meet (14) at ``t_zf``. One small SDP
    per user, against the ~5 CPU-s of each Bi-RBO step it decides on isac_paper.
    """
    if red.serving is not None:
        return {}
    t_mat = zf_coordinates(red.g)
    if t_mat is None:
        return {}
    x = t_mat[:, : red.n_users].T  # [K, d] unit-gain ZF beams
    per_ap = ((np.abs(x) ** 2) @ red.indicator).sum(axis=0)  # [M]
    if not np.any(per_ap > 0):
        return {}
    x = x * np.sqrt(red.pbar / per_ap.max())
    try:
        _, rate = certify(red, x, rho, cache, cert_solver)
    except Exception:  # noqa: BLE001 - a seed is optional: without it the bisection solves as before
        return {}
    return {rate: True} if np.isfinite(rate) and rate > 0 else {}


def _hints(hint: BeamformingResult | None, scheme: str) -> dict[str, float]:
    """Bisection guesses taken from a previous design of the same scheme (empty if unusable)."""
    if hint is None or hint.status != "ok" or hint.extra.get("scheme") != scheme:
        return {}
    out = {"t_sdr": float(hint.t_sdr)}
    if "t_repower" in hint.extra:
        out["t_repower"] = float(hint.extra["t_repower"])
    return {k: v for k, v in out.items() if np.isfinite(v) and v > 0}


def _design(scheme, hh, eps, p_max_w, noise_w, rho, n_aps, zeta, reduce, repower_directions, serving, max_sdp_dim, t0,  # noqa: ANN001, ANN202, PLR0913
            guesses, cache=None, sdr_solver="ipm", cert_solver="ipm"):
    """Body of :func:`design_beamformers` (raises on solver failure; the caller turns it into a status)."""
    k_users = hh.shape[0]
    zero = np.zeros_like(hh)
    if not (np.all(np.isfinite(hh)) and np.all(np.isfinite(np.asarray(eps, dtype=float)))):
        raise FloatingPointError("non-finite channel or radius")
    red = reduce_problem(hh, eps, p_max_w, noise_w, n_aps, reduce=reduce, serving=serving,
                         served_basis=scheme in ("mrt", "mrt_plain"))
    if scheme in ("main", "mrt") and red.dim > max_sdp_dim:
        # an interior-point solve would need tens of GB (campus without clusters asked for 71 GB)
        return BeamformingResult(zero, rho, 0.0, np.zeros(k_users), 0.0, "too_large", 0, time.perf_counter() - t0,
                                 {"dim": red.dim, "hint": "serve each user from a cluster of APs (comm.serving_aps)"})
    extra: dict = {"scheme": scheme}
    if scheme in ("main", "mrt"):
        # main: the certified rate of full-power zero-forcing is feasible for the SDR (x x^H with
        # its certificate's multipliers), so the plain path's midpoints below it need no solve
        seed = _zf_seed(red, rho, cache, cert_solver) if scheme == "main" else {}
        extra["zf_seed"] = next(iter(seed), 0.0)
        res = bi_rbo(red, rho, zeta, mrt=(scheme == "mrt"), guess=guesses.get("t_sdr"), known=seed, solver=sdr_solver)
        if not res.feasible:
            return BeamformingResult(zero, rho, 0.0, np.zeros(k_users), 0.0, "infeasible", res.n_solves, time.perf_counter() - t0, extra)
        x = rank_one(red, res.w_mats)
        gam, rate = certify(red, x, rho, cache, cert_solver)
        if repower_directions:
            # The repowered threshold lies between the rank-one certificate and the SDR's t, and
            # both bisections walk the same plain path (same bracket and tolerance). The direction
            # model is a restriction of the SDR, so every threshold the SDR found infeasible is
            # infeasible for it, and every threshold up to the rank-one certificate is feasible
            # for it (the scaled rank-one beams themselves): only the thresholds in between are
            # solved (one or two when the SDR solution is rank one, instead of ~11).
            rep_known = {t: False for t, ok in (res.decisions or {}).items() if not ok}
            if rate > 0 and rate < min(rep_known, default=np.inf):
                rep_known[rate] = True
            x2, extra["t_repower"], extra["n_solves_repower"] = _repower(
                red, x, rho, zeta, guesses.get("t_repower", float(res.t)), known=rep_known, solver=sdr_solver)
            if x2 is not None:
                gam2, rate2 = certify(red, x2, rho, cache, cert_solver)
                if rate2 > rate:
                    x, gam, rate = x2, gam2, rate2
        return BeamformingResult(red.lift(x), rho, float(res.t), gam, rate, "ok", res.n_solves, time.perf_counter() - t0, extra)
    if scheme == "ei":
        red0 = red.with_eps(np.zeros_like(np.asarray(eps, dtype=float)))
        t_sdr, x, n_s = ei_socp(red0, rho, zeta, guesses.get("t_sdr"), cache)
        if x is None:
            return BeamformingResult(zero, rho, 0.0, np.zeros(k_users), 0.0, "infeasible", n_s, time.perf_counter() - t0, extra)
    else:  # mrt_plain
        x, t_sdr, n_s = _mrt_plain(red), 0.0, 0
    gam, rate = certify(red, x, rho, cache, cert_solver)
    return BeamformingResult(red.lift(x), rho, float(t_sdr), gam, rate, "ok", n_s, time.perf_counter() - t0, extra)
