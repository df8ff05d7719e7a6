"""cvxpy model of the robust SDR (14) and of the MRT model (26), gamma as a parameter
(seed 003 Alg. 1 and 3; spec 3.5). See :mod:`netsim.comm.robust` for the formulation."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from netsim.comm.robust_model import (
    _CLARABEL_OPTS,
    _CLARABEL_RETRY_OPTS,
    _OK,
    ReducedProblem,
    _phi,
    _reraise_interrupt,
    _sinr_margin,
    mrt_bases,
    zf_coordinates,
)


def verified_point(red: ReducedProblem, w: NDArray[np.complex128], lam: NDArray[np.float64], gamma: float) -> bool:
    """Numerical check of the robust SINR constraints (13) of a point (W (K, d, d), lam (M, K))
    at SINR threshold gamma: ``lambda_min(Phi_k) >= -1e-6 max(1, |lambda|_max)`` for every user
    (the scalar SINR margin for users without error balls)."""
    exact = red.exact_users
    for k in range(red.n_users):
        if exact[k]:
            marg, scale = _sinr_margin(red, w, gamma, k)
            if marg < -1e-6 * max(1.0, scale):
                return False
            continue
        ev = np.linalg.eigvalsh(_phi(red, w, lam, gamma, k))
        if ev[0] < -1e-6 * max(1.0, float(np.max(np.abs(ev)))):
            return False
    return True


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
        return verified_point(self.red, w, lam, gamma)

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
