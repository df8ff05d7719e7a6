"""MUSIC acquisition and tracking search that ranks refined candidates (seed 003 Appendix B).

Signal subspace
---------------
``U_s`` holds the eigenvectors of ``R_yy`` above the Marchenko-Pastur edge of the noise,
``sigma^2 (1 + sqrt(MN / L))^2`` (times ``edge_margin``), at most ``K M``. With per-path RCS
draws, user k's echo spans the M per-AP blocks ``e_m (x) a_m(p_k)`` separately, so the subspace
is *block diagonal per AP* (its projector has no energy between AP blocks); when fewer
combinations are excited (deterministic gains, shaped covariances) it is not.
:attr:`EchoSubspace.off_block` measures this; ``kind="auto"`` picks the spectrum from it.

Quality of a point (normalised spectrum, in [0, 1])
---------------------------------------------------
With the users already found (``others``) projected out per AP (their block vectors ``A_m``;
``P_m = I - A_m (A_m^H A_m)^{-1} A_m^H``) and ``U_r`` an orthonormal basis of the rest of the
signal subspace, the per-AP fraction of the point's block that lies in it is
``e_m(p) = ||U_{r,m}^H a_m(p)||^2 / ||P_m a_m(p)||^2``.

* ``composite`` (block-diagonal subspace): ``q(p) = mean_m e_m(p)``. A true user gives ~1; a
  single AP's range ridge (the failure of RARE here) only ~1/M;
* ``rare`` (otherwise): ``q(p) = lambda_max(Z Z^H)``, ``Z_m = U_{r,m}^H a_m / ||P_m a_m||``,
  1 when some combination of the point's blocks lies in the subspace.

Search
------
The quality is evaluated on a grid (complex64), its local maxima are *refined first*
(:func:`netsim.sensing.optimize.maximize_2d`; a grid is never fine enough for near-field
peaks) and only then ranked. Acquisition is greedy: the best refined candidate is taken, its
blocks are projected out, the other candidates are re-scored (and the best few re-refined) on
the residual subspace, and candidates around each taken user are added so that users whose
peaks merge are still separated. A box search (tracking) does the same in a window around a
prediction, with the users found so far projected out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.config import IsacGeometry
from netsim.sensing.ml import near_response
from netsim.sensing.optimize import maximize_2d
from netsim.sensing.peaks import local_max_3x3

__all__ = ["EchoSubspace", "acquire", "box_search", "candidates", "box_interior", "echo_subspace", "in_boxes", "point_quality",
           "unexplained_echo", "uplink_boxes"]


@dataclass(frozen=True)
class EchoSubspace:
    """Signal subspace of one cluster's echo covariance.

    Attributes
    ----------
    basis : ndarray (M*N, d) complex
        Orthonormal signal eigenvectors.
    eigvals : ndarray (d,) [W]
    n_aps, n_antennas : int
    off_block : float
        Fraction of the projector's squared Frobenius norm outside the AP-diagonal blocks
        (0: block diagonal; about ``1 - 1/M`` for one combined direction per user).
    kind : str
        Spectrum in use, "composite" or "rare".
    """

    basis: NDArray[np.complex128]
    eigvals: NDArray[np.float64]
    n_aps: int
    n_antennas: int
    off_block: float
    kind: str

    @property
    def dim(self) -> int:
        return int(self.basis.shape[1])


def echo_subspace(
    sample_cov: ArrayLike,
    n_aps: int,
    n_antennas: int,
    noise_w: float,
    n_snapshots: int,
    max_dim: int,
    kind: str = "auto",
    edge_margin: float = 1.2,
    block_threshold: float = 0.25,
) -> EchoSubspace:
    """Signal subspace above the noise edge and the spectrum it calls for.

    Parameters
    ----------
    sample_cov : array_like (M*N, M*N) complex [W]
    n_aps, n_antennas : int
    noise_w : float [W]
    n_snapshots : int
        L (sets the Marchenko-Pastur edge).
    max_dim : int
        Cap (K M).
    kind : {"auto", "composite", "rare"}
        "auto": composite when ``off_block < block_threshold``, else rare.
    """
    c = np.asarray(sample_cov)
    mn = n_aps * n_antennas
    w, v = np.linalg.eigh(0.5 * (c + c.conj().T))
    w, v = w[::-1], v[:, ::-1]
    edge = edge_margin * noise_w * (1.0 + np.sqrt(mn / max(int(n_snapshots), 1))) ** 2
    d = int(np.clip(np.sum(w > edge), 1, max(1, max_dim)))
    u = v[:, :d]  # [MN, d]
    ub = u.reshape(n_aps, n_antennas, d)  # [M, N, d]
    gram = np.einsum("mnd,mne->mde", ub.conj(), ub)  # [M, d, d]: diagonal blocks of P
    on = float(np.sum(np.abs(gram) ** 2))
    off = max(0.0, 1.0 - on / d)
    if kind == "auto":
        kind = "composite" if off < block_threshold else "rare"
    if kind not in ("composite", "rare"):
        raise ValueError(f"kind must be 'auto', 'composite' or 'rare', got {kind!r}")
    return EchoSubspace(u, w[:d], n_aps, n_antennas, off, kind)


@dataclass(frozen=True)
class _Residual:
    ur: NDArray[np.complex128]  # [M, N, d_r] blocks of the residual basis
    ao: NDArray[np.complex128]  # [M, N, J] others' blocks
    ginv: NDArray[np.complex128]  # [M, J, J]


def _residual(sub: EchoSubspace, geom: IsacGeometry, others_m: ArrayLike | None) -> _Residual:
    m, n = sub.n_aps, sub.n_antennas
    o = np.zeros((0, 2)) if others_m is None else np.asarray(others_m, dtype=float).reshape(-1, 2)
    if o.shape[0] == 0:
        return _Residual(sub.basis.reshape(m, n, -1), np.zeros((m, n, 0), complex),
                         np.zeros((m, 0, 0), complex))
    ao = np.moveaxis(near_response(geom, o), 0, -1)  # [M, N, J]
    g = np.einsum("mnj,mni->mji", ao.conj(), ao)  # [M, J, J]
    ginv = np.linalg.inv(g + 1e-9 * n * np.eye(o.shape[0]))
    ub = sub.basis.reshape(m, n, -1)  # [M, N, d]
    proj = np.einsum("mnj,mji,mpi->mnp", ao, ginv, ao.conj())  # [M, N, N]
    pu = (ub - np.einsum("mnp,mpd->mnd", proj, ub)).reshape(m * n, -1)  # [MN, d]
    uu, sv, _ = np.linalg.svd(pu, full_matrices=False)
    ur = uu[:, sv > 0.5]  # the directions of U_s not explained by the others
    return _Residual(ur.reshape(m, n, -1), ao, ginv)


def unexplained_echo(sub: EchoSubspace, geom: IsacGeometry, pos_m: ArrayLike) -> float:
    """Largest part of the signal subspace that users at ``pos_m`` leave unexplained, in [0, 1].

    Each AP block of the basis is projected off the users' responses at that AP
    (``P_m = I - A_m (A_m^H A_m)^{-1} A_m^H``, ``A_m`` (N, J)), and the largest singular value
    of the projected (M N, d) basis is returned: about 0 when every signal direction lies in
    the span of the users' per-AP blocks (with per-path RCS draws a user spans the M blocks
    ``e_m (x) a_m(p)``), 1 when some direction is orthogonal to all of them (a user's echo that
    no estimate explains: a missed user, or an estimate on a ghost). Measured on campus frames
    1-2 with correct estimates: at most 0.28; one user left out: 1.0 (two or three directions).

    Parameters
    ----------
    sub : EchoSubspace
    geom : IsacGeometry
    pos_m : array_like (J, 2) [m]

    Returns
    -------
    float
        ``sigma_max((I - blkdiag(P_m^perp)) U_s)``, 1.0 for an empty ``pos_m`` with ``d >= 1``.
    """
    m, n = sub.n_aps, sub.n_antennas
    o = np.asarray(pos_m, dtype=float).reshape(-1, 2)
    ub = sub.basis.reshape(m, n, -1)  # [M, N, d]
    if o.shape[0]:
        ao = np.moveaxis(near_response(geom, o), 0, -1)  # [M, N, J]
        g = np.einsum("mnj,mni->mji", ao.conj(), ao)  # [M, J, J]
        ginv = np.linalg.inv(g + 1e-9 * n * np.eye(o.shape[0]))
        coef = np.einsum("mji,mni,mnd->mjd", ginv, ao.conj(), ub)  # [M, J, d]
        ub = ub - np.einsum("mnj,mjd->mnd", ao, coef)  # [M, N, d] projected off the users
    sv = np.linalg.svd(ub.reshape(m * n, -1), compute_uv=False)  # [min(MN, d)]
    return float(sv[0]) if sv.size else 0.0


def _quality(sub: EchoSubspace, geom: IsacGeometry, res: _Residual, pts_m: ArrayLike,
             dtype: type = np.complex128, chunk: int = 16384,
             steering: NDArray | None = None) -> NDArray[np.float64]:
    """``steering`` (P, M, N): the responses at the points, if already computed (in ``dtype``)."""
    pts = np.asarray(pts_m, dtype=float)
    shape = pts.shape[:-1]
    pts = pts.reshape(-1, 2)
    n = sub.n_antennas
    out = np.zeros(pts.shape[0])
    ur = res.ur.astype(dtype)
    if steering is not None and steering.shape[0] != pts.shape[0]:
        raise ValueError("steering must hold one response per point")
    for s in range(0, pts.shape[0], chunk):
        a = near_response(geom, pts[s:s + chunk], dtype) if steering is None else steering[s:s + chunk]  # [P, M, N]
        act = a.conj().transpose(1, 0, 2)  # [M, P, N]
        z = np.matmul(act, ur).transpose(1, 0, 2)  # [P, M, d_r]
        if res.ao.shape[-1]:
            ga = np.matmul(act, res.ao.astype(dtype)).transpose(1, 0, 2)  # [P, M, J]
            den = n - np.einsum("pmj,mji,pmi->pm", ga, res.ginv, ga.conj()).real  # [P, M]
        else:
            den = np.full(a.shape[:2], float(n))
        ok = den > 0.05 * n
        den = np.where(ok, den, 1.0)
        if sub.kind == "composite":
            e = np.where(ok, np.sum(np.abs(z) ** 2, axis=-1) / den, 0.0)  # [P, M]
            out[s:s + chunk] = np.clip(np.mean(e, axis=-1), 0.0, 1.0)
        else:
            zn = z * np.where(ok, 1.0 / np.sqrt(den), 0.0)[..., None]  # [P, M, d_r]
            zz = np.einsum("pmd,pqd->pmq", zn, zn.conj())  # [P, M, M]
            out[s:s + chunk] = np.clip(np.linalg.eigvalsh(zz)[:, -1], 0.0, 1.0)
    return out.reshape(shape)


def point_quality(sub: EchoSubspace, geom: IsacGeometry, pts_m: ArrayLike,
                  others_m: ArrayLike | None = None) -> NDArray[np.float64]:
    """Normalised spectrum ``q`` (module docstring) at points (..., 2), others projected out."""
    return _quality(sub, geom, _residual(sub, geom, others_m), pts_m)


def _exclude(geom: IsacGeometry, pts: NDArray[np.float64], exclusion_m: float) -> NDArray[np.bool_]:
    dc = pts[..., None, :] - geom.ap_centers_m  # [..., M, 2]
    d2 = dc[..., 0] * dc[..., 0] + dc[..., 1] * dc[..., 1]  # [..., M] squared distance [m^2]
    return np.all(d2 > exclusion_m * exclusion_m, axis=-1)


def uplink_boxes(ap_xy_m: ArrayLike, serving: ArrayLike, lo_m: ArrayLike, hi_m: ArrayLike,
                 margin_m: float, step_m: float = 1.0) -> NDArray[np.float64]:
    """Bounding boxes of the places where each user can be, given its uplink registration.

    A user registers with its ``s`` serving APs, the ``s`` APs nearest to it (the model of the
    uplink association the CPU holds from the first frame on). It can then only be where those
    APs are its nearest: ``max_{a in S} |p - c_a| <= min_{b not in S} |p - c_b| + margin``
    (an order-``s`` Voronoi cell, widened by ``margin_m`` for registrations made at a cell
    edge). The cell is evaluated on a ``step_m`` grid over ``[lo, hi]`` and its bounding box,
    grown by ``step_m`` (the grid's sampling), is returned; a user whose cell misses the box
    gets the whole box.

    Parameters
    ----------
    ap_xy_m : array_like (A, 2) [m]
        Centres of the APs a user can register with (the online APs).
    serving : array_like (V, s) int
        Rows of ``ap_xy_m`` serving each user.
    lo_m, hi_m : array_like (2,) [m]
        The region searched.
    margin_m : float [m]
    step_m : float [m]

    Returns
    -------
    ndarray (V, 2, 2) [m]
        Per user ``[lo, hi]`` corners, inside ``[lo, hi]``.
    """
    c = np.asarray(ap_xy_m, dtype=float).reshape(-1, 2)  # [A, 2]
    srv = np.asarray(serving, dtype=np.int64)
    srv = np.atleast_2d(srv)  # [V, s]
    lo = np.asarray(lo_m, dtype=float)
    hi = np.asarray(hi_m, dtype=float)
    if margin_m < 0 or step_m <= 0:
        raise ValueError("margin_m must be >= 0 and step_m > 0")
    if srv.size and (srv.min() < 0 or srv.max() >= c.shape[0]):
        raise ValueError("serving indices must be rows of ap_xy_m")
    out = np.broadcast_to(np.stack([lo, hi]), (srv.shape[0], 2, 2)).copy()  # [V, 2, 2]
    if srv.shape[0] == 0 or srv.shape[1] == 0 or srv.shape[1] >= c.shape[0]:
        return out  # no AP outside the serving sets: no constraint
    xs = np.linspace(lo[0], hi[0], max(2, int(np.ceil((hi[0] - lo[0]) / step_m)) + 1))
    ys = np.linspace(lo[1], hi[1], max(2, int(np.ceil((hi[1] - lo[1]) / step_m)) + 1))
    gx, gy = np.meshgrid(xs, ys)  # [ny, nx]
    pts = np.stack([gx.ravel(), gy.ravel()], axis=-1)  # [P, 2]
    d = np.sqrt(np.sum(np.square(pts[:, None] - c[None]), axis=-1))  # [P, A] [m]
    for v in range(srv.shape[0]):
        inside = np.zeros(c.shape[0], dtype=bool)
        inside[srv[v]] = True
        far = d[:, inside].max(axis=1)  # [P] farthest serving AP
        near = d[:, ~inside].min(axis=1)  # [P] nearest other AP
        ok = far <= near + margin_m  # [P]
        if not np.any(ok):
            continue
        out[v, 0] = np.maximum(pts[ok].min(axis=0) - step_m, lo)
        out[v, 1] = np.minimum(pts[ok].max(axis=0) + step_m, hi)
    return out


def in_boxes(pts_m: ArrayLike, boxes_m: ArrayLike | None) -> NDArray[np.bool_]:
    """Whether each point (..., 2) [m] lies in at least one box (B, 2, 2) ``[lo, hi]`` (None: all)."""
    p = np.asarray(pts_m, dtype=float)
    if boxes_m is None:
        return np.ones(p.shape[:-1], dtype=bool)
    b = np.asarray(boxes_m, dtype=float).reshape(-1, 2, 2)  # [B, 2, 2]
    out = np.zeros(p.shape[:-1], dtype=bool)
    for lo, hi in b:
        out |= (p[..., 0] >= lo[0]) & (p[..., 0] <= hi[0]) & (p[..., 1] >= lo[1]) & (p[..., 1] <= hi[1])
    return out


def box_interior(pts_m: ArrayLike, boxes_m: ArrayLike) -> NDArray[np.bool_]:
    """Points (ny, nx, 2) of a grid inside the boxes whose 8 grid neighbours are inside too
    (a border of the grid itself counts as inside): a local maximum of an image formed inside
    the boxes only is a peak there, not the cut of a ridge by a box edge."""
    m = in_boxes(pts_m, boxes_m)  # [ny, nx]
    pad = np.pad(m, 1, constant_values=True)  # [ny + 2, nx + 2]
    out = m.copy()
    ny, nx = m.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out &= pad[dy:dy + ny, dx:dx + nx]
    return out


def _candidates(sub, geom, res, lo, hi, step, exclusion_m, n_cand, steering=None, grids=None,  # noqa: ANN001, ANN202, PLR0913
                boxes=None):
    nx = max(2, int(np.ceil((hi[0] - lo[0]) / step)) + 1)
    ny = max(2, int(np.ceil((hi[1] - lo[1]) / step)) + 1)
    if grids is not None:  # the same points and mask, kept (netsim.sensing.steering.GridCache)
        pts, ok = grids.grid(geom, lo, hi, nx, ny, exclusion_m)
    else:
        xs = np.linspace(lo[0], hi[0], nx)
        ys = np.linspace(lo[1], hi[1], ny)
        xx, yy = np.meshgrid(xs, ys)  # [ny, nx]
        pts = np.stack([xx, yy], axis=-1)  # [ny, nx, 2]
        ok = _exclude(geom, pts, exclusion_m)
    if boxes is not None:
        ok = ok & in_boxes(pts, boxes)  # a new mask (the cached one stays)
    img = np.zeros(ok.shape)
    img[ok] = _quality(sub, geom, res, pts[ok], dtype=np.complex64, steering=steering)
    peaks = local_max_3x3(img) & (img > 0)
    if boxes is not None:
        peaks &= box_interior(pts, boxes)  # not a ridge cut by a box edge
    iy, ix = np.nonzero(peaks)
    order = np.argsort(img[iy, ix])[::-1][:n_cand]
    return pts[iy[order], ix[order]], img[iy[order], ix[order]], int(ok.sum())


def _refine(sub, geom, res, start, h0, tol):  # noqa: ANN001, ANN202
    if start.shape[0] == 0:
        return start, np.zeros(0)
    return maximize_2d(lambda idx, p: _quality(sub, geom, res, p), start, h0, tol)


def box_search(
    sub: EchoSubspace,
    geom: IsacGeometry,
    center_m: ArrayLike,
    halfwidth_m: float,
    step_m: float,
    others_m: ArrayLike | None = None,
    exclusion_m: float = 0.1,
    n_cand: int = 4,
    tol_m: float = 1e-4,
) -> tuple[NDArray[np.float64], float, int]:
    """Best refined candidate in the square window ``center +- halfwidth``.

    The window is sampled at ``min(step, halfwidth / 2)``; the ``n_cand`` strongest local maxima
    are refined (they may leave the window) and the one of highest quality is returned with
    the others projected out.

    Returns
    -------
    pos : ndarray (2,) [m]
    quality : float in [0, 1]
    n_points : int
        Spectrum evaluations of the window grid.
    """
    c = np.asarray(center_m, dtype=float)
    res = _residual(sub, geom, others_m)
    st = min(step_m, halfwidth_m / 2.0)
    cand, _, npts = _candidates(sub, geom, res, c - halfwidth_m, c + halfwidth_m, st, exclusion_m, n_cand)
    if cand.shape[0] == 0:
        cand = c[None]
    p, q = _refine(sub, geom, res, cand, st / 2.0, tol_m)
    i = int(np.argmax(q))
    return p[i], float(q[i]), npts


def acquire(
    sub: EchoSubspace,
    geom: IsacGeometry,
    lo_m: ArrayLike,
    hi_m: ArrayLike,
    n_users: int,
    step_m: float,
    exclusion_m: float = 0.1,
    min_quality: float = 0.5,
    tol_m: float = 1e-4,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Greedy acquisition of up to ``n_users`` users in the box ``[lo, hi]`` (module docstring).

    Returns
    -------
    pos : ndarray (J, 2) [m], J <= n_users
        Users found, strongest quality first (those of quality >= ``min_quality``).
    quality : ndarray (J,)
    n_points : int
        Grid evaluations.
    """
    lo = np.asarray(lo_m, dtype=float)
    hi = np.asarray(hi_m, dtype=float)
    res0 = _residual(sub, geom, None)
    cand, _, npts = _candidates(sub, geom, res0, lo, hi, step_m, exclusion_m, 8 * n_users + 8)
    cand, q = _refine(sub, geom, res0, cand, step_m / 2.0, tol_m)
    found: list[NDArray[np.float64]] = []
    quals: list[float] = []
    ring = step_m * np.stack([np.cos(np.arange(6) * np.pi / 3), np.sin(np.arange(6) * np.pi / 3)], -1)
    for _ in range(n_users):
        if cand.shape[0] == 0:
            break
        if found:
            res = _residual(sub, geom, np.array(found))
            q = _quality(sub, geom, res, cand)
            top = np.argsort(q)[::-1][:6]
            p_top, q_top = _refine(sub, geom, res, cand[top], step_m / 4.0, tol_m)
            cand[top], q[top] = p_top, q_top
        i = int(np.argmax(q))
        if q[i] < min_quality:
            break
        found.append(cand[i].copy())
        quals.append(float(q[i]))
        cand = np.concatenate([np.delete(cand, i, axis=0), cand[i] + ring])  # merged peaks
        q = np.concatenate([np.delete(q, i), np.zeros(6)])
    if not found:
        return np.zeros((0, 2)), np.zeros(0), npts
    return np.array(found), np.array(quals), npts


def candidates(
    sub: EchoSubspace,
    geom: IsacGeometry,
    lo_m: ArrayLike,
    hi_m: ArrayLike,
    step_m: float,
    exclusion_m: float = 0.1,
    n_cand: int = 16,
    others_m: ArrayLike | None = None,
    steering: NDArray | None = None,
    grids: object | None = None,
    tol_m: float | None = None,
    boxes_m: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], int]:
    """Refined MUSIC candidates in a box: the ``n_cand`` strongest local maxima of the quality
    on a ``step_m`` grid (others projected out), each climbed to its peak.

    steering : ndarray (P, M, N) complex64 or None
        Responses at the grid's admissible points (row-major over the grid), if already
        computed (the acquisition's ML image holds them).
    grids : netsim.sensing.steering.GridCache or None
        Supplies the grid's points and admissibility mask if already formed (same values).
    tol_m : float or None [m]
        Final stencil half width of the climb (None: ``step_m / 50``).
    boxes_m : array_like (B, 2, 2) [m] or None
        Only grid points inside one of these boxes are evaluated (:func:`uplink_boxes`; None:
        the whole grid). ``steering`` then holds the responses of those points only.

    Returns
    -------
    pos : ndarray (C, 2) [m]
        Refined candidates, best refined quality first.
    n_points : int
        Grid evaluations.
    """
    res = _residual(sub, geom, others_m)
    cand, _, npts = _candidates(sub, geom, res, np.asarray(lo_m, float), np.asarray(hi_m, float),
                                step_m, exclusion_m, n_cand, steering, grids, boxes_m)
    if cand.shape[0] == 0:
        return cand, npts
    p, q = _refine(sub, geom, res, cand, step_m / 2.0, step_m / 50.0 if tol_m is None else tol_m)
    order = np.argsort(q)[::-1]
    return p[order], npts
