"""The per-user certificate SDPs of fixed beamformers, all users in one batched interior-point run
(seed 003 (13); spec 3.6).

The same problem and the same method as :func:`netsim.comm.robust_cert_ipm.certificate_sdp`
(primal-dual path following, Nesterov-Todd scaling, Mehrotra predictor-corrector; the scheme of
:mod:`netsim.comm.robust_ipm_core`), written for one (n x n) LMI block and the orthant
``y = (gamma, lam) >= 0``, with every array stacked over the users ``b``::

    max gamma  s.t.  F_b(y) = A0_b + gamma A1_b + sum_m lam_m diag(L_b[:, m]) >= 0,  y >= 0

Each iteration is a handful of stacked numpy calls on ``(B, n, n)`` arrays (n = d + 1 = 13 at
the paper's size) instead of B runs of the generic block solver, whose cost is Python overhead
at this size. Users leave the batch when they converge; a user whose stacked factorisation fails
is solved by the generic solver instead. The caller verifies every multiplier by an exact test
on gamma (:func:`netsim.comm.robust_certify._lmi_gamma_max`), so soundness does not rest on
this solver's accuracy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from netsim.comm.robust_cert_ipm import certificate_sdp

__all__ = ["certificate_sdp_batch"]


def _herm(a: NDArray[np.complex128]) -> NDArray[np.complex128]:
    return 0.5 * (a + np.conj(np.swapaxes(a, -1, -2)))


def _diag(v: NDArray) -> NDArray[np.complex128]:
    """(..., n) -> (..., n, n) diagonal matrices."""
    out = np.zeros(v.shape + (v.shape[-1],), dtype=complex)
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def _rdot(a: NDArray[np.complex128], b: NDArray[np.complex128]) -> NDArray[np.float64]:
    """``Re <A, B> = Re tr(A^H B)`` per stacked pair: (B, n, n) x2 -> (B,)."""
    return np.real(np.sum(np.conj(a) * b, axis=(-2, -1)))


class _Batch:
    """Stacked problem data of the active users: a0, a1 (B, n, n), lmat (B, n, M)."""

    def __init__(self, a0: NDArray[np.complex128], a1: NDArray[np.complex128], lmat: NDArray[np.float64]) -> None:
        self.a0, self.a1, self.lmat = a0, a1, lmat

    def lin(self, y: NDArray[np.float64]) -> NDArray[np.complex128]:
        """``gamma A1 + diag(L lam)`` (B, n, n) for y (B, q)."""
        return y[:, 0, None, None] * self.a1 + _diag(np.einsum("bnm,bm->bn", self.lmat, y[:, 1:]))

    def adj(self, z: NDArray[np.complex128]) -> NDArray[np.float64]:
        """Adjoint of :meth:`lin`: ``(Re tr(A1 Z), L^T Re diag(Z))`` (B, q)."""
        g = np.real(np.einsum("bij,bji->b", self.a1, z))
        lam = np.einsum("bnm,bn->bm", self.lmat, np.real(np.diagonal(z, axis1=1, axis2=2)))
        return np.concatenate([g[:, None], lam], axis=1)

    def schur(self, winv: NDArray[np.complex128], zs: NDArray[np.float64]) -> NDArray[np.float64]:
        """``H_ij = Re tr(W^-1 F_i W^-1 F_j) + delta_ij z_i / s_i`` (B, q, q)."""
        p = winv @ self.a1  # [B, n, n]
        h00 = np.real(np.einsum("bij,bji->b", p, p))
        h0l = np.einsum("bn,bnm->bm", np.real(np.diagonal(p @ winv, axis1=1, axis2=2)), self.lmat)  # [B, M]
        hll = np.einsum("bim,bij,bjl->bml", self.lmat, np.abs(winv) ** 2, self.lmat)  # [B, M, M]
        bsz, mm = h0l.shape
        hess = np.empty((bsz, mm + 1, mm + 1))
        hess[:, 0, 0] = h00
        hess[:, 0, 1:] = h0l
        hess[:, 1:, 0] = h0l
        hess[:, 1:, 1:] = hll
        idx = np.arange(mm + 1)
        hess[:, idx, idx] += zs
        return hess


def _max_step(lam: NDArray[np.float64], ds: NDArray[np.complex128]) -> NDArray[np.float64]:
    """Largest alpha with ``diag(lam) + alpha ds >= 0`` per user (inf where every alpha is)."""
    isq = 1.0 / np.sqrt(lam)  # [B, n]
    ev = np.linalg.eigvalsh(_herm(isq[:, :, None] * ds * isq[:, None, :]))[:, 0]
    with np.errstate(divide="ignore"):
        return np.where(ev >= 0, np.inf, -1.0 / np.where(ev >= 0, -1.0, ev))


def _lin_step(laml: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    """Largest alpha with ``laml + alpha v >= 0`` per user (B,)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(v < 0, -laml / np.where(v < 0, v, -1.0), np.inf)
    return r.min(axis=1)


def certificate_sdp_batch(a0: NDArray[np.complex128], a1: NDArray[np.complex128], lmat: NDArray[np.float64],
                          max_iter: int = 60, tol: float = 1e-8,
                          feas_tol: float = 1e-7) -> list[tuple[float, NDArray[np.float64]] | None]:
    """:func:`netsim.comm.robust_cert_ipm.certificate_sdp` for B users at once.

    Parameters
    ----------
    a0, a1 : ndarray (B, n, n) complex Hermitian
        ``A1_b`` negative semidefinite with ``A1_b[n-1, n-1] < 0``.
    lmat : ndarray (B, n, M) float
        Diagonals of the ``L_m`` per user: rows 0..n-2 the 0/1 AP indicators, row n-1
        ``-eps_mk^2 < 0``.
    max_iter, tol, feas_tol :
        As the generic solver's (``tol`` relative gap, ``feas_tol`` relative residuals).

    Returns
    -------
    list of B entries ``(gamma, lam (M,))`` or None (as :func:`certificate_sdp`).
    """
    a0 = _herm(np.asarray(a0, dtype=complex))
    a1 = _herm(np.asarray(a1, dtype=complex))
    lmat = np.asarray(lmat, dtype=float)
    bsz, n, m = lmat.shape
    q = m + 1
    out: list[tuple[float, NDArray[np.float64]] | None] = [None] * bsz
    valid = np.all(lmat[:, n - 1] < 0, axis=1) & (np.real(a1[:, n - 1, n - 1]) < 0)  # [B]
    # primal start (as certificate_sdp): lam = t 1 with the largest lambda_min(Phi(0, lam)) on a
    # log grid, gamma at half the room left
    scale = np.maximum(np.abs(a0).max(axis=(1, 2)), 1e-300)  # [B]
    ts = scale[:, None] * np.logspace(-10, 4, 29)[None, :]  # [B, 29]
    grid = a0[:, None] + _diag(lmat.sum(axis=2)[:, None, :] * ts[:, :, None])  # [B, 29, n, n]
    ev = np.linalg.eigvalsh(grid)[..., 0]  # [B, 29]
    j = np.argmax(ev, axis=1)
    best_t = ts[np.arange(bsz), j]
    best_ev = ev[np.arange(bsz), j]
    valid &= best_ev > 1e-12 * scale
    g0 = 0.5 * best_ev / np.maximum(np.linalg.norm(a1, 2, axis=(1, 2)), 1e-300)
    y = np.concatenate([g0[:, None], np.repeat(best_t[:, None], m, axis=1)], axis=1)  # [B, q]
    # dual start with zero dual residual (as certificate_sdp)
    tr_d = np.maximum(lmat[:, : n - 1].sum(axis=1), 1e-300)  # [B, M]
    delta = 0.5 * np.min(-lmat[:, n - 1] / tr_d, axis=1)  # [B]
    zdiag = np.repeat(delta[:, None], n, axis=1)
    zdiag[:, n - 1] = 1.0
    a1_w = -np.einsum("bn,bn->b", np.real(np.diagonal(a1, axis1=1, axis2=2)), zdiag)  # [B] > 0
    zeta = 2.0 / np.maximum(a1_w, 1e-300)
    zmat = _diag(zeta[:, None] * zdiag)  # [B, n, n]
    zl = np.concatenate([(zeta * a1_w - 1.0)[:, None], -zeta[:, None] * np.einsum("bn,bnm->bm", zdiag, lmat)], axis=1)
    full = _Batch(a0, a1, lmat)
    smat = a0 + full.lin(y)
    sl = y.copy()
    valid &= np.all(sl > 0, axis=1) & np.all(zl > 0, axis=1)
    cvec = np.zeros(q)
    cvec[0] = -1.0
    theta = float(n + q)
    hnorm = np.maximum(1.0, np.linalg.norm(a0, axis=(1, 2)))  # [B]
    cand: dict[int, tuple[float, NDArray[np.float64]]] = {}
    cand_gap: dict[int, float] = {}
    active = np.nonzero(valid)[0]
    eye = np.eye(n)
    for _ in range(max_iter):
        if active.size == 0:
            break
        pb = _Batch(a0[active], a1[active], lmat[active])
        ya, sa, za, sla, zla = y[active], smat[active], zmat[active], sl[active], zl[active]
        rp = sa - (pb.a0 + pb.lin(ya))  # [A, n, n]
        rpl = sla - ya  # [A, q]
        az = pb.adj(za)
        rd = cvec[None] - az - zla
        gap = _rdot(sa, za) + np.sum(sla * zla, axis=1)  # [A]
        mu = gap / theta
        pobj = -ya[:, 0]
        dobj = -_rdot(pb.a0, za)
        rel_p = (np.linalg.norm(rp, axis=(1, 2)) + np.linalg.norm(rpl, axis=1)) / hnorm[active]
        rel_d = np.linalg.norm(rd, axis=1) / np.maximum.reduce([np.ones(active.size), np.linalg.norm(az, axis=1),
                                                                 np.linalg.norm(zla, axis=1)])
        gmin = np.minimum(gap, np.abs(pobj - dobj))
        rel_gap = gmin / np.maximum(1.0, np.abs(pobj))
        done = (rel_p < feas_tol) & (rel_d < feas_tol) & (gmin < tol * np.maximum(1.0, np.abs(pobj)))
        for i in np.nonzero(done)[0]:
            out[active[i]] = (float(ya[i, 0]), np.maximum(ya[i, 1:], 0.0))
        near = (rel_p < feas_tol) & (rel_d < 1e-5) & (rel_gap < 1e-6) & ~done
        for i in np.nonzero(near)[0]:
            b = int(active[i])
            if rel_gap[i] < cand_gap.get(b, np.inf):
                cand[b], cand_gap[b] = (float(ya[i, 0]), np.maximum(ya[i, 1:], 0.0)), float(rel_gap[i])
        keep = ~done
        if not np.any(keep):
            active = active[keep]
            break
        active, pb = active[keep], _Batch(pb.a0[keep], pb.a1[keep], pb.lmat[keep])
        ya, sa, za, sla, zla = ya[keep], sa[keep], za[keep], sla[keep], zla[keep]
        rp, rpl, rd, gap, mu = rp[keep], rpl[keep], rd[keep], gap[keep], mu[keep]
        try:
            # Nesterov-Todd scaling: S = R diag(lam) R^H, Z = R^-H diag(lam) R^-1
            l1 = np.linalg.cholesky(sa)
            l2 = np.linalg.cholesky(za)
            u, lam, vh = np.linalg.svd(np.conj(np.swapaxes(l2, 1, 2)) @ l1)
            r = l1 @ np.conj(np.swapaxes(vh, 1, 2)) / np.sqrt(lam)[:, None, :]
            rinv = (np.conj(np.swapaxes(u, 1, 2)) / np.sqrt(lam)[:, :, None]) @ np.conj(np.swapaxes(l2, 1, 2))
            rinv_h = np.conj(np.swapaxes(rinv, 1, 2))
            winv = rinv_h @ rinv
            wl = np.sqrt(sla / zla)
            laml = np.sqrt(sla * zla)
            hess = pb.schur(winv, zla / sla)
            dg = np.sqrt(np.maximum(np.einsum("bii->bi", hess), 1e-300))  # [A, q]
            hs = hess / dg[:, :, None] / dg[:, None, :]

            def solve(rhs: NDArray[np.float64], hs=hs, dg=dg) -> NDArray[np.float64]:  # noqa: ANN001
                return np.linalg.solve(hs, (rhs / dg)[..., None])[..., 0] / dg

            def newton(rc, rcl, pb=pb, rinv=rinv, rinv_h=rinv_h, winv=winv, wl=wl, rp=rp, rpl=rpl, rd=rd):  # noqa: ANN001, ANN202
                tz = rinv_h @ rc @ rinv + winv @ rp @ winv
                tzl = rcl / wl + rpl / wl**2
                dx = solve(-rd + pb.adj(tz) + tzl)
                for refine in range(2):
                    dsw = _herm(rinv @ (pb.lin(dx) - rp) @ rinv_h)
                    dzw = _herm(rc - dsw)
                    dslw = (dx - rpl) / wl
                    if refine:
                        break
                    err = -pb.adj(rinv_h @ dzw @ rinv) - (rcl - dslw) / wl + rd  # = H dx - rhs
                    dx = dx - solve(err)
                return dx, dsw, dzw, dslw, rcl - dslw

            def step(lam_, dsw, dzw, dslw, dzlw, laml=laml):  # noqa: ANN001, ANN202
                return np.minimum.reduce([_max_step(lam_, dsw), _max_step(lam_, dzw), _lin_step(laml, dslw), _lin_step(laml, dzlw)])

            dlam = _diag(lam)
            _, dsw_a, dzw_a, dslw_a, dzlw_a = newton(-dlam, -laml)
            a_aff = np.minimum(1.0, step(lam, dsw_a, dzw_a, dslw_a, dzlw_a))
            gap_aff = np.sum((laml + a_aff[:, None] * dslw_a) * (laml + a_aff[:, None] * dzlw_a), axis=1)
            gap_aff += _rdot(dlam + a_aff[:, None, None] * dsw_a, dlam + a_aff[:, None, None] * dzw_a)
            sigma = np.minimum(1.0, np.maximum(gap_aff, 0.0) / np.maximum(gap, 1e-300)) ** 3
            tmat = (-_diag(lam * lam) - 0.5 * (dsw_a @ dzw_a + dzw_a @ dsw_a)
                    + (sigma * mu)[:, None, None] * eye[None])
            rc = 2.0 * tmat / (lam[:, :, None] + lam[:, None, :])
            rcl = (-laml * laml - dslw_a * dzlw_a + (sigma * mu)[:, None]) / laml
            dx, dsw, dzw, dslw, dzlw = newton(rc, rcl)
            alpha = np.minimum(1.0, 0.99 * step(lam, dsw, dzw, dslw, dzlw))
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            # one user's factorisation failed: the generic solver takes every user still here
            for b in active:
                out[b] = certificate_sdp(a0[b], a1[b], lmat[b], max_iter=max_iter)
            active = active[:0]
            break
        bad = ~(np.isfinite(alpha) & (alpha > 0))
        for i in np.nonzero(bad)[0]:
            out[active[i]] = cand.get(int(active[i]))
        ok = ~bad
        al = alpha[ok]
        y[active[ok]] = ya[ok] + al[:, None] * dx[ok]
        smat[active[ok]] = _herm(r[ok] @ (dlam[ok] + al[:, None, None] * dsw[ok]) @ np.conj(np.swapaxes(r[ok], 1, 2)))
        zmat[active[ok]] = _herm(rinv_h[ok] @ (dlam[ok] + al[:, None, None] * dzw[ok]) @ rinv[ok])
        sl[active[ok]] = wl[ok] * (laml[ok] + al[:, None] * dslw[ok])
        zl[active[ok]] = (laml[ok] + al[:, None] * dzlw[ok]) / wl[ok]
        active = active[ok]
    for b in active:  # max_iter: the best near-optimal iterate, if any
        out[b] = cand.get(int(b))
    return out
