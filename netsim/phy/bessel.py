"""Bessel function of the first kind of order 0, in numpy (no scipy at run time).

Jakes' fading correlation ``rho = J0(2 pi f_D dt)`` is evaluated every subframe; importing
``scipy.special`` for it cost about 0.4 CPU-s at start-up (issue 10), more than a short run.

Method: Bessel's integral ``J0(x) = (1/pi) int_0^pi cos(x sin t) dt``. The integrand is
smooth and periodic (period pi, even about pi/2), so the midpoint rule on ``[0, pi/2]`` with
``m`` nodes is the trapezoid rule on a full period with ``4 m`` nodes, whose error is the
aliased Fourier terms ``2 sum_l J_{4 m l}(x)``: it vanishes faster than geometrically once
``4 m`` exceeds ``|x|`` plus a few ``|x|^(1/3)`` (the transition region of ``J_n``). With
``m = ceil(|x|/4 + 3 |x|^(1/3)) + 10`` (at least 24) the error is rounding only (a few 1e-16 absolute,
checked against ``scipy.special.j0`` in ``tests/unit/phy/test_bessel.py``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["bessel_j0"]

_SMALL = 16.0  # |x| <= 16: one fixed node count (all Doppler terms of a subframe step)
_M_SMALL = 24  # nodes for |x| <= 16: 4 m = 96 > 16 + 10 * 16^(1/3)


def _nodes(x_max: float) -> int:
    return math.ceil(x_max / 4.0 + 3.0 * x_max ** (1.0 / 3.0)) + 10


@lru_cache(maxsize=64)
def _sin_nodes(m: int) -> np.ndarray:
    """``sin(t_i)`` at the ``m`` midpoints ``t_i`` of [0, pi/2] (a constant per ``m``)."""
    t = (np.arange(m) + 0.5) * (0.5 * np.pi / m)  # [m]
    s = np.sin(t)  # [m]
    s.flags.writeable = False
    return s


def bessel_j0(x: ArrayLike) -> NDArray[np.float64]:
    """``J0(x)`` elementwise.

    The node count depends on each argument alone (24 nodes up to ``|x| = 16``, then the
    count for the next power of two), so a value never depends on the other entries of the
    array: evaluating arguments one by one or in one batch gives the same bits.

    Parameters
    ----------
    x : array_like (...), float
        Finite arguments (J0 is even; any magnitude, the cost grows like ``|x|/4`` nodes).

    Returns
    -------
    ndarray (...), float64
        ``J0(x)``, absolute error a few 1e-16 (Bessel's integral, midpoint rule; see the
        module docstring).

    Raises
    ------
    ValueError
        If an argument is not finite.
    """
    a = np.abs(np.asarray(x, dtype=float))  # [...]
    flat = a.reshape(-1)  # [n]
    if flat.size == 0:
        return np.empty(a.shape)
    x_max = float(flat.max())
    if not math.isfinite(x_max):
        raise ValueError("bessel_j0: arguments must be finite")
    if x_max <= _SMALL:  # the usual case: one block (a few users' Doppler terms)
        return _j0_block(flat, _M_SMALL).reshape(a.shape)
    out = np.empty(flat.shape)  # [n]
    small = flat <= _SMALL  # [n]
    if small.any():
        out[small] = _j0_block(flat[small], _M_SMALL)
    octave = np.ceil(np.log2(np.where(small, _SMALL, flat))).astype(int)  # [n] 2^o >= |x|
    for o in np.unique(octave[~small]):
        idx = np.flatnonzero((octave == o) & ~small)  # [b]
        m = _nodes(2.0 ** int(o))
        step = max(1, (1 << 20) // m)  # bound the [b, m] block
        for i in range(0, idx.size, step):
            out[idx[i:i + step]] = _j0_block(flat[idx[i:i + step]], m)
    return out.reshape(a.shape)


def _j0_block(x: np.ndarray, m: int) -> np.ndarray:
    """Midpoint rule with ``m`` nodes on [0, pi/2] for arguments ``x`` (n,) >= 0."""
    c = np.cos(np.multiply.outer(x, _sin_nodes(m)))  # [n, m]
    return np.add.reduce(c, axis=1) / m  # [n]
