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


def _gather_chips(pilot: NDArray, idx: NDArray) -> NDArray:
    """``pilot[..., idx]`` with zeros outside ``[0, N)``; pilot [..., N], idx [..., M]."""
    n = pilot.shape[-1]
    padded = np.concatenate([pilot, np.zeros(pilot.shape[:-1] + (1,), pilot.dtype)], -1)
    safe = np.where((idx >= 0) & (idx < n), idx, n)
    shape = np.broadcast_shapes(padded.shape[:-1], safe.shape[:-1])
    padded = np.broadcast_to(padded, shape + padded.shape[-1:])
    safe = np.broadcast_to(safe, shape + safe.shape[-1:])
    return np.take_along_axis(padded, safe, axis=-1)


def _align(pilot: NDArray, ndim: int) -> NDArray:
    """Give ``pilot`` [..., N] singleton axes so its leading axes align with the LEADING axes
    of a delay array of ``ndim`` dimensions (pilot per link, delays per link and tap)."""
    extra = ndim - (pilot.ndim - 1)
    if extra <= 0:
        return pilot
    return pilot.reshape(pilot.shape[:-1] + (1,) * extra + pilot.shape[-1:])


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
    pilot = np.asarray(pilot)
    x = np.asarray(delay_chips, dtype=float)
    k = np.floor(x).astype(np.int64)
    f = (x - k)[..., None]  # [..., 1]
    m = np.arange(n_samples)  # [M]
    i1 = m - k[..., None] - 1  # [..., M]
    pilot_b = _align(pilot, x.ndim)
    return (1.0 - f) * _gather_chips(pilot_b, i1) + f * _gather_chips(pilot_b, i1 - 1)


def delayed_pilot_derivative(pilot: ArrayLike, delay_chips: ArrayLike, n_samples: int) -> NDArray:
    """Derivative of :func:`delayed_pilot` with respect to the delay (column of S U', eq 32).

    ``dw[m]/dx = -s[m-k-1] + s[m-k-2]`` (undefined at integer ``x``; the right derivative is used).

    Shapes as in :func:`delayed_pilot`.
    """
    pilot = np.asarray(pilot)
    x = np.asarray(delay_chips, dtype=float)
    k = np.floor(x).astype(np.int64)
    m = np.arange(n_samples)
    i1 = m - k[..., None] - 1  # [..., M]
    pilot_b = _align(pilot, x.ndim)
    return _gather_chips(pilot_b, i1 - 1) - _gather_chips(pilot_b, i1)


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
    m = np.arange(n_samples)
    pilot_b = _align(pilot, q.ndim)
    return _gather_chips(pilot_b, m - q[..., None])


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
