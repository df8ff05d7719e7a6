"""Deployment geometry: AP/user layouts and ULA element positions (2-D, metres).

Element n (n = 1..N) of a uniform linear array with centre ``c`` and axis angle ``a``
sits at ``q_n = c + delta_n u`` with ``u = (cos a, sin a)`` and
``delta_n = (n - (N+1)/2) d`` (centred indexing, spec/isac.md section 2.1).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "grid_positions",
    "hexagon_positions",
    "random_positions",
    "ula_element_offsets",
    "ula_element_positions",
]


def _check_area(width_m: float, height_m: float) -> None:
    if not (np.isfinite(width_m) and np.isfinite(height_m)) or width_m <= 0 or height_m <= 0:
        raise ValueError(f"area must have width_m > 0 and height_m > 0, got {width_m} x {height_m}")


def grid_positions(n: int, width_m: float, height_m: float) -> NDArray[np.float64]:
    """``n`` points on a near-square grid over ``[0, width] x [0, height]``.

    The grid has ``cols = ceil(sqrt(n width / height))`` columns and
    ``rows = ceil(n / cols)`` rows; each point is at the centre of its cell
    (cell size ``width/cols x height/rows``). Points fill row by row from the
    bottom-left; a last, partial row is left-aligned.

    Returns
    -------
    ndarray (n, 2), float64, [m]
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _check_area(width_m, height_m)
    if n == 0:
        return np.zeros((0, 2))
    cols = max(1, math.ceil(math.sqrt(n * width_m / height_m)))
    cols = min(cols, n)
    rows = math.ceil(n / cols)
    k = np.arange(n)  # [n]
    x = (k % cols + 0.5) * (width_m / cols)  # [n]
    y = (k // cols + 0.5) * (height_m / rows)  # [n]
    return np.stack([x, y], axis=-1)  # [n, 2]


def random_positions(
    n: int,
    width_m: float,
    height_m: float,
    min_distance_m: float,
    rng: np.random.Generator,
    max_tries: int = 10000,
) -> NDArray[np.float64]:
    """``n`` uniform points in ``[0, width] x [0, height]``, pairwise >= ``min_distance_m``.

    Sequential rejection sampling (a candidate is drawn uniformly and kept if it is at
    least ``min_distance_m`` from every point kept so far).

    Parameters
    ----------
    n : int
    width_m, height_m : float, [m]
    min_distance_m : float, [m], >= 0
    rng : numpy.random.Generator
    max_tries : int, default 10000
        Total number of candidates drawn before giving up.

    Returns
    -------
    ndarray (n, 2), float64, [m]

    Raises
    ------
    ValueError
        If the request is impossible (more disks of diameter ``min_distance_m`` than the
        densest packing allows in the area grown by ``min_distance_m/2`` on every side) or
        if ``max_tries`` candidates were not enough.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    _check_area(width_m, height_m)
    if min_distance_m < 0 or not np.isfinite(min_distance_m):
        raise ValueError(f"min_distance_m must be finite and >= 0, got {min_distance_m}")
    d = float(min_distance_m)
    # Disks of radius d/2 centred in the area lie inside the area grown by d/2; the
    # hexagonal packing density pi/sqrt(12) bounds how many fit.
    if n > 1 and d > 0:
        capacity = (width_m + d) * (height_m + d) * (np.pi / np.sqrt(12.0)) / (np.pi * d * d / 4)
        if n > capacity:
            raise ValueError(
                f"cannot place {n} points at least {d} m apart in a {width_m} x {height_m} m "
                f"area (packing bound allows at most {int(capacity)})"
            )
    points = np.empty((n, 2))  # [n, 2]
    kept = 0
    tries = 0
    batch = 64
    d2 = d * d
    while kept < n:
        if tries >= max_tries:
            raise ValueError(
                f"placed only {kept} of {n} points at least {d} m apart in a {width_m} x "
                f"{height_m} m area after {max_tries} tries; lower min_distance_m or n, or "
                f"raise max_tries"
            )
        m = min(batch, max_tries - tries)
        cand = rng.random((m, 2)) * np.array([width_m, height_m])  # [m, 2]
        for c in cand:
            tries += 1
            if kept == 0 or np.min(np.sum((points[:kept] - c) ** 2, axis=1)) >= d2:
                points[kept] = c
                kept += 1
                if kept == n:
                    break
    return points


def ula_element_offsets(n_antennas: int, spacing_m: float) -> NDArray[np.float64]:
    """Centred element coordinates ``delta_n = (n - (N+1)/2) d``, n = 1..N.

    Returns
    -------
    ndarray (N,), float64, [m]
    """
    if n_antennas < 1:
        raise ValueError(f"n_antennas must be >= 1, got {n_antennas}")
    n = np.arange(1, n_antennas + 1)
    return (n - (n_antennas + 1) / 2.0) * float(spacing_m)


def ula_element_positions(
    center_m: ArrayLike, axis_angle_rad: ArrayLike, n_antennas: int, spacing_m: float
) -> NDArray[np.float64]:
    """Element positions of ULAs: ``q_n = c + delta_n (cos a, sin a)``.

    Parameters
    ----------
    center_m : array_like (..., 2), float, [m]
        Array centres.
    axis_angle_rad : array_like (...), float, [rad]
        Angle of each array axis from the x axis (broadcast against ``center_m[..., 0]``).
    n_antennas : int
    spacing_m : float, [m]

    Returns
    -------
    ndarray (..., n_antennas, 2), float64, [m]
    """
    c = np.asarray(center_m, dtype=float)  # [..., 2]
    if c.shape[-1:] != (2,):
        raise ValueError(f"center_m must have a last axis of size 2, got shape {c.shape}")
    ang = np.asarray(axis_angle_rad, dtype=float)  # [...]
    u = np.stack([np.cos(ang), np.sin(ang)], axis=-1)  # [..., 2]
    c, u = np.broadcast_arrays(c, u)  # [..., 2]
    delta = ula_element_offsets(n_antennas, spacing_m)  # [N]
    return c[..., None, :] + delta[:, None] * u[..., None, :]  # [..., N, 2]


def hexagon_positions(
    n_rings: int, isd_m: float, center_m: ArrayLike = (0.0, 0.0)
) -> NDArray[np.float64]:
    """Sites of a hexagonal layout with inter-site distance ``isd_m``.

    ``n_rings = 1`` is the classic 7-site layout: the centre plus 6 sites at distance
    ``isd_m`` at angles 0, 60, ..., 300 degrees. Ring r adds 6 r sites; the total is
    ``1 + 3 n_rings (n_rings + 1)``. Every pair of neighbouring sites is ``isd_m`` apart.

    Returns
    -------
    ndarray (1 + 3 n_rings (n_rings+1), 2), float64, [m]
    """
    if n_rings < 0:
        raise ValueError(f"n_rings must be >= 0, got {n_rings}")
    if not np.isfinite(isd_m) or isd_m <= 0:
        raise ValueError(f"isd_m must be > 0, got {isd_m}")
    c = np.asarray(center_m, dtype=float).reshape(2)
    # The six unit directions; ring r is walked side by side, r steps per side.
    dirs = np.array([[np.cos(k * np.pi / 3), np.sin(k * np.pi / 3)] for k in range(6)])  # [6, 2]
    sites = [np.zeros(2)]
    for r in range(1, n_rings + 1):
        p = r * dirs[0]  # start of ring r on the +x axis
        for side in range(6):
            step = dirs[(side + 2) % 6]  # walk direction along side
            for _ in range(r):
                sites.append(p.copy())
                p = p + step
    return c + isd_m * np.asarray(sites)  # [n_sites, 2]
