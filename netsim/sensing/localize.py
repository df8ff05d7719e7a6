"""One sensing cluster's localisation: MUSIC candidates, ML ranking and refinement, detection.

Pipeline (:func:`localize_cluster`)
-----------------------------------
* **Acquisition** (no prediction): refined MUSIC candidates over the region
  (:func:`netsim.sensing.acquire.candidates`), then greedy selection by the ML gain on the
  echo-waveform correlation, each pick's echo explained away (Schur complement,
  :class:`netsim.sensing.ml.MlProblem`) before the next: a ridge or grating-lobe ghost of a user
  already taken explains nothing new, so it cannot outrank a weaker true user.
* **Tracking** (predictions given): the ML step starts from each prediction (Jacobi sweeps);
  only users whose echo is not detected there get a search, in their own window (MUSIC
  candidates in the box, others projected out, ranked by ML gain). No full-grid search for all.
* **Detection**: per path (tx m, rx m'), the ML gain of the user at its estimate against the
  other users, in units of its noise-only mean ``sigma^2 / L``, is Exp(1) under noise; a user is
  detected when at least ``need_paths`` paths, and at least ``REL_PATHS`` of the paths of the
  cluster's best user, exceed ``snr_threshold`` (a single AP's range ridge or grating lobe lights
  one path, a crossing of two APs' ridges about four of nine, a true user every path whose RCS
  draw is not faded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.acquire import EchoSubspace, candidates, echo_subspace
from netsim.sensing.config import IsacGeometry
from netsim.sensing.echo import EchoStatistics
from netsim.sensing.ml import MlProblem, ml_refine
from netsim.sensing.optimize import maximize_2d

__all__ = ["ClusterResult", "localize_cluster"]

REL_PATHS = 0.6  # a detection lights at least this fraction of the best user's paths


@dataclass(frozen=True)
class ClusterResult:
    """Output of :func:`localize_cluster`.

    Attributes
    ----------
    positions_m : ndarray (K, 2) [m]
        Estimates, in the order of ``predicted`` (or of ``anchors`` after acquisition).
    detected : ndarray (K,) bool
    n_paths : ndarray (K,) int
        Paths with the user's echo detected at its estimate.
    searched : ndarray (K,) bool
        Users that needed a window search (or the acquisition).
    n_points : int
        Spectrum evaluations on grids.
    signal_dim : int
    kind : str
        MUSIC spectrum used ("composite" or "rare").
    """

    positions_m: NDArray[np.float64]
    detected: NDArray[np.bool_]
    n_paths: NDArray[np.int64]
    searched: NDArray[np.bool_]
    n_points: int
    signal_dim: int
    kind: str


def _path_snr(prob: MlProblem, pos: NDArray[np.float64], scale: float) -> NDArray[np.float64]:
    """Per-user, per-path ML gain at the estimates over its noise-only mean, (K, M, M)."""
    a_est, w, minv = prob.others_terms(pos)
    return prob.criterion(pos[:, None, :], a_est, w, minv, per_path=True)[:, 0] * scale


def _best_new(prob: MlProblem, cand: NDArray[np.float64], others: NDArray[np.float64],
              scale: float, snr_thr: float, need: int):  # noqa: ANN202
    """Index of the candidate with the largest ML gain among those detected, or -1."""
    a_o, w, minv = prob.new_user_terms(others)
    per = prob.criterion(cand[None], a_o, w, minv, per_path=True)[0] * scale  # [C, M, M]
    npaths = np.sum(per > snr_thr, axis=(-2, -1))  # [C]
    enough = max(need, int(np.ceil(REL_PATHS * npaths.max()))) if npaths.size else need
    gain = np.where(npaths >= enough, per.sum(axis=(-2, -1)), -np.inf)
    i = int(np.argmax(gain))
    return (i if np.isfinite(gain[i]) else -1), npaths


def localize_cluster(
    stats: EchoStatistics,
    geom: IsacGeometry,
    noise_w: float,
    n_users: int,
    lo_m: ArrayLike,
    hi_m: ArrayLike,
    step_m: float,
    predicted_m: ArrayLike | None = None,
    halfwidth_m: ArrayLike | None = None,
    anchors_m: ArrayLike | None = None,
    kind: str = "auto",
    exclusion_m: float = 0.1,
    snr_threshold: float = 25.0,
    need_paths: int | None = None,
    tol_m: float = 1e-7,
) -> ClusterResult:
    """Localise the K users whose echoes one cluster's APs receive.

    Parameters
    ----------
    stats : EchoStatistics
        ``R_yy``, ``R_yx`` and ``R_x`` of the cluster (M APs).
    geom : IsacGeometry
    noise_w : float [W]
    n_users : int
        K (users reflecting into this cluster).
    lo_m, hi_m : array_like (2,) [m]
        Region searched at acquisition.
    step_m : float [m]
        Coarse grid step of the MUSIC candidate maps.
    predicted_m : array_like (K, 2) [m] or None
        Predicted positions (tracking); None: acquisition.
    halfwidth_m : array_like (K,) [m] or None
        Each user's window (the search box of a user not detected at its prediction, and the
        first stencil of its ML step).
    anchors_m : array_like (K, 2) [m] or None
        Acquisition only: positions that decide which found user is which (Hungarian, nearest).
    kind : {"auto", "composite", "rare"}
        MUSIC spectrum (see :mod:`netsim.sensing.acquire`).
    snr_threshold : float
        Per-path detection threshold (in noise-only means).
    need_paths : int or None
        Paths needed for a detection (default 2, or 1 with a single AP).

    Returns
    -------
    ClusterResult
    """
    from scipy.optimize import linear_sum_assignment

    m, n = geom.n_aps, geom.n_antennas
    need = need_paths if need_paths is not None else (1 if m == 1 else min(m, 3))
    scale = stats.n_snapshots / noise_w
    sub: EchoSubspace = echo_subspace(stats.cov, m, n, noise_w, stats.n_snapshots, n_users * m, kind)
    prob = MlProblem.from_statistics(geom, stats.cross, stats.tx_cov)
    lo = np.asarray(lo_m, dtype=float)
    hi = np.asarray(hi_m, dtype=float)
    npts = 0
    if predicted_m is None:
        cand, npts = _acquisition_candidates(sub, prob, geom, lo, hi, step_m, exclusion_m, 8 * n_users + 8, tol_m)
        ring = 0.5 * step_m * np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], -1)
        found: list[NDArray[np.float64]] = []
        for _ in range(n_users):
            if cand.shape[0] == 0:
                break
            i, _ = _best_new(prob, cand, np.array(found).reshape(-1, 2), scale, snr_threshold, need)
            if i < 0:
                break
            others = np.array(found).reshape(-1, 2)
            a_o, w, minv = prob.new_user_terms(others)
            p1, _ = _refine_new(prob, cand[i], a_o, w, minv, step_m / 4.0, tol_m)
            found.append(p1)
            cand = np.concatenate([np.delete(cand, i, axis=0), p1 + ring])
        est = np.array(found).reshape(-1, 2)
        if est.shape[0]:
            est, _ = ml_refine(prob, est, step_m / 10.0, tol_m, sweeps=6)
        anchors = np.asarray(anchors_m, dtype=float).reshape(-1, 2) if anchors_m is not None else None
        pos = np.full((n_users, 2), np.nan)
        if est.shape[0] and anchors is not None:
            cost = np.linalg.norm(anchors[:, None] - est[None], axis=-1)  # [K, J]
            ri, ci = linear_sum_assignment(cost)
            pos[ri] = est[ci]
        elif est.shape[0]:
            pos[: est.shape[0]] = est
        searched = np.ones(n_users, dtype=bool)
    else:
        pred = np.asarray(predicted_m, dtype=float).reshape(-1, 2)
        hw = np.broadcast_to(np.asarray(halfwidth_m if halfwidth_m is not None else step_m, dtype=float),
                             (n_users,)).copy()
        pos, _ = ml_refine(prob, pred, np.clip(hw, 1e-3, step_m), tol_m, sweeps=6)
        snr = _path_snr(prob, pos, scale)
        det = np.sum(snr > snr_threshold, axis=(-2, -1)) >= need
        searched = ~det
        if np.any(~det):
            for k in np.flatnonzero(~det):
                others = pos[det]
                c0 = pred[k]
                box_lo = np.maximum(c0 - hw[k], lo)
                box_hi = np.minimum(c0 + hw[k], hi)
                if np.any(box_hi <= box_lo):
                    box_lo, box_hi = c0 - hw[k], c0 + hw[k]
                st = min(step_m, hw[k] / 2.0)
                cand, n1 = candidates(sub, geom, box_lo, box_hi, st, exclusion_m, 12, others)
                npts += n1
                if cand.shape[0] == 0:
                    continue
                i, _ = _best_new(prob, cand, others, scale, snr_threshold, need)
                if i < 0:
                    pos[k] = pred[k]
                    continue
                a_o, w, minv = prob.new_user_terms(others)
                pos[k], _ = _refine_new(prob, cand[i], a_o, w, minv, st / 4.0, tol_m)
                det[k] = True  # provisionally; confirmed below
            pos, _ = ml_refine(prob, pos, 1e-3, tol_m, sweeps=3)
    ok = np.all(np.isfinite(pos), axis=1)
    n_paths = np.zeros(n_users, dtype=np.int64)
    if np.any(ok):
        snr = _path_snr(prob, pos[ok], scale)
        n_paths[ok] = np.sum(snr > snr_threshold, axis=(-2, -1))
    # relative rule: a user lights about as many paths as the best user of the cluster (a
    # grating-lobe or ridge-crossing ghost lights only some; unsynchronised APs lose the
    # bistatic paths of every user alike)
    need_rel = max(need, int(np.ceil(REL_PATHS * n_paths.max()))) if n_users else need
    detected = ok & (n_paths >= need_rel)
    return ClusterResult(pos, detected, n_paths, searched, npts, sub.dim, sub.kind)


def _acquisition_candidates(sub, prob, geom, lo, hi, step, exclusion, n_cand, tol):  # noqa: ANN001, ANN202
    """Union of the ML image's and the MUSIC quality's strongest local maxima, each refined
    on the single-user ML criterion (so that they are ranked at their peaks)."""
    from scipy.ndimage import maximum_filter

    from netsim.sensing.acquire import _exclude
    from netsim.sensing.ml import ml_image

    nx = max(2, int(np.ceil((hi[0] - lo[0]) / step)) + 1)
    ny = max(2, int(np.ceil((hi[1] - lo[1]) / step)) + 1)
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], nx), np.linspace(lo[1], hi[1], ny))
    pts = np.stack([xx, yy], axis=-1)  # [ny, nx, 2]
    ok = _exclude(geom, pts, exclusion)
    img = np.zeros(ok.shape)
    img[ok] = ml_image(prob, pts[ok])
    peaks = (img == maximum_filter(img, size=3, mode="constant", cval=0.0)) & (img > 0)
    iy, ix = np.nonzero(peaks)
    order = np.argsort(img[iy, ix])[::-1][:n_cand]
    c_ml = pts[iy[order], ix[order]]  # [C, 2]
    c_mu, _ = candidates(sub, geom, lo, hi, step, exclusion, n_cand)
    cand = np.concatenate([c_ml, c_mu])
    a_o, w, minv = prob.new_user_terms(None)
    p, _ = maximize_2d(lambda idx, x: prob.criterion(x, a_o, w, minv), cand, step / 2.0, step / 100.0)
    return p, 2 * int(ok.sum())


def _refine_new(prob, start, a_o, w, minv, h0, tol):  # noqa: ANN001, ANN202
    p, f = maximize_2d(lambda idx, pts: prob.criterion(pts, a_o, w, minv), np.asarray(start)[None], h0, tol)
    return p[0], f[0]
