"""Local maximum-likelihood refinement of user positions on the echo-waveform correlation.

Model of eq. (2) (spec 2.3-2.4): the CPU knows the transmitted streams ``X`` (``X X^H / L =
R_x = blkdiag(R_m)``) and observes ``Y = G X + Z``; block (m', m) (rx m', tx m) of G is
``sum_k beta_{m,m',k} a_{m'}(p_k) a_m(p_k)^T`` with free complex path gains ``beta`` (they absorb
the RCS draw and the residual sync phases). With ``D = Y X^H / L`` (:class:`EchoStatistics.cross`),
``-log p(Y) = (L / sigma^2) sum_{paths} (beta^H H beta - 2 Re beta^H c) + const`` with, per path
(t = tx, s = rx) and users i, j,

* ``c_i = a_s(p_i)^H D_{s,t} conj(a_t(p_i))`` (matched filter focused on p_i at both ends),
* ``H_ij = (a_s(p_i)^H a_s(p_j)) (a_t(p_j)^T R_t conj(a_t(p_i)))``.

Concentrating the gains out leaves ``f(P) = sum_paths c^H H^{-1} c``, maximised here user by user
(the others held at their current estimates, a Jacobi sweep): by the Schur complement,
``f_k(p) = sum_paths |c_k(p) - h(p) H_OO^{-1} c_O|^2 / (H_kk(p) - h(p) H_OO^{-1} h(p)^H)``,
``h_j = H_kj`` for the other users O. This is the ML estimator of the model whose CRLB is eq. (2),
so it is efficient at high SNR (the MUSIC spectrum works on ``Y Y^H`` only, which with an isotropic
``R_x`` carries none of the transmit-side wavefront: ``a_t^T R_t conj(a_t)`` does not depend on p).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.config import IsacGeometry
from netsim.sensing.optimize import maximize_2d

__all__ = ["MlProblem", "ml_image", "ml_refine", "near_response"]


def near_response(geom: IsacGeometry, points_m: ArrayLike, dtype: type = np.complex128) -> NDArray:
    """Near-field response ``exp(-j k (r_n - r))`` of every AP at points, (..., M, N).

    Same as :func:`netsim.sensing.steering.array_response` (``model="near"``); ``dtype``
    ``complex64`` evaluates the phase in float64 and the exponential in single precision
    (coarse searches).
    """
    p = np.asarray(points_m, dtype=float)  # [..., 2]
    q = geom.element_positions_m  # [M, N, 2]
    c = geom.ap_centers_m  # [M, 2]
    dx = p[..., None, None, 0] - q[..., 0]  # [..., M, N]
    dy = p[..., None, None, 1] - q[..., 1]
    rn = np.sqrt(dx * dx + dy * dy)
    cx = p[..., None, 0] - c[:, 0]  # [..., M]
    cy = p[..., None, 1] - c[:, 1]
    rc = np.sqrt(cx * cx + cy * cy)
    ph = -geom.wavenumber * (rn - rc[..., None])  # [..., M, N]
    if dtype == np.complex64:
        ph = ph.astype(np.float32)
    out = np.empty(ph.shape, dtype=dtype)
    np.cos(ph, out=out.real)
    np.sin(ph, out=out.imag)
    return out


@dataclass(frozen=True)
class MlProblem:
    """Data of the ML step for one sensing cluster.

    Attributes
    ----------
    geom : IsacGeometry
    d : ndarray (M, N, M, N) complex
        ``D = R_yx`` as blocks ``[rx, n, tx, n']``.
    r : ndarray (M, N, N) complex [W]
        Transmit covariances ``R_m``.
    """

    geom: IsacGeometry
    d: NDArray[np.complex128]
    r: NDArray[np.complex128]
    lo: NDArray[np.float64] | None = None
    hi: NDArray[np.float64] | None = None
    exclusion_m: float = 0.0

    @classmethod
    def from_statistics(cls, geom: IsacGeometry, cross: ArrayLike, tx_cov: ArrayLike,
                        lo_m: ArrayLike | None = None, hi_m: ArrayLike | None = None,
                        exclusion_m: float = 0.0) -> MlProblem:
        """Build from :class:`~netsim.sensing.echo.EchoStatistics` parts; ``lo_m, hi_m`` (2,)
        bound the admissible positions and points within ``exclusion_m`` of an AP centre are
        not (the criterion is 0 there: users are on the site, not inside an AP's array)."""
        m, n = geom.n_aps, geom.n_antennas
        return cls(geom, np.asarray(cross, dtype=complex).reshape(m, n, m, n),
                   np.asarray(tx_cov, dtype=complex),
                   None if lo_m is None else np.asarray(lo_m, dtype=float),
                   None if hi_m is None else np.asarray(hi_m, dtype=float), float(exclusion_m))

    def _path_terms(self, a: NDArray[np.complex128]):  # noqa: ANN202
        """``c`` [..., s, t], ``R_t conj(a_t)`` [..., t, n] and ``H_kk`` [..., t] at responses a."""
        m, n = self.geom.n_aps, self.geom.n_antennas
        lead = a.shape[:-2]
        ac = a.conj().reshape(-1, m, n)  # [P, M, N]
        dmat = self.d.reshape(m * n, m * n)  # [(s p), (t q)]
        # D_{s,t} conj(a_t) for every (s, t): one matmul per t
        dv = np.stack([ac[:, t, :] @ dmat[:, t * n:(t + 1) * n].T for t in range(m)], axis=1)  # [P, M(t), MN]
        dv = dv.reshape(-1, m, m, n)  # [P, M(t), M(s), N]
        c = np.swapaxes((ac[:, None, :, :] * dv).sum(axis=-1), 1, 2)  # [P, M(s), M(t)]
        rv = np.stack([ac[:, t, :] @ self.r[t].T for t in range(m)], axis=1)  # [P, M(t), N]
        hkk = n * (a.reshape(-1, m, n) * rv).sum(axis=-1).real  # [P, M]
        return (c.reshape(lead + (m, m)), rv.reshape(lead + (m, n)), hkk.reshape(lead + (m,)))

    def others_terms(self, pos_m: ArrayLike):  # noqa: ANN201
        """Per user k: ``w = H_OO^{-1} c_O`` and ``H_OO^{-1}`` for O = all users but k.

        Returns ``a`` (K, M, N), ``w`` (K, M, M, K) and ``minv`` (K, M, M, K, K), zero on the
        rows/columns of k itself.
        """
        p = np.asarray(pos_m, dtype=float).reshape(-1, 2)
        k = p.shape[0]
        a = near_response(self.geom, p)  # [K, M, N]
        c, rv, _ = self._path_terms(a)  # [K, M, M], [K, M, N]
        u = np.einsum("isn,jsn->sij", a.conj(), a)  # [M(s), K, K]
        v = np.einsum("jtn,itn->tij", a, rv)  # [M(t), K, K]
        h = u[:, None] * v[None, :]  # [M(s), M(t), K(i), K(j)]
        m = self.geom.n_aps
        w = np.zeros((k, m, m, k), dtype=complex)
        minv = np.zeros((k, m, m, k, k), dtype=complex)
        for kk in range(k):
            o = np.array([j for j in range(k) if j != kk], dtype=int)
            if o.size == 0:
                continue
            hoo = h[:, :, o[:, None], o[None, :]]  # [M, M, |O|, |O|]
            reg = 1e-10 * np.abs(np.trace(hoo, axis1=-2, axis2=-1))[..., None, None] * np.eye(o.size)
            inv = np.linalg.inv(hoo + reg)  # [M, M, |O|, |O|]
            co = np.moveaxis(c[o], 0, -1)  # [M, M, |O|]
            w[kk][..., o] = np.einsum("stij,stj->sti", inv, co)
            minv[kk][..., o[:, None], o[None, :]] = inv
        return a, w, minv

    def new_user_terms(self, others_m: ArrayLike | None):  # noqa: ANN201
        """Terms for one more user against the fixed users ``others`` (J, 2): ``a`` (J, M, N),
        ``w`` (1, M, M, J), ``minv`` (1, M, M, J, J) (usable with :meth:`criterion`)."""
        o = np.zeros((0, 2)) if others_m is None else np.asarray(others_m, dtype=float).reshape(-1, 2)
        m = self.geom.n_aps
        j = o.shape[0]
        if j == 0:
            return (np.zeros((0, m, self.geom.n_antennas), complex), np.zeros((1, m, m, 0), complex),
                    np.zeros((1, m, m, 0, 0), complex))
        a, w, minv = self.others_terms(np.concatenate([o, o[:1]]))  # the last row stands for the new user
        return a[:j], w[j:, :, :, :j], minv[j:, :, :, :j, :j]

    def criterion(self, pts_m: ArrayLike, a_est: NDArray, w: NDArray, minv: NDArray,
                  per_path: bool = False) -> NDArray:
        """``f_k`` at trial points for each user k.

        Parameters
        ----------
        pts_m : array_like (B, S, 2) [m]
            Trial points of B users (row b belongs to the user whose terms are ``w[b]``).
        a_est : ndarray (K, M, N)
            Responses at every user's current estimate.
        w, minv : ndarray (B, M, M, K), (B, M, M, K, K)
            Rows of :meth:`others_terms` of those users.

        per_path : bool
            Return the gain of every path (B, S, M(rx), M(tx)) instead of their sum. Under noise
            alone each path's gain is ``sigma^2 / L`` times an Exp(1) variable.

        Returns
        -------
        ndarray (B, S), float: concentrated log-likelihood gain (up to L / sigma^2).
        """
        a = near_response(self.geom, pts_m)  # [B, S, M, N]
        c, rv, hkk = self._path_terms(a)  # [B, S, M, M], [B, S, M, N], [B, S, M]
        uo = np.einsum("bxsn,jsn->bxsj", a.conj(), a_est)  # [B, S, M(s), K]
        vo = np.einsum("jtn,bxtn->bxtj", a_est, rv)  # [B, S, M(t), K]
        hrow = uo[:, :, :, None, :] * vo[:, :, None, :, :]  # [B, S, M(s), M(t), K]
        hw = np.einsum("bxstj,bstj->bxst", hrow, w)  # [B, S, M, M]
        mh = np.einsum("bstij,bxstj->bxsti", minv, hrow.conj())  # [B, S, M, M, K]
        hmh = (hrow * mh).sum(axis=-1).real  # [B, S, M, M]
        den = np.maximum(hkk[:, :, None, :] - hmh, 1e-6 * hkk[:, :, None, :])  # [B, S, M, M]
        gains = np.abs(c - hw) ** 2 / den  # [B, S, M, M]
        pts = np.asarray(pts_m, dtype=float)
        if self.lo is not None and self.hi is not None:
            inside = np.all((pts >= self.lo) & (pts <= self.hi), axis=-1)  # [B, S]
            gains = gains * inside[..., None, None]
        if self.exclusion_m > 0:
            dist = np.linalg.norm(pts[..., None, :] - self.geom.ap_centers_m, axis=-1)  # [B, S, M]
            gains = gains * np.all(dist > self.exclusion_m, axis=-1)[..., None, None]
        return gains if per_path else np.sum(gains, axis=(-2, -1))  # [B, S]


def ml_image(problem: MlProblem, pts_m: ArrayLike, chunk: int = 8192) -> NDArray[np.float64]:
    """Single-user ML gain ``sum_paths |c(p)|^2 / H_pp(p)`` at points (P, 2) -> (P,) (complex64).

    The matched-filter image of the echo-waveform correlation (focused at both ends of every
    path): the acquisition's candidate map.
    """
    pts = np.asarray(pts_m, dtype=float).reshape(-1, 2)
    m, n = problem.geom.n_aps, problem.geom.n_antennas
    d = problem.d.astype(np.complex64)  # [M(s), N, M(t), N]
    dt = np.moveaxis(d, 2, 0).reshape(m, m * n, n)  # [M(t), MN(s,p), N(q)]
    r = problem.r.astype(np.complex64)
    out = np.empty(pts.shape[0])
    for s0 in range(0, pts.shape[0], chunk):
        a = near_response(problem.geom, pts[s0:s0 + chunk], np.complex64)  # [P, M, N]
        ac = a.conj()
        tot = np.zeros(a.shape[0])
        for t in range(m):
            dv = (ac[:, t, :] @ dt[t].T).reshape(-1, m, n)  # [P, M(s), N]: D_{s,t} conj(a_t)
            c = (ac * dv).sum(axis=-1)  # [P, M(s)]
            hpp = n * ((a[:, t, :] @ r[t]) * ac[:, t, :]).sum(axis=-1).real  # [P]
            tot += (c.real ** 2 + c.imag ** 2).sum(axis=-1) / np.maximum(hpp, 1e-30)
        out[s0:s0 + chunk] = tot
    return out


def ml_refine(
    problem: MlProblem,
    start_m: ArrayLike,
    h0_m: float | ArrayLike = 0.01,
    tol_m: float = 1e-7,
    sweeps: int = 2,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Jacobi sweeps of per-user ML maximisation from MUSIC estimates.

    Parameters
    ----------
    problem : MlProblem
    start_m : array_like (K, 2) [m]
        Starting positions (the MUSIC estimates, inside the peaks' basins).
    h0_m : float or array_like (K,) [m]
        Initial stencil half width.
    tol_m : float [m]
        Final stencil width (well below the CRLB).
    sweeps : int
        Most Jacobi sweeps (the others are held at the previous sweep's estimates; one sweep is
        exact when the users do not interact); sweeps stop once no user moves by 100 tol.

    Returns
    -------
    pos : ndarray (K, 2) [m]
    gain : ndarray (K,)
        Each user's concentrated log-likelihood gain at the end.
    """
    pos = np.array(start_m, dtype=float).reshape(-1, 2)
    gain = np.zeros(pos.shape[0])
    h = np.broadcast_to(np.asarray(h0_m, dtype=float), (pos.shape[0],)).copy()
    for s in range(max(1, sweeps)):
        a_est, w, minv = problem.others_terms(pos)

        def fun(idx, pts, a_est=a_est, w=w, minv=minv):  # noqa: ANN001, ANN202
            return problem.criterion(pts, a_est, w[idx], minv[idx])

        new, gain = maximize_2d(fun, pos, h if s == 0 else np.maximum(h / 10, 10 * tol_m), tol_m)
        moved = np.linalg.norm(new - pos, axis=1)
        h = np.maximum(moved, 10 * tol_m)
        pos = new
        if pos.shape[0] == 1 or (s >= 1 and moved.max() < 100 * tol_m):
            break
    return pos, gain
