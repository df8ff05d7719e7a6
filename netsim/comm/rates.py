"""Downlink SINR and rate on the TRUE channel, including each AP's residual
synchronization error.

Model (netsim's own; documented in ``docs/models.md``)
-------------------------------------------------------
The APs transmit jointly with OFDM. AP ``m``'s local oscillator differs from the
network reference by a carrier phase ``phi_m`` (rad) and a timing offset
``tau_m`` (s). On a subcarrier at baseband frequency ``f`` (Hz, in
``[-B/2, B/2]``) the signal of AP ``m`` therefore arrives rotated by

    exp(-j (phi_m + 2 pi f tau_m)),

i.e. a common phase plus a phase ramp across the band. The user's received
amplitude of stream ``j`` on subcarrier ``f`` is

    a[f, k, j] = sum_m g_m exp(-j(phi_m + 2 pi f tau_m)) h_{m,k}^H w_{m,j}.

Rotations that differ between APs break the coherent sum: this is how
synchronization quality reaches throughput. A timing offset larger than the
cyclic prefix ``T_cp`` also causes inter-symbol interference: the useful part
of AP ``m``'s symbol shrinks to ``g_m = max(0, 1 - (|tau_m| - T_cp)_+ / T_sym)``
(amplitude factor applied to the coherent term) and the lost energy
``(1 - g_m^2) |h_{m,k}^H w_{m,j}|^2`` of every stream ``j`` is added to the
interference of user ``k``. The rate is the average of ``log2(1 + SINR)``
over ``F`` subcarriers spread evenly across the band.
"""

from __future__ import annotations

import numpy as np

__all__ = ["isi_amplitude_factor", "subcarrier_frequencies", "downlink_sinr", "downlink_sinr_batch",
           "rates_bps_hz", "rates_bps_hz_batch"]


def subcarrier_frequencies(bandwidth_hz: float, n_subcarriers: int) -> np.ndarray:
    """Baseband frequencies (Hz) of ``n_subcarriers`` evenly spread across the band.

    Returns
    -------
    ndarray, shape (F,), float64
        Centres of ``F`` equal sub-bands of ``[-B/2, B/2]``.
    """
    edges = np.linspace(-bandwidth_hz / 2, bandwidth_hz / 2, n_subcarriers + 1)
    return 0.5 * (edges[:-1] + edges[1:])


def isi_amplitude_factor(
    to_s: np.ndarray, cyclic_prefix_s: float, symbol_duration_s: float
) -> np.ndarray:
    """Useful-signal amplitude factor ``g`` of a timing offset (1 inside the CP, then linear).

    Parameters
    ----------
    to_s : ndarray, shape (M,)
        Residual timing offsets (s).
    """
    excess = np.maximum(np.abs(to_s) - cyclic_prefix_s, 0.0)  # [M]
    # clip to [0, 1] (excess >= 0, so only the lower bound can bind)
    return np.maximum(np.minimum(1.0 - excess / symbol_duration_s, 1.0), 0.0)


def downlink_sinr(
    h_true: np.ndarray,
    w: np.ndarray,
    noise_w: float,
    phase_rad: np.ndarray | None = None,
    to_s: np.ndarray | None = None,
    subcarrier_hz: np.ndarray | None = None,
    cyclic_prefix_s: float = np.inf,
    symbol_duration_s: float = 1.0,
) -> np.ndarray:
    """Per-subcarrier SINR of every user under residual phase and timing offsets.

    Parameters
    ----------
    h_true : ndarray, shape (K, M, N), complex
        True channel of user ``k`` from the ``N`` antennas of AP ``m`` (amplitude, sqrt(W)/sqrt(W)).
    w : ndarray, shape (K, M, N), complex
        Beamformer of stream ``k`` on AP ``m``; ``sum_k ||w[k, m]||^2`` is AP ``m``'s power (W).
    noise_w : float
        Receiver noise power (W).
    phase_rad, to_s : ndarray, shape (M,), optional
        Residual carrier phase (rad) and timing offset (s) of each AP; zero when omitted.
    subcarrier_hz : ndarray, shape (F,), optional
        Baseband subcarrier frequencies (Hz); a single subcarrier at 0 Hz when omitted.
    cyclic_prefix_s, symbol_duration_s : float
        OFDM cyclic prefix and useful symbol duration (s), for the ISI model.

    Returns
    -------
    ndarray, shape (F, K), float64
        Linear SINR.
    """
    n_users, n_aps, _ = h_true.shape
    phase = np.zeros(n_aps) if phase_rad is None else np.asarray(phase_rad, dtype=float)
    tau = np.zeros(n_aps) if to_s is None else np.asarray(to_s, dtype=float)
    freqs = np.zeros(1) if subcarrier_hz is None else np.asarray(subcarrier_hz, dtype=float)
    g = isi_amplitude_factor(tau, cyclic_prefix_s, symbol_duration_s)  # [M]
    inside_cp = bool(g.min() == 1.0)  # every offset within the cyclic prefix: g = 1, no ISI

    # per-AP amplitude of stream j at user k: b[k, j, m] = h_{m,k}^H w_{m,j}
    b = np.einsum("kmn,jmn->kjm", h_true.conj(), w)  # [K, K, M]
    rot = np.exp(-1j * (phase[None, :] + 2 * np.pi * freqs[:, None] * tau[None, :]))  # [F, M]
    if not inside_cp:  # (g = 1 would change no bit)
        rot = g * rot
    a = np.einsum("fm,kjm->fkj", rot, b)  # [F, K, K]
    power = np.abs(a) ** 2  # [F, K, K]
    desired = np.einsum("fkk->fk", power)  # [F, K]
    interference = power.sum(axis=2) - desired  # [F, K]
    if inside_cp:  # (1 - g^2) |b|^2 summed is exactly 0
        return desired / (interference + noise_w)
    isi = ((1.0 - g**2)[None, None, :] * np.abs(b) ** 2).sum(axis=(1, 2))  # [K]
    return desired / (interference + isi[None, :] + noise_w)


def rates_bps_hz(sinr: np.ndarray) -> np.ndarray:
    """Spectral efficiency ``mean_f log2(1 + SINR[f, k])`` per user (bit/s/Hz), shape (K,)."""
    x = np.log2(1.0 + sinr)  # [F, K]
    return np.add.reduce(x, axis=0) / x.shape[0]  # = x.mean(axis=0)


def downlink_sinr_batch(
    h_true: np.ndarray,
    w: np.ndarray,
    noise_w: float,
    phase_rad: np.ndarray,
    to_s: np.ndarray,
    subcarrier_hz: np.ndarray | None = None,
    cyclic_prefix_s: float = np.inf,
    symbol_duration_s: float = 1.0,
) -> np.ndarray:
    """:func:`downlink_sinr` of ``S`` subframes at once (the same model).

    Every array of :func:`downlink_sinr` gains a leading subframe axis. The two contractions
    are batched matrix products (``b[s, m] = H[s, m]^* W[s, m]^T`` over the antennas, then the
    rotated sum over the APs), so the values agree with one :func:`downlink_sinr` call per
    subframe to rounding (relative 1e-13, tested), not bit for bit. A subframe whose offsets
    all lie within the cyclic prefix gets ISI factor ``g = 1`` and an ISI term of exactly 0.

    Parameters
    ----------
    h_true, w : ndarray, shape (S, K, M, N), complex
    noise_w : float
    phase_rad, to_s : ndarray, shape (S, M), float
    subcarrier_hz : ndarray, shape (F,), optional
    cyclic_prefix_s, symbol_duration_s : float

    Returns
    -------
    ndarray, shape (S, F, K), float64
        Linear SINR.
    """
    n_sub, n_users, n_aps, _ = h_true.shape
    phase = np.asarray(phase_rad, dtype=float)  # [S, M]
    tau = np.asarray(to_s, dtype=float)  # [S, M]
    freqs = np.zeros(1) if subcarrier_hz is None else np.asarray(subcarrier_hz, dtype=float)
    g = isi_amplitude_factor(tau, cyclic_prefix_s, symbol_duration_s)  # [S, M]
    inside_cp = bool(g.min() == 1.0)

    # b[s, m, k, j] = h_{m,k}^H w_{m,j}
    hc = np.conj(h_true.transpose(0, 2, 1, 3))  # [S, M, K, N]
    b = np.matmul(hc, w.transpose(0, 2, 3, 1))  # [S, M, K, K]
    rot = np.exp(-1j * (phase[:, None, :] + 2 * np.pi * freqs[None, :, None] * tau[:, None, :]))
    if not inside_cp:  # [S, F, M]
        rot = g[:, None, :] * rot
    a = np.matmul(rot, b.reshape(n_sub, n_aps, n_users * n_users))  # [S, F, K*K]
    a = a.reshape(n_sub, len(freqs), n_users, n_users)  # [S, F, K, K]
    power = a.real**2 + a.imag**2  # [S, F, K, K]
    desired = np.diagonal(power, axis1=2, axis2=3)  # [S, F, K]
    interference = power.sum(axis=3) - desired  # [S, F, K]
    if inside_cp:
        return desired / (interference + noise_w)
    isi = ((1.0 - g**2)[:, :, None, None] * (b.real**2 + b.imag**2)).sum(axis=(1, 3))  # [S, K]
    return desired / (interference + isi[:, None, :] + noise_w)


def rates_bps_hz_batch(sinr: np.ndarray) -> np.ndarray:
    """:func:`rates_bps_hz` of ``S`` subframes, (S, F, K) -> (S, K) bit/s/Hz (same values)."""
    x = np.log2(1.0 + sinr)  # [S, F, K]
    return np.add.reduce(x, axis=1) / x.shape[1]
