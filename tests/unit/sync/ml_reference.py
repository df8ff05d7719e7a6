"""Test oracle: the former ML search (coarse grid + 9 x 3 compass refinement), kept verbatim
from ``netsim/sync/ml.py`` before the issue-10 rewrite so the new search (profiled TO grid
levels + Newton in CFO) can be checked to maximise the same cost as well. Not used by the
library.

Maximum-likelihood TO/CFO estimator of a slave at its master (seed 000, eq 37-39; spec 4).

The estimator maximises the energy of the projection of ``y`` onto the column space of
``B(theta1, eps) = F(eps) S_p U(theta1)``::

    g(theta1, eps) = (B^H y)^H (B^H B)^{-1} (B^H y)                                  (eq 39)
    h_hat = (B^H B)^{-1} B^H y                                                        (eq 38)

It ignores the contamination (unweighted LS), as the paper does.

Fast evaluation. Column ``l`` of ``S_p U(theta1)`` interpolates two integer shifts of the
pilot, ``(1-f_l) s[m-k_l-1] + f_l s[m-k_l-2]``. So with the correlations
``c_q(eps) = sum_m conj(s[m-q]) y[m] exp(-j 2 pi eps m)`` (one FFT per integer shift ``q``)
and the pilot's shift Gram ``R[q, q'] = sum_m conj(s[m-q]) s[m-q']``, both ``B^H y`` and
``B^H B`` at any ``(theta1, eps)`` are small linear combinations; no ``M``-length work per
grid point.

Procedure (vectorised over a batch of bursts, e.g. all slaves of one master):
1. coarse grid: theta1 in ``{0, step, ..., eta}`` x CFO bins (FFT, ``fft_oversample * M``
   points over ``[-0.5, 0.5)``; or a direct DFT on ``[-cfo_max, cfo_max]`` when a smaller CFO
   search range is given);
2. the ``n_candidates`` best local maxima of the TO profile and their two grid neighbours are refined by a vectorised pattern search on a 9 (TO) x 3 (CFO) stencil (move to
   the best point; divide the TO step by 3 when the best TO offset is within one step of the
   centre; when the centre CFO is best take a parabolic step in CFO and divide its step by 4);
3. the best refined candidate wins; ``h_hat`` from eq 38.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.pilots import shifted_pilot

__all__ = ["MlEstimate", "ml_estimate", "wrap_cfo"]


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
        ``h_hat`` (sqrt(W)).
    metric : ndarray, shape (...), float64
        ``g`` at the optimum (W).
    """

    to_chips: NDArray[np.float64]
    cfo_norm: NDArray[np.float64]
    taps: NDArray[np.complex128]
    metric: NDArray[np.float64]


def wrap_cfo(eps: ArrayLike) -> NDArray[np.float64]:
    """Wrap normalised CFO (or CFO errors) into ``[-0.5, 0.5)``."""
    return (np.asarray(eps, dtype=float) + 0.5) % 1.0 - 0.5


def _metric(
    cq: NDArray, rq: NDArray, t: NDArray, delays: NDArray, return_taps: bool = False
) -> NDArray | tuple[NDArray, NDArray]:
    """``g`` on a grid. cq [P, Q, nE], rq [P, Q, Q], t [P, nT], delays [P, L] -> [P, nT, nE]."""
    n_q = cq.shape[1]
    x = t[:, :, None] + delays[:, None, :]  # [P, nT, L]
    k = np.floor(x).astype(np.int64)
    f = x - k
    idx = np.clip(np.stack([k + 1, k + 2], -1), 0, n_q - 1)  # [P, nT, L, 2]
    wts = np.stack([1.0 - f, f], -1)  # [P, nT, L, 2]
    p = np.arange(cq.shape[0])[:, None, None, None]
    csel = cq[p, idx]  # [P, nT, L, 2, nE]
    v = np.einsum("ptla,ptlae->ptle", wts, csel)  # [P, nT, L, nE]
    rsel = rq[p[..., None, None], idx[:, :, :, None, :, None], idx[:, :, None, :, None, :]]
    ww = wts[:, :, :, None, :, None] * wts[:, :, None, :, None, :]  # [P, nT, L, L, 2, 2]
    gram = (ww * rsel).sum((-1, -2))  # [P, nT, L, L]
    lt = gram.shape[-1]
    load = 1e-12 * np.real(np.trace(gram, axis1=-2, axis2=-1))[..., None, None] / lt
    if np.iscomplexobj(gram):
        sol = np.linalg.solve(gram + load * np.eye(lt), v)  # [P, nT, L, nE]
    else:  # real Gram: one real inverse, applied to the complex right-hand sides
        sol = np.linalg.inv(gram + load * np.eye(lt)) @ v  # [P, nT, L, nE]
    g = np.real(np.sum(np.conj(v) * sol, axis=2))  # [P, nT, nE]
    if return_taps:
        return g, sol
    return g


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
    n_refine: int = 24,
    max_batch: int = 64,
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
        CFO grid density: bins of ``1 / (fft_oversample * M)``.
    n_candidates : int
        Number of coarse TO peaks refined (guards against the near-equal secondary peaks of
        the multipath triangle model, spec 4); each is refined from itself and from its two grid
        neighbours (the true maximum can sit beyond a kink of g).
    n_refine : int
        Compass-search iterations.
    max_batch : int
        Bursts processed together in the coarse stage (memory bound).

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
    eta = float(to_range_chips)
    n_q = int(np.floor(eta + db.max())) + 3 if n_b else 3
    m = np.arange(n_samples)

    # Shifted pilots, correlation inputs and shift Gram (exact, window truncation included).
    shifts = shifted_pilot(sb, np.broadcast_to(np.arange(n_q), (n_b, n_q)), n_samples)  # [B, Q, M]
    z = np.conj(shifts) * yb[:, None, :]  # [B, Q, M]
    n_c_len = sb.shape[-1]
    if n_q - 1 + n_c_len <= n_samples:  # no truncation: R[q, q'] = r[q - q'], r = autocorrelation
        nfft_r = 1 << int(np.ceil(np.log2(2 * n_c_len)))
        sf = np.fft.fft(sb, nfft_r, axis=-1)
        r = np.fft.ifft(np.abs(sf) ** 2, axis=-1)  # r[d] = sum_n conj(s[n]) s[n+d]  [B, nfft]
        lag = np.arange(n_q)[:, None] - np.arange(n_q)[None, :]  # [Q, Q]
        rq = r[:, lag % nfft_r]  # [B, Q, Q]
        if not np.iscomplexobj(sb):
            rq = rq.real.copy()  # real pilots: real Gram (faster gathers and solves)
    else:
        rq = np.conj(shifts) @ np.swapaxes(shifts, -1, -2)  # [B, Q, Q]

    # Coarse CFO grid.
    full = cfo_max_norm is None or cfo_max_norm >= 0.5
    if full:
        nfft = 1 << int(np.ceil(np.log2(fft_oversample * n_samples)))
        eps_grid = np.fft.fftfreq(nfft)  # [K]
        de0 = 1.0 / nfft
    else:
        de0 = 1.0 / (fft_oversample * n_samples)
        n_e = int(np.ceil(cfo_max_norm / de0))
        eps_grid = np.arange(-n_e, n_e + 1) * de0  # [K]
    t_grid = np.linspace(0.0, eta, int(np.round(eta / to_step_chips)) + 1)  # [G]
    dt0 = t_grid[1] - t_grid[0] if t_grid.size > 1 else to_step_chips
    n_c = min(n_candidates, t_grid.size)

    cand_t = np.zeros((n_b, 3 * n_c))
    cand_e = np.zeros((n_b, 3 * n_c))
    n_k = eps_grid.size
    chunk = max(1, int(2e6 // max(1, t_grid.size * n_taps * n_k * 2)))
    chunk = min(chunk, max_batch)
    for b0 in range(0, n_b, chunk):
        sl = slice(b0, min(n_b, b0 + chunk))
        if full:
            cq = np.fft.fft(z[sl], nfft, axis=-1)  # [b, Q, K]
        else:
            steer = np.exp(-2j * np.pi * np.outer(m, eps_grid))  # [M, K]
            zz = z[sl]
            cq = (zz.reshape(-1, n_samples) @ steer).reshape(
                zz.shape[:2] + (steer.shape[1],)
            )  # [b, Q, K]
        nb = cq.shape[0]
        g = _metric(cq, rq[sl], np.broadcast_to(t_grid, (nb, t_grid.size)), db[sl])  # [b, G, K]
        kbest = np.argmax(g, -1)  # [b, G]
        prof = np.take_along_axis(g, kbest[..., None], -1)[..., 0]  # [b, G]
        left = np.concatenate([np.full((nb, 1), -np.inf), prof[:, :-1]], 1)
        right = np.concatenate([prof[:, 1:], np.full((nb, 1), -np.inf)], 1)
        peak = np.where((prof >= left) & (prof >= right), prof, -np.inf)
        order = np.argsort(-peak, -1)[:, :n_c]  # [b, C]
        # fall back to the global best if fewer peaks than candidates
        order = np.where(np.isfinite(np.take_along_axis(peak, order, -1)), order, order[:, :1])
        # also start from both grid neighbours of the best peak: the true maximum may sit on
        # the far side of a kink of g (taps crossing a chip boundary) from the best grid point
        nb_lo = np.maximum(order - 1, 0)
        nb_hi = np.minimum(order + 1, t_grid.size - 1)
        order = np.concatenate([order, nb_lo, nb_hi], 1)  # [b, 3 C]
        cand_t[sl] = t_grid[order]
        cand_e[sl] = eps_grid[np.take_along_axis(kbest, order, -1)]

    # Compass-search refinement of every candidate, all at once, on a local band of shifts.
    n_c = 3 * n_c
    n_p = n_b * n_c
    owner = np.repeat(np.arange(n_b), n_c)  # [P]
    t = cand_t.reshape(-1).copy()
    e = cand_e.reshape(-1).copy()
    dp = db[owner]  # [P, L]
    reach = 1.5  # chips the search may move away from its candidate
    t_lo = np.maximum(t - reach, 0.0)
    t_hi = np.minimum(t + reach, eta)
    q0 = np.clip(np.floor(t_lo + dp.min(1)).astype(np.int64), 0, n_q - 1)  # [P]
    n_w = min(n_q, int(np.ceil(2 * reach + np.max(dp.max(1) - dp.min(1)))) + 4)
    q0 = np.minimum(q0, n_q - n_w)
    qi = q0[:, None] + np.arange(n_w)  # [P, W]
    zp = z[owner[:, None], qi]  # [P, W, M]
    rp = rq[owner[:, None, None], qi[:, :, None], qi[:, None, :]]  # [P, W, W]
    dt = np.full(n_p, dt0 / 2)
    de = np.full(n_p, de0 / 2)
    off_t = np.arange(-4.0, 5.0)  # 9 TO offsets: robust to the kinks of g in theta1
    off_e = np.array([-1.0, 0.0, 1.0])
    e_lo, e_hi = (-np.inf, np.inf) if full else (-float(cfo_max_norm), float(cfo_max_norm))
    g_best = np.full(n_p, -np.inf)
    rows = np.arange(n_p)
    for _ in range(n_refine):
        tt = np.clip(t[:, None] + dt[:, None] * off_t, t_lo[:, None], t_hi[:, None])  # [P, 9]
        ee = np.clip(e[:, None] + de[:, None] * off_e, e_lo, e_hi)  # [P, 3]
        base = np.exp(-2j * np.pi * m[None, :] * ee[:, 1:2])  # [P, M]
        rot = np.exp(-2j * np.pi * m[None, :] * de[:, None])  # [P, M]
        steer = np.stack([base * np.conj(rot), base, base * rot], -1)  # [P, M, 3]
        cq = zp @ steer  # [P, W, 3]
        g = _metric(cq, rp, tt - q0[:, None], dp).reshape(n_p, 9, 3)  # [P, 9, 3]
        j = np.argmax(g.reshape(n_p, 27), -1)
        jt, je = j // 3, j % 3
        t = tt[rows, jt]
        g_best = g[rows, jt, je]
        # CFO: g is smooth in eps -> parabolic step when the centre is best
        g3 = g[rows, jt]  # [P, 3]
        curv = g3[:, 0] - 2 * g3[:, 1] + g3[:, 2]
        step = np.where(curv < 0, 0.5 * (g3[:, 0] - g3[:, 2]) / np.where(curv < 0, curv, -1.0), 0.0)
        step = np.clip(step, -1.0, 1.0)
        centre_e = je == 1
        e = np.where(centre_e, np.clip(e + step * de, e_lo, e_hi), ee[rows, je])
        # independent step control: TO step shrinks by 3 when the best TO is within one step
        dt = np.where(np.abs(jt - 4) <= 1, dt / 3, dt)
        de = np.where(centre_e, de / 4, de)
    # the parabolic CFO step was not evaluated: re-evaluate the metric at (t, e)
    steer = np.exp(-2j * np.pi * m[None, :] * e[:, None])  # [P, M]
    cq = np.sum(zp * steer[:, None, :], -1)[..., None]  # [P, W, 1]
    g_best = _metric(cq, rp, (t - q0)[:, None], dp)[:, 0, 0]

    # Choose the best candidate and compute the taps there.
    gb = g_best.reshape(n_b, n_c)
    win = np.argmax(gb, -1)  # [B]
    sel = np.arange(n_b) * n_c + win
    t_hat, e_hat = t[sel], e[sel]
    steer = np.exp(-2j * np.pi * m[None, :] * e_hat[:, None])  # [B, M]
    cq = np.sum(z * steer[:, None, :], -1)[..., None]  # [B, Q, 1]
    g, sol = _metric(cq, rq, t_hat[:, None], db, return_taps=True)
    taps = sol[:, 0, :, 0]  # [B, L]
    e_out = wrap_cfo(e_hat) if full else e_hat
    return MlEstimate(
        t_hat.reshape(lead),
        e_out.reshape(lead),
        taps.reshape(lead + (n_taps,)),
        g[:, 0, 0].reshape(lead),
    )
