"""Near-field / far-field array responses, their position gradients, and LOS path gains.

Spec/isac.md 2.1-2.3 (seed 003 eq. (1) and the echo model):

* near-field response of AP m at p: ``[a_m(p)]_n = exp(-j k (r_m^(n)(p) - r_m(p)))``,
  ``k = 2 pi / lambda`` (computed with :func:`netsim.phy.channel.near_field_response`);
* gradient: ``d a_m / d x = -j k ((x - q_{m,n,x}) / r^(n) - (x - c_{m,x}) / r) * a_m`` (same in y);
* far-field benchmark: ``[a^FF_m]_n = exp(+j k delta_n cos theta_m)``, ``cos theta_m = u_m . (p - c_m)/r``;
* one-hop amplitude ``beta_{m,k} = sqrt(kappa0)/r_{m,k} exp(-j k r_{m,k})``.

The gradient is kept here (not in ``netsim.phy``) because only the FIM needs it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.channel import near_field_response
from netsim.sensing.config import IsacGeometry

__all__ = ["GridCache", "array_response", "array_response_grad", "ap_distances", "one_hop_gain", "stacked_response"]


def ap_distances(geom: IsacGeometry, points_m: ArrayLike) -> NDArray[np.float64]:
    """Distances from every AP centre, ``r_m(p)``.

    Parameters
    ----------
    points_m : array_like (..., 2) [m]

    Returns
    -------
    ndarray (..., M) [m]
    """
    p = np.asarray(points_m, dtype=float)  # [..., 2]
    return np.linalg.norm(p[..., None, :] - geom.ap_centers_m, axis=-1)  # [..., M]


def array_response(geom: IsacGeometry, points_m: ArrayLike, model: str = "near") -> NDArray[np.complex128]:
    """Per-AP array response at points.

    Parameters
    ----------
    geom : IsacGeometry
    points_m : array_like (..., 2) [m]
    model : {"near", "far"}
        Exact spherical wavefront (default) or the far-field (planar) benchmark.

    Returns
    -------
    ndarray (..., M, N), complex128, unit modulus.
    """
    p = np.asarray(points_m, dtype=float)  # [..., 2]
    if model == "near":
        q = geom.element_positions_m  # [M, N, 2]
        return near_field_response(q, geom.ap_centers_m, p[..., None, :], geom.wavelength_m)  # [..., M, N]
    if model == "far":
        d = p[..., None, :] - geom.ap_centers_m  # [..., M, 2]
        r = np.linalg.norm(d, axis=-1)  # [..., M]
        cos_t = np.einsum("...mi,mi->...m", d, geom.axis_unit) / np.maximum(r, 1e-12)  # [..., M]
        return np.exp(1j * geom.wavenumber * geom.element_offsets_m * cos_t[..., None])  # [..., M, N]
    raise ValueError(f"model must be 'near' or 'far', got {model!r}")


def array_response_grad(
    geom: IsacGeometry, points_m: ArrayLike
) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Near-field response and its gradient with respect to the point.

    Returns
    -------
    a : ndarray (..., M, N), complex128
    da : ndarray (..., 2, M, N), complex128
        ``da[..., 0]`` = d a / d x, ``da[..., 1]`` = d a / d y  [1/m].
    """
    p = np.asarray(points_m, dtype=float)  # [..., 2]
    q = geom.element_positions_m  # [M, N, 2]
    c = geom.ap_centers_m  # [M, 2]
    dx = p[..., None, None, 0] - q[..., 0]  # [..., M, N]
    dy = p[..., None, None, 1] - q[..., 1]
    rn = np.sqrt(dx * dx + dy * dy)  # [..., M, N]
    cx = p[..., None, 0] - c[:, 0]  # [..., M]
    cy = p[..., None, 1] - c[:, 1]
    rc = np.sqrt(cx * cx + cy * cy)  # [..., M]
    k = geom.wavenumber
    a = np.exp(-1j * k * (rn - rc[..., None]))  # [..., M, N]
    mk = -1j * k * a  # [..., M, N]
    gx = dx / rn - (cx / rc)[..., None]  # [..., M, N]
    gy = dy / rn - (cy / rc)[..., None]
    da = np.stack([mk * gx, mk * gy], axis=-3)  # [..., 2, M, N]
    return a, da


def one_hop_gain(geom: IsacGeometry, points_m: ArrayLike) -> NDArray[np.complex128]:
    """``beta_{m}(p) = sqrt(kappa0)/r_m exp(-j k r_m)``, shape (..., M)."""
    r = ap_distances(geom, points_m)  # [..., M]
    return np.sqrt(geom.kappa0) / r * np.exp(-1j * geom.wavenumber * r)  # [..., M]


def stacked_response(geom: IsacGeometry, points_m: ArrayLike, model: str = "near") -> NDArray[np.complex128]:
    """Composite vector ``b(p) = [a_1(p); ...; a_M(p)]``, shape (..., M*N)."""
    a = array_response(geom, points_m, model)  # [..., M, N]
    return a.reshape(a.shape[:-2] + (-1,))


class GridCache:
    """Acquisition grids of the sensing clusters and their complex64 responses, kept across frames.

    A cluster's acquisition grids (the coarse grid of its region and the fine grids near its
    APs) depend only on its geometry and region, so the second acquisition frame can reuse the
    first frame's points, admissibility masks and responses (``P M N`` complex64 values per
    grid, the ``near_response`` part of :class:`netsim.sensing.ml.MlImage`). Values are the
    same as when recomputed (same inputs, same arithmetic). At most ``max_entries`` complex
    values are held (8 bytes each); the cache is not pickled (a checkpoint holds no arrays of
    it; rebuilt on use with identical values).
    """

    def __init__(self, max_entries: int = 64_000_000) -> None:
        self.max_entries = int(max_entries)
        self._grids: dict[tuple, tuple[NDArray[np.float64], NDArray[np.bool_]]] = {}
        self._resp: dict[tuple[str, bytes], NDArray[np.complex64]] = {}
        self._n = 0

    def __getstate__(self) -> dict:
        return {"max_entries": self.max_entries, "_grids": {}, "_resp": {}, "_n": 0}

    def clear(self) -> None:
        self._grids.clear()
        self._resp.clear()
        self._n = 0

    def grid(self, geom: IsacGeometry, lo_m: NDArray[np.float64], hi_m: NDArray[np.float64], nx: int, ny: int,
             exclusion_m: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Points (ny, nx, 2) [m] of the ``linspace`` grid over ``[lo, hi]`` and the mask (ny, nx)
        of those farther than ``exclusion_m`` from every AP centre."""
        key = (geom.key(), np.asarray(lo_m, float).tobytes(), np.asarray(hi_m, float).tobytes(), int(nx), int(ny),
               float(exclusion_m))
        hit = self._grids.get(key)
        if hit is not None:
            return hit
        from netsim.sensing.acquire import _exclude

        gx, gy = np.meshgrid(np.linspace(lo_m[0], hi_m[0], nx), np.linspace(lo_m[1], hi_m[1], ny))
        g = np.stack([gx, gy], axis=-1)  # [ny, nx, 2]
        ok = _exclude(geom, g, exclusion_m)  # [ny, nx]
        self._grids[key] = (g, ok)
        return g, ok

    def response(self, geom: IsacGeometry, pts_m: NDArray[np.float64]) -> NDArray[np.complex64]:
        """``near_response(geom, pts, complex64)`` (P, M, N), kept while within ``max_entries``."""
        from netsim.sensing.ml import near_response

        pts = np.ascontiguousarray(pts_m, dtype=float).reshape(-1, 2)
        key = (geom.key(), pts.tobytes())
        hit = self._resp.get(key)
        if hit is not None:
            return hit
        a = near_response(geom, pts, np.complex64)  # [P, M, N]
        if self._n + a.size <= self.max_entries:
            self._resp[key] = a
            self._n += a.size
        return a
