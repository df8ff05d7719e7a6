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
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.comm.robust_cache import ProblemCache

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

_OK = ("optimal", "optimal_inaccurate")
def _reraise_interrupt(exc: BaseException) -> None:
    """Solver failures (including pyo3 ``PanicException``, a BaseException) become statuses;
    interrupts and exits do not."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise exc


# one thread: Clarabel's default (faer, 2 threads) cost 4-25 % more CPU per paper-size solve here,
# and a run is pinned to one BLAS thread anyway
_CLARABEL_OPTS = {"tol_gap_abs": 1e-7, "tol_gap_rel": 1e-7, "tol_feas": 1e-7, "max_iter": 100, "max_threads": 1}
# retry after a Clarabel numerical failure (before any SCS fallback)
_CLARABEL_RETRY_OPTS = dict(_CLARABEL_OPTS, static_regularization_constant=1e-7)


# --------------------------------------------------------------------------------------------
# normalisation and dimension reduction
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReducedProblem:
    """Normalised (and optionally reduced) robust-beamforming data.

    Attributes
    ----------
    g : ndarray (K, d) complex
        ``B^H h_hat_k / eta``.
    eps2 : ndarray (M, K) float
        Normalised squared radii ``eps_{m,k}^2 / eta^2``.
    eta2 : float
        ``eta^2 = mean_k ||h_hat_k||^2``.
    pbar : float
        Normalised per-AP power bound ``P_c eta^2 / sigma^2``.
    basis : ndarray (M*N, d) complex
        Orthonormal basis B (identity when not reduced).
    ap_of : ndarray (d,) int
        AP index of each reduced coordinate.
    n_aps : int
    p_max_w, noise_w : float
    serving : ndarray (M, K) bool or None
        User-centric clusters: AP m may send user k's data only if ``serving[m, k]`` (None: all).
    """

    g: NDArray[np.complex128]
    eps2: NDArray[np.float64]
    basis: NDArray[np.complex128]
    ap_of: NDArray[np.int64]
    n_aps: int
    p_max_w: float
    noise_w: float
    eta2: float = 1.0
    serving: NDArray[np.bool_] | None = None

    @property
    def pbar(self) -> float:
        return self.p_max_w * self.eta2 / self.noise_w

    @property
    def dim(self) -> int:
        return int(self.g.shape[1])

    @property
    def n_users(self) -> int:
        return int(self.g.shape[0])

    @property
    def exact_users(self) -> NDArray[np.bool_]:
        """(K,) True for users whose channel is known exactly (every radius is zero)."""
        return np.all(self.eps2 <= 0.0, axis=0)

    @property
    def indicator(self) -> NDArray[np.float64]:
        """E (d, M): E[i, m] = 1 if coordinate i belongs to AP m (so D~_m = diag(E[:, m]))."""
        e = np.zeros((self.dim, self.n_aps))
        e[np.arange(self.dim), self.ap_of] = 1.0
        return e

    def with_eps(self, eps: ArrayLike) -> ReducedProblem:
        """Same channels, new (un-normalised) radii eps (M, K)."""
        e2 = (np.asarray(eps, dtype=float) ** 2) / self.eta2
        return ReducedProblem(self.g, e2, self.basis, self.ap_of, self.n_aps, self.p_max_w, self.noise_w, self.eta2, self.serving)

    @property
    def serves(self) -> NDArray[np.bool_]:
        """(M, K) serving mask (all True when every AP serves every user, the paper's model)."""
        if self.serving is None:
            return np.ones((self.n_aps, self.n_users), dtype=bool)
        return self.serving

    def lift(self, x: NDArray[np.complex128]) -> NDArray[np.complex128]:
        """Reduced normalised beamformers (K, d) -> physical ``w_k = sqrt(s) B x_k``, (K, MN)."""
        return np.sqrt(self.noise_w / self.eta2) * (x @ self.basis.T)


def reduce_problem(
    h_hat: ArrayLike, eps: ArrayLike, p_max_w: float, noise_w: float, n_aps: int, reduce: bool = True,
    serving: ArrayLike | None = None, served_basis: bool = False,
) -> ReducedProblem:
    """Normalise the data and (by default) apply the exact reduction of spec 7.3.

    Parameters
    ----------
    h_hat : array_like (K, M*N) complex
        Estimated channels.
    eps : array_like (M, K) float
        Ball radii of eq. (4) (same unit as h).
    p_max_w : float
        Per-AP communication budget P_c [W].
    noise_w : float
        sigma^2 [W].
    n_aps : int
    reduce : bool
        False keeps the full M*N dimensions (plain formulation).
    serving : array_like (M, K) bool or None
        User-centric clusters (None: every AP serves every user). APs that serve nobody get no
        coordinates (they transmit nothing, so their errors drop out of every LMI exactly).
    served_basis : bool
        Per AP, span only the channels of the users it serves instead of all K channels. Exact
        for the MRT models (every transmit direction is a served channel), not for Main/EI
        (whose beams need the other users' channel components to null interference).
    """
    h = np.asarray(h_hat, dtype=complex)
    k, mn = h.shape
    n = mn // n_aps
    eta2 = float(np.mean(np.sum(np.abs(h) ** 2, axis=1)))
    g = h / np.sqrt(eta2)  # [K, MN]
    srv = None if serving is None else np.asarray(serving, dtype=bool)
    if srv is not None:
        if srv.shape != (n_aps, k):
            raise ValueError(f"serving must have shape (M, K) = {(n_aps, k)}, got {srv.shape}")
        if not np.all(srv.any(axis=0)):
            raise ValueError(f"users {np.nonzero(~srv.any(axis=0))[0].tolist()} have no serving AP")
    if not reduce:
        basis = np.eye(mn, dtype=complex)
        ap_of = np.repeat(np.arange(n_aps), n)
    else:
        cols, ap_list = [], []
        for m in range(n_aps):
            if srv is not None and not srv[m].any():
                continue
            blk = g[:, m * n : (m + 1) * n].T  # [N, K]
            if srv is not None and served_basis:
                blk = blk[:, srv[m]]
            u, s, _ = np.linalg.svd(blk, full_matrices=False)
            r = int(np.sum(s > 1e-10 * max(s.max(), 1e-300)))
            bm = np.zeros((mn, r), dtype=complex)
            bm[m * n : (m + 1) * n] = u[:, :r]
            cols.append(bm)
            ap_list += [m] * r
        basis = np.concatenate(cols, axis=1)  # [MN, d]
        ap_of = np.array(ap_list, dtype=np.int64)
    gr = g @ basis.conj()  # [K, d] = (B^H g_k)^T
    e2 = (np.asarray(eps, dtype=float) ** 2) / eta2  # [M, K]
    return ReducedProblem(gr, e2, basis, ap_of, n_aps, p_max_w, noise_w, eta2, srv)


# --------------------------------------------------------------------------------------------
# numpy LMI helpers
# --------------------------------------------------------------------------------------------
def _phi(red: ReducedProblem, w_mats: NDArray[np.complex128], lam: NDArray[np.float64], gamma: float, k: int,
         eps2: NDArray[np.float64] | None = None) -> NDArray[np.complex128]:
    """Phi_k of (13) in normalised reduced coordinates, (d+1, d+1)."""
    e2 = red.eps2 if eps2 is None else eps2
    s = w_mats.sum(axis=0)
    q = w_mats[k] - gamma * (s - w_mats[k])  # [d, d]
    g = red.g[k]
    a = q + np.diag(red.indicator @ lam[:, k])
    qg = q @ g
    corner = float(np.real(g.conj() @ qg)) - gamma - float(e2[:, k] @ lam[:, k])
    top = np.concatenate([a, qg[:, None]], axis=1)
    bot = np.concatenate([qg.conj()[None, :], np.array([[corner]])], axis=1)
    phi = np.concatenate([top, bot], axis=0)
    return 0.5 * (phi + phi.conj().T)


def _sinr_margin(red: ReducedProblem, w_mats: NDArray[np.complex128], gamma: float, k: int) -> tuple[float, float]:
    """Error-free constraint of user k: ``g^H W_k g - gamma (g^H S_k g + 1)`` and its scale.

    For a zero radius (``eps_{m,k} = 0`` for every m) the S-procedure LMI (13) holds for some
    ``lam >= 0`` in the limit ``lam -> inf`` exactly when this scalar is >= 0 (the Schur complement
    of ``Q_k + lam I`` tends to ``g^H Q_k g - gamma``), so the solver gets the scalar constraint
    instead of an unbounded multiplier. Returns (margin, scale) in normalised units.
    """
    sig, intf = _received_powers(red, w_mats, k)
    return sig - gamma * (intf + 1.0), max(abs(sig), gamma * (abs(intf) + 1.0))


def _received_powers(red: ReducedProblem, w_mats: NDArray[np.complex128], k: int) -> tuple[float, float]:
    """Nominal signal ``g_k^H W_k g_k`` and interference ``g_k^H (sum_{j!=k} W_j) g_k`` (normalised)."""
    g = red.g[k]
    sig = float(np.real(g.conj() @ w_mats[k] @ g))
    intf = float(np.real(g.conj() @ (w_mats.sum(axis=0) - w_mats[k]) @ g))
    return sig, intf


def lmi_min_eig(red: ReducedProblem, w_mats: NDArray[np.complex128], lam: NDArray[np.float64], gamma: float) -> NDArray[np.float64]:
    """``lambda_min(Phi_k)`` for every user, (K,) (normalised units)."""
    return np.array([np.linalg.eigvalsh(_phi(red, w_mats, lam, gamma, k))[0] for k in range(red.n_users)])


def mrt_bases(red: ReducedProblem) -> list[NDArray[np.complex128]]:
    """MRT bases of model (26): per user k, ``B^H blkdiag(g_{m,k}/||g_{m,k}||)`` over its serving
    APs, a (d, |M_k|) matrix of unit columns in the reduced space."""
    full = red.g @ red.basis.T  # [K, MN] (= g_k on every served block, even with a served basis)
    n = full.shape[1] // red.n_aps
    out = []
    for k in range(red.n_users):
        aps_k = np.nonzero(red.serves[:, k])[0]
        bk = np.zeros((full.shape[1], aps_k.size), dtype=complex)
        for col, mm in enumerate(aps_k):
            v = full[k, mm * n : (mm + 1) * n]
            bk[mm * n : (mm + 1) * n, col] = v / max(np.linalg.norm(v), 1e-300)
        out.append(red.basis.conj().T @ bk)  # [d, |M_k|]
    return out


def zf_coordinates(g: NDArray[np.complex128], max_cond: float = 1e6) -> NDArray[np.complex128] | None:
    """Invertible T (d, d) with ``g_i^H T = e_i^T`` for every user i, or None.

    ``T = [A^H (A A^H)^-1, N]`` with ``A`` the (K, d) matrix of rows ``g_i^H`` and N an
    orthonormal basis of its null space. None when K > d or A is ill-conditioned (then no such
    T is well-conditioned and the direct coordinates are used).
    """
    a = np.asarray(g).conj()  # [K, d]
    k, d = a.shape
    if k > d:
        return None
    u, sv, vh = np.linalg.svd(a)
    if sv[-1] <= sv[0] / max_cond:
        return None
    t1 = vh[:k].conj().T @ np.diag(1.0 / sv) @ u.conj().T  # [d, K] = A^+ (right inverse)
    t2 = vh[k:].conj().T  # [d, d-K] null space of A
    return np.concatenate([t1, t2], axis=1)


# --------------------------------------------------------------------------------------------
# SDP (14) / (26) builder
# --------------------------------------------------------------------------------------------
class _RobustSdp:
    """cvxpy model of (14) (``mrt=False``) or (26) (``mrt=True``) with gamma as a parameter."""

    def __init__(self, red: ReducedProblem, mrt: bool = False, dpp: bool = True, gamma: float = 1.0,
                 zf_coords: bool | None = None, directions: list[NDArray[np.complex128]] | None = None,
                 power_scale: bool = False) -> None:
        import cvxpy as cp

        self.red, self.mrt = red, mrt
        # power_scale: minimise the common per-AP budget factor s (sum_k P_m(W_k) <= s pbar) instead
        # of the total power; the SDP at gamma is feasible iff s* <= 1 (see _scale_guided_known)
        self.s = cp.Variable(nonneg=True) if power_scale else None
        self.power_scale = power_scale
        budget = self.s * red.pbar if power_scale else red.pbar
        d, k_users, m = red.dim, red.n_users, red.n_aps
        e = red.indicator  # [d, M]
        self.gam = cp.Parameter(nonneg=True, value=gamma) if dpp else None
        gam = self.gam if dpp else gamma
        self.lam = cp.Variable((m, k_users), nonneg=True)
        self.exact = red.exact_users
        if directions is not None:
            mrt = True  # same model as (26) with the given bases instead of the MRT ones
        self.mrt = mrt
        self.t_mat = None if mrt else (zf_coordinates(red.g) if (dpp if zf_coords is None else zf_coords) else None)
        if self.t_mat is not None:
            self._build_zf(red, gam, budget)
            return
        if mrt:
            if directions is None:
                self.bk = mrt_bases(red)
            else:
                self.bk = [np.asarray(b, dtype=complex).reshape(d, -1) for b in directions]  # [d, r_k]
            self.p = [cp.Variable((b.shape[1], b.shape[1]), hermitian=True) for b in self.bk]
            xs = [self.bk[k] @ self.p[k] @ self.bk[k].conj().T for k in range(k_users)]
            cons = [pk >> 0 for pk in self.p]
            # per-AP power tr(D_m B_k P_k B_k^H) = vec(G_mk^T) . vec(P_k), G_mk = B_k^H D_m B_k,
            # as one (M_active,) affine expression per user (fast to compile for many APs)
            active = np.nonzero(e.any(axis=0))[0]
            power = 0
            for b, pk in zip(self.bk, self.p, strict=True):
                gmk = np.einsum("ia,im,ib->mab", b.conj(), e[:, active], b)  # [M_act, r, r]
                coef = np.transpose(gmk, (0, 2, 1)).reshape(active.size, -1, order="F")  # vec(G^T), column-major
                power = power + cp.real(coef @ cp.vec(pk, order="F"))
            cons.append(power <= budget)
            obj = cp.sum(cp.hstack([cp.real(cp.sum(cp.multiply((b.conj().T @ b).T, pk))) for b, pk in zip(self.bk, self.p, strict=True)]))
        else:
            self.x = [cp.Variable((d, d), hermitian=True) for _ in range(k_users)]
            xs = self.x
            cons = [xk >> 0 for xk in self.x]
            for mm in range(m):
                cons.append(cp.sum(cp.hstack([cp.real(cp.sum(cp.multiply(e[:, mm], cp.diag(xk)))) for xk in xs])) <= budget)
            obj = cp.sum(cp.hstack([cp.real(cp.trace(xk)) for xk in xs]))
            for mm, kk in zip(*np.nonzero(~red.serves), strict=True):
                if e[:, mm].any():  # W_k >= 0 with no power on AP m: zero block
                    cons.append(cp.real(cp.sum(cp.multiply(e[:, mm], cp.diag(xs[kk])))) == 0)
        if mrt:
            self._mrt_lmis(red, gam, cons)
            self.xs = xs
            self.prob = cp.Problem(self._objective(obj), cons)
            return
        s = xs[0]
        for xk in xs[1:]:
            s = s + xk
        for k in range(k_users):
            g = red.g[k]
            q = xs[k] - gam * (s - xs[k])
            if self.exact[k]:
                # zero radius: sup over lam of the LMI is the scalar SINR constraint (see _sinr_margin)
                cons.append(cp.real(g.conj() @ q @ g) >= gam)
                continue
            a = q + cp.diag(e @ self.lam[:, k])
            qg = q @ g
            corner = cp.real(g.conj() @ qg) - gam - red.eps2[:, k] @ self.lam[:, k]
            phi = cp.bmat([
                [a, cp.reshape(qg, (d, 1), order="C")],
                [cp.reshape(cp.conj(qg), (1, d), order="C"), cp.reshape(corner, (1, 1), order="C")],
            ])
            cons.append(0.5 * (phi + phi.H) >> 0)
        self.xs = xs
        self.prob = cp.Problem(self._objective(obj), cons)

    def _mrt_lmis(self, red: ReducedProblem, gam, cons: list) -> None:  # noqa: ANN001
        """LMIs (13) for ``W_j = B_j P_j B_j^H``, written per user k as
        ``sum_j c_kj C_kj P_j C_kj^H + blkdiag(diag(E lam_k), -gamma - eps_k^T lam_k)`` with
        ``C_kj = [B_j; g_k^H B_j]`` and ``c_kk = 1``, ``c_kj = -gamma``: a few small products per
        user instead of the d x d sums (which made cvxpy's compile take tens of seconds at 36 APs)."""
        import cvxpy as cp

        d, k_users = red.dim, red.n_users
        e = red.indicator
        for k in range(k_users):
            g = red.g[k]
            terms = []
            for j in range(k_users):
                c_kj = np.vstack([self.bk[j], g.conj()[None, :] @ self.bk[j]])  # [d+1, r_j]
                terms.append(c_kj @ self.p[j] @ c_kj.conj().T)
            others = [t for j, t in enumerate(terms) if j != k]
            interference = cp.sum(others) if len(others) > 1 else (others[0] if others else 0)
            lmat = np.zeros((d + 1, red.n_aps))
            lmat[:d] = e
            lmat[d] = -red.eps2[:, k]
            corner = np.zeros((d + 1, d + 1))
            corner[d, d] = 1.0
            phi = terms[k] - gam * interference + cp.diag(lmat @ self.lam[:, k]) - gam * corner
            cons.append(0.5 * (phi + phi.H) >> 0)

    def _build_zf(self, red: ReducedProblem, gam, budget) -> None:  # noqa: ANN001 - float or cp.Parameter
        """(14) in zero-forcing coordinates ``W_k = T Y_k T^H`` (see :func:`zf_coordinates`).

        With ``g_i^H T = e_i^T`` the LMI of user k becomes, by congruence with ``blkdiag(T^-1, 1)``,
        ``[[Q~_k + sum_m lam_mk D~_m, Q~_k e_k], [e_k^T Q~_k, Q~_k[k,k] - gamma - eps_k^T lam_k]] >= 0``
        with ``Q~_k = Y_k - gamma sum_{j!=k} Y_j`` and ``D~_m = T^-1 D_m T^-H``: the received
        powers are diagonal entries of Y, so interference nulling is an exact zero instead of a
        cancellation between entries of size ``pbar`` (the direct form fails in Clarabel above
        about 40 dB SINR).
        """
        import cvxpy as cp

        d, k_users, m = red.dim, red.n_users, red.n_aps
        e = red.indicator  # [d, M]
        t_mat = self.t_mat
        t_inv = np.linalg.inv(t_mat)
        self.y = [cp.Variable((d, d), hermitian=True) for _ in range(k_users)]
        cons = [yk >> 0 for yk in self.y]
        pms = [t_mat.conj().T @ np.diag(e[:, mm]) @ t_mat for mm in range(m)]  # tr(D_m T Y T^H) = tr(P_m Y)
        for pm in pms:
            cons.append(cp.sum(cp.hstack([cp.real(cp.sum(cp.multiply(pm.T, yk))) for yk in self.y])) <= budget)
        for mm, kk in zip(*np.nonzero(~red.serves), strict=True):
            if e[:, mm].any():  # no power of user kk on AP mm (Y >= 0 makes it a zero block)
                cons.append(cp.real(cp.sum(cp.multiply(pms[mm].T, self.y[kk]))) == 0)
        tt = t_mat.conj().T @ t_mat
        obj = cp.sum(cp.hstack([cp.real(cp.sum(cp.multiply(tt.T, yk))) for yk in self.y]))
        d_tilde = [t_inv @ np.diag(e[:, mm]) @ t_inv.conj().T for mm in range(m)]
        s = self.y[0]
        for yk in self.y[1:]:
            s = s + yk
        for k in range(k_users):
            q = self.y[k] - gam * (s - self.y[k])
            if self.exact[k]:
                cons.append(cp.real(q[k, k]) >= gam)
                continue
            a = q
            for mm in range(m):
                a = a + self.lam[mm, k] * d_tilde[mm]
            col = q[:, k]
            corner = cp.real(q[k, k]) - gam - red.eps2[:, k] @ self.lam[:, k]
            phi = cp.bmat([
                [a, cp.reshape(col, (d, 1), order="C")],
                [cp.reshape(cp.conj(col), (1, d), order="C"), cp.reshape(corner, (1, 1), order="C")],
            ])
            cons.append(0.5 * (phi + phi.H) >> 0)
        self.xs = self.y
        self.prob = cp.Problem(self._objective(obj), cons)

    def _objective(self, total_power):  # noqa: ANN001, ANN202 - cvxpy expressions
        """Total (normalised) power, or the budget factor s of a ``power_scale`` model."""
        import cvxpy as cp

        return cp.Minimize(self.s) if self.power_scale else cp.Minimize(total_power)

    def solve_scale(self, gamma: float) -> float | None:
        """Smallest budget factor ``s*`` at gamma (``power_scale=True`` models only).

        Returns ``inf`` when no power meets the robust SINR constraints (interference-limited),
        None when the solver failed or its point does not pass the numerical LMI check. The
        value is an upper bound on s* only to solver accuracy; callers keep a margin around 1.
        """
        if self.gam is not None:
            self.gam.value = float(gamma)
        try:
            self.prob.solve(solver="CLARABEL", warm_start=False, **_CLARABEL_OPTS)
            status = self.prob.status
        except BaseException as exc:  # noqa: BLE001 - solver failure (Clarabel can panic)
            _reraise_interrupt(exc)
            return None
        if status in ("infeasible", "infeasible_inaccurate"):
            return np.inf
        if status not in _OK or self.s.value is None:
            return None
        w, lam = self._point()
        if not self._verified(w, lam, gamma):
            return None
        return float(self.s.value)

    def _point(self) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
        """Solver point as (W (K, d, d) Hermitian, lam (M, K) >= 0)."""
        w = np.stack([np.asarray(x.value) for x in self.xs])
        if self.t_mat is not None:
            w = self.t_mat @ w @ self.t_mat.conj().T  # back to W_k = T Y_k T^H
        w = 0.5 * (w + np.conj(np.swapaxes(w, 1, 2)))
        return w, np.maximum(np.asarray(self.lam.value, dtype=float), 0.0)

    def _verified(self, w: NDArray[np.complex128], lam: NDArray[np.float64], gamma: float) -> bool:
        """Numerical check of the robust SINR constraints (13) of a solver point."""
        for k in range(self.red.n_users):
            if self.exact[k]:
                marg, scale = _sinr_margin(self.red, w, gamma, k)
                if marg < -1e-6 * max(1.0, scale):
                    return False
                continue
            ev = np.linalg.eigvalsh(_phi(self.red, w, lam, gamma, k))
            if ev[0] < -1e-6 * max(1.0, float(np.max(np.abs(ev)))):
                return False
        return True

    def solve(self, gamma: float, solvers: tuple[str, ...] = ("CLARABEL", "SCS")) -> tuple[bool, NDArray | None, NDArray | None]:
        """Solve at gamma; returns (feasible, W (K, d, d), lam (M, K)), verified numerically."""
        if self.gam is not None:
            self.gam.value = float(gamma)
        attempts = [(sv, {"eps": 1e-6, "max_iters": 20000} if sv == "SCS" else _CLARABEL_OPTS) for sv in solvers]
        retried = False
        while attempts:
            sv, kw = attempts.pop(0)
            try:
                with warnings.catch_warnings():
                    # cvxpy's own complex2real step writes the imaginary part of a 1 x 1 Hermitian
                    # variable (one direction per user: repower) as Constant([[0.0]]) and warns
                    # about its own nested list; nothing of ours is a nested list
                    warnings.filterwarnings("ignore", message="Initializing a Constant with a nested list")
                    self.prob.solve(solver=sv, warm_start=False, **kw)
                status = self.prob.status
            except BaseException as exc:  # noqa: BLE001 - solver failure = infeasible (Clarabel can panic)
                _reraise_interrupt(exc)
                status = "solver_error"
            if sv == "CLARABEL" and not retried and status not in _OK + ("infeasible", "infeasible_inaccurate"):
                # a numerical failure: once more with more regularisation before any SCS fallback
                # (an SCS solve of the paper-size SDP costs ~15 CPU-s)
                retried = True
                attempts.insert(0, ("CLARABEL", _CLARABEL_RETRY_OPTS))
                continue
            if status in ("infeasible", "infeasible_inaccurate"):
                return False, None, None
            if status in _OK:
                w, lam = self._point()
                if self._verified(w, lam, gamma):
                    return True, w, lam
                continue
        return False, None, None


@dataclass
class BiRboResult:
    """Output of :func:`bi_rbo` (normalised reduced units).

    Attributes
    ----------
    t : float
        Largest certified-feasible rate threshold [bit/s/Hz] (0 if none).
    w_mats : ndarray (K, d, d) complex or None
        SDR solution W~_k (normalised, reduced).
    lam : ndarray (M, K) or None
    feasible : bool
    n_solves : int
    solve_s : float
    """

    t: float
    w_mats: NDArray[np.complex128] | None
    lam: NDArray[np.float64] | None
    feasible: bool
    n_solves: int = 0
    solve_s: float = 0.0
    p_mats: list[NDArray[np.complex128]] | None = None  # MRT/direction models: P_k (r_k, r_k) per user
    decisions: dict[float, bool] | None = None  # every threshold decided by the search: t -> feasible


def rate_upper_bound(red: ReducedProblem, rho: float) -> float:
    """``rho log2(1 + min_k (sum_m ||g_{m,k}||)^2)`` (single-user, error-free, Alg. 1 step 1)."""
    full = red.g @ red.basis.T  # [K, MN]
    n = full.shape[1] // red.n_aps
    norms = np.linalg.norm(full.reshape(red.n_users, red.n_aps, n), axis=-1).sum(axis=1)  # [K]
    return float(rho * np.log2(1 + red.pbar * np.min(norms) ** 2))


def path_bisection(
    solve_at: Callable[[float], tuple[bool, object]],
    lo0: float,
    up0: float,
    zeta: float,
    guess: float | None = None,
    max_gallop: int = 4,
    known: dict[float, bool] | None = None,
) -> tuple[float, object | None, int]:
    """Bisection on a monotone feasibility test, reproducing the plain loop's decisions.

    The plain loop is ``while up - lo > zeta: t = (lo + up)/2; lo or up = t`` from
    ``(lo0, up0)``, solving at every midpoint. Its result (the last feasible midpoint and the
    solution there) depends only on which midpoints are feasible, and feasibility is monotone in
    t (a larger rate threshold only shrinks the feasible set of (14)/(26)). So every midpoint of
    the plain path that lies below a solved feasible point, or above a solved infeasible one, is
    decided without a solve. With a ``guess`` of the answer (the previous frame's threshold), the
    two ends of the final plain-path interval that contains the guess are solved first; when the
    guess is off, the search gallops away from it (steps doubling) until it brackets the answer,
    then finishes with the plain midpoints. The returned point is always a midpoint of the plain
    path that was itself solved feasible, so a good guess gives the plain loop's result with about
    two solves instead of ``log2((up0 - lo0)/zeta)``; a poor one costs a few extra solves.
    Without a guess this is the plain loop, solve for solve.

    Parameters
    ----------
    solve_at : callable t -> (feasible, solution)
    lo0, up0 : float
        Start bracket (lo0 is taken as feasible, up0 as infeasible, neither is solved).
    zeta : float
        Tolerance of the plain loop.
    guess : float or None
        Expected answer.
    max_gallop : int
        Most galloping probes before falling back to the plain midpoints.
    known : dict or None
        Decisions known beforehand, ``t -> feasible`` (e.g. from a cheaper problem whose
        feasibility is equivalent, or implied by a relaxation: a threshold infeasible for the
        SDR is infeasible for any restriction of it). They decide midpoints exactly as solved
        ones do, but carry no solution: the returned point is still solved here. The dict is
        updated in place with every decision taken (the caller may reuse them).

    Returns
    -------
    (t, solution, n_solves): ``t = lo0`` and ``solution = None`` when no midpoint is feasible.
    """
    known = {} if known is None else known
    sols: dict[float, object] = {}
    n = 0

    def probe(t: float) -> bool:
        nonlocal n
        ok, sol = solve_at(t)
        n += 1
        known[t] = bool(ok)
        if ok:
            sols[t] = sol
        return bool(ok)

    def walk(assume: float | None) -> tuple[float | None, float, float]:
        """Follow the plain path; returns (first undecided midpoint or None, final lo, final up)."""
        a = max((t for t, ok in known.items() if ok), default=-np.inf)
        b = min((t for t, ok in known.items() if not ok), default=np.inf)
        lo, up = lo0, up0
        while up - lo > zeta:
            t = 0.5 * (lo + up)
            if t in known:
                ok = known[t]
            elif t <= a:
                ok = True
            elif t >= b:
                ok = False
            elif assume is not None:
                ok = t <= assume
            else:
                return t, lo, up
            lo, up = (t, up) if ok else (lo, t)
        return None, lo, up

    if guess is not None and np.isfinite(guess) and lo0 < guess < up0:
        g = float(guess)
        _, plo, pup = walk(g)
        step = max(pup - plo, 0.5 * zeta)
        going = 0  # -1 down, +1 up, 0 not yet known
        for _ in range(max_gallop):
            _, plo, pup = walk(g)
            if going <= 0 and plo > lo0 and plo not in known:
                if not probe(plo):
                    going, g = -1, max(plo - step, 0.5 * (lo0 + plo))
                    step *= 2.0
                    continue
                if going < 0:
                    break  # bracketed from above
            if going >= 0 and pup < up0 and pup not in known:
                if probe(pup):
                    going, g = 1, min(pup + step, 0.5 * (pup + up0))
                    step *= 2.0
                    continue
            break
    limit = 4 * int(np.ceil(np.log2(max((up0 - lo0) / zeta, 2.0)))) + 2 * max_gallop + 8
    while n < limit:
        t, lo, _ = walk(None)
        if t is not None:
            probe(t)
            continue
        if lo <= lo0:
            return lo0, None, n
        if lo in sols:
            return lo, sols[lo], n
        probe(lo)  # decided feasible by monotonicity but not solved itself: solve it for its W
    _, lo, _ = walk(None)
    best = max((t for t in sols if t <= lo), default=None)
    return (best, sols[best], n) if best is not None else (lo0, None, n)


def bi_rbo(
    red: ReducedProblem,
    rho: float,
    zeta: float = 1e-2,
    t_lo: float = 0.0,
    t_up: float | None = None,
    init: BiRboResult | None = None,
    mrt: bool = False,
    dpp: bool = True,
    directions: list[NDArray[np.complex128]] | None = None,
    guess: float | None = None,
    known: dict[float, bool] | None = None,
) -> BiRboResult:
    """Algorithm 1 (Bi-RBO), or Bi-RPO-MRT with ``mrt=True``: bisection on t with the SDR (14)/(26).

    Parameters
    ----------
    red : ReducedProblem
    rho : float
        Communication fraction (gamma = 2^{t/rho} - 1).
    zeta : float
        Bisection tolerance [bit/s/Hz].
    t_lo, init :
        Known feasible threshold and its solution (warm start); ``init=None`` means none.
    t_up : float or None
        Upper end (default :func:`rate_upper_bound`).
    mrt : bool
    dpp : bool
        Re-use one compiled parametrised problem (True) or rebuild per step (plain).
    directions : list of (d, r_k) arrays or None
        Restrict ``W_k = B_k P_k B_k^H`` to given bases (as the MRT model (26) does with the
        MRT bases); used to re-optimise the powers of extracted rank-one directions.
    guess : float or None
        Expected threshold (e.g. the previous frame's): same result as without it, usually with
        far fewer SDP solves (see :func:`path_bisection`).
    known : dict or None
        Decisions ``t -> feasible`` known beforehand (see :func:`path_bisection`); the result's
        ``decisions`` holds them plus every decision of this search.
    """
    t0 = time.perf_counter()
    if t_up is None:
        t_up = rate_upper_bound(red, rho)
    best = init if (init is not None and init.feasible) else BiRboResult(t_lo, None, None, False)
    lo, up = (t_lo if best.feasible else 0.0), max(t_up, t_lo)
    sdp = _RobustSdp(red, mrt=mrt, dpp=True, directions=directions) if dpp else None

    def solve_at(t: float) -> tuple[bool, BiRboResult | None]:
        gamma = 2.0 ** (t / rho) - 1.0
        solver = sdp if sdp is not None else _RobustSdp(red, mrt=mrt, dpp=False, gamma=gamma, directions=directions)
        ok, w, lam = solver.solve(gamma)
        if not ok:
            return False, None
        p = [np.asarray(pk.value) for pk in solver.p] if solver.mrt else None
        return True, BiRboResult(t, w, lam, True, p_mats=p)

    decisions = {} if known is None else dict(known)
    _, found, n_solves = path_bisection(solve_at, lo, up, zeta, guess, known=decisions)
    if found is not None:
        best = found
    best.decisions = decisions
    best.n_solves = n_solves
    best.solve_s = time.perf_counter() - t0
    return best


# --------------------------------------------------------------------------------------------
# rank-one extraction, certificate, Monte Carlo
# --------------------------------------------------------------------------------------------
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
            guess: float | None = None) -> NDArray[np.complex128] | None:
    """Robust power re-optimisation of fixed beam directions (netsim addition to Alg. 2 step 6).

    Bi-RBO restricted to ``W_k = p_k b_k b_k^H`` with ``b_k = x_k / ||x_k||`` (the model (26)
    with one direction per user): the scaling ``eta`` of the rank-one step shrinks every user
    alike, this gives each user the power the certificate needs. Returns normalised reduced
    beamformers (K, d) ``sqrt(p_k) b_k``, or None if nothing is feasible. ``guess`` is an
    expected threshold for the bisection (see :func:`bi_rbo`).
    """
    return _repower(red, x, rho, zeta, guess)[0]


def _repower(red: ReducedProblem, x: NDArray[np.complex128], rho: float, zeta: float,
             guess: float | None, known: dict[float, bool] | None = None) -> tuple[NDArray[np.complex128] | None, float, int]:
    """:func:`repower` plus its threshold t and the number of solves (``known``: see :func:`bi_rbo`)."""
    nrm = np.linalg.norm(x, axis=1)
    if np.any(nrm <= 0):
        return None, 0.0, 0
    b = x / nrm[:, None]
    res = bi_rbo(red, rho, zeta, directions=[bk[:, None] for bk in b], guess=guess, known=known)
    if not res.feasible or res.p_mats is None:
        return None, 0.0, res.n_solves
    p = np.maximum(np.array([np.real(pk.reshape(-1)[0]) for pk in res.p_mats]), 0.0)  # [K]
    return np.sqrt(p)[:, None] * b, float(res.t), res.n_solves


def _lmi_gamma_max(red: ReducedProblem, w_mats, lam, k, gamma_hi) -> float:  # noqa: ANN001
    """Largest gamma in [0, gamma_hi] with Phi_k(gamma, lam) >= 0 (Phi is decreasing in gamma)."""
    if np.linalg.eigvalsh(_phi(red, w_mats, lam, 0.0, k))[0] < 0:
        return 0.0
    lo, hi = 0.0, gamma_hi
    if np.linalg.eigvalsh(_phi(red, w_mats, lam, hi, k))[0] >= 0:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.linalg.eigvalsh(_phi(red, w_mats, lam, mid, k))[0] >= 0:
            lo = mid
        else:
            hi = mid
    return lo


def worst_case_sinr(red: ReducedProblem, x: NDArray[np.complex128], w_mats: NDArray[np.complex128] | None = None,
                    cache: ProblemCache | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
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

    Returns
    -------
    gamma : ndarray (K,) certified SINR; lam : ndarray (M, K).
    """
    import cvxpy as cp

    k_users, m, d = red.n_users, red.n_aps, red.dim
    if w_mats is None:
        w_mats = np.einsum("ki,kj->kij", x, x.conj())  # [K, d, d]
    e = red.indicator
    gam_out = np.zeros(k_users)
    lam_out = np.zeros((m, k_users))
    exact = red.exact_users
    prob = None
    for k in range(k_users):
        if exact[k]:  # no error ball: the certified SINR is the SINR itself
            sig, intf = _received_powers(red, w_mats, k)
            gam_out[k] = max(sig, 0.0) / (max(intf, 0.0) + 1.0)
            continue
        if prob is None:  # one parametrised (DPP) problem, compiled once for every user
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
        s_other = w_mats.sum(axis=0) - w_mats[k]
        g = red.g[k]
        # Phi(gamma, lam) = A0 + gamma A1 + sum_m lam_m Lm  (all constants)
        p_a0.value = np.block([[w_mats[k], (w_mats[k] @ g)[:, None]], [(g.conj() @ w_mats[k])[None, :], np.array([[np.real(g.conj() @ w_mats[k] @ g)]])]])
        p_a1.value = -np.block([[s_other, (s_other @ g)[:, None]], [(g.conj() @ s_other)[None, :], np.array([[np.real(g.conj() @ s_other @ g) + 1.0]])]])
        # sum_m lam_m L_m with L_m = blkdiag(D_m, -eps_mk^2), as one affine map (fast compile)
        lmat = np.zeros((d + 1, m))  # diagonal of every L_m, stacked
        lmat[:d] = e
        lmat[d] = -red.eps2[:, k]
        p_l.value = lmat
        lam_k = np.zeros(m)
        gam_sdp = 0.0
        for sv in ("CLARABEL", "SCS"):
            try:
                prob.solve(solver=sv, warm_start=False, **(_CLARABEL_OPTS if sv == "CLARABEL" else {}))
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


# --------------------------------------------------------------------------------------------
# EI (error-ignorant) SOCP, eq. (22)-(23)
# --------------------------------------------------------------------------------------------
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


def certify(red: ReducedProblem, x: NDArray[np.complex128], rho: float,
            cache: ProblemCache | None = None) -> tuple[NDArray[np.float64], float]:
    """Certified worst-case SINRs and minimum rate of normalised reduced beamformers x."""
    gam, _ = worst_case_sinr(red, x, cache=cache)
    return gam, float(rho * np.log2(1.0 + max(float(np.min(gam)), 0.0)))


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
                           max_sdp_dim, t0, _hints(hint, scheme), cache)
    except BaseException as exc:  # noqa: BLE001 - a solver failure (even a Rust panic) is a status
        _reraise_interrupt(exc)
        return BeamformingResult(zero, rho, 0.0, np.zeros(k_users), 0.0, "solver_error", 0, time.perf_counter() - t0, {"error": repr(exc)})


def _zf_seed(red: ReducedProblem, rho: float, cache: ProblemCache | None = None) -> dict[float, bool]:
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
        _, rate = certify(red, x, rho, cache)
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
            guesses, cache=None):
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
        seed = _zf_seed(red, rho, cache) if scheme == "main" else {}
        extra["zf_seed"] = next(iter(seed), 0.0)
        res = bi_rbo(red, rho, zeta, mrt=(scheme == "mrt"), guess=guesses.get("t_sdr"), known=seed)
        if not res.feasible:
            return BeamformingResult(zero, rho, 0.0, np.zeros(k_users), 0.0, "infeasible", res.n_solves, time.perf_counter() - t0, extra)
        x = rank_one(red, res.w_mats)
        gam, rate = certify(red, x, rho, cache)
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
                red, x, rho, zeta, guesses.get("t_repower", float(res.t)), known=rep_known)
            if x2 is not None:
                gam2, rate2 = certify(red, x2, rho, cache)
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
    gam, rate = certify(red, x, rho, cache)
    return BeamformingResult(red.lift(x), rho, float(t_sdr), gam, rate, "ok", n_s, time.perf_counter() - t0, extra)
