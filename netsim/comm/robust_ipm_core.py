"""Primal-dual interior-point core for block-structured complex SDPs (seed 003 robust designs).

The problems of :mod:`netsim.comm.robust_ipm` (the SDR (14)) and
:mod:`netsim.comm.robust_cert_ipm` (the certificate SDP) in one form::

    min c^T x  s.t.  F_b(x) = C_b (sum_j a_bj Y_j) C_b^H + sum_e x[i_be] L_be + F_b0 >= 0  (Hermitian blocks b)
                     G x <= h                                                        (linear rows)

with x = [vec_R(Y_1) .. vec_R(Y_K), extras] (real coordinates of Hermitian matrices,
:class:`HermBasis`). Method: infeasible-start primal-dual path following with Nesterov-Todd
scaling and Mehrotra's predictor-corrector (the scheme of CVXOPT's ``coneqp``: L. Vandenberghe,
"The CVXOPT linear and quadratic cone program solvers", 2010, secs. 4-6). For an NT scaling
``W_b = R_b R_b^H`` the Newton system is the n x n Schur complement
``H = sum_b lin_b^* (W_b^-1 lin_b(.) W_b^-1) + G^T diag(z/s) G``; with ``V_b = C_b^H W_b^-1 C_b``
its Y-Y part is ``sum_b a_bj a_bj' K(V_b)``, ``K(V)[i, i'] = Re tr(V B_i V B_i')`` (O(d^4) per
block instead of the O(d^6) of a dense real embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["HermBasis"]


class HermBasis:
    """Real coordinates of d x d Hermitian matrices: ``Y = sum_i y_i B_i``, y in R^{d^2}.

    ``B_i`` is ``E_aa`` (the diagonal), ``E_ab + E_ba`` (real part of ``Y_ab``, a < b) or
    ``i E_ab - i E_ba`` (imaginary part), stored as two weighted unit entries
    ``alpha_it E_{a_it, b_it}`` (t = 0, 1; weight 0 for the second entry of a diagonal one).
    """

    def __init__(self, d: int) -> None:
        self.d = d
        ra, rb, al = [], [], []
        for a in range(d):
            ra.append((a, 0))
            rb.append((a, 0))
            al.append((1.0, 0.0))
        for a in range(d):
            for b in range(a + 1, d):
                for w in ((1.0, 1.0), (1j, -1j)):
                    ra.append((a, b))
                    rb.append((b, a))
                    al.append(w)
        self.a = np.array(ra, dtype=np.int64).reshape(-1, 2)  # [d^2, 2]
        self.b = np.array(rb, dtype=np.int64).reshape(-1, 2)  # [d^2, 2]
        self.alpha = np.array(al, dtype=complex).reshape(-1, 2)  # [d^2, 2]
        n = d * d
        umap = np.zeros((n, n), dtype=complex)  # vec(Y) (row-major) = umap @ y
        for t in range(2):
            np.add.at(umap, (self.a[:, t] * d + self.b[:, t], np.arange(n)), self.alpha[:, t])
        self.umap = umap
        # K(V)[i, j] = sum_{t,s} alpha_it alpha_js V[b_it, a_js] V[b_js, a_it]
        self._idx = [[(self.b[:, t, None] * d + self.a[None, :, s], self.b[None, :, s] * d + self.a[:, t, None])
                      for s in range(2)] for t in range(2)]
        self._aa = [[self.alpha[:, t, None] * self.alpha[None, :, s] for s in range(2)] for t in range(2)]

    def unpack(self, y: NDArray[np.float64]) -> NDArray[np.complex128]:
        """(..., d^2) real -> (..., d, d) Hermitian."""
        return (y @ self.umap.T).reshape(*y.shape[:-1], self.d, self.d)

    def pack(self, mats: NDArray[np.complex128]) -> NDArray[np.float64]:
        """(..., d, d) Hermitian -> (..., d^2) coordinates (inverse of :meth:`unpack`)."""
        iu = np.triu_indices(self.d, 1)
        diag = np.real(np.diagonal(mats, axis1=-2, axis2=-1))  # [..., d]
        up = mats[..., iu[0], iu[1]]  # [..., d(d-1)/2]
        off = np.stack([up.real, up.imag], axis=-1).reshape(*mats.shape[:-2], -1)
        return np.concatenate([diag, off], axis=-1)

    def dual(self, u: NDArray[np.complex128]) -> NDArray[np.float64]:
        """``r_i = Re tr(B_i U)`` for every basis matrix: (..., d, d) -> (..., d^2)."""
        return np.real(np.sum(self.alpha * u[..., self.b, self.a], axis=-1))

    def kron(self, v: NDArray[np.complex128]) -> NDArray[np.float64]:
        """``K[i, j] = Re tr(V B_i V B_j)``, (..., d^2, d^2), for Hermitian V (..., d, d)."""
        flat = v.reshape(*v.shape[:-2], self.d * self.d)
        out = 0.0
        for t in range(2):
            for s in range(2):
                p1 = np.take(flat, self._idx[t][s][0], axis=-1)
                p2 = np.take(flat, self._idx[t][s][1], axis=-1)
                out = out + (self._aa[t][s] * (p1 * p2)).real
        return out

@dataclass
class _Block:
    """``F(x) = C (sum_j coef_j Y_j) C^H + sum_e x[idx_e] mats_e + f0`` (n_b x n_b Hermitian)."""

    c: NDArray[np.complex128]  # [n_b, d]
    coef: NDArray[np.float64]  # [K]
    idx: NDArray[np.int64]  # [q]
    mats: NDArray[np.complex128]  # [q, n_b, n_b]
    f0: NDArray[np.complex128]  # [n_b, n_b]

class _Conic:
    """The block set of one problem instance; x = [y_1 .. y_K, extras]."""

    def __init__(self, hb: HermBasis, k_users: int, n_extra: int, blocks: list[_Block],
                 lp_g: NDArray[np.float64], lp_h: NDArray[np.float64]) -> None:
        self.hb, self.k, self.blocks = hb, k_users, blocks
        self.ny = hb.d * hb.d
        self.nyk = k_users * self.ny
        self.n = self.nyk + n_extra
        self.lp_g, self.lp_h = lp_g, lp_h  # [p, n], [p]
        self.theta = float(sum(b.c.shape[0] for b in blocks) + lp_h.size)
        self.coefs = np.stack([b.coef for b in blocks])  # [B, K]

    def lin(self, x: NDArray[np.float64]) -> list[NDArray[np.complex128]]:
        """F_b(x) - F_b0 for every block (the linear part)."""
        if self.k:
            ys = self.hb.unpack(x[: self.nyk].reshape(self.k, self.ny))  # [K, d, d]
            comb = np.tensordot(self.coefs, ys, axes=1)  # [B, d, d]
        else:  # no matrix variables (the certificate SDP)
            comb = [None] * len(self.blocks)
        out = []
        for b, s in zip(self.blocks, comb, strict=True):
            nb = b.f0.shape[0]
            f = b.c @ s @ b.c.conj().T if s is not None else np.zeros((nb, nb), dtype=complex)
            if b.idx.size:
                f = f + np.tensordot(x[b.idx], b.mats, axes=1)
            out.append(0.5 * (f + f.conj().T))
        return out

    def adj(self, zs: list[NDArray[np.complex128]]) -> NDArray[np.float64]:
        """Adjoint of :meth:`lin`: ``r = sum_b lin_b^*(Z_b)`` (n,)."""
        out = np.zeros(self.n)
        if self.k:
            cz = np.stack([b.c.conj().T @ z @ b.c for b, z in zip(self.blocks, zs, strict=True)])  # [B, d, d]
            dz = self.hb.dual(cz)  # [B, d^2]
            out[: self.nyk] = (self.coefs.T @ dz).reshape(-1)
        for b, z in zip(self.blocks, zs, strict=True):
            if b.idx.size:
                out[b.idx] += np.real(np.einsum("eab,ba->e", b.mats, z))
        return out

    def schur(self, winvs: list[NDArray[np.complex128]], dlin: NDArray[np.float64]) -> NDArray[np.float64]:
        """``sum_b lin_b^* (W_b^-1 lin_b(.) W_b^-1) + G^T diag(dlin) G`` (n, n)."""
        ny, k, nyk = self.ny, self.k, self.nyk
        nb = len(self.blocks)
        hess = np.zeros((self.n, self.n))
        if k:
            vs = np.stack([b.c.conj().T @ wi @ b.c for b, wi in zip(self.blocks, winvs, strict=True)])  # [B, d, d]
            vs = 0.5 * (vs + np.conj(np.swapaxes(vs, 1, 2)))
            kvs = self.hb.kron(vs)  # [B, d^2, d^2]
            cc = (self.coefs[:, :, None] * self.coefs[:, None, :]).reshape(nb, k * k)  # [B, K^2]
            hyy = (cc.T @ kvs.reshape(nb, ny * ny)).reshape(k, k, ny, ny)
            hess[:nyk, :nyk] = hyy.transpose(0, 2, 1, 3).reshape(nyk, nyk)
        for b, wi in zip(self.blocks, winvs, strict=True):
            if not b.idx.size:
                continue
            zm = wi @ b.mats @ wi  # [q, n_b, n_b]
            hess[np.ix_(b.idx, b.idx)] += np.real(np.einsum("eab,fba->ef", zm, b.mats))
            if not k:
                continue
            cross = self.hb.dual(b.c.conj().T[None] @ zm @ b.c[None])  # [q, d^2]
            full = (b.coef[:, None, None] * cross[None, :, :]).transpose(1, 0, 2).reshape(b.idx.size, nyk)
            hess[b.idx, :nyk] += full
            hess[:nyk, b.idx] += full.T
        gs = self.lp_g * np.sqrt(dlin)[:, None]
        hess += gs.T @ gs
        return hess


def _herm(a: NDArray[np.complex128]) -> NDArray[np.complex128]:
    return 0.5 * (a + a.conj().T)


def _max_step(lam: NDArray[np.float64], ds: NDArray[np.complex128]) -> float:
    """Largest alpha with ``diag(lam) + alpha ds >= 0`` (inf if every alpha is)."""
    isq = 1.0 / np.sqrt(lam)
    ev = np.linalg.eigvalsh(_herm(isq[:, None] * ds * isq[None, :]))[0]
    return np.inf if ev >= 0 else -1.0 / ev


@dataclass
class _Result:
    x: NDArray[np.float64]
    status: str  # "optimal", "optimal_inaccurate", "stopped", "max_iter", "numerical"
    iters: int
    pobj: float
    dobj: float
    rel_dres: float


class _Scaling:
    """Nesterov-Todd scaling at one iterate and the Newton solves that use it.

    Blocks: ``S = R diag(lam) R^H``, ``Z = R^-H diag(lam) R^-1``; linear rows:
    ``s = w lam``, ``z = lam / w``. Scaled steps ``ds~ = R^-1 dS R^-H``, ``dz~ = R^H dZ R``.
    """

    def __init__(self, prob: _Conic, ss: list, zs: list, sl: NDArray[np.float64], zl: NDArray[np.float64],
                 rp: list, rpl: NDArray[np.float64], rd: NDArray[np.float64]) -> None:
        from scipy.linalg import cho_factor

        self.prob, self.rp, self.rpl, self.rd = prob, rp, rpl, rd
        self.rs, self.rinvs, self.lams = [], [], []
        for s, z in zip(ss, zs, strict=True):
            l1 = np.linalg.cholesky(s)
            l2 = np.linalg.cholesky(z)
            u, sv, vh = np.linalg.svd(l2.conj().T @ l1)
            self.rs.append(l1 @ vh.conj().T / np.sqrt(sv)[None, :])  # R = L1 V Sigma^-1/2
            self.rinvs.append((u.conj().T / np.sqrt(sv)[:, None]) @ l2.conj().T)  # R^-1 = Sigma^-1/2 U^H L2^H
            self.lams.append(sv)
        self.wl = np.sqrt(sl / zl)
        self.laml = np.sqrt(sl * zl)
        self.winvs = [ri.conj().T @ ri for ri in self.rinvs]  # W^-1 = R^-H R^-1
        hess = prob.schur(self.winvs, zl / sl)
        self.dg = np.sqrt(np.maximum(np.diag(hess), 1e-300))
        self.fac = cho_factor(hess / self.dg[:, None] / self.dg[None, :], lower=True, check_finite=False)

    def newton(self, rc: list, rcl: NDArray[np.float64]) -> tuple:
        """Newton step with scaled complementarity targets ``ds~ + dz~ = rc`` (blocks), ``rcl`` (linear).

        Solves ``-lin(dx) + dS = -r_p``, ``G dx + ds = -r_pl``, ``-lin^*(dZ) + G^T dz = -r_d``;
        returns (dx, ds~ blocks, dz~ blocks, ds~ linear, dz~ linear)."""
        from scipy.linalg import cho_solve

        prob, wl = self.prob, self.wl
        tz = [ri.conj().T @ c @ ri + wi @ r @ wi for ri, c, wi, r in zip(self.rinvs, rc, self.winvs, self.rp, strict=True)]
        tzl = rcl / wl + self.rpl / wl**2
        rhs = -self.rd + prob.adj(tz) - prob.lp_g.T @ tzl
        dx = cho_solve(self.fac, rhs / self.dg, check_finite=False) / self.dg
        for refine in range(2):
            dsw = [_herm(ri @ (f - r) @ ri.conj().T) for ri, f, r in zip(self.rinvs, prob.lin(dx), self.rp, strict=True)]
            dzw = [_herm(c - d) for c, d in zip(rc, dsw, strict=True)]
            dslw = (-(prob.lp_g @ dx) - self.rpl) / wl
            if refine:
                break
            # one step of iterative refinement on the dual equations as actually met by the
            # recovered dZ (H is ill-conditioned near the optimum: ~1/mu^2)
            dz = [ri.conj().T @ d @ ri for ri, d in zip(self.rinvs, dzw, strict=True)]
            err = -prob.adj(dz) + prob.lp_g.T @ ((rcl - dslw) / wl) + self.rd  # = H dx - rhs
            dx = dx - cho_solve(self.fac, err / self.dg, check_finite=False) / self.dg
        return dx, dsw, dzw, dslw, rcl - dslw

    def max_step(self, dsw: list, dzw: list, dslw: NDArray[np.float64], dzlw: NDArray[np.float64]) -> float:
        """Largest step keeping both scaled points in their cones."""
        a = np.inf
        for lm, ds_, dz_ in zip(self.lams, dsw, dzw, strict=True):
            a = min(a, _max_step(lm, ds_), _max_step(lm, dz_))
        for v in (dslw, dzlw):
            neg = v < 0
            if np.any(neg):
                a = min(a, float(np.min(-self.laml[neg] / v[neg])))
        return a


def _ipm(prob: _Conic, cvec: NDArray[np.float64], x0: NDArray[np.float64], z0: tuple, max_iter: int = 80,
         tol: float = 1e-8, feas_tol: float = 1e-7, stop=None) -> _Result:  # noqa: ANN001 - stop(x, pobj, dobj, rel_d) -> bool
    """Primal-dual path following (NT scaling, Mehrotra predictor-corrector) from a strictly
    feasible primal x0 and a dual point z0 = (Z_b list, z_lin) strictly inside the cones.

    "optimal": relative primal and dual residuals below ``feas_tol`` and relative gap below
    ``tol`` (Clarabel's settings here are 1e-7 for both)."""
    from scipy.linalg import LinAlgError

    ss = [f + b.f0 for f, b in zip(prob.lin(x0), prob.blocks, strict=True)]  # slacks S_b = F_b(x)
    sl = prob.lp_h - prob.lp_g @ x0  # [p]
    zs, zl = [z.copy() for z in z0[0]], z0[1].copy()
    x = x0.copy()
    if np.any(sl <= 0) or np.any(zl <= 0):
        return _Result(x, "numerical", 0, np.nan, np.nan, np.inf)
    hnorm = max(1.0, float(np.linalg.norm(prob.lp_h)) + sum(float(np.linalg.norm(b.f0)) for b in prob.blocks))
    cnorm = max(1.0, float(np.linalg.norm(cvec)))
    pobj = dobj = np.nan
    rel_d = np.inf
    candidate: _Result | None = None
    cand_gap = np.inf
    for it in range(max_iter):
        # residuals: r_p = S - F(x) (blocks), s + G x - h (linear); r_d = c - lin^*(Z) + G^T z
        rp = [s - (f + b.f0) for s, f, b in zip(ss, prob.lin(x), prob.blocks, strict=True)]
        rpl = sl + prob.lp_g @ x - prob.lp_h
        az = prob.adj(zs)
        gz = prob.lp_g.T @ zl
        rd = cvec - az + gz
        gap = sum(float(np.real(np.vdot(s, z))) for s, z in zip(ss, zs, strict=True)) + float(sl @ zl)
        mu = gap / prob.theta
        pobj = float(cvec @ x)
        dobj = -sum(float(np.real(np.vdot(b.f0, z))) for b, z in zip(prob.blocks, zs, strict=True)) - float(prob.lp_h @ zl)
        rel_p = (sum(float(np.linalg.norm(r)) for r in rp) + float(np.linalg.norm(rpl))) / hnorm
        rel_d = float(np.linalg.norm(rd)) / max(cnorm, float(np.linalg.norm(az)), float(np.linalg.norm(gz)))
        if stop is not None and stop(x, pobj, dobj, rel_d):
            return _Result(x, "stopped", it, pobj, dobj, rel_d)
        small_gap = min(gap, abs(pobj - dobj)) < tol * max(1.0, abs(pobj))
        if rel_p < feas_tol and rel_d < feas_tol and small_gap:
            return _Result(x, "optimal", it, pobj, dobj, rel_d)
        rel_gap = min(gap, abs(pobj - dobj)) / max(1.0, abs(pobj))
        if rel_p < feas_tol and rel_d < 1e-5 and rel_gap < 1e-6 and (candidate is None or rel_gap < cand_gap):
            # the dual residual drifts up near the optimum of ill-conditioned instances (an SDR
            # close to its feasibility limit, direct coordinates); the best such iterate is
            # returned if the next iterations fail
            candidate, cand_gap = _Result(x, "optimal_inaccurate", it, pobj, dobj, rel_d), rel_gap
        try:
            sc = _Scaling(prob, ss, zs, sl, zl, rp, rpl, rd)
            # predictor: lam o (ds~ + dz~) = -lam o lam
            _, dsw_a, dzw_a, dslw_a, dzlw_a = sc.newton([-np.diag(lm).astype(complex) for lm in sc.lams], -sc.laml)
            a_aff = min(1.0, sc.max_step(dsw_a, dzw_a, dslw_a, dzlw_a))
            gap_aff = float((sc.laml + a_aff * dslw_a) @ (sc.laml + a_aff * dzlw_a))
            for lm, ds_, dz_ in zip(sc.lams, dsw_a, dzw_a, strict=True):
                gap_aff += float(np.real(np.vdot(np.diag(lm) + a_aff * ds_, np.diag(lm) + a_aff * dz_)))
            sigma = min(1.0, max(gap_aff, 0.0) / max(gap, 1e-300)) ** 3
            # corrector: lam o (ds~ + dz~) = -lam o lam - ds~_a o dz~_a + sigma mu I, lam o U = T solved
            # entrywise as U_ij = 2 T_ij / (lam_i + lam_j)
            rc = []
            for lm, ds_, dz_ in zip(sc.lams, dsw_a, dzw_a, strict=True):
                t = -np.diag(lm * lm) - 0.5 * (ds_ @ dz_ + dz_ @ ds_) + sigma * mu * np.eye(lm.size)
                rc.append(2.0 * t / (lm[:, None] + lm[None, :]))
            rcl = (-sc.laml * sc.laml - dslw_a * dzlw_a + sigma * mu) / sc.laml
            dx, dsw, dzw, dslw, dzlw = sc.newton(rc, rcl)
            alpha = min(1.0, 0.99 * sc.max_step(dsw, dzw, dslw, dzlw))
        except (np.linalg.LinAlgError, LinAlgError, FloatingPointError, ValueError):
            return candidate or _Result(x, "numerical", it, pobj, dobj, rel_d)
        if not np.isfinite(alpha) or alpha <= 0:
            return candidate or _Result(x, "numerical", it, pobj, dobj, rel_d)
        x = x + alpha * dx
        ss = [_herm(r @ (np.diag(lm) + alpha * d) @ r.conj().T) for r, lm, d in zip(sc.rs, sc.lams, dsw, strict=True)]
        zs = [_herm(ri.conj().T @ (np.diag(lm) + alpha * d) @ ri) for ri, lm, d in zip(sc.rinvs, sc.lams, dzw, strict=True)]
        sl = sc.wl * (sc.laml + alpha * dslw)
        zl = (sc.laml + alpha * dzlw) / sc.wl
    return candidate or _Result(x, "max_iter", max_iter, pobj, dobj, rel_d)
