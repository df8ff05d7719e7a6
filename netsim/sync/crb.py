"""CRB of TO and CFO with pilot contamination (seed 000, Sec. III; spec ``sync.md`` 3).

Contents
--------
* :func:`a_matrix` / :func:`a_matrix_bands`: ``A = E[U U^T]`` of a single-path interferer whose
  TO is ``U[0, eta]`` (eq 14-26), by exact piecewise integration, valid for any delay
  ``vs >= 0`` (not only ``vs < 1`` chip as in the paper) and any ``eta > 0``;
  :func:`a_matrix_closed_form` is the paper's closed form (eq 21-26), kept as a cross-check.
* :func:`contamination_diag`: the diagonal of the contamination covariance ``D`` (eq 30),
  summed over any number of co-pilot interferers; :func:`contamination_cov_full` is the full
  ``M x M`` covariance with the sinc CFO factor (eq 28) for a small CFO range.
* :func:`contamination_power` (``tr D``, Theorem 1 / eq 43) and
  :func:`expected_contamination_diag` (eq 42, pilot-averaged).
* :func:`fisher_matrix` (eq 32-36, with the corrected ``Xi^{-1}``) and :func:`crb_to_cfo`,
  which reports ``inf`` (and says why) instead of inverting an ill-conditioned Fisher matrix
  (spec 3.6).

Units: TO in chips (``Ts``), CFO in cycles per sample (``df * Ts``); CRB_TO in ``Ts^2``,
CRB_CFO in ``(cycles/sample)^2``. Powers in W.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.pilots import delayed_pilot_pair, shifted_pilot

__all__ = [
    "COND_LIMIT",
    "a_matrix_size",
    "a_matrix_bands",
    "a_matrix",
    "a_matrix_closed_form",
    "contamination_diag",
    "contamination_cov_full",
    "contamination_power",
    "expected_contamination_diag",
    "theorem1_xi",
    "fisher_matrix",
    "CrbResult",
    "crb_from_fisher",
    "crb_to_cfo",
]

#: Fisher matrices whose equilibrated condition number exceeds this are declared singular.
COND_LIMIT = 1e10


def a_matrix_size(vs: float, eta: float) -> int:
    """Number of rows/columns that ``A(vs, eta)`` needs: ``floor(vs + eta) + 3``."""
    return int(np.floor(vs + eta)) + 3


def a_matrix_bands(
    vs: ArrayLike, eta: float, size: int | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Diagonal and super-diagonal of ``A = (1/eta) int_{vs}^{vs+eta} u(x) u(x)^T dx``.

    ``u(x)`` has ``1 - frac(x)`` at row ``floor(x) + 1`` and ``frac(x)`` at row ``floor(x) + 2``
    (0-based), so ``A`` is symmetric tridiagonal. For every integer ``k`` with
    ``[k, k+1) cap [vs, vs+eta] = [a, b]``, ``u_a = a - k``, ``u_b = b - k`` (spec 3.2)::

        A[k+1,k+1] += ((1-u_a)^3 - (1-u_b)^3) / (3 eta)
        A[k+2,k+2] += (u_b^3 - u_a^3) / (3 eta)
        A[k+1,k+2] += ((u_b^2 - u_a^2)/2 - (u_b^3 - u_a^3)/3) / eta

    Parameters
    ----------
    vs : array_like, shape (...), float
        Propagation delay of the interferer's main path in chips (``d / (c Ts)``), ``>= 0``.
    eta : float
        TO range in chips (``theta1 ~ U[0, eta]``), ``> 0``.
    size : int, optional
        Matrix size; default ``floor(max(vs) + eta) + 3``. Must be at least that.

    Returns
    -------
    diag : ndarray, shape (..., size), float64
    sup : ndarray, shape (..., size - 1), float64
        ``A[q, q+1]``.
    """
    vs = np.asarray(vs, dtype=float)
    if np.any(vs < 0) or eta <= 0:
        raise ValueError("need vs >= 0 and eta > 0")
    need = a_matrix_size(float(np.max(vs)) if vs.size else 0.0, eta)
    size = need if size is None else int(size)
    if size < need:
        raise ValueError(f"size {size} < needed {need}")
    k = np.arange(size - 2, dtype=float)  # [K] intervals [k, k+1)
    a = np.clip(vs[..., None], k, k + 1)  # [..., K]
    b = np.clip(vs[..., None] + eta, k, k + 1)  # [..., K]
    ua, ub = a - k, b - k  # [..., K]
    d1 = ((1 - ua) ** 3 - (1 - ub) ** 3) / (3 * eta)  # row k+1
    d2 = (ub**3 - ua**3) / (3 * eta)  # row k+2
    off = ((ub**2 - ua**2) / 2 - (ub**3 - ua**3) / 3) / eta  # (k+1, k+2)
    diag = np.zeros(vs.shape + (size,))
    diag[..., 1:-1] += d1
    diag[..., 2:] += d2
    sup = np.zeros(vs.shape + (size - 1,))
    sup[..., 1:] = off
    return diag, sup


def a_matrix(vs: float, eta: float, size: int | None = None) -> NDArray[np.float64]:
    """Dense ``A(vs, eta)`` (eq 20-26, general ``vs``), shape (size, size). See :func:`a_matrix_bands`."""
    diag, sup = a_matrix_bands(np.asarray(float(vs)), eta, size)
    return np.diag(diag) + np.diag(sup, 1) + np.diag(sup, -1)


def a_matrix_closed_form(vs: float, eta: int, size: int | None = None) -> NDArray[np.float64]:
    """The paper's closed form of ``A`` (eq 21-26), written for ``r = frac(vs)`` and shifted by
    ``floor(vs)`` rows (spec 3.2). ``eta`` must be a positive integer. Cross-check only."""
    eta = int(eta)
    if eta < 1:
        raise ValueError("eta must be a positive integer")
    k0 = int(np.floor(vs))
    r = vs - k0
    size = a_matrix_size(vs, eta) if size is None else size
    a = np.zeros((size, size))

    def put(p: int, q: int, v: float) -> None:  # 1-based paper indices, shifted by k0
        a[p - 1 + k0, q - 1 + k0] = v
        a[q - 1 + k0, p - 1 + k0] = v

    if eta == 1:
        put(2, 2, (1 - r) ** 3 / 3)
        put(2, 3, (1 - 3 * r**2 + 2 * r**3) / 6)
        put(3, 3, (1 + 3 * r - 3 * r**2) / 3)
        put(3, 4, (3 * r**2 - 2 * r**3) / 6)
        put(4, 4, r**3 / 3)
        return a
    put(2, 2, (1 - r) ** 3 / (3 * eta))
    put(2, 3, (1 - 3 * r**2 + 2 * r**3) / (6 * eta))
    put(3, 3, (2 - r**3) / (3 * eta))
    for v in range(2, eta + 1):
        put(v + 1, v + 2, 1 / (6 * eta))
    for v in range(2, eta):
        put(v + 2, v + 2, 2 / (3 * eta))
    put(eta + 2, eta + 3, (3 * r**2 - 2 * r**3) / (6 * eta))
    put(eta + 2, eta + 2, (2 - (1 - r) ** 3) / (3 * eta))
    put(eta + 3, eta + 3, r**3 / (3 * eta))
    return a


def _conv_last(x: NDArray, y: NDArray, out_len: int) -> NDArray:
    """Linear convolution along the last axis (batched, via FFT), first ``out_len`` samples."""
    n = x.shape[-1] + y.shape[-1] - 1
    nfft = 1 << int(np.ceil(np.log2(max(n, out_len, 1))))
    z = np.fft.ifft(np.fft.fft(x, nfft) * np.fft.fft(y, nfft), nfft)[..., :out_len]
    return z


def contamination_diag(
    pilot: ArrayLike,
    vs: ArrayLike,
    eta: float,
    power_w: ArrayLike,
    n_samples: int,
) -> NDArray[np.float64]:
    """Diagonal of the total contamination covariance ``sum_i' D_{i',j}`` (eq 30, 31).

    ``D[n,n] = P * sum_{c,c'} S[n,c] A[c,c'] conj(S[n,c'])`` with ``S[n,c] = s[n-c]``; since
    ``A`` is tridiagonal this is ``P sum_c (A[c,c] |s[n-c]|^2 + 2 Re A[c,c+1] s[n-c] conj(s[n-c-1]))``.
    Only the rows ``c = floor(vs) + 1 .. floor(vs + eta) + 2`` of ``A`` are non-zero (the bands of
    :func:`a_matrix_bands` on the intervals that ``[vs, vs + eta]`` covers), so the sum runs over
    those few shifts of ``|s|^2`` and of ``s[j] conj(s[j-1])`` directly (no FFT). Samples past
    ``M`` are cut, so any interferer delay is allowed. Valid when ``2 fmax`` is an integer
    (eq 29; the diagonal does not depend on ``fmax`` anyway).

    Parameters
    ----------
    pilot : array_like, shape (..., N)
        The shared pilot (one per leading index).
    vs : array_like, shape (..., n_int), float
        Interferers' main-path delays in chips (``d_{i',j} / (c Ts)``), ``>= 0``. May be empty.
    eta : float
        TO range in chips, ``> 0``.
    power_w : array_like, shape (..., n_int), float
        ``Pt alpha0^2 beta_{i',j}`` of each interferer (W); zero for padding entries.
    n_samples : int
        ``M``.

    Returns
    -------
    ndarray, shape (..., M), float64
        W per sample.
    """
    s = np.asarray(pilot)
    vs = np.asarray(vs, dtype=float)
    pw = np.broadcast_to(np.asarray(power_w, dtype=float), vs.shape)
    lead = np.broadcast_shapes(s.shape[:-1], vs.shape[:-1])
    if vs.shape[-1] == 0:
        return np.zeros(lead + (n_samples,))
    if np.any(vs < 0) or eta <= 0:
        raise ValueError("need vs >= 0 and eta > 0")
    nq = int(np.floor(eta)) + 2  # intervals [k, k+1) from floor(vs) that [vs, vs+eta] can touch
    k0 = np.floor(vs)  # [..., I]
    k = k0[..., None] + np.arange(nq)  # [..., I, Q]
    ua = np.clip(vs[..., None], k, k + 1) - k  # [..., I, Q]
    ub = np.clip(vs[..., None] + eta, k, k + 1) - k  # [..., I, Q]
    d1 = ((1 - ua) ** 3 - (1 - ub) ** 3) / (3 * eta)  # A[k+1, k+1] part
    d2 = (ub**3 - ua**3) / (3 * eta)  # A[k+2, k+2] part
    off = ((ub**2 - ua**2) / 2 - (ub**3 - ua**3) / 3) / eta  # A[k+1, k+2]
    cd = np.zeros(vs.shape + (nq + 1,))  # [..., I, Q+1]: A[c, c] at c = k0 + 1 + j
    cd[..., :-1] += d1
    cd[..., 1:] += d2
    shift = (k0.astype(np.int64) + 1)[..., None] + np.arange(nq + 1)  # [..., I, Q+1]
    q = np.concatenate(
        [np.zeros(s.shape[:-1] + (1,), s.dtype), s[..., 1:] * np.conj(s[..., :-1])], -1
    )  # [..., N]  s[j] conj(s[j-1])
    rows_e = shifted_pilot(np.abs(s) ** 2, shift, n_samples)  # [..., I, Q+1, M]
    rows_q = shifted_pilot(q, shift[..., :-1], n_samples)  # [..., I, Q, M]
    t1 = np.einsum("...ij,...ijm->...m", pw[..., None] * cd, rows_e)  # [..., M]
    t2 = np.einsum("...ij,...ijm->...m", pw[..., None] * off, rows_q)  # [..., M]
    out = t1 + 2 * np.real(t2)
    return np.broadcast_to(np.maximum(out, 0.0), lead + (n_samples,)).copy()


def contamination_cov_full(
    pilot: ArrayLike, vs: float, eta: float, fmax: float, power_w: float, n_samples: int
) -> NDArray[np.complex128]:
    """Full ``M x M`` covariance of one interferer, ``P (S A S^H) o sinc(2 (n-m) fmax)`` (eq 28).

    ``fmax`` is in cycles per sample (CFO ``~ U[-fmax, fmax]``). For integer ``2 fmax`` the
    off-diagonal vanishes (eq 29). Returns shape (M, M), complex128.
    """
    s = np.asarray(pilot)
    n = s.shape[-1]
    a = a_matrix(vs, eta)
    size = a.shape[0]
    r = np.arange(n_samples)[:, None] - np.arange(size)[None, :]
    smat = np.where((r >= 0) & (r < n), s[np.clip(r, 0, n - 1)], 0)  # [M, size]
    cov = smat @ a @ smat.conj().T  # [M, M]
    idx = np.arange(n_samples)
    return power_w * cov * np.sinc(2 * (idx[:, None] - idx[None, :]) * fmax)


def contamination_power(pilot: ArrayLike, power_w: ArrayLike) -> NDArray[np.float64]:
    """``tr(D) = P (2 sum|s|^2 + Re sum_j s[j] conj(s[j-1])) / 3`` = ``P (2N + R_s(1)) / 3`` for a
    unit-modulus pilot (Theorem 1 / spec 3.7; exact when the burst lies inside the window).

    Parameters
    ----------
    pilot : array_like, shape (..., N)
    power_w : array_like, shape (...)
        ``Pt alpha0^2 beta``.

    Returns
    -------
    ndarray, shape (...), W (energy per burst, summed over samples)
    """
    s = np.asarray(pilot)
    e = np.sum(np.abs(s) ** 2, -1)
    r1 = np.real(np.sum(s[..., 1:] * np.conj(s[..., :-1]), -1))
    return np.asarray(power_w, dtype=float) * (2 * e + r1) / 3.0


def expected_contamination_diag(
    vs: float, eta: float, pilot_length: int, power_w: float, n_samples: int
) -> NDArray[np.float64]:
    """Pilot-averaged diagonal ``E_s D[n,n] = P sum_c A[c,c] 1{0 <= n-c <= N-1}`` (eq 42).

    Equals ``(2/3) P`` on rows the burst fully covers. Shape (M,), W.
    """
    diag, _ = a_matrix_bands(np.asarray(float(vs)), eta)
    out = np.real(_conv_last(np.ones(pilot_length) + 0j, diag + 0j, n_samples))
    return power_w * out


def theorem1_xi(power_w: ArrayLike, noise_power_w: float) -> float:
    """Theorem 1 (eq 42): ``E{Xi} ~ (sum_i' (2/3) P_i' + sigma^2)`` per sample (W)."""
    return float(np.sum(np.asarray(power_w, dtype=float)) * 2.0 / 3.0 + noise_power_w)


@functools.lru_cache(maxsize=16)
def _fisher_layout(n_taps: int) -> tuple[NDArray[np.intp], NDArray[np.bool_], NDArray[np.float64]]:
    """Where each entry of ``J`` comes from in the complex Gram matrix (:func:`fisher_matrix`).

    Parameter ``q`` of ``theta`` uses Gram row ``g[q]`` (0: ``c0``, 1: ``c1``, ``2 + l``: tap
    ``l``) and is ``j`` times that column when ``imag[q]`` (``Im h^l``). Returns ``g`` (P,),
    ``same`` (P, P) (both or neither imaginary: ``J = 2 Re G``) and ``sign`` (P, P) (``+1`` for
    an imaginary row and real column, ``-1`` the other way: ``J = +-2 Im G``).
    """
    g = np.concatenate([[0, 1], np.repeat(np.arange(2, n_taps + 2), 2)])  # [P]
    imag = np.zeros(g.size, dtype=bool)
    imag[3::2] = True
    kind = imag.astype(float)
    same, sign = imag[:, None] == imag[None, :], kind[:, None] - kind[None, :]
    for a in (g, same, sign):  # cached: shared by every call
        a.setflags(write=False)
    return g, same, sign


def fisher_matrix(
    pilot: ArrayLike,
    to_chips: ArrayLike,
    tap_delay_chips: ArrayLike,
    taps: ArrayLike,
    xi: ArrayLike,
    n_samples: int,
    cfo_norm: ArrayLike = 0.0,
) -> NDArray[np.float64]:
    """Fisher information of ``theta = [theta1, theta2, Re h^0, Im h^0, ...]`` (eq 32-36).

    ``J = 2 Re{Omega^H Xi^{-1} Omega}`` with ``Omega = [F S U' h, j 2 pi diag(0..M-1) F S U h,
    F S U e_l, j F S U e_l]`` (eq 36 with the corrected inverse). Every column carries the
    CFO rotation ``F`` and ``Xi`` is diagonal, so ``F`` cancels and ``J`` does not depend on
    the CFO. The ``j``-multiplied columns add no new inner products: with the complex Gram
    matrix ``G = C^* Xi^{-1} C^T`` of the ``L + 2`` columns ``C = [c0, c1, w_1..w_L]``
    (``c0 = S U' h``, ``c1 = j 2 pi m S U h``, ``w_l = S U e_l``), ``J`` is ``2 Re G`` between two
    real (or two imaginary) parameters and ``+-2 Im G`` across (:func:`_fisher_layout`). One
    batched matrix product of ``(L+2) x M`` blocks (BLAS) gives all of it.

    Parameters
    ----------
    pilot : array_like, shape (..., N)
    to_chips : array_like, shape (...), float
        True ``theta1`` (chips).
    tap_delay_chips : array_like, shape (..., L)
        Known tap delays (chips).
    taps : array_like, shape (..., L), complex
        True tap coefficients (sqrt(W)).
    xi : array_like, shape (..., M) or scalar
        Diagonal of the interference-plus-noise covariance (W).
    n_samples : int
        ``M``.
    cfo_norm : array_like, shape (...), default 0
        True CFO; ``J`` does not depend on it (``F`` cancels for diagonal ``Xi``), so it is
        not used.

    Returns
    -------
    ndarray, shape (..., 2L+2, 2L+2), float64
    """
    theta1 = np.asarray(to_chips, dtype=float)
    x = theta1[..., None] + np.asarray(tap_delay_chips, dtype=float)  # [..., L]
    h = np.asarray(taps, dtype=complex)  # [..., L]
    w, dw = delayed_pilot_pair(pilot, x, n_samples)  # [..., L, M] each
    lead = np.broadcast_shapes(w.shape[:-2], h.shape[:-1])
    lt = w.shape[-2]
    m = np.arange(n_samples)
    cols = np.empty(lead + (lt + 2, n_samples), dtype=complex)  # [..., L+2, M]  C
    cols[..., 0, :] = (h[..., None, :] @ dw)[..., 0, :]  # c0 = S U' h
    cols[..., 1, :] = (2j * np.pi * m) * (h[..., None, :] @ w)[..., 0, :]  # c1
    cols[..., 2:, :] = w
    xi = np.asarray(xi, dtype=float)
    wc = cols / (xi[..., None, :] if xi.ndim else xi)  # [..., L+2, M]  Xi^-1 C
    gram = cols.conj() @ np.swapaxes(wc, -1, -2)  # [..., L+2, L+2]  G
    g, same, sign = _fisher_layout(lt)
    gg = gram[..., g[:, None], g[None, :]]  # [..., P, P]
    return 2.0 * np.where(same, gg.real, sign * gg.imag)


@dataclass(frozen=True)
class CrbResult:
    """CRBs of a batch of links.

    Attributes
    ----------
    to_chips2 : ndarray, shape (...), float64
        CRB of the TO, ``Ts^2``; ``inf`` where the Fisher matrix is singular.
    cfo_norm2 : ndarray, shape (...), float64
        CRB of the normalised CFO, ``(cycles/sample)^2``; ``inf`` where singular.
    cond : ndarray, shape (...), float64
        Condition number of the equilibrated Fisher matrix ``D^-1/2 J D^-1/2``.
    singular : ndarray, shape (...), bool
        ``cond > COND_LIMIT`` (or non-finite): TO/CFO not identifiable; see :attr:`reason`.
    """

    to_chips2: NDArray[np.float64]
    cfo_norm2: NDArray[np.float64]
    cond: NDArray[np.float64]
    singular: NDArray[np.bool_]

    @property
    def reason(self) -> str:
        """Why some entries are ``inf`` (empty string if none are)."""
        if not np.any(self.singular):
            return ""
        return (
            f"{int(np.sum(self.singular))} Fisher matrix/matrices ill-conditioned "
            f"(equilibrated cond > {COND_LIMIT:.0e}): TO not identifiable, e.g. two taps "
            "within the same chip (spec 3.6); CRB reported as inf"
        )


def crb_from_fisher(
    fisher: ArrayLike, cond_limit: float = COND_LIMIT, exact_cond: bool = True
) -> CrbResult:
    """Invert a batch of Fisher matrices safely and return the TO and CFO entries.

    The matrix is equilibrated (``D^-1/2 J D^-1/2``, ``D = diag J``) so that the condition
    number measures identifiability, not the scale of the powers; above ``cond_limit`` the
    CRB is reported as ``inf`` rather than inverted.

    Parameters
    ----------
    fisher : array_like, shape (..., P, P)
    cond_limit : float
    exact_cond : bool, default True
        False skips the eigenvalues where they cannot change the verdict: the equilibrated
        matrix ``Jn`` is inverted first and ``||Jn||_F ||Jn^-1||_F``, an upper bound of the
        2-norm condition number, is used wherever it is below ``cond_limit / 10`` (the factor
        covers the rounding of an inverse computed at condition ``<= 1e9``); only the other
        matrices get :func:`numpy.linalg.eigvalsh`. ``singular`` and the CRBs are identical
        bit for bit (each matrix is inverted on its own in either case); ``cond`` then holds
        the bound (``>=`` the condition number) where the eigenvalues were skipped.

    Returns
    -------
    CrbResult with arrays of shape (...).
    """
    j = np.asarray(fisher, dtype=float)
    lead = j.shape[:-2]
    jf = j.reshape((-1,) + j.shape[-2:])
    d = np.sqrt(np.abs(np.einsum("bii->bi", jf)))  # [B, P]
    ok_d = np.all(d > 0, -1) & np.all(np.isfinite(jf), (-1, -2))
    dd = np.where(ok_d[:, None], d, 1.0)
    jn = jf / (dd[:, :, None] * dd[:, None, :])
    if not exact_cond and np.any(ok_d):
        fast = _crb_bounded(jf.shape[0], jn, dd, ok_d, cond_limit)
        if fast is not None:
            to, cfo, cond, sing = fast
            return CrbResult(to.reshape(lead), cfo.reshape(lead), cond.reshape(lead),
                             sing.reshape(lead))
    cond = np.full(jf.shape[0], np.inf)
    if np.any(ok_d):
        cond[ok_d] = _cond_eig(jn[ok_d])
    sing = ~np.isfinite(cond) | (cond > cond_limit)
    to = np.full(jf.shape[0], np.inf)
    cfo = np.full(jf.shape[0], np.inf)
    good = ~sing
    if np.any(good):
        inv = np.linalg.inv(jn[good]) / (dd[good][:, :, None] * dd[good][:, None, :])
        to[good] = inv[:, 0, 0]
        cfo[good] = inv[:, 1, 1]
    return CrbResult(to.reshape(lead), cfo.reshape(lead), cond.reshape(lead), sing.reshape(lead))


def _cond_eig(jn: NDArray) -> NDArray[np.float64]:
    """2-norm condition number of symmetric matrices (B, P, P): ratio of the extreme
    ``|eigenvalues|`` (= singular values; eigvalsh costs about half an SVD); inf if singular."""
    ev = np.abs(np.linalg.eigvalsh(jn))  # [B, P]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ev.min(-1) > 0, ev.max(-1) / ev.min(-1), np.inf)


def _crb_bounded(
    b: int, jn: NDArray, dd: NDArray, ok_d: NDArray, cond_limit: float
) -> tuple[NDArray, NDArray, NDArray, NDArray] | None:
    """:func:`crb_from_fisher` with ``exact_cond=False``: ``(to, cfo, cond, singular)`` of
    shape (B,), or None when an inverse fails (exactly singular matrix: the caller takes the
    eigenvalue path)."""
    idx = np.flatnonzero(ok_d)  # [B']
    try:
        inv_n = np.linalg.inv(jn[idx])  # [B', P, P]  Jn^-1, each matrix on its own
    except np.linalg.LinAlgError:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        bound = np.sqrt(np.einsum("bij,bij->b", jn[idx], jn[idx])
                        * np.einsum("bij,bij->b", inv_n, inv_n))  # [B'] >= cond_2
    cond = np.full(b, np.inf)
    cond[idx] = bound
    unsure = ~(bound <= cond_limit / 10)  # [B'] (NaN/inf included)
    if np.any(unsure):
        cond[idx[unsure]] = _cond_eig(jn[idx[unsure]])
    sing = ~np.isfinite(cond) | (cond > cond_limit)
    to = np.full(b, np.inf)
    cfo = np.full(b, np.inf)
    keep = ~sing[idx]  # [B']
    if np.any(keep):
        g = idx[keep]
        inv = inv_n[keep] / (dd[g][:, :, None] * dd[g][:, None, :])
        to[g] = inv[:, 0, 0]
        cfo[g] = inv[:, 1, 1]
    return to, cfo, cond, sing


def crb_to_cfo(
    pilot: ArrayLike,
    to_chips: ArrayLike,
    tap_delay_chips: ArrayLike,
    taps: ArrayLike,
    xi: ArrayLike,
    n_samples: int,
    cfo_norm: ArrayLike = 0.0,
    cond_limit: float = COND_LIMIT,
    exact_cond: bool = True,
) -> CrbResult:
    """CRB of TO (``[J^-1]_00``) and CFO (``[J^-1]_11``) with contamination (eq 11, 36).

    Parameters as in :func:`fisher_matrix`. Build ``xi`` as
    ``contamination_diag(...) + noise_power_w`` (eq 31). ``exact_cond=False``: see
    :func:`crb_from_fisher` (same CRBs and ``singular``; ``cond`` may be an upper bound).
    """
    j = fisher_matrix(pilot, to_chips, tap_delay_chips, taps, xi, n_samples, cfo_norm)
    return crb_from_fisher(j, cond_limit, exact_cond)
