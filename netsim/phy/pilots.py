"""Synchronization pilot sequences and the chip pulse (seed 000, spec ``sync.md`` 2.2-2.5).

A pilot is ``N`` chips ``s[0..N-1]`` sent with a rectangular chip pulse of length ``Ts``.
After chip-matched filtering and sampling once per chip, a pilot delayed by ``x`` chips
(``x`` real, ``>= 0``) contributes at sample ``m``::

    sum_n s[n] nabla(m - n - x) = (1 - f) s[m - k - 1] + f s[m - k - 2],   k = floor(x), f = x - k

where ``nabla`` is the causal triangle of eq 62 (peak at t = 1). :func:`delayed_pilot` computes
this sampled waveform vectorised over any number of delays; it is the column ``S_p U(theta1)``
of the matrix model (eq 5-8) without building the ``M x (M-N+1)`` matrix ``S_p``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "bpsk_pilots",
    "zadoff_chu",
    "triangular_pulse",
    "delayed_pilot",
    "delayed_pilot_derivative",
    "delayed_pilot_pair",
    "shifted_pilot",
    "pilot_lag1_autocorrelation",
    "pilot_convolution_matrix",
]


def bpsk_pilots(n_pilots: int, length: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Random BPSK pilots, as in the paper (Sec. V).

    Parameters
    ----------
    n_pilots : int
        Number of distinct pilots (tau).
    length : int
        Pilot length ``N`` in chips.
    rng : numpy.random.Generator
        Source of the random signs.

    Returns
    -------
    ndarray, shape (n_pilots, length), float64
        Chips, each +1 or -1 with probability 1/2.
    """
    if n_pilots < 0 or length < 1:
        raise ValueError(f"need n_pilots >= 0 and length >= 1, got {n_pilots}, {length}")
    return rng.choice(np.array([-1.0, 1.0]), size=(n_pilots, length))


def zadoff_chu(length: int, root: int = 1) -> NDArray[np.complex128]:
    """Zadoff-Chu sequence of length ``length`` and root ``root`` (an option to BPSK).

    ``z[n] = exp(-j pi u n (n + c) / N)`` with ``c = N mod 2``; unit modulus, ideal periodic
    autocorrelation when ``gcd(u, N) = 1``.

    Returns
    -------
    ndarray, shape (length,), complex128
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if np.gcd(int(root), int(length)) != 1:
        raise ValueError(f"root {root} must be coprime with length {length}")
    n = np.arange(length)  # [N]
    c = length % 2
    return np.exp(-1j * np.pi * root * n * (n + c) / length)


def triangular_pulse(t: ArrayLike) -> NDArray[np.float64]:
    """Chip pulse after chip-matched filtering, ``nabla = Pi (*) Pi`` (eq 62).

    ``nabla(t) = t`` for ``0 < t <= 1``, ``2 - t`` for ``1 < t <= 2``, 0 otherwise.

    Parameters
    ----------
    t : array_like, float
        Time in chips (units of ``Ts``).

    Returns
    -------
    ndarray, same shape as ``t``, float64
    """
    t = np.asarray(t, dtype=float)
    return np.where((t > 0) & (t <= 1), t, np.where((t > 1) & (t <= 2), 2.0 - t, 0.0))


def _align(pilot: NDArray, ndim: int) -> NDArray:
    """Give ``pilot`` [..., N] singleton axes so its leading axes align with the LEADING axes
    of a delay array of ``ndim`` dimensions (pilot per link, delays per link and tap)."""
    extra = ndim - (pilot.ndim - 1)
    if extra <= 0:
        return pilot
    return pilot.reshape(pilot.shape[:-1] + (1,) * extra + pilot.shape[-1:])


def _pilot_windows(pilot: NDArray, n_samples: int) -> NDArray:
    """Every length-``M`` window of the zero-padded pilot: ``[prod(...), M + N + 2, M]`` view
    with ``win[r, o, m'] = pad_r[o + m']``, ``pad_r`` = M zeros, pilot row ``r``, M + 1 zeros."""
    n = pilot.shape[-1]
    m = int(n_samples)
    length = 2 * m + n + 1  # M zeros, the pilot, M + 1 zeros
    pad = np.zeros(pilot.shape[:-1] + (length,), dtype=pilot.dtype)
    pad[..., m:m + n] = pilot
    flat = pad.reshape(-1, length)  # contiguous rows
    st = flat.strides
    return np.lib.stride_tricks.as_strided(
        flat, shape=(flat.shape[0], length - m + 1, m), strides=(st[0], st[1], st[1]),
        writeable=False)


def _gather_rows(win: NDArray, pilot: NDArray, shift: NDArray, n_samples: int) -> NDArray:
    """Rows ``s[m - q]`` of :func:`_pilot_windows` ``win`` for integer shifts ``q`` (...)."""
    n = pilot.shape[-1]
    m = int(n_samples)
    rows = np.arange(win.shape[0]).reshape(pilot.shape[:-1])  # [...] broadcast by indexing
    # window offset o gives pad[o + m'] = s[m' + o - m]: o = m - q, with q clipped to
    # [-n, m] (q >= m: the pilot starts after the window; q <= -n: it ended before it)
    off = m - np.minimum(np.maximum(shift, -n), m)  # [...]
    return win[rows, off]  # [..., M]


def _shifted_rows(pilot: NDArray, shift: NDArray, n_samples: int) -> NDArray:
    """Rows ``r[..., m] = s[m - q]`` (zero outside ``[0, N)``) for integer shifts ``q`` (...).

    ``pilot`` [..., N] is already aligned (:func:`_align`) so that its leading axes broadcast
    against ``shift``. Each row is a slice of one zero-padded copy of the pilot (a strided
    window view), gathered in one indexing step; shifts beyond the window are clipped to a
    shift that gives the same all-zero row. Returns shape ``broadcast(...) + (M,)``, the
    pilot's dtype.
    """
    return _gather_rows(_pilot_windows(pilot, n_samples), pilot, shift, n_samples)


def delayed_pilot(pilot: ArrayLike, delay_chips: ArrayLike, n_samples: int) -> NDArray:
    """Sampled, chip-matched pilot delayed by a real number of chips (eq 4, one column of S U).

    ``w[m] = sum_n s[n] nabla(m - n - x) = (1-f) s[m-k-1] + f s[m-k-2]``, ``k = floor(x)``.

    Parameters
    ----------
    pilot : array_like, shape (..., N), real or complex
        Pilot chips. Its leading axes align with the leading axes of ``delay_chips``
        (a pilot [n_link, N] with delays [n_link, L] gives [n_link, L, M]).
    delay_chips : array_like, shape (...), float
        Delay ``x`` in chips (``x = theta1 + vs^l / Ts``).
    n_samples : int
        Window length ``M``; samples beyond it are cut (a late burst is truncated).

    Returns
    -------
    ndarray, shape (..., M), dtype of ``pilot``
    """
    f, g1, g0 = _neighbour_chips(pilot, delay_chips, n_samples)
    return (1.0 - f) * g1 + f * g0


def delayed_pilot_derivative(pilot: ArrayLike, delay_chips: ArrayLike, n_samples: int) -> NDArray:
    """Derivative of :func:`delayed_pilot` with respect to the delay (column of S U', eq 32).

    ``dw[m]/dx = -s[m-k-1] + s[m-k-2]`` (undefined at integer ``x``; the right derivative is used).

    Shapes as in :func:`delayed_pilot`.
    """
    _, g1, g0 = _neighbour_chips(pilot, delay_chips, n_samples)
    return g0 - g1


def delayed_pilot_pair(
    pilot: ArrayLike, delay_chips: ArrayLike, n_samples: int
) -> tuple[NDArray, NDArray]:
    """:func:`delayed_pilot` and :func:`delayed_pilot_derivative` from one pair of shifted
    pilots ``s[m-k-1]``, ``s[m-k-2]`` (the Fisher matrix needs both). Shapes as in
    :func:`delayed_pilot`; returns ``(w, dw)``."""
    f, g1, g0 = _neighbour_chips(pilot, delay_chips, n_samples)
    return (1.0 - f) * g1 + f * g0, g0 - g1


def _neighbour_chips(
    pilot: ArrayLike, delay_chips: ArrayLike, n_samples: int
) -> tuple[NDArray, NDArray, NDArray]:
    """``f = x - floor(x)`` (..., 1) and the rows ``s[m-k-1]``, ``s[m-k-2]`` (..., M) that the
    triangle pulse interpolates between (``k = floor(x)``)."""
    pilot = np.asarray(pilot)
    x = np.asarray(delay_chips, dtype=float)
    k = np.floor(x).astype(np.int64)  # [...]
    f = (x - k)[..., None]  # [..., 1]
    pilot_b = _align(pilot, x.ndim)
    win = _pilot_windows(pilot_b, n_samples)  # one padded copy for both rows
    g1 = _gather_rows(win, pilot_b, k + 1, n_samples)  # [..., M]  s[m-k-1]
    g0 = _gather_rows(win, pilot_b, k + 2, n_samples)  # [..., M]  s[m-k-2]
    return f, g1, g0


def shifted_pilot(pilot: ArrayLike, shift: ArrayLike, n_samples: int) -> NDArray:
    """Pilot shifted by an integer number of samples: ``s[m - q]`` (a column of ``S_p``).

    Parameters
    ----------
    pilot : array_like, shape (..., N)
    shift : array_like of int, shape (...)
    n_samples : int

    Returns
    -------
    ndarray, shape (..., M)
    """
    pilot = np.asarray(pilot)
    q = np.asarray(shift, dtype=np.int64)
    return _shifted_rows(_align(pilot, q.ndim), q, n_samples)


def pilot_lag1_autocorrelation(pilot: ArrayLike) -> NDArray[np.float64]:
    """``R_s(1) = Re sum_{n=0}^{N-2} s[n] conj(s[n+1])`` (Theorem 1, spec 3.7).

    Parameters
    ----------
    pilot : array_like, shape (..., N)

    Returns
    -------
    ndarray, shape (...), float64
    """
    s = np.asarray(pilot)
    return np.real(np.sum(s[..., :-1] * np.conj(s[..., 1:]), axis=-1))


def pilot_convolution_matrix(pilot: ArrayLike, n_samples: int) -> NDArray:
    """The explicit matrix ``S_p[r, c] = s[r - c]``, shape (M, M-N+1) (eq 7; test oracle)."""
    s = np.asarray(pilot)
    n = s.shape[-1]
    r = np.arange(n_samples)[:, None]
    c = np.arange(n_samples - n + 1)[None, :]
    d = r - c
    out = np.zeros((n_samples, n_samples - n + 1), dtype=s.dtype)
    ok = (d >= 0) & (d < n)
    out[ok] = s[d[ok]]
    return out
