"""2D near-field MUSIC localisation on an x-y grid (seed 003 Appendix B, spec section 5).

From the sample echo covariance ``R_hat`` (MN x MN), the signal subspace ``U_s`` holds the
eigenvectors whose eigenvalues exceed ``factor * sigma^2`` (capped at ``M K``, spec A11); the
noise projector is ``I - U_s U_s^H``. With ``z_m(p) = U_{s,m}^H a_m(p)`` (block m of U_s):

* composite spectrum (paper): ``b = [a_1; ..; a_M]``,
  ``P(p) = MN / ||U_n^H b||^2 = MN / (MN - ||sum_m z_m||^2)``;
* per-AP-weight spectrum ("RARE", default): ``A = blkdiag(a_1..a_M)``,
  ``P(p) = N / lambda_min(A^H U_n U_n^H A)``, ``A^H U_n U_n^H A = N I - Z^H Z``.

Both are normalised so that a point orthogonal to the signal subspace has ``P = 1``.
The far-field benchmark uses the planar steering vectors (``model="far"``) in the search.

Search: full grid (``step`` 5 cm, points within ``exclusion`` of an AP centre skipped),
local maxima by a 5x5 maximum filter, the K strongest kept, each refined by iterative zooming
(11 x 11 local grids, step / 5 per stage, down to ``refine_step``). Tracking mode: given
predicted positions, search a window of half width ``track_halfwidth`` around each, and fall
back to the full grid when a peak is lost (no interior local maximum of the window reaches
``track_min_peak``, or two users end on the same peak); the output then keeps the users' order
by Hungarian matching to the predictions. Steering vectors are evaluated in chunks; no Python
loop over grid points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import maximum_filter
from scipy.optimize import linear_sum_assignment

from netsim.sensing.config import IsacGeometry
from netsim.sensing.steering import array_response

__all__ = [
    "MusicGrid",
    "MusicResult",
    "match_estimates",
    "music_localize",
    "music_spectrum",
    "music_spectrum_map",
    "signal_subspace",
]


@dataclass(frozen=True)
class MusicGrid:
    """Search grid and peak-handling options (spec 5.4-5.5).

    Attributes
    ----------
    x_min_m, x_max_m, y_min_m, y_max_m : float [m]
    step_m : float [m]
    exclusion_m : float [m]
        Points closer than this to an AP centre are skipped.
    refine_step_m : float [m]
    track_halfwidth_m : float [m]
    track_step_m : float [m]
        Step of the tracking window (finer than the full grid: peaks are 0.1-0.3 m wide).
    track_min_peak : float
        Minimum normalised spectrum value of a tracked peak.
    threshold_factor : float
        Signal eigenvalues are those above ``threshold_factor * sigma^2``.
    chunk : int
        Grid points per vectorised chunk.
    """

    x_min_m: float = 0.0
    x_max_m: float = 20.0
    y_min_m: float = 0.0
    y_max_m: float = 20.0
    step_m: float = 0.05
    exclusion_m: float = 0.5
    refine_step_m: float = 1e-3
    track_halfwidth_m: float = 0.5
    track_step_m: float = 0.025
    track_min_peak: float = 10.0
    threshold_factor: float = 2.0
    chunk: int = 20_000

    @classmethod
    def from_config(cls, cfg: object, step_m: float | None = None) -> MusicGrid:
        """Build from an :class:`~netsim.sensing.config.IsacConfig`."""
        a = cfg.area_m  # type: ignore[attr-defined]
        return cls(
            x_min_m=a[0], x_max_m=a[1], y_min_m=a[2], y_max_m=a[3],
            step_m=cfg.music_step_m if step_m is None else step_m,  # type: ignore[attr-defined]
            exclusion_m=cfg.music_exclusion_m if cfg.music_exclusion_m is not None else cfg.aperture_m,  # type: ignore[attr-defined]
            refine_step_m=cfg.music_refine_step_m,  # type: ignore[attr-defined]
            track_halfwidth_m=cfg.music_track_halfwidth_m,  # type: ignore[attr-defined]
            threshold_factor=cfg.music_threshold_factor,  # type: ignore[attr-defined]
        )

    def axes(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        nx = int(round((self.x_max_m - self.x_min_m) / self.step_m)) + 1
        ny = int(round((self.y_max_m - self.y_min_m) / self.step_m)) + 1
        return np.linspace(self.x_min_m, self.x_max_m, nx), np.linspace(self.y_min_m, self.y_max_m, ny)


@dataclass(frozen=True)
class MusicResult:
    """Output of :func:`music_localize`.

    Attributes
    ----------
    positions_m : ndarray (K, 2) [m]
        Estimates (ordered like ``predicted_pos`` when given, else by peak strength).
    peak_values : ndarray (K,)
        Normalised spectrum at the estimates.
    mode : str
        "full" or "track".
    fell_back : bool
        True if tracking lost a peak and the full grid was searched.
    n_points : int
        Spectrum evaluations.
    signal_dim : int
    """

    positions_m: NDArray[np.float64]
    peak_values: NDArray[np.float64]
    mode: str
    fell_back: bool
    n_points: int
    signal_dim: int


def signal_subspace(
    sample_cov: ArrayLike, noise_w: float, max_dim: int, threshold_factor: float = 2.0
) -> NDArray[np.complex128]:
    """Eigenvectors of ``R_hat`` with eigenvalue > ``threshold_factor * sigma^2``, at most ``max_dim``.

    Returns
    -------
    ndarray (MN, d_s) complex (d_s >= 1)
    """
    c = np.asarray(sample_cov)
    w, v = np.linalg.eigh(0.5 * (c + c.conj().T))
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    d = int(np.sum(w > threshold_factor * noise_w))
    d = max(1, min(d, max_dim))
    return v[:, :d]


def music_spectrum(
    us: NDArray[np.complex128],
    geom: IsacGeometry,
    points_m: ArrayLike,
    kind: str = "rare",
    model: str = "near",
    chunk: int = 20_000,
) -> NDArray[np.float64]:
    """Normalised MUSIC spectrum at points.

    Parameters
    ----------
    us : ndarray (MN, d) complex
        Signal subspace.
    points_m : array_like (P, 2) [m]
    kind : {"rare", "composite"}
    model : {"near", "far"}

    Returns
    -------
    ndarray (P,) float, >= 1 (1 = orthogonal to the signal subspace).
    """
    pts = np.asarray(points_m, dtype=float).reshape(-1, 2)
    m, n = geom.n_aps, geom.n_antennas
    ub = us.reshape(m, n, -1)  # [M, N, d]
    out = np.empty(pts.shape[0])
    for s in range(0, pts.shape[0], chunk):
        a = array_response(geom, pts[s : s + chunk], model)  # [P, M, N]
        z = np.einsum("mnd,pmn->pmd", ub.conj(), a)  # [P, M, d]
        if kind == "composite":
            den = m * n - np.sum(np.abs(z.sum(axis=1)) ** 2, axis=-1)  # [P]
            out[s : s + chunk] = m * n / np.maximum(den, 1e-12 * m * n)
        elif kind == "rare":
            gram = n * np.eye(m) - np.einsum("pmd,pqd->pmq", z.conj(), z)  # [P, M, M]
            lmin = np.linalg.eigvalsh(gram)[:, 0]  # [P]
            out[s : s + chunk] = n / np.maximum(lmin, 1e-12 * n)
        else:
            raise ValueError(f"kind must be 'rare' or 'composite', got {kind!r}")
    return out


def _valid(geom: IsacGeometry, pts: NDArray[np.float64], exclusion_m: float) -> NDArray[np.bool_]:
    d = np.linalg.norm(pts[:, None, :] - geom.ap_centers_m[None], axis=-1)  # [P, M]
    return np.all(d > exclusion_m, axis=-1)


def music_spectrum_map(
    sample_cov: ArrayLike,
    geom: IsacGeometry,
    n_users: int,
    noise_w: float,
    grid: MusicGrid | None = None,
    kind: str = "rare",
    model: str = "near",
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Spectrum on the full grid: ``(xs [nx], ys [ny], P [ny, nx])``; excluded points are 0."""
    grid = grid or MusicGrid()
    us = signal_subspace(sample_cov, noise_w, n_users * geom.n_aps, grid.threshold_factor)
    xs, ys = grid.axes()
    xx, yy = np.meshgrid(xs, ys)  # [ny, nx]
    pts = np.stack([xx.ravel(), yy.ravel()], axis=-1)  # [P, 2]
    ok = _valid(geom, pts, grid.exclusion_m)
    val = np.zeros(pts.shape[0])
    val[ok] = music_spectrum(us, geom, pts[ok], kind, model, grid.chunk)
    return xs, ys, val.reshape(xx.shape)


def _refine(us, geom, p0, val0, grid, kind, model):  # noqa: ANN001, ANN202
    p, v, npts = np.array(p0, dtype=float), float(val0), 0
    step = grid.step_m / 5.0
    off = np.arange(-5, 6)
    while True:
        ox, oy = np.meshgrid(off * step, off * step)
        pts = p + np.stack([ox.ravel(), oy.ravel()], axis=-1)  # [121, 2]
        vals = music_spectrum(us, geom, pts, kind, model, grid.chunk)
        npts += pts.shape[0]
        i = int(np.argmax(vals))
        if vals[i] > v:
            p, v = pts[i], float(vals[i])
        if step <= grid.refine_step_m * 1.0001:
            break
        step = max(step / 5.0, grid.refine_step_m)
    return p, v, npts


def _full_search(us, geom, n_users, grid, kind, model):  # noqa: ANN001, ANN202
    xs, ys = grid.axes()
    xx, yy = np.meshgrid(xs, ys)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=-1)
    ok = _valid(geom, pts, grid.exclusion_m)
    val = np.zeros(pts.shape[0])
    val[ok] = music_spectrum(us, geom, pts[ok], kind, model, grid.chunk)
    img = val.reshape(xx.shape)
    peaks = (img == maximum_filter(img, size=5, mode="constant", cval=0.0)) & (img > 0)
    iy, ix = np.nonzero(peaks)
    order = np.argsort(img[iy, ix])[::-1][:n_users]
    est, pv, npts = [], [], int(ok.sum())
    for j in order:
        p, v, n1 = _refine(us, geom, np.array([xs[ix[j]], ys[iy[j]]]), img[iy[j], ix[j]], grid, kind, model)
        est.append(p)
        pv.append(v)
        npts += n1
    while len(est) < n_users:  # fewer peaks than users: repeat the strongest
        est.append(est[0] if est else np.array([xs[0], ys[0]]))
        pv.append(pv[0] if pv else 0.0)
    return np.array(est), np.array(pv), npts


def match_estimates(est_m: ArrayLike, ref_m: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Hungarian matching: ``perm`` with ``est[perm[k]]`` paired to ``ref[k]``, and the errors [m]."""
    e = np.asarray(est_m, dtype=float)
    r = np.asarray(ref_m, dtype=float)
    cost = np.linalg.norm(r[:, None, :] - e[None, :, :], axis=-1)  # [K_ref, K_est]
    ri, ci = linear_sum_assignment(cost)
    perm = np.empty(r.shape[0], dtype=np.int64)
    perm[ri] = ci
    return perm, cost[ri, ci][np.argsort(ri)]


def music_localize(
    sample_cov: ArrayLike,
    geom: IsacGeometry,
    n_users: int,
    noise_w: float,
    grid: MusicGrid | None = None,
    predicted_pos: ArrayLike | None = None,
    kind: str = "rare",
    model: str = "near",
    reference_peaks: ArrayLike | None = None,
    track_rel_peak: float = 0.1,
) -> MusicResult:
    """Localise K users from the sample echo covariance (full grid, or tracking).

    Parameters
    ----------
    sample_cov : array_like (M*N, M*N) complex
        ``R_hat`` from :func:`netsim.sensing.echo.sample_echo_covariance`.
    geom : IsacGeometry
    n_users : int
        K.
    noise_w : float
        sigma^2 [W] (sets the signal-subspace threshold).
    grid : MusicGrid or None
    predicted_pos : array_like (K, 2) [m] or None
        Predicted positions: enables tracking (windowed search, full-grid fallback).
    kind : {"rare", "composite"}
    model : {"near", "far"}
    reference_peaks : array_like (K,) or None
        Peak values of the previous frame (``MusicResult.peak_values``); a tracked peak below
        ``track_rel_peak`` times its reference counts as lost (catches sidelobes).
    track_rel_peak : float

    Returns
    -------
    MusicResult
    """
    grid = grid or MusicGrid()
    us = signal_subspace(sample_cov, noise_w, n_users * geom.n_aps, grid.threshold_factor)
    ds = us.shape[1]
    if predicted_pos is None:
        est, pv, npts = _full_search(us, geom, n_users, grid, kind, model)
        return MusicResult(est, pv, "full", False, npts, ds)
    pred = np.asarray(predicted_pos, dtype=float).reshape(-1, 2)
    nh = int(round(grid.track_halfwidth_m / grid.track_step_m))
    off = np.arange(-nh, nh + 1) * grid.track_step_m
    ox, oy = np.meshgrid(off, off)
    win = np.stack([ox.ravel(), oy.ravel()], axis=-1)  # [W, 2]
    pts = pred[:, None, :] + win[None]  # [K, W, 2]
    vals = music_spectrum(us, geom, pts.reshape(-1, 2), kind, model, grid.chunk).reshape(pred.shape[0], -1)
    ok = _valid(geom, pts.reshape(-1, 2), grid.exclusion_m).reshape(vals.shape)
    vals = np.where(ok, vals, 0.0)
    npts = vals.size
    nw = 2 * nh + 1
    img = vals.reshape(-1, nw, nw)  # [K, W, W]
    locmax = img == maximum_filter(img, size=(1, 3, 3), mode="nearest")
    interior = np.zeros((nw, nw), dtype=bool)
    interior[1:-1, 1:-1] = True
    cand = np.where(locmax & interior[None], img, 0.0).reshape(pred.shape[0], -1)  # [K, W*W]
    ib = np.argmax(cand, axis=1)  # [K]: strongest interior local maximum
    peak = cand[np.arange(pred.shape[0]), ib]
    lost = bool(np.any(peak < grid.track_min_peak))
    est, pv = [], []
    if not lost:
        for k in range(pred.shape[0]):
            p, v, n1 = _refine(us, geom, pts[k, ib[k]], peak[k], grid, kind, model)
            est.append(p)
            pv.append(v)
            npts += n1
        e = np.array(est)
        dmin = np.linalg.norm(e[:, None] - e[None], axis=-1) + np.eye(len(e)) * 1e9
        lost = bool(np.any(dmin < 2 * grid.step_m))
        # the relative test compares refined peaks with last frame's refined peaks: near-field
        # peaks are millimetres wide, so a coarse window sample would be far below its peak
        if reference_peaks is not None:
            lost = lost or bool(np.any(np.array(pv) < track_rel_peak * np.asarray(reference_peaks)))
        if not lost:
            return MusicResult(e, np.array(pv), "track", False, npts, ds)
    est_f, pv_f, n2 = _full_search(us, geom, n_users, grid, kind, model)
    perm, _ = match_estimates(est_f, pred)
    return MusicResult(est_f[perm], pv_f[perm], "track", True, npts + n2, ds)
