"""Received synchronization burst at a master AP (seed 000, eq 2-9; spec 2.4-2.7).

Every slave that shares pilot ``p`` sends it at the same nominal time; the master receives
the superposition, each link through its own multipath channel, with its own TO and CFO::

    y[m] = sum_i exp(j 2 pi eps_i m) sum_l h_i^l sum_n s_i[n] nabla(m - n - theta1_i - vs_i^l) + w[m]

(eq 4; ``w ~ CN(0, sigma^2)``). Vectorised over links, taps and any leading batch axes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.pilots import delayed_pilot

__all__ = ["burst_signals", "received_burst"]


def burst_signals(
    pilot: ArrayLike,
    to_chips: ArrayLike,
    cfo_norm: ArrayLike,
    tap_delay_chips: ArrayLike,
    taps: ArrayLike,
    n_samples: int,
) -> NDArray[np.complex128]:
    """Noise-free contribution of each link, ``F(eps) S_p U(theta1) h`` (eq 5).

    Parameters
    ----------
    pilot : array_like, shape (..., n_link, N)
        Pilot chips of each link (leading axes align with the other inputs').
    to_chips : array_like, shape (..., n_link), float
        Normalised TO ``theta1 = dtau / Ts`` (chips).
    cfo_norm : array_like, shape (..., n_link), float
        Normalised CFO ``eps = df * Ts`` (cycles per sample).
    tap_delay_chips : array_like, shape (..., n_link, L), float
        Tap delays ``vs^l / Ts`` (propagation + excess), chips.
    taps : array_like, shape (..., n_link, L), complex
        Tap coefficients ``h^l`` (sqrt(W): include ``sqrt(Pt beta)``).
    n_samples : int
        Observation window ``M``.

    Returns
    -------
    ndarray, shape (..., n_link, M), complex128
    """
    theta1 = np.asarray(to_chips, dtype=float)
    eps = np.asarray(cfo_norm, dtype=float)
    x = theta1[..., None] + np.asarray(tap_delay_chips, dtype=float)  # [..., n_link, L]
    wave = delayed_pilot(pilot, x, n_samples)  # [..., n_link, L, M]
    sig = np.einsum("...l,...lm->...m", np.asarray(taps, dtype=complex), wave)  # [..., n_link, M]
    m = np.arange(n_samples)
    return sig * np.exp(2j * np.pi * eps[..., None] * m)  # [..., n_link, M]


def received_burst(
    pilot: ArrayLike,
    to_chips: ArrayLike,
    cfo_norm: ArrayLike,
    tap_delay_chips: ArrayLike,
    taps: ArrayLike,
    n_samples: int,
    noise_power_w: float,
    rng: np.random.Generator,
) -> NDArray[np.complex128]:
    """Received burst at the master: sum over links plus white noise (eq 4, 9; spec 2.7).

    Parameters as in :func:`burst_signals`; ``noise_power_w`` is ``sigma^2`` per sample (W).

    Returns
    -------
    ndarray, shape (..., M), complex128
        ``y[m]``, sqrt(W).
    """
    sig = burst_signals(pilot, to_chips, cfo_norm, tap_delay_chips, taps, n_samples).sum(-2)
    noise = rng.standard_normal(sig.shape) + 1j * rng.standard_normal(sig.shape)
    return sig + np.sqrt(noise_power_w / 2.0) * noise  # [..., M]
