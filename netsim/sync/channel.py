"""AP-to-AP channel model of the synchronization study (seed 000, spec ``sync.md`` 2.1, 6.1-6.2).

* Three-slope path loss (eq 60) and its inverse.
* The random multipath tap model used for Figs 7-8 and the simulator (spec 6.2, [ASSUMED]).
* Default noise power (-92 dBm: 20 MHz, NF 9 dB, 290 K; spec 8.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SPEED_OF_LIGHT_M_S",
    "DEFAULT_NOISE_POWER_W",
    "PathLossModel",
    "LinkTaps",
    "draw_link_taps",
    "FIG6_TAP_DELAYS_CHIPS",
    "FIG6_TAP_GAINS",
]

SPEED_OF_LIGHT_M_S = 3.0e8
#: k * 290 K * 20 MHz * 10^(9/10) (noise figure 9 dB) = 6.36e-13 W (-92 dBm), spec 8.1.
DEFAULT_NOISE_POWER_W = 1.380649e-23 * 290.0 * 20e6 * 10**0.9
#: Fig 6 profile: tap delays in Ts and amplitudes (paper Sec. V-C).
FIG6_TAP_DELAYS_CHIPS = np.array([0.0, 0.7049, 2.1230, 2.7063])
FIG6_TAP_GAINS = np.array([1.0, 0.8443, 0.4119, 0.3223])


@dataclass(frozen=True)
class PathLossModel:
    """Three-slope path loss of eq 60 (distances in metres, converted to km inside).

    ``PL(d) = L + 35 log10 d``                         for ``d > d1``
    ``PL(d) = L + 15 log10 d1 + 20 log10 d``           for ``d0 < d <= d1``
    ``PL(d) = L + 15 log10 d1 + 20 log10 d0``          for ``d <= d0``     (d, d0, d1 in km)

    Attributes
    ----------
    loss_db : float
        ``L_loss`` (140.7 dB for 1.9 GHz, AP height 15 m).
    d0_m, d1_m : float
        Break points (10 m, 50 m).
    """

    loss_db: float = 140.7
    d0_m: float = 10.0
    d1_m: float = 50.0

    def path_loss_db(self, distance_m: ArrayLike) -> NDArray[np.float64]:
        """Path loss in dB, same shape as ``distance_m`` (metres)."""
        d = np.maximum(np.asarray(distance_m, dtype=float), self.d0_m) / 1e3  # km
        d1 = self.d1_m / 1e3
        far = self.loss_db + 35.0 * np.log10(np.maximum(d, 1e-12))
        near = self.loss_db + 15.0 * np.log10(d1) + 20.0 * np.log10(np.maximum(d, 1e-12))
        return np.where(d > d1, far, near)

    def gain(self, distance_m: ArrayLike) -> NDArray[np.float64]:
        """Large-scale power gain ``beta = 10^(-PL/10)`` (linear), same shape as input."""
        return 10.0 ** (-self.path_loss_db(distance_m) / 10.0)

    def distance_for_gain(self, beta: float) -> float:
        """Inverse of :meth:`gain`: the largest distance (m) whose gain is ``>= beta`` (spec 5.3).

        Returns 0.0 when ``beta`` exceeds the flat near-field gain ``gain(d0)`` (no distance
        qualifies).
        """
        pl = -10.0 * np.log10(beta)
        d1 = self.d1_m / 1e3
        d0 = self.d0_m / 1e3
        if pl > self.loss_db + 35.0 * np.log10(d1):
            return float(10.0 ** ((pl - self.loss_db) / 35.0) * 1e3)
        if pl < self.loss_db + 15.0 * np.log10(d1) + 20.0 * np.log10(d0):
            return 0.0
        return float(10.0 ** ((pl - self.loss_db - 15.0 * np.log10(d1)) / 20.0) * 1e3)


@dataclass(frozen=True)
class LinkTaps:
    """Multipath taps of a batch of links (spec 2.1).

    Attributes
    ----------
    excess_delay_chips : ndarray, shape (..., L), float64
        Excess delay of each tap relative to the line of sight, in chips (first tap 0).
    amplitude : ndarray, shape (..., L), float64
        ``alpha^l`` (first tap 1).
    fading : ndarray, shape (..., L), complex128
        Small-scale fading ``psi^l ~ CN(0, 1)``.
    """

    excess_delay_chips: NDArray[np.float64]
    amplitude: NDArray[np.float64]
    fading: NDArray[np.complex128]

    def coefficients(self, power_gain: ArrayLike) -> NDArray[np.complex128]:
        """Tap coefficients ``h^l = alpha^l sqrt(beta) psi^l`` (sqrt(W) when beta includes Pt).

        ``power_gain`` has shape (...) and broadcasts over the tap axis.
        """
        b = np.sqrt(np.asarray(power_gain, dtype=float))[..., None]
        return self.amplitude * b * self.fading


def draw_link_taps(shape: tuple[int, ...], n_taps: int, rng: np.random.Generator) -> LinkTaps:
    """Random taps of spec 6.2 [ASSUMED]: delays 0 then increments ``1 + U(0, 0.5)`` chips,
    amplitudes ``[1, sorted-descending U(0.2, 1)]``, fading ``CN(0, 1)``.

    The at-least-one-chip spacing keeps the Fisher matrix regular (spec 3.6).

    Parameters
    ----------
    shape : tuple of int
        Batch shape (e.g. ``(n_tx, n_rx)``).
    n_taps : int
        ``L >= 1``.
    rng : numpy.random.Generator

    Returns
    -------
    LinkTaps with arrays of shape ``shape + (n_taps,)``.
    """
    inc = 1.0 + 0.5 * rng.random(shape + (n_taps - 1,))  # [..., L-1]
    delays = np.concatenate([np.zeros(shape + (1,)), np.cumsum(inc, -1)], -1)  # [..., L]
    amp_rest = -np.sort(-rng.uniform(0.2, 1.0, shape + (n_taps - 1,)), -1)  # [..., L-1]
    amp = np.concatenate([np.ones(shape + (1,)), amp_rest], -1)  # [..., L]
    psi = rng.standard_normal(shape + (n_taps,)) + 1j * rng.standard_normal(shape + (n_taps,))
    psi = psi / np.sqrt(2.0)  # [..., L]
    return LinkTaps(delays, amp, psi)
