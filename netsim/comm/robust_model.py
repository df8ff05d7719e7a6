"""Data and numpy helpers of the robust designs (seed 003 eqs. (10)-(13); spec 3.4, 7.3).

Normalisation and exact dimension reduction (:func:`reduce_problem`), the LMI (13) in numpy
(:func:`lmi_min_eig`), the MRT bases of (26), zero-forcing coordinates, the single-user rate
bound of Alg. 1 step 1, and the solver settings shared by every cvxpy model. See
:mod:`netsim.comm.robust` for the formulation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

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


def rate_upper_bound(red: ReducedProblem, rho: float) -> float:
    """``rho log2(1 + min_k (sum_m ||g_{m,k}||)^2)`` (single-user, error-free, Alg. 1 step 1)."""
    full = red.g @ red.basis.T  # [K, MN]
    n = full.shape[1] // red.n_aps
    norms = np.linalg.norm(full.reshape(red.n_users, red.n_aps, n), axis=-1).sum(axis=1)  # [K]
    return float(rho * np.log2(1 + red.pbar * np.min(norms) ** 2))
