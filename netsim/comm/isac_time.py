"""Time allocation between sensing and communication: TD-ISAC-Main, -EI and -MRT (seed 003).

rho is the communication fraction (spec A1): sensing lasts (1-rho)T with ``L(rho) =
floor((1-rho) T/T_u)`` snapshots, ``CRLB_k(rho) = c_k / L(rho)`` (c_k from the optimised R*),
``eps_{m,k}(rho) = delta sqrt(max_j c_j / L(rho)) ||h_hat_{m,k}||`` (4), and the rate is
``rho log2(1 + SINR)`` (5).

* (17) ``rho_bar = 1 - L_req T_u / T``, ``L_req = ceil(max_k c_k / eps_th)``: the largest rho that
  meets the CRLB constraint; ``rho_bar <= 0`` means infeasible.
* Algorithm 2 (Main): AO between Bi-RBO at fixed rho and a rho update with W fixed:
  ``cfg.rho_update == "margin"`` is the paper's constraint margin (16) over the grid
  ``{k Delta_rho} U {rho^(i)}`` in ``(0, 1 - T_u/T]`` (lam fixed); the default "certificate"
  re-optimises lam and picks, among ``rho +- {1,2,4,..,32} Delta_rho``, the rho with the largest
  certified rate of the fixed W (the paper's margin never moves rho in our regime: with lam
  fixed the margin peaks at the current rho). Either way the old W stays feasible at the new
  rho with ``t >= t^(i-1)``, which warm-starts the bisection (``t_lo``), so t^(i) never
  decreases. Projection (18) ``rho* = min(rho, rho_bar)`` and a final Bi-RBO if clipped; then
  (netsim additions, see IsacConfig) a compass-search polish of rho on the Delta_rho grid; rank-one
  extraction, robust re-optimisation of the powers of the extracted directions
  (:func:`netsim.comm.robust.repower`; the better certificate is kept) and the certified worst-case
  rate.
* Algorithm 3 (EI): rho = rho_bar, error-ignorant SOCP, certified against eps(rho_bar).
* Algorithm 4 (MRT): as Main with Bi-RPO-MRT.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.comm.robust import (
    BiRboResult,
    bi_rbo,
    certify,
    ei_socp,
    margin_over_rho,
    mrt_bases,
    rank_one,
    reduce_problem,
    repower,
    worst_case_sinr,
)
from netsim.comm.robust_bisection import SdrOracle
from netsim.sensing.config import IsacConfig

__all__ = ["TdIsacResult", "crlb_feasible_rho", "error_radius_at", "td_isac"]


def crlb_feasible_rho(c_per_snapshot_m2: ArrayLike, cfg: IsacConfig) -> float:
    """Eq. (17): ``rho_bar = 1 - ceil(max_k c_k / eps_th) T_u / T`` (may be <= 0: infeasible)."""
    l_req = int(np.ceil(float(np.max(c_per_snapshot_m2)) / cfg.crlb_threshold_m2 - 1e-12))
    return 1.0 - l_req * cfg.snapshot_s / cfg.frame_s


def error_radius_at(h_hat: ArrayLike, n_aps: int, c_per_snapshot_m2: ArrayLike, rho: float, cfg: IsacConfig) -> NDArray[np.float64]:
    """``eps_{m,k}(rho)`` of (4) [same unit as h], (M, K); inf where L(rho) < 1."""
    h = np.asarray(h_hat)
    k = h.shape[0]
    big_l = int(cfg.n_snapshots(rho))
    norms = np.linalg.norm(h.reshape(k, n_aps, -1), axis=-1).T  # [M, K]
    if big_l < 1:
        return np.full(norms.shape, np.inf)
    return cfg.delta_per_m * np.sqrt(float(np.max(c_per_snapshot_m2)) / big_l) * norms


@dataclass
class TdIsacResult:
    """Output of :func:`td_isac`.

    Attributes
    ----------
    scheme : str
    rho : float
        Final communication fraction rho*.
    rho_bar : float
        CRLB-feasible bound (17).
    t_sdr : float
        Rate threshold of the relaxation at rho* [bit/s/Hz].
    rate_wc : float
        Certified worst-case min rate of the extracted beamformers [bit/s/Hz].
    gamma_wc : ndarray (K,)
    w : ndarray (K, M*N) complex [sqrt(W)]
    history : list of (rho_i, t_i)
        AO iterates (Fig. 8), then the projection and the accepted polish moves.
    history_stage : list of str
        Per history entry: "ao", "projection" or "polish".
    status : str
        "ok", "crlb_infeasible" (rho_bar <= 0) or "infeasible".
    n_solves : int
    wall_s : float
    """

    scheme: str
    rho: float
    rho_bar: float
    t_sdr: float
    rate_wc: float
    gamma_wc: NDArray[np.float64]
    w: NDArray[np.complex128]
    history: list[tuple[float, float]] = field(default_factory=list)
    status: str = "ok"
    n_solves: int = 0
    wall_s: float = 0.0
    history_stage: list[str] = field(default_factory=list)


def td_isac(
    scheme: str,
    h_hat: ArrayLike,
    c_per_snapshot_m2: ArrayLike,
    cfg: IsacConfig,
    n_aps: int,
    rho0: float = 0.5,
    p_max_w: float | None = None,
    noise_w: float | None = None,
    zeta: float | None = None,
    max_iter: int | None = None,
    sdr_solver: str = "ipm",
    cert_solver: str = "ipm",
) -> TdIsacResult:
    """Joint time allocation and robust beamforming (Algorithms 2-4).

    Parameters
    ----------
    scheme : {"main", "ei", "mrt"}
    h_hat : array_like (K, M*N) complex
        Estimated channels.
    c_per_snapshot_m2 : array_like (K,)
        Per-snapshot CRLB c_k at R* (:func:`netsim.sensing.fim.per_snapshot_crlb`).
    cfg : IsacConfig
        Supplies T, T_u, eps_th, delta, Delta_rho, zeta, I_max, P_c and sigma^2.
    n_aps : int
    rho0 : float
        Initial rho^(0) (Main and MRT).
    p_max_w, noise_w, zeta, max_iter :
        Overrides of the cfg values.
    sdr_solver, cert_solver : {"ipm", "clarabel"}
        Who decides the Bi-RBO / Bi-RPO-MRT steps (the AO, the projection, the polish and the
        re-powering) and who solves the certificate SDPs (the rho update and the final
        certificate): the interior-point methods of :mod:`netsim.comm.robust_ipm`,
        :mod:`netsim.comm.robust_dir_ipm` and :mod:`netsim.comm.robust_cert_batch` (default;
        Clarabel where they do not apply or converge) or cvxpy + Clarabel (the reference). See
        :func:`netsim.comm.robust.design_beamformers`.
    """
    t_start = time.perf_counter()
    pc = cfg.comm_power_w if p_max_w is None else p_max_w
    s2 = cfg.noise_w if noise_w is None else noise_w
    zt = cfg.zeta_bps_hz if zeta is None else zeta
    imax = cfg.max_ao_iter if max_iter is None else max_iter
    h = np.asarray(h_hat, dtype=complex)
    k_users = h.shape[0]
    c = np.asarray(c_per_snapshot_m2, dtype=float)
    rho_bar = crlb_feasible_rho(c, cfg)
    zero = np.zeros_like(h)
    if rho_bar <= 0:
        return TdIsacResult(scheme, 0.0, rho_bar, 0.0, 0.0, np.zeros(k_users), zero, [], "crlb_infeasible", 0, time.perf_counter() - t_start)
    eps_unit = error_radius_at(h, n_aps, c, 0.0, cfg) * np.sqrt(cfg.max_snapshots)  # radius at L = 1
    red_unit = reduce_problem(h, eps_unit, pc, s2, n_aps)

    def red_at(rho: float):  # noqa: ANN202
        return red_unit.with_eps(error_radius_at(h, n_aps, c, rho, cfg))

    if scheme == "ei":
        red = red_at(rho_bar)
        t, x, n_s = ei_socp(red.with_eps(np.zeros((n_aps, k_users))), rho_bar, zt)
        if x is None:
            return TdIsacResult(scheme, rho_bar, rho_bar, 0.0, 0.0, np.zeros(k_users), zero, [(rho_bar, 0.0)], "infeasible", n_s, time.perf_counter() - t_start)
        gam, rate = certify(red, x, rho_bar, solver=cert_solver)
        return TdIsacResult(scheme, rho_bar, rho_bar, t, rate, gam, red.lift(x), [(rho_bar, t)], "ok", n_s, time.perf_counter() - t_start)
    if scheme not in ("main", "mrt"):
        raise ValueError(f"scheme must be 'main', 'ei' or 'mrt', got {scheme!r}")
    mrt = scheme == "mrt"
    rho_max = 1.0 - cfg.snapshot_s / cfg.frame_s
    grid = np.arange(1, int(np.floor(rho_max / cfg.delta_rho + 1e-9)) + 1) * cfg.delta_rho
    grid = grid[grid <= rho_max + 1e-12]
    rho = float(rho0)
    hist: list[tuple[float, float]] = []
    prev: BiRboResult | None = None
    prev_rho = rho
    n_solves = 0
    for it in range(imax):
        red = red_at(rho)
        res = bi_rbo(red, rho, zt, t_lo=prev.t if prev is not None else 0.0, init=prev, mrt=mrt, solver=sdr_solver)
        n_solves += res.n_solves
        hist.append((rho, res.t))
        if not res.feasible:
            break
        prev, prev_rho = res, rho
        if it > 0 and abs(res.t - hist[-2][1]) <= zt:
            break
        w_fix = res.w_mats  # (K, d, d); for MRT these are B_k P_k B_k^H
        if cfg.rho_update == "margin":
            cand = np.unique(np.concatenate([grid, [rho]]))
            lsn = cfg.n_snapshots(cand)
            scale = np.where(lsn >= 1, 1.0 / np.sqrt(np.maximum(lsn, 1)), np.inf)
            marg = margin_over_rho(red_unit, w_fix, res.lam, res.t, cand, scale)
            rho_new = float(cand[int(np.argmax(marg))])
            t_new = res.t
        else:
            steps = cfg.delta_rho * np.array([1, 2, 4, 8, 16, 32])
            cand = np.concatenate([rho - steps, rho + steps])
            cand = np.round(cand[(cand > 0) & (cand <= rho_max + 1e-12)], 10)
            best_r, best_t = rho, res.t
            for r_c in cand:
                gam, _ = worst_case_sinr(red_at(float(r_c)), None, w_mats=w_fix, solver=cert_solver)
                t_c = float(r_c * np.log2(1.0 + max(float(np.min(gam)), 0.0)))
                if t_c > best_t + 1e-9:
                    best_r, best_t = float(r_c), t_c
            rho_new, t_new = best_r, best_t
        if abs(rho_new - rho) < 1e-12:
            break
        prev = BiRboResult(t_new, res.w_mats, res.lam, True, p_mats=res.p_mats)
        rho = rho_new
    if prev is None or not prev.feasible:
        return TdIsacResult(scheme, rho, rho_bar, 0.0, 0.0, np.zeros(k_users), zero, hist, "infeasible", n_solves, time.perf_counter() - t_start)
    stages = ["ao"] * len(hist)
    rho_fin = prev_rho
    if rho_fin > rho_bar:  # projection (18)
        rho_fin = rho_bar
        res = bi_rbo(red_at(rho_bar), rho_bar, zt, mrt=mrt, solver=sdr_solver)
        n_solves += res.n_solves
        hist.append((rho_bar, res.t))
        stages.append("projection")
        if not res.feasible:
            return TdIsacResult(scheme, rho_bar, rho_bar, 0.0, 0.0, np.zeros(k_users), zero, hist, "infeasible", n_solves, time.perf_counter() - t_start, stages)
        prev = res
    if cfg.rho_polish_steps:
        rho_fin, prev, n_p = _polish_rho(red_at, rho_fin, prev, min(rho_bar, rho_max), cfg.delta_rho, cfg.rho_polish_steps,
                                         cfg.rho_polish_tol_bps_hz, mrt, hist, stages, sdr_solver)
        n_solves += n_p
    red = red_at(rho_fin)
    if mrt:
        x = _mrt_rank_one(red, prev)
    else:
        x = rank_one(red, prev.w_mats)
    gam, rate = certify(red, x, rho_fin, solver=cert_solver)
    if cfg.rank_one_repower:
        x2 = repower(red, x, rho_fin, zt, solver=sdr_solver)
        if x2 is not None:
            gam2, rate2 = certify(red, x2, rho_fin, solver=cert_solver)
            if rate2 > rate:
                x, gam, rate = x2, gam2, rate2
    return TdIsacResult(scheme, rho_fin, rho_bar, prev.t, rate, gam, red.lift(x), hist, "ok", n_solves, time.perf_counter() - t_start, stages)


def _max_t_above(red, rho: float, t_floor: float, tol: float, mrt: bool, solver: str = "ipm") -> BiRboResult | None:  # noqa: ANN001
    """Largest t >= t_floor (to ``tol``) for which the SDR at this rho is feasible, or None.

    One solve at ``t_floor``; if feasible, a galloping search upwards (steps tol, 2 tol, 4 tol,
    ...) brackets the maximum, then bisection on the same compiled (DPP) problem; the
    minimum-power point at the threshold found is the result (``solver``: see :func:`bi_rbo`).
    """
    oracle = SdrOracle(red, rho, mrt=mrt, solver=solver)
    n = 0

    def attempt(t: float) -> tuple[float, object] | None:
        nonlocal n
        n += 1
        ok, sol = oracle.solve_at(t)
        return (t, sol) if ok else None

    best = attempt(t_floor)
    if best is None:
        return None
    step, up = tol, None
    while up is None:
        r = attempt(best[0] + step)
        if r is None:
            up = best[0] + step
        else:
            best, step = r, 2.0 * step
    while up - best[0] > tol:
        r = attempt(0.5 * (best[0] + up))
        if r is None:
            up = 0.5 * (best[0] + up)
        else:
            best = r
    out = oracle.point(best[0], best[1])
    out.n_solves = n
    return out


def _polish_rho(red_at, rho: float, best: BiRboResult, rho_hi: float, d_rho: float, steps: tuple[int, ...],  # noqa: ANN001
                tol: float, mrt: bool, hist: list, stages: list, solver: str = "ipm") -> tuple[float, BiRboResult, int]:
    """Compass search on the relaxation's t(rho) over the Delta_rho grid in (0, rho_hi].

    First t at the current rho is refined to ``tol``; then a neighbour rho' is probed with one
    SDR solve at ``t + tol`` and, if feasible, its t is maximised and the point moves. t never
    decreases, so the AO's monotonicity carries over. Accepted moves (and the refinement) are
    appended to ``hist`` with stage "polish".
    """
    n = 0
    ref = _max_t_above(red_at(rho), rho, best.t, tol, mrt, solver)
    if ref is not None:
        n += ref.n_solves
        if ref.t > best.t:
            best = ref
            hist.append((rho, best.t))
            stages.append("polish")
    failed: dict[float, float] = {}  # rho -> smallest t found infeasible there
    for s in steps:
        moved = True
        while moved:
            moved = False
            for sign in (1.0, -1.0):
                r_c = round(rho + sign * s * d_rho, 10)
                if r_c <= 0 or r_c > rho_hi + 1e-12:
                    continue
                target = best.t + tol
                if failed.get(r_c, np.inf) <= target:
                    continue
                res = _max_t_above(red_at(r_c), r_c, target, tol, mrt, solver)
                if res is None:
                    n += 1
                    failed[r_c] = target
                    continue
                n += res.n_solves
                rho, best = r_c, res
                hist.append((rho, best.t))
                stages.append("polish")
                moved = True
                break
    return rho, best, n


def _mrt_rank_one(red, res: BiRboResult) -> NDArray[np.complex128]:  # noqa: ANN001
    """MRT rank-one step: ``q_k = sqrt(eta lambda_max(P_k)) v_max``, ``w = B_k q_k`` (Alg. 4 step 4)."""
    bks = mrt_bases(red)  # list of (d, |M_k|)
    q = []
    for pk in res.p_mats:  # principal eigenvector of each P_k, sqrt(lambda_max) v_max
        w_k, v_k = np.linalg.eigh(0.5 * (pk + pk.conj().T))
        q.append(np.sqrt(max(w_k[-1], 0.0)) * v_k[:, -1])
    x = np.stack([bks[k] @ q[k] for k in range(len(q))])  # [K, d]
    pw = (np.abs(x) ** 2) @ red.indicator  # [K, M]
    eta = min(1.0, float(np.min(red.pbar / np.maximum(pw.sum(axis=0), 1e-300))))
    return np.sqrt(eta) * x
