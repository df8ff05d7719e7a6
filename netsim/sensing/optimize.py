"""Batched derivative-free 2D maximisation by a quadratic stencil (Newton on a fitted model).

Used by the MUSIC candidate refinement and the maximum-likelihood step: near-field peaks are
millimetres to decimetres wide, so no fixed grid can be fine enough; instead every starting
point climbs its own peak. One iteration evaluates the objective on a 3 x 3 stencil of half
width ``h`` around the current point, fits ``f(p + h d) ~ c + g.d + d^T A d`` by least squares,
tries the Newton point ``d* = -A^{-1} g / 2`` (clipped to 2 stencil widths) when ``A`` is
negative definite, and keeps the best of the stencil and the Newton point. ``h`` follows the
step length (at least ``1 / follow`` of itself, a quarter by default) and shrinks by 4 when
nothing improves; a point is
done when ``h < tol``. All starting points advance together (one objective call per stage).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

__all__ = ["maximize_2d", "maximize_nd"]

_OFFS = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]],
                 dtype=float)  # [9, 2]
_X = np.stack([np.ones(9), _OFFS[:, 0], _OFFS[:, 1], _OFFS[:, 0] ** 2, _OFFS[:, 0] * _OFFS[:, 1],
               _OFFS[:, 1] ** 2], axis=-1)  # [9, 6]
_PINV = np.linalg.pinv(_X)  # [6, 9]
SPAN_NATS = 1.0  # with ``nat``: a stencil spanning less than this is inside the quadratic zone
GAIN_NATS = 0.1  # ... and a Newton rise below this ends the climb


def maximize_2d(
    fun: Callable[[NDArray[np.int64], NDArray[np.float64]], NDArray[np.float64]],
    p0: NDArray[np.float64],
    h0: float | NDArray[np.float64],
    tol: float,
    max_iter: int = 40,
    follow: float = 4.0,
    nat: float | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Maximise B objectives, each from its own start.

    Parameters
    ----------
    fun : callable ``fun(idx (b,), pts (b, S, 2)) -> (b, S)``
        Objective of the problems ``idx`` at points [m] (``idx`` selects which of the B
        problems the rows belong to; each may have its own objective).
    p0 : ndarray (B, 2) [m]
        Starting points.
    h0 : float or ndarray (B,) [m]
        Initial stencil half width (about the distance to the peak, or the peak width).
    tol : float [m]
        Final stencil half width.
    max_iter : int
    follow : float
        After an improving step the half width becomes the step length, clipped to
        ``[h / follow, 2 h]`` (a larger value lets a converging Newton sequence reach ``tol`` in
        fewer stages).
    nat : float or None
        The objective's value of one nat (a log-likelihood unit; None: stop on ``tol`` only).
        A point is also done when its stencil spans less than ``SPAN_NATS`` (the model is then
        quadratic to well below a nat over the stencil, which is within about 1.4 standard
        deviations of the estimate), the fitted model is concave, and its Newton point, inside
        the stencil, was taken for a rise of less than ``GAIN_NATS`` (a move of at most 0.45
        standard deviations, from a model that is exact to far less).

    Returns
    -------
    p : ndarray (B, 2) [m]
        Local maximisers.
    f : ndarray (B,)
        Objective there.
    """
    p = np.array(p0, dtype=float).reshape(-1, 2)  # [B, 2]
    b = p.shape[0]
    h = np.broadcast_to(np.asarray(h0, dtype=float), (b,)).copy()  # [B]
    f = fun(np.arange(b), p[:, None, :])[:, 0]  # [B]
    active = np.ones(b, dtype=bool)
    idx = np.arange(b)
    for _ in range(max_iter):
        if idx.size == 0:
            break
        hp = h[idx]
        p_i = p[idx]  # [b, 2]
        pts = p_i[:, None, :] + hp[:, None, None] * _OFFS[None]  # [b, 9, 2]
        fs = fun(idx, pts)  # [b, 9]
        coef = fs @ _PINV.T  # [b, 6]
        g0, g1 = coef[:, 1], coef[:, 2]
        a11, a12, a22 = coef[:, 3], 0.5 * coef[:, 4], coef[:, 5]
        det = a11 * a22 - a12 ** 2
        ok = (a11 < 0) & (det > 0)
        safe = np.where(ok, det, 1.0)
        d = np.empty((idx.size, 2))  # [b, 2] in stencil units
        d[:, 0] = -0.5 * (a22 * g0 - a12 * g1) / safe
        d[:, 1] = -0.5 * (-a12 * g0 + a11 * g1) / safe
        nd = _norm2(d)
        far = nd > 2.0
        if np.any(far):
            d = np.where(far[:, None], d * (2.0 / np.maximum(nd, 1e-300))[:, None], d)
        ib = np.argmax(fs, axis=1)
        rows = np.arange(idx.size)
        if not np.all(ok):
            d = np.where(ok[:, None], d, _OFFS[ib])
        trial = p_i + hp[:, None] * d  # [b, 2]
        ft = fun(idx, trial[:, None, :])[:, 0]  # [b]
        fbest_st = fs[rows, ib]
        use_trial = ft >= fbest_st
        cand = np.where(use_trial[:, None], trial, pts[rows, ib])
        fc = np.where(use_trial, ft, fbest_st)
        f0_old = f[idx]
        better = fc > f0_old
        step = _norm2(cand - p_i)
        p[idx] = np.where(better[:, None], cand, p_i)
        f[idx] = np.where(better, fc, f0_old)
        h_new = np.where(better, np.minimum(np.maximum(step, hp / follow), 2.0 * hp), hp / 4.0)
        h[idx] = h_new
        go = h_new >= tol
        if nat is not None:
            span = fbest_st - np.min(fs, axis=1)  # [b]
            rise = fc - f0_old
            conv = ok & use_trial & (_norm2(d) <= 1.0) & (span < SPAN_NATS * nat) & (rise < GAIN_NATS * nat)
            go &= ~conv
        active[idx] = go
        idx = idx[go]
    return p, f


def _norm2(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norms of the rows of x (B, 2) (the bits of ``np.linalg.norm(x, axis=-1)``)."""
    return np.sqrt(np.add.reduce(x * x, axis=-1))


def _nd_stencil(n: int) -> NDArray[np.float64]:
    """Offsets ``+-e_i`` and ``e_i + e_j`` (i < j) of the n-D quadratic stencil, (2n + n(n-1)/2, n)."""
    eye = np.eye(n)
    pairs = [eye[i] + eye[j] for i in range(n) for j in range(i + 1, n)]
    return np.concatenate([eye, -eye, np.array(pairs).reshape(-1, n)])


NEWTON_COND_MAX = 1e10
"""Largest condition number of a stencil's quadratic model for which its Newton point is tried: a
flat objective (an echo that a user's coordinates barely move) gives a model of rounding noise
whose largest eigenvalue can be -1e-40 against entries of 1e-24, negative by the sign test but
singular for the solve (dense family seed 33 raised ``LinAlgError`` there); such a stencil takes
its best point instead, as an indefinite one does."""


def newton_model_ok(a: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Whether each quadratic model ``d^T A d`` is safely negative definite.

    Parameters
    ----------
    a : ndarray (B, n, n)
        Symmetric model matrices (finite).

    Returns
    -------
    ndarray (B,) of bool
        True where every eigenvalue is negative and the condition number is at most
        :data:`NEWTON_COND_MAX`, so that the Newton solve is well posed.
    """
    ev = np.linalg.eigvalsh(a)  # [B, n] ascending
    return (ev[:, -1] < 0) & (-ev[:, -1] * NEWTON_COND_MAX >= -ev[:, 0])


def maximize_nd(
    fun: Callable[[NDArray[np.int64], NDArray[np.float64]], NDArray[np.float64]],
    p0: NDArray[np.float64],
    h0: float | NDArray[np.float64],
    tol: float,
    max_iter: int = 60,
    follow: float = 4.0,
    nat: float | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`maximize_2d` in n dimensions (the joint ML step of coupled users, n = 2 x users).

    One iteration evaluates the objective at ``p + h d`` for the stencil offsets ``d = +-e_i``
    and ``e_i + e_j`` (i < j): ``1 + 2n + n(n-1)/2`` values (with the centre) determine the
    quadratic model ``f(p + h d) ~ c + g.d + d^T A d`` exactly (central differences:
    ``g_i = (f_i^+ - f_i^-) / 2``, ``A_ii = (f_i^+ + f_i^- - 2 f_0) / 2``,
    ``2 A_ij = f_ij - f_i^+ - f_j^+ + f_0``). When ``A`` is negative definite the Newton point
    ``d* = -A^{-1} g / 2`` (clipped to 2 stencil widths) is tried; the best of the stencil and
    the Newton point is kept, and ``h`` follows the step as in :func:`maximize_2d`. Objective
    values may be ``-inf`` (inadmissible points); such a stencil falls back on its best point.

    Parameters
    ----------
    fun : callable ``fun(idx (b,), pts (b, S, n)) -> (b, S)``
    p0 : ndarray (B, n)
    h0 : float or ndarray (B,)
        Initial stencil half width (same unit as p).
    tol : float
        Final stencil half width.
    max_iter : int
    follow : float
        See :func:`maximize_2d`.
    nat : float or None
        See :func:`maximize_2d` (the same quadratic-zone end of a climb).

    Returns
    -------
    p : ndarray (B, n)
        Local maximisers.
    f : ndarray (B,)
    """
    p = np.array(p0, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"p0 must be (B, n), got shape {p.shape}")
    b, n = p.shape
    offs = _nd_stencil(n)  # [Q, n]
    iu, ju = np.triu_indices(n, 1)
    h = np.broadcast_to(np.asarray(h0, dtype=float), (b,)).copy()  # [B]
    f = fun(np.arange(b), p[:, None, :])[:, 0]  # [B]
    active = np.isfinite(f)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        hp = h[idx]
        pts = p[idx, None, :] + hp[:, None, None] * offs[None]  # [b, Q, n]
        fs = fun(idx, pts)  # [b, Q]
        f0 = f[idx]
        fp, fm, fij = fs[:, :n], fs[:, n:2 * n], fs[:, 2 * n:]  # [b, n], [b, n], [b, n(n-1)/2]
        with np.errstate(invalid="ignore"):  # -inf - -inf on inadmissible stencils (not used)
            g = 0.5 * (fp - fm)  # [b, n]
            diag = 0.5 * (fp + fm - 2.0 * f0[:, None])
            off = 0.5 * (fij - fp[:, iu] - fp[:, ju] + f0[:, None])
        a = np.zeros((idx.size, n, n))  # [b, n, n]
        a[:, np.arange(n), np.arange(n)] = diag
        a[:, iu, ju] = off
        a[:, ju, iu] = off
        finite = np.all(np.isfinite(fs), axis=1)
        a_safe = np.where(finite[:, None, None], a, -np.eye(n))
        g_safe = np.where(finite[:, None], g, 0.0)
        ok = finite & newton_model_ok(a_safe)
        d = -0.5 * np.linalg.solve(np.where(ok[:, None, None], a_safe, -np.eye(n)), g_safe[..., None])[..., 0]
        nd = np.linalg.norm(d, axis=-1)
        d = np.where((nd > 2.0)[:, None], d * (2.0 / np.maximum(nd, 1e-300))[:, None], d)
        ib = np.argmax(np.where(np.isfinite(fs), fs, -np.inf), axis=1)
        d = np.where(ok[:, None], d, offs[ib])
        trial = p[idx] + hp[:, None] * d  # [b, n]
        ft = fun(idx, trial[:, None, :])[:, 0]  # [b]
        fbest_st = fs[np.arange(idx.size), ib]
        use_trial = ft >= fbest_st
        cand = np.where(use_trial[:, None], trial, pts[np.arange(idx.size), ib])
        fc = np.where(use_trial, ft, fbest_st)
        better = fc > f0
        step = np.linalg.norm(cand - p[idx], axis=-1)
        p[idx] = np.where(better[:, None], cand, p[idx])
        f[idx] = np.where(better, fc, f0)
        h[idx] = np.where(better, np.clip(step, hp / follow, 2.0 * hp), hp / 4.0)
        active[idx] = h[idx] >= tol
        if nat is not None:
            with np.errstate(invalid="ignore"):
                span = np.where(finite, fbest_st - np.min(np.where(finite[:, None], fs, 0.0), axis=1), np.inf)
            conv = ok & use_trial & (np.linalg.norm(d, axis=-1) <= 1.0) & (span < SPAN_NATS * nat) \
                & (fc - f0 < GAIN_NATS * nat)
            active[idx] &= ~conv
    return p, f
