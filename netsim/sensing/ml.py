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
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.config import IsacGeometry
from netsim.sensing.optimize import maximize_2d

__all__ = ["MlImage", "MlImageCache", "MlProblem", "boxed", "ml_image", "ml_refine", "near_response"]

ML_FOLLOW = 16.0  # stencil half width may follow a converging Newton step down by this factor


def near_response(geom: IsacGeometry, points_m: ArrayLike, dtype: type = np.complex128,
                  chunk: int = 1024) -> NDArray:
    """Near-field response ``exp(-j k (r_n - r))`` of every AP at points, (..., M, N).

    Same as :func:`netsim.sensing.steering.array_response` (``model="near"``); ``dtype``
    ``complex64`` evaluates the phase in float64 and the exponential in single precision
    (coarse searches). Points are processed ``chunk`` at a time with in-place temporaries
    (cache-sized blocks; the values do not depend on ``chunk``).
    """
    p = np.asarray(points_m, dtype=float)  # [..., 2]
    lead = p.shape[:-1]
    p = p.reshape(-1, 2)  # [P, 2]
    qx, qy, c, k = _near_terms(geom)  # [M, N], [M, N], [M, 2], rad/m
    single = dtype == np.complex64
    out = np.empty((p.shape[0],) + qx.shape, dtype=dtype)  # [P, M, N]
    for s in range(0, p.shape[0], chunk):
        ps = p[s:s + chunk] if p.shape[0] > chunk else p
        dx = ps[:, None, None, 0] - qx  # [P, M, N]
        dy = ps[:, None, None, 1] - qy
        dx *= dx
        dy *= dy
        dx += dy
        rn = np.sqrt(dx, out=dx)  # r_m^(n) [m]
        cx = ps[:, None, 0] - c[:, 0]  # [P, M]
        cy = ps[:, None, 1] - c[:, 1]
        rc = np.sqrt(cx * cx + cy * cy)  # r_m [m]
        rn -= rc[..., None]
        rn *= -k  # phase [rad]
        ph = rn.astype(np.float32) if single else rn
        o = out[s:s + chunk] if p.shape[0] > chunk else out
        np.cos(ph, out=o.real)
        np.sin(ph, out=o.imag)
    return out.reshape(lead + qx.shape)


def _near_terms(geom: IsacGeometry):  # noqa: ANN202
    """``x`` and ``y`` of every element (M, N), the AP centres (M, 2) and the wavenumber of a
    geometry, kept in its cache (the per-call set-up of :func:`near_response`)."""
    t = geom._cache.get("near_terms")
    if t is None:
        q = geom.element_positions_m  # [M, N, 2]
        t = (np.ascontiguousarray(q[..., 0]), np.ascontiguousarray(q[..., 1]), geom.ap_centers_m, geom.wavenumber)
        geom._cache["near_terms"] = t
    return t


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

    @cached_property
    def _d_by_tx(self) -> NDArray[np.complex128]:
        """``D`` regrouped per transmitting AP t: ``[t, q, (s p)] = D[(s p), (t q)]``, (M, N, MN)."""
        m, n = self.geom.n_aps, self.geom.n_antennas
        return np.ascontiguousarray(self.d.reshape(m * n, m, n).transpose(1, 2, 0))  # [M(t), N, MN]

    @cached_property
    def _r_t(self) -> NDArray[np.complex128]:
        """``R_t^T`` per AP, (M, N, N)."""
        return np.ascontiguousarray(np.swapaxes(self.r, -1, -2))

    @cached_property
    def _r_scalar(self) -> NDArray[np.float32] | None:
        """``sigma_t`` (M,) float32 when every ``R_t = sigma_t I`` exactly (isotropic), else None."""
        n = self.geom.n_antennas
        sig = np.real(self.r[:, 0, 0])  # [M]
        if np.array_equal(self.r, sig[:, None, None] * np.eye(n)):
            return sig.astype(np.float32)
        return None

    @cached_property
    def _r_iso(self) -> NDArray[np.float64] | None:
        """``sigma_t`` (M, 1) float64 when every ``R_t = sigma_t I`` exactly, else None: then
        ``R_t conj(a_t) = sigma_t conj(a_t)`` with the same bits as the product by ``R_t``
        (every other term of the sum is an exact zero)."""
        n = self.geom.n_antennas
        sig = np.real(self.r[:, 0, 0])  # [M]
        if np.array_equal(self.r, sig[:, None, None] * np.eye(n)) and np.all(np.isfinite(sig)):
            return sig[:, None]
        return None

    def _path_terms(self, a: NDArray[np.complex128]):  # noqa: ANN202
        """``c`` [..., s, t], ``R_t conj(a_t)`` [..., t, n] and ``H_kk`` [..., t] at responses a."""
        c, rv, hkk, _ = self._path_terms_conj(a)
        return c, rv, hkk

    def _path_terms_conj(self, a: NDArray[np.complex128]):  # noqa: ANN202
        """:meth:`_path_terms` and ``conj(a)`` as (P, M, N)."""
        m, n = self.geom.n_aps, self.geom.n_antennas
        lead = a.shape[:-2]
        ac = a.conj().reshape(-1, m, n)  # [P, M, N]
        act = ac.transpose(1, 0, 2)  # [M(t), P, N]
        # D_{s,t} conj(a_t) for every (s, t): one batched matmul over t
        dv = np.matmul(act, self._d_by_tx).reshape(m, -1, m, n)  # [M(t), P, M(s), N]
        c = np.matmul(dv.transpose(1, 2, 0, 3), ac[..., None])[..., 0]  # [P, M(s), M(t)]
        iso = self._r_iso
        if iso is not None:  # R_t = sigma_t I
            rv = ac * iso  # [P, M(t), N]: R_t conj(a_t)
        else:
            rv = np.matmul(act, self._r_t).transpose(1, 0, 2)  # [P, M(t), N]: R_t conj(a_t)
        hkk = n * (a.reshape(-1, m, n) * rv).sum(axis=-1).real  # [P, M]
        return (c.reshape(lead + (m, m)), rv.reshape(lead + (m, n)), hkk.reshape(lead + (m,)), ac)

    def others_terms(self, pos_m: ArrayLike, rows: ArrayLike | None = None):  # noqa: ANN201
        """Per user k: ``w = H_OO^{-1} c_O`` and ``H_OO^{-1}`` for O = all users but k.

        Parameters
        ----------
        pos_m : array_like (K, 2) [m]
            Every user's current estimate.
        rows : array_like (R,) int or None
            The users k whose terms are formed (None: all K, ``R = K``). Each user's
            leave-one-out inverse is its own LAPACK call, so a row has the same bits whichever
            other rows are formed with it (the climbs need only the free users' rows).

        Returns
        -------
        a : ndarray (K, M, N)
            Responses at every estimate.
        w : ndarray (R, M, M, K)
        minv : ndarray (R, M, M, K, K)
            Row r belongs to user ``rows[r]`` and is zero on that user's own entries.
        """
        p = np.asarray(pos_m, dtype=float).reshape(-1, 2)
        k = p.shape[0]
        sel = np.arange(k) if rows is None else np.asarray(rows, dtype=int).reshape(-1)  # [R]
        a = near_response(self.geom, p)  # [K, M, N]
        m = self.geom.n_aps
        w = np.zeros((sel.size, m, m, k), dtype=complex)
        minv = np.zeros((sel.size, m, m, k, k), dtype=complex)
        if k < 2 or sel.size == 0:
            return a, w, minv
        c, rv, _ = self._path_terms(a)  # [K, M, M], [K, M, N]
        u = np.einsum("isn,jsn->sij", a.conj(), a)  # [M(s), K, K]
        v = np.einsum("jtn,itn->tij", a, rv)  # [M(t), K, K]
        h = u[:, None] * v[None, :]  # [M(s), M(t), K(i), K(j)]
        # the selected users' others O at once (row r of ``o``): the same matrices, inverted one by one
        every = np.arange(k)
        o = np.array([every[every != kk] for kk in sel], dtype=int).reshape(sel.size, k - 1)  # [R, K-1]
        hoo = np.moveaxis(h[:, :, o[:, :, None], o[:, None, :]], 2, 0)  # [R, M, M, K-1, K-1]
        reg = 1e-10 * np.abs(np.trace(hoo, axis1=-2, axis2=-1))[..., None, None] * np.eye(k - 1)
        inv = np.linalg.inv(hoo + reg)  # [R, M, M, K-1, K-1]
        co = np.moveaxis(c[o], 1, -1)  # [R, M, M, K-1]
        r_idx = np.arange(sel.size)[:, None]  # [R, 1]
        w[r_idx, :, :, o] = np.moveaxis(np.einsum("kstij,kstj->ksti", inv, co), -1, 1)
        minv[r_idx[:, :, None], :, :, o[:, :, None], o[:, None, :]] = np.moveaxis(inv, (-2, -1), (1, 2))
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
        a, w, minv = self.others_terms(np.concatenate([o, o[:1]]), rows=[j])  # row j stands for the new user
        return a[:j], w[:, :, :, :j], minv[:, :, :, :j, :j]

    def fit_gains(self, pos_m: ArrayLike) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
        """Least-squares path gains of the users at ``pos_m`` (J, 2): ``beta = H^{-1} c`` per path.

        Returns
        -------
        a : ndarray (J, M, N) complex
            Their responses.
        beta : ndarray (M(s), M(t), J) complex
            Fitted gains; the fitted echo of block (s, t) is
            ``sum_j beta_{s,t,j} a_s(p_j) a_t(p_j)^T R_t``.
        """
        pos = np.asarray(pos_m, dtype=float).reshape(-1, 2)
        a = near_response(self.geom, pos)  # [J, M, N]
        c, rv, _ = self._path_terms(a)  # [J, M(s), M(t)]
        u = np.einsum("isn,jsn->sij", a.conj(), a)
        v = np.einsum("jtn,itn->tij", a, rv)
        h = u[:, None] * v[None, :]  # [M, M, J, J]
        j = pos.shape[0]
        reg = 1e-9 * np.abs(np.trace(h, axis1=-2, axis2=-1))[..., None, None] * np.eye(j)
        beta = np.linalg.solve(h + reg, np.moveaxis(c, 0, -1)[..., None])[..., 0]  # [M(s), M(t), J]
        return a, beta

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
        pts = np.asarray(pts_m, dtype=float)  # [B, S, 2]
        a = near_response(self.geom, pts)  # [B, S, M, N]
        c, rv, hkk, ac = self._path_terms_conj(a)  # [B, S, M, M], [B, S, M, N], [B, S, M], [BS, M, N]
        if a_est.shape[0] == 0:  # no other user: the Schur terms vanish
            den = np.maximum(hkk, 1e-6 * hkk)[:, :, None, :]  # [B, S, 1, M]
            gains = np.abs(c) ** 2 / den  # [B, S, M, M]
        else:
            bb, ss, m = a.shape[0], a.shape[1], a.shape[2]
            # h_j = H_kj per path: (a_s(p)^H a_s(p_j)) (a_t(p_j)^T R_t conj a_t(p))
            act = ac.transpose(1, 0, 2)  # [M, BS, N]
            ae = a_est.transpose(1, 2, 0)  # [M, N, K]
            uo = np.matmul(act, ae)  # [M(s), BS, K]
            vo = np.matmul(rv.reshape(bb * ss, m, -1).transpose(1, 0, 2), ae)  # [M(t), BS, K]
            uo = uo.transpose(1, 0, 2).reshape(bb, ss, m, 1, -1)  # [B, S, M(s), 1, K]
            vo = vo.transpose(1, 0, 2).reshape(bb, ss, 1, m, -1)  # [B, S, 1, M(t), K]
            hrow = uo * vo  # [B, S, M(s), M(t), K]
            hw = np.matmul(hrow.reshape(bb, ss, m * m, 1, -1),
                           w.reshape(bb, 1, m * m, -1, 1)).reshape(bb, ss, m, m)  # [B, S, M, M]
            # h H_OO^{-1} h^H per path
            mh = np.matmul(minv.reshape(bb, 1, m * m, minv.shape[-1], -1),
                           hrow.conj().reshape(bb, ss, m * m, -1, 1))  # [B, S, MM, K, 1]
            hmh = (hrow.reshape(bb, ss, m * m, -1) * mh[..., 0]).sum(axis=-1).real.reshape(bb, ss, m, m)
            hk = hkk[:, :, None, :]  # [B, S, 1, M(t)]
            den = np.maximum(hk - hmh, 1e-6 * hk)  # [B, S, M, M]
            gains = np.abs(c - hw) ** 2 / den  # [B, S, M, M]
        admissible = None  # [B, S] inside the box and outside every AP's mounting
        if self.lo is not None and self.hi is not None:
            admissible = np.all((pts >= self.lo) & (pts <= self.hi), axis=-1)  # [B, S]
        if self.exclusion_m > 0:
            dc = pts[..., None, :] - self.geom.ap_centers_m  # [B, S, M, 2]
            far = (np.einsum("...i,...i->...", dc, dc) > self.exclusion_m ** 2).all(axis=-1)  # [B, S]
            admissible = far if admissible is None else admissible & far
        if not per_path:  # (0/1 factors: the same values as one multiply per path and mask)
            tot = np.sum(gains, axis=(-2, -1))  # [B, S]
            return tot if admissible is None else tot * admissible
        if admissible is not None:
            gains = gains * admissible[..., None, None]
        return gains if per_path else np.sum(gains, axis=(-2, -1))  # [B, S]


class MlImage:
    """Single-user ML image on fixed points, and the images of residuals ``D - fit(users)``.

    ``c_{s,t}(p) = a_s(p)^H D_{s,t} conj(a_t(p))`` and ``H_pp,t(p) = N a_t(p)^T R_t conj(a_t(p))``
    are formed once (complex64 responses, the costly part: ``P M^2 N^2``). The residual of
    the users at ``p_j`` with fitted per-path gains ``beta_{s,t,j}`` (:meth:`MlProblem.fit_gains`)
    changes ``c`` by a rank-J term,
    ``c'_{s,t}(p) = c_{s,t}(p) - sum_j beta_{s,t,j} (a_s(p)^H a_s(p_j)) (a_t(p)^H R_t^T a_t(p_j))``,
    so the image of every successive-cancellation round costs ``P M N J`` instead of a new
    ``P M^2 N^2`` pass (same values up to single-precision rounding).

    Parameters
    ----------
    problem : MlProblem
        The cluster's problem (the full ``D``).
    pts_m : array_like (P, 2) [m]
    chunk : int
        Points per vectorised block.
    steering : ndarray (P, M, N) complex64 or None
        ``near_response(geom, pts, complex64)`` if already computed (a grid cache).
    """

    def __init__(self, problem: MlProblem, pts_m: ArrayLike, chunk: int = 4096,
                 steering: NDArray[np.complex64] | None = None) -> None:
        pts = np.asarray(pts_m, dtype=float).reshape(-1, 2)
        m, n = problem.geom.n_aps, problem.geom.n_antennas
        self.problem = problem
        self.chunk = chunk
        self.a = near_response(problem.geom, pts, np.complex64) if steering is None else steering  # [P, M, N]
        dt = problem._d_by_tx.astype(np.complex64)  # [M(t), N, MN]
        rt = problem._r_t.astype(np.complex64)  # [M, N, N]
        iso = problem._r_scalar  # [M] or None
        p = pts.shape[0]
        self.c = np.empty((p, m, m), dtype=np.complex64)  # [P, M(s), M(t)]
        self.hpp = np.empty((p, m), dtype=np.float32)  # [P, M(t)]
        for s0 in range(0, p, chunk):
            ac = self.a[s0:s0 + chunk].conj()  # [P, M, N]
            act = ac.transpose(1, 0, 2)  # [M(t), P, N]
            dv = np.matmul(act, dt).reshape(m, -1, m, n)  # [M(t), P, M(s), N]: D_{s,t} conj(a_t)
            # c[p, s, t] = a_s(p)^H (D_{s,t} conj a_t(p)): batched (t x N) @ (N x 1) products
            self.c[s0:s0 + chunk] = np.matmul(dv.transpose(1, 2, 0, 3), ac[..., None])[..., 0]
            if iso is not None:  # R_t = sigma_t I: H_pp = N sigma_t ||a_t||^2
                a2 = self.a[s0:s0 + chunk]
                self.hpp[s0:s0 + chunk] = n * iso * (a2.real ** 2 + a2.imag ** 2).sum(axis=-1)
            else:
                ra = np.matmul(act, rt)  # [M(t), P, N]: R_t conj(a_t)
                self.hpp[s0:s0 + chunk] = n * (ra * self.a[s0:s0 + chunk].transpose(1, 0, 2)).sum(axis=-1).real.T

    def values(self, fit_pos_m: ArrayLike | None = None) -> NDArray[np.float64]:
        """``sum_paths |c'(p)|^2 / H_pp(p)`` at the points, (P,), after the users at
        ``fit_pos_m`` (J, 2) [m] are fitted and removed from ``D`` (None: the plain image)."""
        fit = None
        if fit_pos_m is not None and np.asarray(fit_pos_m).size:
            aj, beta = self.problem.fit_gains(fit_pos_m)  # [J, M, N], [M(s), M(t), J]
            raj = np.matmul(aj.transpose(1, 0, 2)[:, :, None, :], self.problem.r[:, None])[:, :, 0, :]  # [M, J, N]
            fit = (aj.transpose(1, 2, 0).astype(np.complex64),  # [M, N, J]
                   raj.transpose(0, 2, 1).astype(np.complex64),  # [M, N, J]: a_t(p_j)^T R_t
                   beta.astype(np.complex64))
        p = self.a.shape[0]
        out = np.empty(p)
        for s0 in range(0, p, self.chunk):
            c = self.c[s0:s0 + self.chunk]  # [P, M(s), M(t)]
            if fit is not None:
                act = self.a[s0:s0 + self.chunk].conj().transpose(1, 0, 2)  # [M, P, N]
                g = np.matmul(act, fit[0])  # [M(s), P, J]: a_s(p)^H a_s(p_j)
                h = np.matmul(act, fit[1])  # [M(t), P, J]: a_t(p_j)^T R_t conj(a_t(p))
                gt = g.transpose(1, 0, 2)  # [P, M(s), J]
                ht = h.transpose(1, 0, 2)  # [P, M(t), J]
                bt = fit[2]  # [M(s), M(t), J]
                if bt.shape[-1] < 8:  # one term per user, summed in order (as a short numpy sum)
                    corr = (gt[:, :, None, 0] * bt[None, :, :, 0]) * ht[:, None, :, 0]  # [P, M, M]
                    for j in range(1, bt.shape[-1]):
                        corr += (gt[:, :, None, j] * bt[None, :, :, j]) * ht[:, None, :, j]
                else:
                    corr = np.stack([(g[i][:, None, :] * bt[i]) * ht for i in range(g.shape[0])],
                                    axis=1).sum(axis=-1)  # [P, M(s), M(t)]
                c = c - corr
            e = (c.real ** 2 + c.imag ** 2).sum(axis=1)  # [P, M(t)]
            out[s0:s0 + self.chunk] = np.sum(e / np.maximum(self.hpp[s0:s0 + self.chunk], 1e-30), axis=-1,
                                             dtype=np.float64)
        return out


class MlImageCache:
    """The :class:`MlImage` of one problem on each point set it is asked for (one acquisition).

    Plain object holding arrays; it lives for one cluster's acquisition and is not kept.
    ``grids`` (:class:`netsim.sensing.steering.GridCache`) supplies the grids' responses when
    they were computed before (another frame's acquisition of the same cluster).
    """

    def __init__(self, problem: MlProblem, grids: object | None = None) -> None:
        self.problem = problem
        self.grids = grids
        self._images: dict[bytes, MlImage] = {}

    def get(self, pts_m: ArrayLike) -> MlImage:
        """The image on the points (P, 2) [m], built on first use."""
        pts = np.ascontiguousarray(pts_m, dtype=float).reshape(-1, 2)
        key = pts.tobytes()
        if key not in self._images:
            a = self.grids.response(self.problem.geom, pts) if self.grids is not None else None
            self._images[key] = MlImage(self.problem, pts, steering=a)
        return self._images[key]


def ml_image(problem: MlProblem, pts_m: ArrayLike, chunk: int = 4096) -> NDArray[np.float64]:
    """Single-user ML gain ``sum_paths |c(p)|^2 / H_pp(p)`` at points (P, 2) -> (P,) (complex64).

    The matched-filter image of the echo-waveform correlation (focused at both ends of every
    path): the acquisition's candidate map (see :class:`MlImage` for residual images).
    """
    return MlImage(problem, pts_m, chunk).values()


def boxed(values: NDArray[np.float64], pts_m: NDArray[np.float64], box_m: NDArray[np.float64] | None,
          rows: NDArray[np.int64]) -> NDArray[np.float64]:
    """``values`` (b, S) of the criterion at ``pts_m`` (b, S, 2) [m], 0 outside each row's box.

    ``box_m`` (K, 2, 2) [m]: ``[lo, hi]`` corners per user (None: unchanged); ``rows`` (b,)
    says which user each row belongs to. The criterion is a likelihood gain (>= 0), so 0 is
    the value of an inadmissible point, as for the problem's own region.
    """
    if box_m is None:
        return values
    b = box_m[rows]  # [b, 2, 2]
    inside = np.all((pts_m >= b[:, None, 0]) & (pts_m <= b[:, None, 1]), axis=-1)  # [b, S]
    return values * inside


def ml_refine(
    problem: MlProblem,
    start_m: ArrayLike,
    h0_m: float | ArrayLike = 0.01,
    tol_m: float = 1e-7,
    sweeps: int = 2,
    free: ArrayLike | None = None,
    box_m: ArrayLike | None = None,
    nat: float | None = None,
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
    free : array_like (K,) bool or None
        Users whose positions are estimated (None: all). The others stay at ``start_m``; their
        echoes stay in the model (fitted with free path gains, the Schur terms), so they do not
        bias the free users' estimates the way an un-modelled echo would.
    box_m : array_like (K, 2, 2) [m] or None
        Per user ``[lo, hi]`` corners of the box its estimate is confined to (``-inf``/``inf``:
        unconstrained; None: none): the objective is 0 outside (see :func:`boxed`).
    nat : float or None
        One nat in the criterion's unit (``sigma^2 / L``): each climb may also end once it is
        inside its quadratic zone (:func:`netsim.sensing.optimize.maximize_2d`).

    Returns
    -------
    pos : ndarray (K, 2) [m]
    gain : ndarray (K,)
        Each user's concentrated log-likelihood gain at the end (0 for users held fixed).
    """
    pos = np.array(start_m, dtype=float).reshape(-1, 2)
    gain = np.zeros(pos.shape[0])
    h = np.broadcast_to(np.asarray(h0_m, dtype=float), (pos.shape[0],)).copy()
    if free is None:
        rows = None
    else:
        rows = np.flatnonzero(np.asarray(free, dtype=bool).reshape(pos.shape[0]))  # [F]
        if rows.size == 0:
            return pos, gain
    box = None if box_m is None else np.asarray(box_m, dtype=float).reshape(pos.shape[0], 2, 2)  # [K, lo/hi, 2]
    for s in range(max(1, sweeps)):
        a_est, w, minv = problem.others_terms(pos, rows)  # rows of the free users only
        hs = h if s == 0 else np.maximum(h / 10, 10 * tol_m)
        if rows is None:
            def fun(idx, pts, a_est=a_est, w=w, minv=minv):  # noqa: ANN001, ANN202
                return boxed(problem.criterion(pts, a_est, w[idx], minv[idx]), pts, box, idx)

            new, gain = maximize_2d(fun, pos, hs, tol_m, follow=ML_FOLLOW, nat=nat)
        else:
            def fun(idx, pts, a_est=a_est, w=w, minv=minv):  # noqa: ANN001, ANN202
                return boxed(problem.criterion(pts, a_est, w[idx], minv[idx]), pts, box, rows[idx])

            new = pos.copy()
            new[rows], gain[rows] = maximize_2d(fun, pos[rows], hs[rows], tol_m, follow=ML_FOLLOW, nat=nat)
        moved = np.linalg.norm(new - pos, axis=1)
        h = np.maximum(moved, 10 * tol_m)
        pos = new
        n_free = pos.shape[0] if rows is None else rows.size
        if n_free == 1 or (s >= 1 and moved.max() < 100 * tol_m):
            break
    return pos, gain
