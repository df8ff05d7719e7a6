"""Multi-static echo model, Fisher information and CRLB of the user positions (seed 003 eq. (2)).

Echo model (spec 2.3): every AP m transmits ``x_m[l]`` with covariance ``R_m`` (uncorrelated
across APs, ``R_x = blkdiag(R_1..R_M)``); the CPU stacks the echoes of all APs,
``y[l] = G x[l] + n[l]``, ``G = sum_k G_k``, where block (m', m) of ``G_k`` is
``beta^s_{m,m',k} a_{m'}(p_k) a_m(p_k)^T`` and
``beta^s_{m,m',k} = alpha_{m,m',k} kappa0 / (r_{m,k} r_{m',k}) exp(-j k (r_{m,k} + r_{m',k}))``.

FIM (spec 2.4, Appendix A): unknowns ``theta = [x_1..x_K, y_1..y_K]`` and the nuisance gains
``b = [Re beta^s; Im beta^s]`` (2 K M^2 reals, ordered (k, m, m')). With
``vec(Y) ~ CN(vec(G X), sigma^2 I)`` and ``X X^H / L = R_x``,
``J_ij = (2 L / sigma^2) Jn_ij``, ``Jn_ij = sum_m Re tr(Gd_i[:, m] R_m Gd_i[:, m]^H)``, and
``CRB(theta) = (sigma^2 / (2 L)) S^{-1}``, ``S = Jn_tt - Jn_tb Jn_bb^{-1} Jn_tb^T``   (2),
``CRLB_k = CRB[k, k] + CRB[K+k, K+k]`` [m^2].

Numerics: the gain derivatives are rescaled by ``1/sqrt(diag Jn_bb(R_iso))`` and the position
derivatives by one common factor (the CRB of theta is invariant to the first and the second is
undone exactly), see :class:`FimModel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.config import IsacGeometry
from netsim.sensing.steering import ap_distances, array_response, array_response_grad

__all__ = [
    "FimModel",
    "echo_channel",
    "echo_gains",
    "fast_position_crb",
    "fast_position_crb_batch",
    "isotropic_covariance",
    "per_snapshot_crlb",
    "position_crb_matrix",
    "position_crlb",
]


def echo_gains(geom: IsacGeometry, user_pos_m: ArrayLike, alpha: ArrayLike | None = None) -> NDArray[np.complex128]:
    """Two-hop sensing gains ``beta^s_{m,m',k}``.

    Parameters
    ----------
    user_pos_m : array_like (K, 2) [m]
    alpha : array_like (K, M, M) complex or None
        RCS coefficients alpha_{m(tx), m'(rx), k}; None means 1 (spec A3).

    Returns
    -------
    ndarray (K, M, M), complex128: ``[k, m_tx, m_rx]``.
    """
    r = ap_distances(geom, user_pos_m)  # [K, M]
    one = np.sqrt(geom.kappa0) / r * np.exp(-1j * geom.wavenumber * r)  # [K, M]
    b = one[:, :, None] * one[:, None, :]  # [K, M(tx), M(rx)]
    if alpha is not None:
        b = b * np.asarray(alpha)
    return b


def echo_channel(
    geom: IsacGeometry, user_pos_m: ArrayLike, alpha: ArrayLike | None = None, model: str = "near"
) -> NDArray[np.complex128]:
    """Stacked multi-static echo matrix ``G = sum_k A_k B_k A_k^T``.

    Returns
    -------
    ndarray (M*N, M*N), complex128. Row block m' = receiving AP, column block m = transmitting AP.
    """
    a = array_response(geom, user_pos_m, model)  # [K, M, N]
    b = echo_gains(geom, user_pos_m, alpha)  # [K, M(tx), M(rx)]
    m, n = geom.n_aps, geom.n_antennas
    u = np.swapaxes(b, 1, 2)[..., None] * a[:, :, None, :]  # [K, M(s), M(t), N(p)]: beta_kts a_ksp
    # G[s p, t q] = sum_k beta_kts a_ksp a_ktq: one (N x K) @ (K x N) product per path (s, t)
    g = np.matmul(u.transpose(1, 2, 3, 0), a.transpose(1, 0, 2)[None])  # [M(s), M(t), N, N]
    return g.transpose(0, 2, 1, 3).reshape(m * n, m * n)


def isotropic_covariance(geom: IsacGeometry, power_w: float) -> NDArray[np.complex128]:
    """``R_m = P_s I_N / N`` for every AP, shape (M, N, N)."""
    eye = np.eye(geom.n_antennas, dtype=complex) * (power_w / geom.n_antennas)
    return np.broadcast_to(eye, (geom.n_aps,) + eye.shape).copy()


@dataclass(frozen=True, eq=False)
class FimModel:
    """Derivatives of G for one deployment and user set; evaluates the FIM at any R.

    Attributes
    ----------
    gd : ndarray (n_par, M*N, M, N), complex128
        Scaled derivatives ``s_i dG/dxi_i`` split into transmit column blocks, n_par = 2K + 2KM^2.
    scale : ndarray (n_par,), float
        Scale factors s_i (positions share one).
    n_users : int
    exact_jbb : bool
        False applies the paper's diagonal J_bb approximation (spec A5).
    """

    gd: NDArray[np.complex128]
    scale: NDArray[np.float64]
    n_users: int
    exact_jbb: bool = True

    @classmethod
    def build(
        cls, geom: IsacGeometry, user_pos_m: ArrayLike, power_w: float = 1.0, exact_jbb: bool = True,
        alpha: ArrayLike | None = None,
    ) -> FimModel:
        """Compute the derivative tensor and its scaling at ``R_iso`` with ``power_w``.

        ``alpha`` (K, M, M) complex ``[k, m_tx, m_rx]`` are the path coefficients the echo was
        drawn with (RCS draw times any sync-induced loss); None means 1 (spec A3). Only the
        position derivatives depend on them (``dG/dx`` carries ``beta^s``).
        """
        p = np.asarray(user_pos_m, dtype=float).reshape(-1, 2)  # [K, 2]
        k_users = p.shape[0]
        m, n = geom.n_aps, geom.n_antennas
        a, da = array_response_grad(geom, p)  # [K, M, N], [K, 2, M, N]
        bs = echo_gains(geom, p, alpha)  # [K, M(tx), M(rx)]
        n_par = 2 * k_users + 2 * k_users * m * m
        # position parameters, index c K + k: block (rx s, tx t) = beta_{t,s,k} (da_s a_t^T + a_s da_t^T)
        pos = np.einsum("kts,kcsp,ktq->cksptq", bs, da, a) + np.einsum(
            "kts,ksp,kctq->cksptq", bs, a, da)  # [2, K, M, N, M, N]
        # gain parameters, index 2K + (k M + t) M + s (real part), + K M^2 (imaginary part)
        eye = np.eye(m)
        gain = np.einsum("ksp,ktq,su,tv->ktsupvq", a, a, eye, eye)  # [K, M(t), M(s), M, N, M, N]
        gain = gain.reshape(k_users * m * m, m, n, m, n)
        gd = np.concatenate([pos.reshape(2 * k_users, m, n, m, n), gain, 1j * gain])  # [par, M, N, M, N]
        gd = gd.reshape(n_par, m * n, m, n)  # [par, MN(rx), M(tx), N]
        model = cls(gd=gd, scale=np.ones(n_par), n_users=k_users, exact_jbb=exact_jbb)
        j = model.fim(isotropic_covariance(geom, power_w))  # [par, par]
        dg = np.sqrt(np.maximum(np.diag(j), 1e-300))  # [par]
        scale = np.empty(n_par)
        scale[: 2 * k_users] = 1.0 / np.sqrt(np.mean(dg[: 2 * k_users] ** 2))
        scale[2 * k_users :] = 1.0 / dg[2 * k_users :]
        return cls(gd=gd * scale[:, None, None, None], scale=scale, n_users=k_users, exact_jbb=exact_jbb)

    @property
    def n_par(self) -> int:
        return int(self.gd.shape[0])

    def fim(self, r: ArrayLike) -> NDArray[np.float64]:
        """Scaled normalised FIM ``diag(s) Jn diag(s)``, (n_par, n_par); r is (M, N, N)."""
        rr = np.asarray(r)  # [M, N, N]
        npar, mn, m, n = self.gd.shape
        gm = np.moveaxis(self.gd, 2, 0).reshape(m, npar * mn, n)  # [M, par*MN, N]
        t = np.matmul(gm, rr)  # [M, par*MN, N]
        t = np.moveaxis(t.reshape(m, npar, mn, n), 0, 2).reshape(npar, -1)  # [par, MN*M*N]
        j = (t @ self.gd.reshape(npar, -1).conj().T).real  # [par, par]
        j = 0.5 * (j + j.T)
        if not self.exact_jbb:
            nt = 2 * self.n_users
            jbb = j[nt:, nt:]
            j[nt:, nt:] = np.diag(np.diag(jbb))
        return j

    def crb_scaled(self, j: NDArray[np.float64]) -> NDArray[np.float64] | None:
        """``[J^{-1}]_{theta theta}`` of a scaled FIM, or None if J is not positive definite."""
        nt = 2 * self.n_users
        try:
            c = np.linalg.cholesky(j)
        except np.linalg.LinAlgError:
            return None
        e = np.zeros((j.shape[0], nt))
        e[:nt] = np.eye(nt)
        x = np.linalg.solve(c, e)  # [par, 2K]
        return x.T @ x  # [2K, 2K]

    def normalized_crb(self, r: ArrayLike) -> NDArray[np.float64]:
        """``S(R)^{-1}`` of eq. (2) in m^2 per unit ``sigma^2/(2L)``, (2K, 2K); inf if singular."""
        cs = self.crb_scaled(self.fim(r))
        nt = 2 * self.n_users
        if cs is None:
            return np.full((nt, nt), np.inf)
        s2 = self.scale[0] ** 2
        return cs * s2

    def per_snapshot_crlb(self, r: ArrayLike, noise_w: float) -> NDArray[np.float64]:
        """``c_k = (sigma^2/2) ([S^{-1}]_kk + [S^{-1}]_{K+k,K+k})`` [m^2 * snapshots], (K,)."""
        s_inv = self.normalized_crb(r)
        d = np.diag(s_inv)
        k = self.n_users
        return 0.5 * noise_w * (d[:k] + d[k:])

    def objective_and_grad(self, r: ArrayLike) -> tuple[float, NDArray[np.complex128] | None]:
        """``f(R) = tr([J_s^{-1}]_tt)`` and its gradient ``-H_m`` (M, N, N); (inf, None) if singular.

        ``df = -sum_ij Z_ij dJ_ij``, ``Z = J^{-1} E E^T J^{-1}``, so the Frobenius gradient with
        respect to the Hermitian ``R_m`` is ``-sum_ij Z_ij Gd_j[:,m]^H Gd_i[:,m]``.
        """
        j = self.fim(r)
        nt = 2 * self.n_users
        try:
            c = np.linalg.cholesky(j)
        except np.linalg.LinAlgError:
            return np.inf, None
        e = np.zeros((j.shape[0], nt))
        e[:nt] = np.eye(nt)
        x = np.linalg.solve(c, e)
        f = float(np.sum(x * x))
        y = np.linalg.solve(c.T, x)  # J^{-1} E   [par, 2K]
        z = y @ y.T  # [par, par]
        if not self.exact_jbb:
            # dJ_bb off-diagonals are forced to zero, so they carry no gradient.
            zb = z[nt:, nt:]
            z = z.copy()
            z[nt:, nt:] = np.diag(np.diag(zb))
            # cross-user b-b entries are zeroed in fim(); removing them from Z is exact because
            # those J entries are constants (zero) in the approximated model.
        npar, mn, m, n = self.gd.shape
        v = (z @ self.gd.reshape(npar, -1)).reshape(self.gd.shape)  # [par, MN, M, N]
        vm = np.moveaxis(v, 2, 0).reshape(m, npar * mn, n)  # [M, par*MN, N]
        gm = np.moveaxis(self.gd, 2, 0).reshape(m, npar * mn, n)  # [M, par*MN, N]
        h = np.matmul(np.conj(np.swapaxes(vm, -1, -2)), gm)  # [M, N, N]
        h = 0.5 * (h + np.conj(np.swapaxes(h, -1, -2)))
        return f, -h


def per_snapshot_crlb(
    geom: IsacGeometry, user_pos_m: ArrayLike, r: ArrayLike, noise_w: float, exact_jbb: bool = True,
    alpha: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Per-snapshot CRLB ``c_k`` [m^2], (K,), so that ``CRLB_k(L) = c_k / L`` (spec 2.4)."""
    model = FimModel.build(geom, user_pos_m, power_w=float(np.real(np.trace(np.asarray(r)[0]))) or 1.0,
                           exact_jbb=exact_jbb, alpha=alpha)
    return model.per_snapshot_crlb(r, noise_w)


def position_crlb(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    r: ArrayLike,
    n_snapshots: int | float,
    noise_w: float,
    exact_jbb: bool = True,
    alpha: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """CRLB of each user's 2D position, eq. (2): ``CRLB_k = c_k / L`` [m^2], shape (K,).

    Parameters
    ----------
    geom : IsacGeometry
    user_pos_m : array_like (K, 2) [m]
        Positions at which the bound is evaluated (true or estimated).
    r : array_like (M, N, N) complex [W]
        Per-AP sensing covariances R_m.
    n_snapshots : int
        L, number of sensing snapshots.
    noise_w : float
        Sensing receiver noise power sigma^2 [W].
    exact_jbb : bool
        Exact dense J_bb (default) or the paper's diagonal approximation.
    alpha : array_like (K, M, M) complex or None
        Path coefficients ``[k, m_tx, m_rx]`` of this frame's echo (None: 1, the nominal bound).
    """
    if n_snapshots <= 0:
        return np.full(np.asarray(user_pos_m).reshape(-1, 2).shape[0], np.inf)
    return per_snapshot_crlb(geom, user_pos_m, r, noise_w, exact_jbb, alpha) / float(n_snapshots)


def position_crb_matrix(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    r: ArrayLike,
    n_snapshots: int | float,
    noise_w: float,
    exact_jbb: bool = True,
    alpha: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Per-user 2x2 CRB matrices of ``(x_k, y_k)`` [m^2], shape (K, 2, 2): eq. (2) before the trace.

    ``CRB = (sigma^2 / (2 L)) S^{-1}``; user k's block is rows/columns ``(k, K + k)`` and its trace
    is :func:`position_crlb`. Inf where the FIM is singular. Arguments as :func:`position_crlb`.
    """
    p = np.asarray(user_pos_m, dtype=float).reshape(-1, 2)
    k_users = p.shape[0]
    if n_snapshots <= 0:
        return np.full((k_users, 2, 2), np.inf)
    rr = np.asarray(r)
    model = FimModel.build(geom, p, power_w=float(np.real(np.trace(rr[0]))) or 1.0,
                           exact_jbb=exact_jbb, alpha=alpha)
    s_inv = model.normalized_crb(rr)  # [2K, 2K]
    idx = np.stack([np.arange(k_users), np.arange(k_users) + k_users], axis=-1)  # [K, 2]
    blocks = s_inv[idx[:, :, None], idx[:, None, :]]  # [K, 2, 2]
    return 0.5 * noise_w / float(n_snapshots) * blocks


def fast_position_crb(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    r: ArrayLike,
    n_snapshots: int | float,
    noise_w: float,
    exact_jbb: bool = True,
    alpha: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Same as :func:`position_crb_matrix` from the structure of the FIM, (K, 2, 2) [m^2].

    With ``<X, Y> = sum_t tr(X_{.,t} R_t Y_{.,t}^H)`` and the derivatives of ``G`` (positions:
    ``D_{kc}``, block (s, t) ``beta_{k,t,s} (da_{ksc} a_{kt}^T + a_{ks} da_{ktc}^T)``; complex
    gains: ``E_{kts}`` = ``a_{ks} a_{kt}^T`` in block (s, t) only), the real FIM of the
    positions and the real/imaginary gain parts reduces to complex blocks
    ``T = <D, D>`` (2K x 2K), ``P_st = <D, E_st>`` (2K x K) and ``Q_st = <E_st, E_st>`` (K x K),
    one pair per path, and the Schur complement of eq. (2) is
    ``S = Re(T - sum_{s,t} P_st Q_st^{-1} P_st^H)`` (the real representation of a complex
    nuisance block is an isomorphism), ``CRB = sigma^2 / (2 L) S^{-1}``. Only K x K and 2K x 2K
    matrices are formed: O(M^2 K^2 N + M^2 K^3) instead of the dense (2K + 2KM^2)^2 (MN)^2 FIM.
    ``exact_jbb=False`` keeps only the diagonal of each ``Q_st`` (the paper's approximation).
    :func:`fast_position_crb_batch` evaluates many clusters of the same size in one pass.
    """
    p = np.asarray(user_pos_m, dtype=float).reshape(-1, 2)
    k = p.shape[0]
    if n_snapshots <= 0 or k == 0:
        return np.full((k, 2, 2), np.inf)
    return _structured_crb(geom.element_positions_m, geom.ap_centers_m, geom.wavenumber, geom.kappa0, p,
                           np.asarray(r, dtype=complex), n_snapshots, noise_w, exact_jbb, alpha)


def fast_position_crb_batch(
    geoms: Sequence[IsacGeometry],
    user_pos_m: ArrayLike,
    r: ArrayLike,
    n_snapshots: int | float,
    noise_w: float,
    exact_jbb: bool = True,
    alpha: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """:func:`fast_position_crb` of C clusters with the same M, N and K at once, (C, K, 2, 2) [m^2].

    Parameters
    ----------
    geoms : sequence of C IsacGeometry
        One per cluster (same ``n_aps``, ``n_antennas``, wavelength and ``kappa0``).
    user_pos_m : array_like (C, K, 2) [m]
    r : array_like (C, M, N, N) complex [W]
    n_snapshots, noise_w, exact_jbb
        As :func:`fast_position_crb` (common to the clusters).
    alpha : array_like (C, K, M, M) complex or None

    The same arithmetic as :func:`fast_position_crb` with a leading cluster axis (the per-call
    overhead of its small-matrix steps is paid once); the results agree with one call per
    cluster to rounding (the batched reductions may sum in another order, about 1e-15
    relative). A cluster whose FIM is singular gets ``inf`` blocks, as alone.
    """
    g0 = geoms[0]
    if any(g.n_aps != g0.n_aps or g.n_antennas != g0.n_antennas or g.wavenumber != g0.wavenumber
           or g.kappa0 != g0.kappa0 for g in geoms):
        raise ValueError("fast_position_crb_batch needs clusters of the same M, N, wavelength and kappa0")
    p = np.asarray(user_pos_m, dtype=float)
    n_c = len(geoms)
    if p.ndim != 3 or p.shape[0] != n_c or p.shape[2] != 2:
        raise ValueError(f"user_pos_m must be (C={n_c}, K, 2), got shape {p.shape}")
    k = p.shape[1]
    if n_snapshots <= 0 or k == 0:
        return np.full((n_c, k, 2, 2), np.inf)
    q = np.stack([g.element_positions_m for g in geoms])  # [C, M, N, 2]
    c = np.stack([g.ap_centers_m for g in geoms])  # [C, M, 2]
    return _structured_crb(q, c, g0.wavenumber, g0.kappa0, p, np.asarray(r, dtype=complex), n_snapshots,
                           noise_w, exact_jbb, alpha)


def _structured_crb(q: NDArray[np.float64], c: NDArray[np.float64], wk: float, kappa0: float,
                    p: NDArray[np.float64], rr: NDArray[np.complex128], n_snapshots: int | float,
                    noise_w: float, exact_jbb: bool, alpha: ArrayLike | None) -> NDArray[np.float64]:
    """The bound of :func:`fast_position_crb` for element positions ``q`` (..., M, N, 2), centres
    ``c`` (..., M, 2), users ``p`` (..., K, 2), covariances ``rr`` (..., M, N, N) and path
    coefficients ``alpha`` (..., K, M, M) with any common leading (batch) shape; (..., K, 2, 2)."""
    lead = p.shape[:-2]
    k = p.shape[-2]
    m, n = q.shape[-3], q.shape[-2]
    # responses, their gradients and the two-hop gains from one pass over the geometry
    dx = p[..., :, None, None, 0] - q[..., None, :, :, 0]  # [..., K, M, N]
    dy = p[..., :, None, None, 1] - q[..., None, :, :, 1]
    rn = np.sqrt(dx * dx + dy * dy)  # [..., K, M, N]
    cx = p[..., :, None, 0] - c[..., None, :, 0]  # [..., K, M]
    cy = p[..., :, None, 1] - c[..., None, :, 1]
    rc = np.sqrt(cx * cx + cy * cy)  # [..., K, M]
    e = np.empty(lead + (k, 3, m, n), dtype=complex)  # [..., K, 3, M, N]: a, da/dx, da/dy
    e[..., 0, :, :] = np.exp(-1j * wk * (rn - rc[..., None]))
    mk = -1j * wk * e[..., 0, :, :]
    e[..., 1, :, :] = mk * (dx / rn - (cx / rc)[..., None])
    e[..., 2, :, :] = mk * (dy / rn - (cy / rc)[..., None])
    one = np.sqrt(kappa0) / rc * np.exp(-1j * wk * rc)  # [..., K, M]
    beta = one[..., :, :, None] * one[..., :, None, :]  # [..., K, M(t), M(s)]
    if alpha is not None:
        beta = beta * np.asarray(alpha)
    # every inner product below is an entry of two Gram matrices of e = [a, da/dx, da/dy]:
    # gram_s = e_s^H e_s (receive side) and vg_t = e_t^T R_t conj(e_t) (transmit side)
    nl = len(lead)
    ax = tuple(range(nl))
    et = np.ascontiguousarray(e.transpose(ax + (nl + 2, nl, nl + 1, nl + 3))).reshape(lead + (m, 3 * k, n))
    etc = et.conj()  # [..., M, (K 3), N]
    gram = np.matmul(etc, np.swapaxes(et, -1, -2)).reshape(lead + (m, k, 3, k, 3))  # [..., s, l, i, k, j]
    g = gram.transpose(ax + (nl, nl + 3, nl + 4, nl + 1, nl + 2))  # [..., s, k, j, l, i]: conj(e_lis) . e_kjs
    vg = np.matmul(np.matmul(et, rr), np.swapaxes(etc, -1, -2)).reshape(lead + (m, k, 3, k, 3))  # [..., t, k, j, l, i]
    g00, gd0 = g[..., :, :, 0, :, 0], g[..., :, :, 1:, :, 0]  # [..., s, k, l], [..., s, k, c, l]
    g0d, gdd = g[..., :, :, 0, :, 1:], g[..., :, :, 1:, :, 1:]  # [..., s, k, l, d], [..., s, k, c, l, d]
    v00, vd0 = vg[..., :, :, 0, :, 0], vg[..., :, :, 1:, :, 0]
    v0d, vdd = vg[..., :, :, 0, :, 1:], vg[..., :, :, 1:, :, 1:]
    b = np.swapaxes(beta, -1, -3)  # [..., M(s), M(t), K]
    # Q[s, t, k, l] = (a_ls^H a_ks)(a_kt^T R_t conj a_lt)
    qm = g00[..., :, None, :, :] * v00[..., None, :, :, :]  # [..., s, t, k, l]
    # P[s, t, k, c, l] = beta_kts <D_kc, E_lst>
    pm = (gd0[..., :, None, :, :, :] * v00[..., None, :, :, None, :]
          + g00[..., :, None, :, None, :] * vd0[..., None, :, :, :, :])  # [..., s, t, k, c, l]
    pm = pm * b[..., :, :, :, None, None]
    # T[(k,c),(l,d)] = sum_st beta_kts conj(beta_lts) <D_kc, D_ld>
    bb = b[..., :, :, :, None] * b.conj()[..., :, :, None, :]  # [..., s, t, k, l]
    inner = (gdd[..., :, None, :, :, :, :] * v00[..., None, :, :, None, :, None]
             + g0d[..., :, None, :, None, :, :] * vd0[..., None, :, :, :, :, None]
             + gd0[..., :, None, :, :, :, None] * v0d[..., None, :, :, None, :, :]
             + g00[..., :, None, :, None, :, None] * vdd[..., None, :, :, :, :, :])  # [..., s, t, k, c, l, d]
    tt = (bb[..., :, :, :, None, :, None] * inner).reshape(lead + (m * m, -1)).sum(axis=-2)
    tt = tt.reshape(lead + (2 * k, 2 * k))
    if not exact_jbb:
        qm = qm * np.eye(k)
    pf = pm.reshape(lead + (m, m, 2 * k, k))  # [..., s, t, (k c), l]
    scale = np.abs(np.trace(qm, axis1=-2, axis2=-1)).max(axis=(-2, -1))  # [...]
    sc4 = scale[..., None, None, None, None]
    x = np.linalg.solve(qm / sc4 + 1e-14 * np.eye(k), np.swapaxes(pf.conj(), -1, -2))  # [..., s, t, l, (kc)]
    corr = np.einsum("...stil,...stlj->...ij", pf, x) / scale[..., None, None]  # [..., (kc), (kc)]
    s_mat = np.real(tt - corr)
    s_mat = 0.5 * (s_mat + np.swapaxes(s_mat, -1, -2))
    try:
        s_inv = np.linalg.inv(s_mat)
    except np.linalg.LinAlgError:
        if not lead:
            return np.full((k, 2, 2), np.inf)
        s_inv = np.full(s_mat.shape, np.inf)  # one cluster at a time: inf only where singular
        for i in np.ndindex(*lead):
            try:
                s_inv[i] = np.linalg.inv(s_mat[i])
            except np.linalg.LinAlgError:
                pass
    d = np.diagonal(s_inv.reshape(lead + (k, 2, k, 2)), axis1=-4, axis2=-2)  # [..., 2, 2, K]
    blocks = np.moveaxis(d, -1, -3)  # [..., K, 2, 2]
    return 0.5 * noise_w / float(n_snapshots) * blocks
