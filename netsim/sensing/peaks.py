"""Grid peak picking and the nearest-anchor assignment of the sensing searches (numpy only).

Both replace SciPy calls on the engine's sensing path (``scipy.ndimage.maximum_filter`` and
``scipy.optimize.linear_sum_assignment``), whose imports cost about 0.8 CPU-s in the first
MUSIC frame of every run; the results are the same (the maximum is exact, and the optimal
assignment is unique for distinct real costs).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["local_max_3x3", "min_cost_assignment"]


def local_max_3x3(img: ArrayLike) -> NDArray[np.bool_]:
    """Points of a 2D image at least as high as each of their 8 neighbours, (ny, nx) bool.

    Outside the image counts as 0 (``maximum_filter(img, size=3, mode="constant", cval=0)``
    compared with ``img``): an edge point below 0 is never a maximum.

    Parameters
    ----------
    img : array_like (ny, nx) float
    """
    a = np.asarray(img, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"img must be 2D, got shape {a.shape}")
    ny, nx = a.shape
    pad = np.zeros((ny + 2, nx + 2))
    pad[1:-1, 1:-1] = a
    top = pad[:-2]  # [ny, nx + 2] row above
    mid = pad[1:-1]
    bot = pad[2:]
    rows = np.maximum(np.maximum(top, mid), bot)  # [ny, nx + 2] column-wise max of 3 rows
    nb = np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])  # [ny, nx] 3 x 3 max
    return a == nb


def min_cost_assignment(cost: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Minimum-cost matching of the rows and columns of a (R, C) cost matrix.

    Every row is matched when R <= C, every column when R > C (min(R, C) pairs), by shortest
    augmenting paths with dual potentials (Hungarian method, O(min(R,C)^2 max(R,C))).

    Parameters
    ----------
    cost : array_like (R, C) float, finite

    Returns
    -------
    rows, cols : ndarray (min(R, C),) int
        Matched pairs, ``rows`` ascending (as ``scipy.optimize.linear_sum_assignment``).
    """
    c = np.asarray(cost, dtype=float)
    if c.ndim != 2:
        raise ValueError(f"cost must be 2D, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("cost must be finite")
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape  # n <= m: every row gets a column
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    u = np.zeros(n + 1)  # row potentials (1-based, 0 = virtual)
    v = np.zeros(m + 1)  # column potentials
    owner = np.zeros(m + 1, dtype=np.int64)  # row matched to column j (0: free)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        prev = np.zeros(m + 1, dtype=np.int64)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]
            red = c[i0 - 1] - u[i0] - v[1:]  # reduced costs of row i0 [m]
            upd = free & (red < minv[1:])
            minv[1:][upd] = red[upd]
            prev[1:][upd] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # augment along the path
            j1 = prev[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:]) + 0  # matched columns (0-based)
    rows = owner[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    o = np.argsort(rows, kind="stable")
    return rows[o].astype(np.int64), cols[o].astype(np.int64)
