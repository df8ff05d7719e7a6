"""Maximum-likelihood TO/CFO estimator of a slave at its master (seed 000, eq 37-39; spec 4).

The estimator maximises the energy of the projection of ``y`` onto the column space of
``B(theta1, eps) = F(eps) S_p U(theta1)``::

    g(theta1, eps) = (B^H y)^H (B^H B)^{-1} (B^H y)                                  (eq 39)
    h_hat = (B^H B)^{-1} B^H y                                                        (eq 38)

It ignores the contamination (unweighted LS), as the paper does.

Fast evaluation. Column ``l`` of ``S_p U(theta1)`` interpolates two integer shifts of the
pilot, ``(1-f_l) s[m-k_l-1] + f_l s[m-k_l-2]`` with ``k_l = floor(theta1 + d_l)`` and
``f_l = theta1 + d_l - k_l``. So with the correlations
``c_q(eps) = sum_m conj(s[m-q]) y[m] exp(-j 2 pi eps m)`` and the pilot's shift Gram
``R[q, q'] = sum_m conj(s[m-q]) s[m-q']``, both ``B^H y`` and ``B^H B`` at any
``(theta1, eps)`` are small linear combinations; no ``M``-length work per search point.
``B^H B`` does not depend on ``eps`` (``F^H F = I``), and when the window does not truncate
the pilot ``R`` is Toeplitz, so ``B^H B`` depends on ``theta1`` only through the fractional
delays: on a TO grid of step ``1/p`` chips it takes ``p`` distinct values.

Search (vectorised over a batch of bursts, e.g. all links of one round):

1. coarse grid: ``theta1`` in ``{0, step, ..., eta}`` x CFO cells. The CFO dimension of ``g``
   for a known pilot is a multi-channel periodogram: one FFT of the de-spread samples
   ``conj(s[m-q]) y[m]`` gives every CFO cell of ``[-0.5, 0.5)`` at once
   (``fft_oversample * M`` points); for a small CFO range ``[-cfo_max, cfo_max]`` a direct DFT
   on cells no wider than ``1 / (fft_oversample M)``. The Gram is factored once per distinct
   fractional delay (Cholesky), not once per grid point.
2. the ``n_candidates`` best local maxima of the TO profile ``max_eps g`` are refined in
   ``n_refine`` levels. Each level (a) searches ``theta1`` on a 21-point grid of the current
   step around the current point at fixed ``eps`` (``g`` is only piecewise smooth in
   ``theta1``: kinks where a tap delay crosses a chip boundary, so no derivative is used in
   TO), then divides the TO step by 10 (level 0: step = coarse step / 10, covering +- one
   coarse step); (b) takes one safeguarded Newton step in ``eps`` (``g`` is smooth in eps;
   its first and second derivatives come from the correlations weighted by ``-j 2 pi m`` and
   ``(-j 2 pi m)^2``), kept only if ``g`` does not decrease. Every accepted move increases
   ``g``, so the result is a local maximum of the same cost as the grid search of spec 4.
   (c) after the first level, a candidate whose ``g`` is below ``(1 - drop_gap)`` times the
   best of its burst is dropped (``g`` is ``sigma^2`` times the concentrated log-likelihood,
   so this is a relative likelihood-gap rule; the later levels change ``g`` by less than 1 %,
   see :func:`ml_estimate`). On captured campus rounds 41 % of the second candidates go here.
3. the best refined candidate wins; ``h_hat`` from eq 38.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.pilots import shifted_pilot

__all__ = ["MlEstimate", "ml_estimate", "wrap_cfo"]

_LOAD = 1e-12  # diagonal loading of the Gram, relative to its mean diagonal (rank-deficient taps)


@dataclass(frozen=True)
class MlEstimate:
    """ML estimates for a batch of bursts.

    Attributes
    ----------
    to_chips : ndarray, shape (...), float64
        ``theta1_hat`` in ``[0, eta]`` (chips).
    cfo_norm : ndarray, shape (...), float64
        ``eps_hat`` in ``[-0.5, 0.5)`` (cycles/sample), or in ``[-cfo_max, cfo_max]``.
    taps : ndarray, shape (..., L), complex128
        ``h_hat`` (sqrt(W)); NaN when computed with ``need_taps=False``.
    metric : ndarray, shape (...), float64
        ``g`` at the optimum (W); NaN when computed with ``need_taps=False``.
    """

    to_chips: NDArray[np.float64]
    cfo_norm: NDArray[np.float64]
    taps: NDArray[np.complex128]
    metric: NDArray[np.float64]


def wrap_cfo(eps: ArrayLike) -> NDArray[np.float64]:
    """Wrap normalised CFO (or CFO errors) into ``[-0.5, 0.5)``."""
    return (np.asarray(eps, dtype=float) + 0.5) % 1.0 - 0.5


def _interp(t: NDArray, delays: NDArray, n_q: int) -> tuple[NDArray, NDArray, NDArray]:
    """Rows and weights of ``U`` (component-first layout, batch axes last).

    t [P, n] chips, delays [P, L] chips -> (i0, i1 int [L, P, n], f [L, P, n]). Column ``l``
    of ``U`` is ``(1 - f) e_{i0} + f e_{i1}``, ``i0 = floor(t + d_l) + 1``, ``i1 = i0 + 1``
    (both clipped to ``0..n_q-1``).
    """
    x = np.add(t[None, :, :], delays.T[:, :, None], order="C")  # [L, P, n]
    k = np.floor(x)
    f = x - k
    i0 = np.clip(k.astype(np.int64) + 1, 0, n_q - 1)  # [L, P, n]
    i1 = np.minimum(i0 + 1, n_q - 1)
    return i0, i1, f


def _gram(rq: NDArray, i0: NDArray, i1: NDArray, f: NDArray) -> NDArray:
    """``B^H B`` from the shift Gram: rq [P, Q, Q], rows [L, P, n] -> [L, L, P, n]."""
    n_q = rq.shape[1]
    base = (np.arange(rq.shape[0]) * n_q * n_q)[:, None]  # [P, 1]
    rf = rq.reshape(-1)
    a0, a1 = (base + i0 * n_q)[:, None], (base + i1 * n_q)[:, None]  # [L, 1, P, n]
    b0, b1 = i0[None], i1[None]  # [1, L, P, n]
    g = 1.0 - f
    fa, fb, ga, gb = f[:, None], f[None], g[:, None], g[None]
    gram = ga * gb * rf[a0 + b0] + ga * fb * rf[a0 + b1]
    gram += fa * gb * rf[a1 + b0] + fa * fb * rf[a1 + b1]  # [L, L, P, n]
    return gram


def _gram_toeplitz(r: NDArray, i0: NDArray, f: NDArray) -> NDArray:
    """``B^H B`` from the pilot autocorrelation (no window truncation).

    ``R[q, q'] = r[q - q']``, so with ``D = i0_l - i0_l'`` and ``g = 1 - f``::

        G[l, l'] = (g_l g_l' + f_l f_l') r[D] + g_l f_l' r[D - 1] + f_l g_l' r[D + 1]

    r [P, 2H+1] holds ``r[d]`` for ``d = -H..H`` (column ``d + H``, ``H`` at least the largest
    row difference plus one); i0, f [L, P, n] -> [L, L, P, n].
    """
    n_lag = r.shape[1]
    base = (np.arange(r.shape[0]) * n_lag + n_lag // 2)[:, None]  # [P, 1]
    d = (base + i0)[:, None] - i0[None]  # [L, L, P, n] flat index of r[D]
    rf = r.reshape(-1)
    g = 1.0 - f
    fa, fb, ga, gb = f[:, None], f[None], g[:, None], g[None]
    gram = (ga * gb + fa * fb) * rf[d]
    gram += ga * fb * rf[d - 1] + fa * gb * rf[d + 1]
    return gram


def _cholesky(gram: NDArray) -> list[list[NDArray]]:
    """Lower Cholesky factor of small SPD (or Hermitian PD) matrices, entry by entry.

    gram [L, L, ...] -> ``c[i][j]`` arrays of shape [...] (``i > j``), and on the diagonal
    ``c[j][j]`` the reciprocal ``1 / C_jj`` as complex128 (what :func:`_whiten` multiplies by).
    Vectorised over the trailing axes: for L <= 6 this is much faster than LAPACK's per-matrix
    call on stacks of thousands of tiny matrices. A diagonal loading of ``_LOAD`` times the mean
    diagonal keeps rank-deficient Grams (two taps between the same two chips) factorable.

    The reciprocal: numpy divides a complex ``a + jb`` by a real ``d`` (promoted to ``d + 0j``)
    as ``(a * (1/d), b * (1/d))`` (its complex division scales by ``1 / (d + 0 * 0)``), and the
    complex product with ``1/d + 0j`` is ``(a/d' - b*0, a*0 + b/d')`` with ``d' = 1/d``: the
    same values, without a complex division and a real-to-complex cast per whitening.
    """
    n = gram.shape[0]
    load = _LOAD * sum(np.real(gram[i, i]) for i in range(n)) / n  # [...]
    tiny = np.finfo(float).tiny
    c: list[list[NDArray]] = [[None] * n for _ in range(n)]  # type: ignore[list-item]
    for j in range(n):
        s = np.real(gram[j, j]) + load
        for k in range(j):
            s = s - np.abs(c[j][k]) ** 2
        d = np.sqrt(np.maximum(s, tiny))
        for i in range(j + 1, n):
            s2 = gram[i, j]
            for k in range(j):
                s2 = s2 - c[i][k] * np.conj(c[j][k])
            c[i][j] = s2 / d
        c[j][j] = (1.0 / d).astype(np.complex128)  # the reciprocal (see above)
    return c


def _take(c: list[list[NDArray]], idx: NDArray) -> list[list[NDArray]]:
    """Gather every factor entry along its last axis: entries [..., G0] -> [..., idx]."""
    return [[None if x is None else x[..., idx] for x in row] for row in c]


def _whiten(c: list[list[NDArray]], v: NDArray) -> list[NDArray]:
    """``u = C^{-1} v`` by forward substitution: c from :func:`_cholesky` ([...] entries, the
    diagonal as reciprocals), v [E, L, ...] -> u, a list of L arrays [E, ...] (component ``l``
    of ``u``; no stacking); then ``g = ||u||^2 = v^H G^{-1} v``."""
    n = v.shape[1]
    u: list[NDArray] = []
    for i in range(n):
        r = v[:, i]
        for k in range(i):
            r = r - c[i][k] * u[k]
        u.append(r * c[i][i])  # r / C_ii, the same values (see _cholesky)
    return u


def _energy(u: list[NDArray]) -> NDArray:
    """``sum_l |u_l|^2``: u, L arrays [E, ...] -> [E, ...]."""
    acc = u[0].real ** 2 + u[0].imag ** 2
    for x in u[1:]:
        acc = acc + (x.real**2 + x.imag**2)
    return acc


def _derivs(u: list[NDArray]) -> tuple[NDArray, NDArray, NDArray]:
    """``g`` and its first two eps-derivatives from whitened correlations.

    u: L arrays [3, ...], entry ``k`` the whitened ``B^H y`` weighted by ``(-j 2 pi m)^k`` ->
    (g, dg/deps, d2g/deps2), each [...]:
    ``g = ||u0||^2``, ``g' = 2 Re(u0^H u1)``, ``g'' = 2 Re(u0^H u2) + 2 ||u1||^2``.
    """
    g0 = np.abs(u[0][0]) ** 2
    c1 = np.conj(u[0][0]) * u[0][1]
    c2 = np.conj(u[0][0]) * u[0][2]
    a1 = np.abs(u[0][1]) ** 2
    for x in u[1:]:
        x0c = np.conj(x[0])
        g0 = g0 + np.abs(x[0]) ** 2
        c1 = c1 + x0c * x[1]
        c2 = c2 + x0c * x[2]
        a1 = a1 + np.abs(x[1]) ** 2
    return g0, 2 * c1.real, 2 * c2.real + 2 * a1


def _gather_v(cq: NDArray, i0: NDArray, i1: NDArray, f: NDArray) -> NDArray:
    """``B^H y``: cq [E, P, Q] correlations, rows [L, P, n] -> v [E, L, P, n]."""
    n_e, n_p, n_q = cq.shape
    base = (np.arange(n_p) * n_q)[:, None]  # [P, 1]
    cf = cq.reshape(n_e, -1)
    v0 = np.take(cf, base + i0, axis=1)  # [E, L, P, n]
    v1 = np.take(cf, base + i1, axis=1)
    v1 -= v0
    v1 *= f
    v1 += v0
    return v1  # (1 - f) v0 + f v1


def _grid_period(step: float, n_grid: int) -> int:
    """Smallest ``p`` with ``p * step`` an integer (fractional delays repeat), else ``n_grid``."""
    for p in range(1, n_grid):
        v = p * step
        if v >= 0.5 and abs(v - round(v)) < 1e-9 * max(1.0, v):
            return p
    return n_grid


def _steer(e: NDArray, n_samples: int) -> NDArray:
    """CFO steering ``exp(-j 2 pi e m)``, m = 0..M-1: e [P] -> [P, M] complex.

    Two-level table instead of an elementwise complex exponential (which costs ~0.1 us per
    entry): with ``m = T a + b`` (``T = ceil(sqrt(M))``), ``exp(-j 2 pi e m)`` is the product of
    ``exp(-j 2 pi e T a)`` and ``exp(-j 2 pi e b)``, each from ``cos``/``sin`` of ``~sqrt(M)``
    phases per row. Agrees with the direct exponential to rounding (|error| ~ 1e-16 times the
    phase ``2 pi |e| m``, e.g. 3e-14 at M = 92 and |e| = 0.5).
    """
    n_t = int(np.ceil(np.sqrt(n_samples)))
    n_a = -(-n_samples // n_t)
    ph = (-2.0 * np.pi) * e[:, None] * np.arange(max(n_t, n_a))[None, :]  # [P, T] rad
    lo = np.cos(ph[:, :n_t]) + 1j * np.sin(ph[:, :n_t])  # [P, T] exp(-j 2 pi e b)
    ph_hi = ph[:, :n_a] * n_t  # [P, A] phase of m = T a
    hi = np.cos(ph_hi) + 1j * np.sin(ph_hi)  # [P, A]
    return (hi[:, :, None] * lo[:, None, :]).reshape(e.shape[0], -1)[:, :n_samples]  # [P, M]


def _correlate(zp: NDArray, e: NDArray, wm: NDArray) -> NDArray:
    """Correlations and their eps-derivatives at ``eps = e``.

    zp [P, W, M] de-spread samples, e [P], wm [M, 3] = ``(-j 2 pi m)^k``, k = 0, 1, 2
    -> [3, P, W]: ``sum_m zp (-j 2 pi m)^k exp(-j 2 pi e m)``. One (P W x M) @ (M x 3)
    product instead of P small ones.
    """
    n_p, n_w, m = zp.shape
    zs = zp * _steer(e, m)[:, None, :]  # [P, W, M]
    return (zs.reshape(-1, m) @ wm).reshape(n_p, n_w, 3).transpose(2, 0, 1)  # [3, P, W]


def _window_index(win: NDArray, t_grid: NDArray, dt0: float) -> NDArray:
    """Coarse-grid indices of each burst's TO window, one point of context on either side.

    win [B, 2] chips (``lo <= hi``, inside ``[0, eta]``), t_grid [G] -> k [B, W] int: the grid
    points ``k_lo - 1 .. k_hi + 1`` that cover ``[lo, hi]`` (``W`` is the widest burst's count;
    narrower windows extend to the right, and every row is shifted to stay on the grid), or
    ``-1`` / ``G`` outside the grid (no point there: the peak test sees ``-inf``).
    """
    n_t = t_grid.size
    k_lo = np.clip(np.floor(win[:, 0] / dt0 + 1e-9).astype(np.int64), 0, n_t - 1)  # [B]
    k_hi = np.clip(np.ceil(win[:, 1] / dt0 - 1e-9).astype(np.int64), 0, n_t - 1)  # [B]
    k_hi = np.maximum(k_hi, k_lo)
    n_w = int(np.max(k_hi - k_lo)) + 3  # window plus one context point per side
    start = np.minimum(k_lo - 1, n_t + 1 - n_w)  # [B] (wide windows may start at -1)
    return start[:, None] + np.arange(n_w)[None, :]  # [B, W] in -1..n_t


def _coarse(
    z: NDArray, rq: NDArray | None, rlag: NDArray | None, db: NDArray, eta: float, step: float,
    full: bool, cfo_max: float, fft_oversample: int, n_c: int, max_batch: int,
    window: NDArray | None = None,
) -> tuple[NDArray, NDArray, NDArray, float, float]:
    """Coarse TO x CFO grid; the ``n_c`` best TO-profile peaks per burst.

    z [B, Q, M], rq [B, Q, Q] (None with rlag), rlag [B, 2Q+1] or None, db [B, L],
    window [B, 2] chips or None
    -> (cand_t [B, C], cand_e [B, C], cand_g [B, C] grid metric, TO step, CFO cell).

    With ``window`` each burst evaluates only the grid points of its own TO window (plus one
    neighbour per side for the local-maximum test), the same points with the same values as
    the full grid: when a burst's ``n_c`` best full-grid peaks lie inside its window the
    candidates are identical, bit for bit.
    """
    n_b, n_q, n_samples = z.shape
    n_taps = db.shape[1]
    if full:
        nfft = 1 << int(np.ceil(np.log2(fft_oversample * n_samples)))
        eps_grid = np.fft.fftfreq(nfft)  # [K]
        de0 = 1.0 / nfft
    else:
        cell = 1.0 / (fft_oversample * n_samples)
        n_e = int(np.ceil(cfo_max / cell))
        eps_grid = np.linspace(-cfo_max, cfo_max, 2 * n_e + 1)  # [K], spacing <= cell
        de0 = eps_grid[1] - eps_grid[0] if eps_grid.size > 1 else cell
        steer = np.exp(-2j * np.pi * np.outer(eps_grid, np.arange(n_samples)))  # [K, M]
    n_t = int(np.round(eta / step)) + 1
    t_grid = np.linspace(0.0, eta, n_t)  # [G]
    dt0 = t_grid[1] - t_grid[0] if n_t > 1 else step
    period = _grid_period(dt0, n_t) if rlag is not None else n_t
    cls = np.arange(n_t) % period  # [G] Gram class of each grid TO
    n_c = min(n_c, n_t)
    n_k = eps_grid.size
    chunk = max(1, min(max_batch, int(4e6 // max(1, n_t * n_taps * n_k * 2))))
    cand_t = np.zeros((n_b, n_c))
    cand_e = np.zeros((n_b, n_c))
    cand_g = np.zeros((n_b, n_c))
    kwin = None if window is None else _window_index(window, t_grid, dt0)  # [B, W]
    if kwin is not None and kwin.shape[1] >= n_t + 2:
        kwin = None  # a window as wide as the grid: the full grid
    for b0 in range(0, n_b, chunk):
        sl = slice(b0, min(n_b, b0 + chunk))
        zz = z[sl]
        nb = zz.shape[0]
        if kwin is not None:
            _coarse_window(
                zz, cand_t, cand_e, cand_g, sl, rq, rlag, db, t_grid, eps_grid, period, kwin,
                full, nfft if full else 0, None if full else steer, n_c,
            )
            continue
        if full:
            cq = np.fft.fft(zz, nfft, axis=-1).transpose(2, 0, 1)  # [K, b, Q]
        else:
            cq = (steer @ zz.transpose(2, 0, 1).reshape(n_samples, -1)).reshape(n_k, nb, n_q)
        d = db[sl]
        i0, i1, f = _interp(np.broadcast_to(t_grid[:period], (nb, period)), d, n_q)
        if rlag is not None:
            gram = _gram_toeplitz(rlag[sl], i0, f)
        else:
            gram = _gram(rq[sl], i0, i1, f)
        chol = _take(_cholesky(gram), cls)  # entries [b, G]
        i0, i1, f = _interp(np.broadcast_to(t_grid, (nb, n_t)), d, n_q)
        g = _energy(_whiten(chol, _gather_v(cq, i0, i1, f)))  # [K, b, G]
        kbest = np.argmax(g, 0)  # [b, G]
        prof = np.max(g, 0)  # [b, G]
        left = np.concatenate([np.full((nb, 1), -np.inf), prof[:, :-1]], 1)
        right = np.concatenate([prof[:, 1:], np.full((nb, 1), -np.inf)], 1)
        peak = np.where((prof >= left) & (prof >= right), prof, -np.inf)
        order = np.argsort(-peak, -1, kind="stable")[:, :n_c]  # [b, C]
        # fewer peaks than candidates: repeat the global best
        order = np.where(np.isfinite(np.take_along_axis(peak, order, -1)), order, order[:, :1])
        cand_t[sl] = t_grid[order]
        cand_e[sl] = eps_grid[np.take_along_axis(kbest, order, -1)]
        cand_g[sl] = np.take_along_axis(prof, order, -1)
    return cand_t, cand_e, cand_g, dt0, de0


def _coarse_window(
    zz: NDArray, cand_t: NDArray, cand_e: NDArray, cand_g: NDArray, sl: slice, rq: NDArray | None,
    rlag: NDArray | None, db: NDArray, t_grid: NDArray, eps_grid: NDArray, period: int,
    kwin: NDArray, full: bool, nfft: int, steer: NDArray | None, n_c: int,
) -> None:
    """The coarse stage of :func:`_coarse` for one chunk of bursts on their TO windows.

    zz [b, Q, M]; kwin [B, W] grid indices (-1 and G: off the grid); writes the chunk's rows
    of cand_t, cand_e, cand_g [B, C]. Every evaluated point is the full grid's arithmetic
    (same TO values, same Gram class, same CFO cells).
    """
    nb, n_q, n_samples = zz.shape
    n_t = t_grid.size
    if full:
        cq = np.fft.fft(zz, nfft, axis=-1).transpose(2, 0, 1)  # [K, b, Q]
    else:
        n_k = eps_grid.size
        cq = (steer @ zz.transpose(2, 0, 1).reshape(n_samples, -1)).reshape(n_k, nb, n_q)
    d = db[sl]
    k = kwin[sl]  # [b, W]
    on = (k >= 0) & (k < n_t)  # [b, W]
    kc = np.clip(k, 0, n_t - 1)  # [b, W]
    tw = t_grid[kc]  # [b, W]
    if period < n_t:  # Toeplitz Gram: one factor per fractional-delay class, as the full grid
        i0, i1, f = _interp(np.broadcast_to(t_grid[:period], (nb, period)), d, n_q)
        gram = _gram_toeplitz(rlag[sl], i0, f)
        cls = kc % period  # [b, W] Gram class of each window point
        chol = [[None if x is None else np.take_along_axis(x, cls, -1) for x in row]
                for row in _cholesky(gram)]  # entries [b, W]
        i0, i1, f = _interp(tw, d, n_q)
    else:  # one Gram per grid point: only the window's
        i0, i1, f = _interp(tw, d, n_q)
        gram = _gram_toeplitz(rlag[sl], i0, f) if rlag is not None else _gram(rq[sl], i0, i1, f)
        chol = _cholesky(gram)  # entries [b, W]
    g = _energy(_whiten(chol, _gather_v(cq, i0, i1, f)))  # [K, b, W]
    kbest = np.argmax(g, 0)  # [b, W]
    prof = np.where(on, np.max(g, 0), -np.inf)  # [b, W]
    left = np.concatenate([np.full((nb, 1), -np.inf), prof[:, :-1]], 1)
    right = np.concatenate([prof[:, 1:], np.full((nb, 1), -np.inf)], 1)
    inner = np.zeros(prof.shape, dtype=bool)  # the context points are never candidates
    inner[:, 1:-1] = True
    peak = np.where(inner & on & (prof >= left) & (prof >= right), prof, -np.inf)
    n_c = cand_t.shape[1]
    order = np.argsort(-peak, -1, kind="stable")[:, :n_c]  # [b, C]
    order = np.where(np.isfinite(np.take_along_axis(peak, order, -1)), order, order[:, :1])
    cand_t[sl] = np.take_along_axis(tw, order, -1)
    cand_e[sl] = eps_grid[np.take_along_axis(kbest, order, -1)]
    cand_g[sl] = np.take_along_axis(prof, order, -1)


def _refine(
    z: NDArray, rq: NDArray | None, rlag: NDArray | None, db: NDArray, owner: NDArray, t: NDArray,
    e: NDArray, eta: float, dt0: float, de0: float, e_lo: float, e_hi: float, n_levels: int,
    n_c: int = 1, drop_gap: float = 0.0,
) -> tuple[NDArray, NDArray, NDArray]:
    """Refine candidates (see module notes): z [B, Q, M], rq [B, Q, Q], rlag [B, 2Q+1]
    (autocorrelation lags -Q..Q, None when the window truncates the pilot), db [B, L],
    owner [P] (burst of each candidate; the ``n_c`` candidates of a burst are consecutive),
    t, e [P] -> (t [P], e [P], g [P]). After the first level a candidate whose ``g`` is below
    ``(1 - drop_gap)`` times its burst's best is dropped (returned with ``g = -inf``)."""
    n_p = t.size
    n_q, n_samples = z.shape[1], z.shape[2]
    dp = db[owner]  # [P, L]
    off = np.arange(-10.0, 11.0)  # 21 TO offsets
    reach = 1.2 * dt0  # total TO move over all levels is < 1.12 coarse steps
    t_lo = np.maximum(t - reach, 0.0)
    t_hi = np.minimum(t + reach, eta)
    q0 = np.clip(np.floor(t_lo + dp.min(1)).astype(np.int64), 0, n_q - 1)  # [P]
    n_w = min(n_q, int(np.ceil(2 * reach + np.max(dp.max(1) - dp.min(1)))) + 4)
    q0 = np.minimum(q0, n_q - n_w)
    qi = q0[:, None] + np.arange(n_w)  # [P, W]
    zp = z[owner[:, None], qi]  # [P, W, M]
    if rlag is None:
        rp = rq[owner[:, None, None], qi[:, :, None], qi[:, None, :]]  # [P, W, W]

        def gram(i0: NDArray, i1: NDArray, f: NDArray) -> NDArray:
            return _gram(rp, i0, i1, f)
    else:
        h = rlag.shape[1] // 2
        rl = rlag[owner][:, h - n_w : h + n_w + 1].copy()  # [P, 2W+1], lags -W..W

        def gram(i0: NDArray, i1: NDArray, f: NDArray) -> NDArray:
            return _gram_toeplitz(rl, i0, f)

    wm = (-2j * np.pi * np.arange(n_samples)[:, None]) ** np.arange(3)[None, :]  # [M, 3]
    rows = np.arange(n_p)
    cq = _correlate(zp, e, wm)  # [3, P, W]
    de_max = np.full(n_p, 0.5 * de0)

    # A point state: (interpolation rows i0, i1, f [L, P, n]; Gram factor entries [P, n];
    # (g, g', g'') [P, n] at the CFO of cq). The Gram depends on the TO only, so a state found
    # by the TO search is reused by the Newton step in eps at that TO (no second factorisation).
    def evaluate(t: NDArray, cq: NDArray) -> tuple:
        i0, i1, f = _interp(t - q0[:, None], dp, n_w)
        chol = _cholesky(gram(i0, i1, f))
        return (i0, i1, f), chol, _derivs(_whiten(chol, _gather_v(cq, i0, i1, f)))

    def pick(state: tuple, j: NDArray) -> tuple:
        """Column j [P] of every [..., P, n] array of a state -> [..., P, 1]."""
        (i0, i1, f), chol, d = state
        col = [x[..., rows, j][..., None] for x in (i0, i1, f)]
        ch = [[None if x is None else x[rows, j][:, None] for x in r] for r in chol]
        return tuple(col), ch, tuple(x[rows, j][:, None] for x in d)

    def merge(take: NDArray, a: tuple, b: tuple) -> tuple:
        """Per candidate: state a where take [P], else b (states of shape [..., P, 1])."""
        w = take[:, None]
        rows_ = tuple(np.where(w, x, y) for x, y in zip(a[0], b[0], strict=True))
        ch = [[None if x is None else np.where(w, x, y) for x, y in zip(ra, rb, strict=True)]
              for ra, rb in zip(a[1], b[1], strict=True)]
        return rows_, ch, tuple(np.where(w, x, y) for x, y in zip(a[2], b[2], strict=True))

    def newton_eps(state, e, cq, de_max):  # noqa: ANN001, ANN202
        """One safeguarded Newton step in eps at the state's TO: kept only if g does not
        decrease. Returns the new (e, cq, de_max, g, state)."""
        (i0, i1, f), chol, (g0, g1, g2) = state
        g0, g1, g2 = g0[:, 0], g1[:, 0], g2[:, 0]  # [P]
        newton = -g1 / np.where(g2 < 0, g2, -1.0)
        step = np.clip(np.where(g2 < 0, newton, np.sign(g1) * de_max), -de_max, de_max)
        e_new = np.clip(e + step, e_lo, e_hi)
        cn = _correlate(zp, e_new, wm)
        un = _whiten(chol, _gather_v(cn, i0, i1, f))  # L x [3, P, 1]
        g_new = _energy([x[:1] for x in un])[0, :, 0]  # [P]
        ok = g_new >= g0
        e = np.where(ok, e_new, e)
        cq = np.where(ok[:, None], cn, cq)
        de_max = np.where(ok, np.maximum(2 * np.abs(step), 1e-3 * de0), 0.25 * np.abs(step))
        d = tuple(np.where(ok[:, None], x, y) for x, y in zip(_derivs(un), state[2], strict=True))
        return e, cq, de_max, np.where(ok, g_new, g0), (state[0], chol, d)

    def profiled(d: tuple, de_max: NDArray) -> NDArray:
        """CFO-profiled metric from (g, g', g'') [P, n]: g plus the gain of the (bounded)
        Newton step in eps each point would take -> [P, n]. Ranking by it follows the TO-CFO
        ridge of the ambiguity function (strong for chirp-like pilots such as Zadoff-Chu)
        instead of the TO optimum at the current, slightly wrong, CFO."""
        g0, g1, g2 = d
        dm = de_max[:, None]
        de = np.where(g2 < 0, -g1 / np.where(g2 < 0, g2, -1.0), np.sign(g1) * dm)
        de = np.clip(de, -dm, dm)
        return g0 + np.maximum(g1 * de + 0.5 * g2 * de**2, 0.0)

    # the coarse CFO cell is off by up to half a cell, which biases the best TO (TO-CFO
    # coupling): settle eps first
    state = evaluate(t[:, None], cq)
    e, cq, de_max, g_cur, state = newton_eps(state, e, cq, de_max)
    idx = None  # kept candidates after an early drop
    dt = dt0 / 10.0
    for lev in range(n_levels):
        # (a) TO grid (+- one previous step) ranked by the CFO-profiled metric
        tt = np.clip(t[:, None] + dt * off, t_lo[:, None], t_hi[:, None])  # [P, 21]
        grid = evaluate(tt, cq)
        g = profiled(grid[2], de_max)  # [P, 21]
        jb = np.argmax(g, -1)  # [P]
        t = tt[rows, jb]
        state = pick(grid, jb)
        if lev == n_levels - 1:
            # last level: parabolic vertex through the best grid point and its neighbours,
            # kept only where it raises the profiled g (not across a kink)
            inner = (jb > 0) & (jb < off.size - 1)
            jm, jp = np.maximum(jb - 1, 0), np.minimum(jb + 1, off.size - 1)
            gm, gc, gp = g[rows, jm], g[rows, jb], g[rows, jp]
            curv = gm - 2 * gc + gp
            ok = inner & (curv < 0)
            shift = np.where(ok, 0.5 * (gm - gp) / np.where(ok, curv, -1.0), 0.0)
            t_par = np.clip(t + np.clip(shift, -1.0, 1.0) * dt, t_lo, t_hi)
            par = evaluate(t_par[:, None], cq)
            g_par = profiled(par[2], de_max)[:, 0]
            take = ok & (g_par > gc)
            t = np.where(take, t_par, t)
            state = merge(take, par, state)
        dt /= 10.0
        # (b) Newton in eps at the new TO
        e, cq, de_max, g_cur, state = newton_eps(state, e, cq, de_max)
        if lev == 0 and lev < n_levels - 1 and drop_gap > 0.0 and n_c > 1:
            # early drop (module notes, step 2c): the later levels move g by far less than
            # drop_gap, so a candidate this far behind its burst's best cannot win
            gb = g_cur.reshape(-1, n_c)  # [B, C]
            keep = (gb >= (1.0 - drop_gap) * gb.max(1, keepdims=True)).reshape(-1)  # [P]
            if not keep.all():
                idx = np.flatnonzero(keep)
                t_all, e_all = t.copy(), e.copy()
                g_all = np.full(n_p, -np.inf)
                t, e, g_cur, de_max = t[idx], e[idx], g_cur[idx], de_max[idx]
                t_lo, t_hi = t_lo[idx], t_hi[idx]
                q0, dp, zp, cq = q0[idx], dp[idx], zp[idx], cq[:, idx]
                if rlag is None:
                    rp = rp[idx]
                else:
                    rl = rl[idx]
                rows = np.arange(idx.size)
                state = (
                    tuple(x[:, idx] for x in state[0]),  # [L, P', 1]
                    [[None if x is None else x[idx] for x in r] for r in state[1]],  # [P', 1]
                    tuple(x[idx] for x in state[2]),  # [P', 1]
                )
    # final eps polish at the final TO
    e, cq, de_max, g_cur, state = newton_eps(state, e, cq, de_max)
    if idx is not None:
        t_all[idx], e_all[idx], g_all[idx] = t, e, g_cur
        return t_all, e_all, g_all
    return t, e, g_cur


def ml_estimate(
    y: ArrayLike,
    pilot: ArrayLike,
    tap_delay_chips: ArrayLike,
    to_range_chips: float,
    *,
    cfo_max_norm: float | None = None,
    to_step_chips: float = 0.1,
    fft_oversample: int = 1,
    n_candidates: int = 2,
    n_refine: int = 3,
    max_batch: int = 64,
    drop_gap: float = 0.05,
    to_window_chips: ArrayLike | None = None,
    need_taps: bool = True,
) -> MlEstimate:
    """ML estimate of TO, CFO and taps of one desired link per burst (eq 37-39).

    Parameters
    ----------
    y : array_like, shape (..., M), complex
        Received bursts (sqrt(W)).
    pilot : array_like, shape (..., N)
        Pilot of the desired slave of each burst.
    tap_delay_chips : array_like, shape (..., L), float
        Known tap delays of the desired link (``d/(c Ts) + excess``), chips.
    to_range_chips : float
        ``eta``: the TO is searched in ``[0, eta]`` chips. The window ``M`` must hold
        ``N + eta + max(delay) + 3`` samples; a true TO outside the range yields an estimate
        at (or near) the nearest edge.
    cfo_max_norm : float, optional
        Search the CFO in ``[-cfo_max, cfo_max]`` (cycles/sample). ``None`` (or >= 0.5) means
        the whole unambiguous range ``[-0.5, 0.5)`` via an FFT.
    to_step_chips : float
        Coarse TO grid step (chips).
    fft_oversample : int
        CFO grid density: cells of at most ``1 / (fft_oversample * M)``.
    n_candidates : int
        Number of coarse TO-profile peaks refined (guards against the near-equal secondary
        peaks of the multipath triangle model, spec 4).
    n_refine : int
        Refinement levels; level ``r`` searches the TO with a step of
        ``to_step_chips / 10^(r+1)`` and takes one Newton step in CFO; the last level ends
        with a parabolic TO step (3 levels: grid 1e-4 chips, then sub-grid).
    max_batch : int
        Bursts processed together in the coarse stage (memory bound).
    drop_gap : float
        Early drop of weak candidates: after the first refinement level a candidate whose
        metric is below ``(1 - drop_gap)`` times the best of its burst is not refined further
        (0 refines every candidate to the end). ``g`` is ``sigma^2`` times the concentrated
        log-likelihood, so this is a likelihood-gap rule relative to the best candidate; the
        later levels raised ``g`` by at most 0.9 % (random links at 0-40 dB SNR) and 0.08 %
        (captured campus rounds), and no drop of a winner occurred at a gap above 1e-4.
    to_window_chips : array_like, shape (..., 2), float, optional
        Per-burst coarse TO window ``[lo, hi]`` (chips, clipped to ``[0, eta]``), e.g. a clock
        tracker's prediction plus a few standard deviations: the coarse grid is evaluated only
        there (the refinement may still move about one coarse step beyond it). The grid points
        are the full grid's, so a burst whose ``n_candidates`` best full-grid TO peaks lie in
        its window gets bit-identical estimates; a true TO outside the window is not found (its
        estimate lands near the window). ``None``: the whole ``[0, eta]`` (spec 4).
    need_taps : bool
        False skips the eq-38 taps at the optimum: ``taps`` and ``metric`` are then NaN
        (TO and CFO are the same bits either way). The sync round reads only TO and CFO.

    Returns
    -------
    MlEstimate with arrays of shape (...) (taps: (..., L)).
    """
    y = np.asarray(y, dtype=complex)
    pilot = np.asarray(pilot)
    delays = np.asarray(tap_delay_chips, dtype=float)
    n_samples = y.shape[-1]
    lead = np.broadcast_shapes(y.shape[:-1], pilot.shape[:-1], delays.shape[:-1])
    n_taps = delays.shape[-1]
    yb = np.broadcast_to(y, lead + (n_samples,)).reshape(-1, n_samples)  # [B, M]
    sb = np.broadcast_to(pilot, lead + pilot.shape[-1:]).reshape(-1, pilot.shape[-1])  # [B, N]
    db = np.broadcast_to(delays, lead + (n_taps,)).reshape(-1, n_taps)  # [B, L]
    n_b = yb.shape[0]
    if n_b == 0:  # no link to estimate (e.g. a network of one AP): empty estimates
        empty = np.zeros(lead)
        return MlEstimate(empty, empty.copy(), np.zeros(lead + (n_taps,), complex), empty.copy())
    if not 0.0 <= drop_gap < 1.0:
        raise ValueError(f"drop_gap must be in [0, 1), got {drop_gap!r}")
    eta = float(to_range_chips)
    n_q = int(np.floor(eta + db.max())) + 3

    # Shifted pilots, de-spread samples and shift Gram (exact, window truncation included).
    # z[b, q, m] = conj(s[m - q]) y[m]: windows of the zero-padded conjugate pilot
    n_c_len = sb.shape[-1]
    pad = np.zeros((n_b, n_samples + n_q - 1), dtype=np.result_type(sb, yb))
    pad[:, n_q - 1 : n_q - 1 + min(n_c_len, n_samples)] = np.conj(sb[:, :n_samples])
    win = np.lib.stride_tricks.sliding_window_view(pad, n_samples, axis=-1)[:, ::-1]  # [B, Q, M]
    z = win * yb[:, None, :]  # [B, Q, M]
    toeplitz = n_q - 1 + n_c_len <= n_samples
    if toeplitz:  # no truncation: R[q, q'] = r[q - q'], r = autocorrelation
        nfft_r = 1 << int(np.ceil(np.log2(2 * n_c_len)))
        sf = np.fft.fft(sb, nfft_r, axis=-1)
        r = np.fft.ifft(np.abs(sf) ** 2, axis=-1)  # r[d] = sum_n conj(s[n]) s[n+d]  [B, nfft]
        if not np.iscomplexobj(sb):
            r = r.real  # real pilots: real Gram
        rq = None  # the Toeplitz Grams read rlag only
        rlag = r[:, np.arange(-n_q, n_q + 1) % nfft_r]  # [B, 2Q+1], lags -Q..Q
    else:
        shifts = shifted_pilot(sb, np.broadcast_to(np.arange(n_q), (n_b, n_q)), n_samples)
        rq = np.conj(shifts) @ np.swapaxes(shifts, -1, -2)  # [B, Q, Q]
        rlag = None

    full = cfo_max_norm is None or cfo_max_norm >= 0.5
    cfo_max = 0.5 if full else float(cfo_max_norm)
    window = None
    if to_window_chips is not None:
        wa = np.asarray(to_window_chips, dtype=float)
        if wa.shape[-1:] != (2,):
            raise ValueError(f"to_window_chips must have shape (..., 2), got {wa.shape}")
        window = np.broadcast_to(wa, lead + (2,)).reshape(-1, 2)  # [B, 2]
        if not np.all(np.isfinite(window)) or np.any(window[:, 0] > window[:, 1]):
            raise ValueError("to_window_chips must be finite with lo <= hi")
        window = np.clip(window, 0.0, eta)
    cand_t, cand_e, cand_g, dt0, de0 = _coarse(
        z, rq, rlag, db, eta, to_step_chips, full, cfo_max, fft_oversample, n_candidates,
        max_batch, window,
    )
    n_c = cand_t.shape[1]
    owner = np.repeat(np.arange(n_b), n_c)  # [P]
    e_lo, e_hi = (-np.inf, np.inf) if full else (-cfo_max, cfo_max)
    t, e, g_best = _refine(
        z, rq, rlag, db, owner, cand_t.reshape(-1), cand_e.reshape(-1), eta, dt0, de0, e_lo, e_hi,
        n_refine, n_c, drop_gap,
    )

    # Choose the best candidate and compute the taps there (eq 38).
    win = np.argmax(g_best.reshape(n_b, n_c), -1)  # [B]
    sel = np.arange(n_b) * n_c + win
    t_hat, e_hat = t[sel], e[sel]
    e_out = wrap_cfo(e_hat) if full else e_hat
    if not need_taps:  # TO and CFO only (the sync round): no eq-38 solve
        nan = np.full(lead, np.nan)
        return MlEstimate(t_hat.reshape(lead), e_out.reshape(lead),
                          np.full(lead + (n_taps,), np.nan + 0j), nan)
    cq = np.sum(z * _steer(e_hat, n_samples)[:, None, :], -1)  # [B, Q]
    i0, i1, f = _interp(t_hat[:, None], db, n_q)
    if rlag is not None:
        gram = _gram_toeplitz(rlag, i0, f)[..., 0]  # [L, L, B]
    else:
        gram = _gram(rq, i0, i1, f)[..., 0]
    gram = np.moveaxis(gram, -1, 0)  # [B, L, L]
    v = _gather_v(cq[None], i0, i1, f)[0, ..., 0].T  # [B, L]
    diag = _LOAD * np.real(np.trace(gram, axis1=-2, axis2=-1)) / n_taps  # [B]
    taps = np.linalg.solve(gram + diag[:, None, None] * np.eye(n_taps), v[..., None])[..., 0]
    g = np.real(np.sum(np.conj(v) * taps, -1))  # [B]
    return MlEstimate(
        t_hat.reshape(lead),
        e_out.reshape(lead),
        taps.reshape(lead + (n_taps,)),
        g.reshape(lead),
    )
