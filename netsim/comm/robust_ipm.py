"""Structured primal-dual interior-point solver for the robust SDR (14) (seed 003 Alg. 1; spec 3.5).

Why: cvxpy + Clarabel embed each complex Hermitian block in a real block of twice the size and
factor the whole KKT system (588 variables, 2619 cone rows, 3207 wide at the paper's size:
5-6.5 CPU-s per solve). Here the Newton system is the n x n Schur complement (n = K d^2 + M K
(+1)), assembled from Kronecker-structured blocks of the small complex matrices.

Problem (normalised reduced units, coordinates ``W_k = T Y_k T^H`` as in
:meth:`netsim.comm.robust_sdp._RobustSdp._build_zf`, or T = I)::

    min  c^T x   s.t.  F_b(x) = C_b (sum_j a_bj Y_j) C_b^H + sum_e x[i_be] L_be + F_b0  >= 0   (PSD, per block b)
                       G x <= h                                                          (linear)

with x = [vec_R(Y_1) .. vec_R(Y_K), extras] (extras: the multipliers lam, and tau in phase 1).
The blocks are Y_k >= 0 (C = I) and the LMIs (13) of every user (``C_k = [I; g~_k^H]``,
``a_kk = 1``, ``a_kj = -gamma``, ``L_mk = blkdiag(T^-1 D_m T^-H, -eps~_mk^2)``,
``F0 = diag(0, .., 0, -gamma)``). The linear rows are the per-AP budgets
``sum_k Re tr(P_m Y_k) <= pbar`` and ``lam >= 0``.

Method: the primal-dual interior-point core of :mod:`netsim.comm.robust_ipm_core` (NT scaling,
Mehrotra predictor-corrector, Schur complement from Kronecker-structured blocks).

Use: :func:`decide` answers "is the SDR at gamma feasible?" by phase 1 (``min tau`` with
``F_b + tau I >= 0`` on the LMIs, always strictly feasible), stopping at the first iterate that
meets (13) with tau < 0 (verified in numpy) or when the dual bound proves ``tau* > 0``.
:func:`solve_min_power` then gives the minimum-power point (14) at the final threshold from
phase 1's most interior point. Both return None where they did not converge (callers then use
Clarabel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from netsim.comm.robust_ipm_core import HermBasis, _Block, _Conic, _herm, _ipm

__all__ = ["Decision", "HermBasis", "SdrStructure", "decide", "solve_min_power", "sdr_structure"]


@dataclass
class SdrStructure:
    """Gamma-independent data of (14) in coordinates ``W_k = T Y_k T^H``.

    t_mat (d, d) complex; gt (K, d) rows ``g_k^H T``; lam_mats (M, d+1, d+1)
    ``blkdiag(T^-1 D_m T^-H, 0)``; eps2 (M, K); exact (K,) users with every radius zero;
    p_mats (M, d, d) ``T^H D_m T``; obj (d, d) ``T^H T``; pbar float.
    """

    t_mat: NDArray[np.complex128]
    gt: NDArray[np.complex128]
    lam_mats: NDArray[np.complex128]
    eps2: NDArray[np.float64]
    exact: NDArray[np.bool_]
    p_mats: NDArray[np.complex128]
    obj: NDArray[np.complex128]
    pbar: float


def sdr_structure(g: NDArray[np.complex128], eps2: NDArray[np.float64], indicator: NDArray[np.float64],
                  pbar: float, t_mat: NDArray[np.complex128] | None) -> SdrStructure | None:
    """Data for :func:`decide` / :func:`solve_min_power`, or None where they do not apply
    (a user with some but not all radii zero: its multiplier is unbounded).

    g (K, d) reduced normalised channels; eps2 (M, K); indicator (d, M) 0/1; pbar; t_mat (d, d)
    or None (identity).
    """
    k_users, d = g.shape
    e2 = np.asarray(eps2, dtype=float)
    exact = np.all(e2 <= 0.0, axis=0)  # [K]
    if np.any(~exact & np.any(e2 <= 0.0, axis=0)):
        return None
    t = np.eye(d, dtype=complex) if t_mat is None else np.asarray(t_mat, dtype=complex)
    t_inv = np.linalg.inv(t)
    m = indicator.shape[1]
    dm = np.stack([np.diag(indicator[:, mm]).astype(complex) for mm in range(m)])  # [M, d, d]
    lam = np.zeros((m, d + 1, d + 1), dtype=complex)
    lam[:, :d, :d] = t_inv @ dm @ t_inv.conj().T
    return SdrStructure(t, g.conj() @ t, lam, e2, exact, t.conj().T @ dm @ t, t.conj().T @ t, float(pbar))


def _problem(data: SdrStructure, gamma: float, with_tau: bool) -> tuple[_Conic, dict[int, NDArray[np.int64]], int]:
    """The conic data of (14) at gamma (phase 1 with tau on the LMIs when ``with_tau``).

    Returns (problem, lam columns per uncertain user, index of tau (-1 without))."""
    k_users, d = data.gt.shape
    m = data.p_mats.shape[0]
    hb = HermBasis(d)
    ny = d * d
    unc = np.nonzero(~data.exact)[0]
    n_lam = m * unc.size
    lam_col = {int(k): k_users * ny + i * m + np.arange(m) for i, k in enumerate(unc)}
    tau_idx = k_users * ny + n_lam if with_tau else -1
    eye_k = np.eye(k_users)
    blocks = [_Block(np.eye(d, dtype=complex), eye_k[k], np.zeros(0, dtype=np.int64),
                     np.zeros((0, d, d), dtype=complex), np.zeros((d, d), dtype=complex)) for k in range(k_users)]
    for k in range(k_users):
        coef = np.where(np.arange(k_users) == k, 1.0, -gamma)
        if data.exact[k]:  # zero radius: the scalar SINR constraint g~^H Q g~ >= gamma
            idx = np.array([tau_idx] if with_tau else [], dtype=np.int64)
            blocks.append(_Block(data.gt[k][None, :], coef, idx, np.ones((idx.size, 1, 1), dtype=complex),
                                 np.array([[-gamma]], dtype=complex)))
            continue
        c = np.vstack([np.eye(d, dtype=complex), data.gt[k][None, :]])  # [d+1, d]
        lm = data.lam_mats.copy()  # [M, d+1, d+1]
        lm[:, d, d] = -data.eps2[:, k]
        idx = lam_col[int(k)]
        if with_tau:
            idx = np.append(idx, tau_idx)
            lm = np.concatenate([lm, np.eye(d + 1, dtype=complex)[None]], axis=0)
        f0 = np.zeros((d + 1, d + 1), dtype=complex)
        f0[d, d] = -gamma
        blocks.append(_Block(c, coef, idx, lm, f0))
    n = k_users * ny + n_lam + (1 if with_tau else 0)
    rp = hb.dual(data.p_mats)  # [M, d^2]
    g_rows = np.zeros((m + n_lam, n))
    g_rows[:m, : k_users * ny] = np.tile(rp, (1, k_users))  # sum_k Re tr(P_m Y_k) <= pbar
    g_rows[m + np.arange(n_lam), k_users * ny + np.arange(n_lam)] = -1.0  # lam >= 0
    h = np.concatenate([np.full(m, data.pbar), np.zeros(n_lam)])
    return _Conic(hb, k_users, n - k_users * ny, blocks, g_rows, h), lam_col, tau_idx


def _unpack(data: SdrStructure, prob: _Conic, lam_col: dict, x: NDArray[np.float64]) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
    """x -> (W (K, d, d) = T Y T^H, lam (M, K))."""
    k_users = data.gt.shape[0]
    m = data.p_mats.shape[0]
    ys = prob.hb.unpack(x[: prob.nyk].reshape(k_users, prob.ny))  # [K, d, d]
    w = data.t_mat @ ys @ data.t_mat.conj().T
    w = 0.5 * (w + np.conj(np.swapaxes(w, 1, 2)))
    lam = np.zeros((m, k_users))
    for k, cols in lam_col.items():
        lam[:, k] = np.maximum(x[cols], 0.0)
    return w, lam


@dataclass
class Decision:
    """Output of :func:`decide`.

    feasible : bool or None (None: not decided; the caller falls back to another solver)
    w, lam : a point meeting (13) (verified by ``verify``) when feasible, else None
    x : phase-1 iterate (internal, for :func:`solve_min_power`)
    iters : interior-point iterations
    """

    feasible: bool | None
    w: NDArray[np.complex128] | None
    lam: NDArray[np.float64] | None
    x: NDArray[np.float64] | None
    iters: int


def _dual_start(data: SdrStructure, prob: _Conic, cvec: NDArray[np.float64], tau_idx: int):  # noqa: ANN202
    """A strictly feasible dual point (zero dual residual) of the problem built by :func:`_problem`.

    LMI multipliers ``Z_k = zeta blkdiag(delta I_d, 1)`` with ``delta`` small enough that every
    lam row's multiplier ``eps2_mk - delta tr(D~_m)`` (times zeta) is positive, tau's equation
    ``sum_k tr Z_k = 1`` fixing zeta (phase 1); then equal budget multipliers omega make every
    ``Z_Yj = obj_j - sum_k a_kj C_k^H Z_k C_k + omega sum_m P_m`` positive definite.
    """
    k_users, d = data.gt.shape
    unc = ~data.exact
    tr_dt = np.real(np.trace(data.lam_mats[:, :d, :d], axis1=1, axis2=2))  # [M]
    if np.any(unc):
        ratio = data.eps2[:, unc] / np.maximum(tr_dt[:, None], 1e-300)  # [M, K_unc]
        delta = 0.5 * float(np.min(ratio))
    else:
        delta = 1.0
    blocks = prob.blocks
    nlmi = len(blocks) - k_users
    sizes = np.array([b.c.shape[0] for b in blocks[k_users:]])  # [K]
    trace_unit = np.where(sizes > 1, d * delta + 1.0, 1.0)
    zeta = 1.0 / float(trace_unit.sum()) if tau_idx >= 0 else 1.0 / float(trace_unit.sum())
    zl_blocks = []
    for b in blocks[k_users:]:
        nb = b.c.shape[0]
        z = np.eye(nb, dtype=complex) * (zeta * delta if nb > 1 else zeta)
        if nb > 1:
            z[nb - 1, nb - 1] = zeta
        zl_blocks.append(z)
    a = prob.adj([np.zeros((d, d), dtype=complex)] * k_users + zl_blocks)  # [n]
    m = data.p_mats.shape[0]
    n_lam = prob.lp_h.size - m
    zl_lam = -a[prob.nyk: prob.nyk + n_lam]  # [n_lam] > 0 by the choice of delta
    # Y parts: Z_Yj = obj_j - M_j + omega sum_m P_m with M_j the LMI terms of Y_j
    obj = prob.hb.unpack(np.zeros(prob.ny))
    mj = []
    for j in range(k_users):
        mm = np.zeros((d, d), dtype=complex)
        for b, z in zip(blocks[k_users:], zl_blocks, strict=True):
            mm += b.coef[j] * (b.c.conj().T @ z @ b.c)
        mj.append(mm)
    obj_mat = data.obj if float(np.abs(cvec[: prob.nyk]).sum()) > 0 else np.zeros((d, d), dtype=complex)
    p_sum = _herm(data.p_mats.sum(axis=0))
    ev_p = float(np.linalg.eigvalsh(p_sum)[0])
    need = max(float(-np.linalg.eigvalsh(_herm(obj_mat - mm))[0]) for mm in mj)
    scale = max(float(np.abs(np.linalg.eigvalsh(_herm(mm))).max()) for mm in mj)
    omega = (max(need, 0.0) + 0.1 * scale + 1e-300) / max(ev_p, 1e-300)
    z_y = [_herm(obj_mat - mm + omega * p_sum) for mm in mj]
    del obj, nlmi
    return z_y + zl_blocks, np.concatenate([np.full(m, omega), zl_lam])


def _start(data: SdrStructure, prob: _Conic, tau_idx: int) -> NDArray[np.float64]:
    """Strictly feasible phase-1 point: Y_k = a I at half the budget, lam = 1, tau above the deficit."""
    k_users = data.gt.shape[0]
    d = data.gt.shape[1]
    x = np.zeros(prob.n)
    tr_p = np.real(np.trace(data.p_mats, axis1=1, axis2=2))  # [M]
    a0 = 0.5 * data.pbar / (k_users * max(float(tr_p.max()), 1e-300))
    x[: prob.nyk] = np.tile(prob.hb.pack(a0 * np.eye(d, dtype=complex)), k_users)
    x[prob.nyk:tau_idx] = 1.0
    x[tau_idx] = 0.0
    fs = [f + b.f0 for f, b in zip(prob.lin(x), prob.blocks, strict=True)]
    deficit = max(-float(np.linalg.eigvalsh(f)[0]) for f in fs[k_users:])
    x[tau_idx] = max(deficit, 0.0) + max(1.0, abs(deficit))
    return x


def decide(data: SdrStructure, gamma: float, verify, interior: bool = False, max_iter: int = 80) -> Decision:  # noqa: ANN001
    """Is the SDR (14) feasible at gamma? Phase 1 ``min tau`` (see the module docstring).

    ``verify(w, lam) -> bool`` is the caller's numerical check of (13); the first iterate with
    tau < 0 that passes it decides "feasible". With ``interior``, phase 1 goes on until tau is
    at most half the dual bound (``tau <= tau*/2 < 0``: at least half the largest LMI margin,
    and still an interior iterate), a start for :func:`solve_min_power`. "Infeasible" needs a
    dual bound ``tau* >= dobj > 0`` with the dual residual below ``1e-9``, or the phase-1
    optimum (to 1e-9) at ``tau >= 0``. ``feasible=None``: not decided in ``max_iter``.
    """
    prob, lam_col, tau_idx = _problem(data, gamma, True)
    x0 = _start(data, prob, tau_idx)
    cvec = np.zeros(prob.n)
    cvec[tau_idx] = 1.0
    return phase1(prob, tau_idx, x0, _dual_start(data, prob, cvec, tau_idx),
                  lambda x: _unpack(data, prob, lam_col, x), verify, interior, max_iter)


def phase1(prob: _Conic, tau_idx: int, x0: NDArray[np.float64], z0: tuple, unpack, verify,  # noqa: ANN001
           interior: bool = False, max_iter: int = 80) -> Decision:
    """The phase-1 decision of :func:`decide` on any problem of the core's form whose LMI blocks
    carry ``+ tau I`` (x[tau_idx]); ``unpack(x) -> (W, lam)`` gives the point ``verify`` checks.
    x0 strictly feasible, z0 a dual point strictly inside the cones (zero dual residual)."""
    cvec = np.zeros(prob.n)
    cvec[tau_idx] = 1.0
    found: list = []

    def stop(x, pobj, dobj, rel_d) -> bool:  # noqa: ANN001
        if dobj > 0 and rel_d < 1e-9:
            found.append(None)
            return True
        if x[tau_idx] < 0 and (not interior or (rel_d < 1e-9 and x[tau_idx] <= 0.5 * dobj)):
            w, lam = unpack(x)
            if verify(w, lam):
                found.append((w, lam))
                return True
        return False

    res = _ipm(prob, cvec, x0, z0, max_iter=max_iter, stop=stop)
    if found:
        if found[0] is None:
            return Decision(False, None, None, None, res.iters)
        w, lam = found[0]
        return Decision(True, w, lam, res.x, res.iters)
    if res.status == "optimal":
        if res.x[tau_idx] >= 0:
            return Decision(False, None, None, None, res.iters)
        w, lam = unpack(res.x)
        if verify(w, lam):  # optimal on the phase-1 boundary: feasible, but no interior start
            return Decision(True, w, lam, None, res.iters)
    return Decision(None, None, None, None, res.iters)


def solve_min_power(data: SdrStructure, gamma: float, x_phase1: NDArray[np.float64], verify,  # noqa: ANN001
                    max_iter: int = 80, tol: float = 1e-8) -> tuple[NDArray[np.complex128], NDArray[np.float64], int] | None:
    """Minimum total power (14) at gamma from a phase-1 point with tau < 0 (strictly feasible).

    Returns (W (K, d, d), lam (M, K), iterations), or None (not converged / not verified)."""
    prob, lam_col, _ = _problem(data, gamma, False)
    x0 = x_phase1[: prob.n].copy()
    cvec = np.zeros(prob.n)
    cvec[: prob.nyk] = np.tile(prob.hb.dual(data.obj), data.gt.shape[0])
    res = _ipm(prob, cvec, x0, _dual_start(data, prob, cvec, -1), max_iter=max_iter, tol=tol)
    if res.status not in ("optimal", "optimal_inaccurate"):
        return None
    w, lam = _unpack(data, prob, lam_col, res.x)
    if not verify(w, lam):
        return None
    return w, lam, res.iters
