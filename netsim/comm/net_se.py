"""Equivalent channels, SINR and net spectral efficiency (seed 004, spec 3.7-3.8).

Equivalent channel of antenna-node AN_mk (AP m serving UE k) towards UE i:

    G[m, k, i]    = h[m, i, :]^H w[m, k, :]                          (true, eq. (10) def.)
    Ghat[m, k, i] = hhat[m, i, :]^H w[m, k, :]   if a_mi = 1          (estimated, eq. (11))
                  = sqrt(beta_mi) ||w[m, k, :]||  if a_mi = 0          (statistical, eq. (10) [C])

Stream amplitude of UE i's stream at UE k with powers P[m, i] (W):

    S[i, k] = sum_m G[m, i, k] sqrt(P[m, i])
    SINR_k  = |S[k, k]|^2 / (sum_{i != k} |S[i, k]|^2 + sigma^2)                     (3)
    R       = (1 - tau_p / tau_c) sum_k log2(1 + SINR_k)     [bit/s/Hz]            (4)

:func:`sinr_true` takes the TRUE channel ``h`` explicitly, so the simulation engine can apply
per-AP residual synchronisation phases (h[m] -> exp(j phi_m) h[m]) before calling it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "equivalent_channel_true",
    "equivalent_channel_estimated",
    "sinr_from_equivalent",
    "sinr_true",
    "net_sum_se",
    "pilot_overhead",
    "antenna_node_view",
]


def equivalent_channel_true(h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """True equivalent channels G[..., m, k, i] = h[m,i]^H w[m,k].

    Parameters
    ----------
    h : ndarray, shape [..., M, K, N], complex, true channels
    w : ndarray, shape [..., M, K, N], complex, beamformers

    Returns
    -------
    g : ndarray, shape [..., M, K, K], complex128 (rows k = serving AN's UE, cols i = receiver)
    """
    return w @ np.conj(np.swapaxes(h, -1, -2))  # [..., M, K, K]


def equivalent_channel_estimated(
    hhat: np.ndarray,
    w: np.ndarray,
    beta: np.ndarray,
    assoc: np.ndarray,
    *,
    unknown: Literal["statistical", "zero"] = "statistical",
) -> np.ndarray:
    """Estimated equivalent channels Ghat[..., m, k, i], eq. (11) (the power policy's input).

    Parameters
    ----------
    hhat : ndarray, shape [..., M, K, N], complex (zero where not associated)
    w : ndarray, shape [..., M, K, N], complex
    beta : ndarray, shape [..., M, K], linear gains
    assoc : ndarray, shape [..., M, K], bool
    unknown : {"statistical", "zero"}
        Value for pairs with a_mi = 0: sqrt(beta_mi) ||w_mk|| ([C] default) or 0.

    Returns
    -------
    ghat : ndarray, shape [..., M, K, K], complex128
    """
    known = w @ np.conj(np.swapaxes(hhat, -1, -2))  # [..., M, K, K]
    if unknown == "statistical":
        wn = np.linalg.norm(w, axis=-1)  # [..., M, K]
        stat = wn[..., :, None] * np.sqrt(beta)[..., None, :]  # [..., M, K, K]
    elif unknown == "zero":
        stat = np.zeros_like(known.real)
    else:
        raise ValueError(f"unknown={unknown!r}; allowed: 'statistical', 'zero'")
    return np.where(assoc[..., None, :], known, stat)  # [..., M, K, K]


def sinr_from_equivalent(g: np.ndarray, power_w: np.ndarray, noise_w: float) -> np.ndarray:
    """SINR per UE, eq. (3), from equivalent channels G [..., M, K, K] and powers [..., M, K].

    Returns
    -------
    sinr : ndarray, shape [..., K], float64 (linear)
    """
    amp = np.einsum("...mik,...mi->...ik", g, np.sqrt(power_w))  # [..., K, K] S[i, k]
    return _sinr_from_amplitudes(amp, noise_w)


def _sinr_from_amplitudes(amp: np.ndarray, noise_w: float) -> np.ndarray:
    pw = np.abs(amp) ** 2  # [..., K, K]
    sig = np.diagonal(pw, axis1=-2, axis2=-1)  # [..., K]
    interf = pw.sum(axis=-2) - sig  # [..., K]
    return sig / (interf + noise_w)


def sinr_true(
    h: np.ndarray, w: np.ndarray, power_w: np.ndarray, noise_w: float
) -> np.ndarray:
    """Instantaneous SINR on the TRUE channel with coherent joint transmission, eq. (3).

    Parameters
    ----------
    h : ndarray, shape [..., M, K, N], complex
        True channels (the engine may already include exp(j phi_m) residual phases per AP).
    w : ndarray, shape [..., M, K, N], complex, beamformers (zero where not associated)
    power_w : ndarray, shape [..., M, K], float, transmit power of each AN [W]
    noise_w : float, noise power sigma^2 [W]

    Returns
    -------
    sinr : ndarray, shape [..., K], float64 (linear)
    """
    wp = w * np.sqrt(power_w)[..., None]  # [..., M, K, N]
    m, k, n = wp.shape[-3:]
    wp_flat = np.moveaxis(wp, -3, -2).reshape(wp.shape[:-3] + (k, m * n))  # [..., K, M*N]
    h_flat = np.moveaxis(h, -3, -2).reshape(h.shape[:-3] + (k, m * n))  # [..., K, M*N]
    # a C-contiguous right operand keeps numpy's batched matmul on the BLAS path
    h_herm = np.ascontiguousarray(np.conj(np.swapaxes(h_flat, -1, -2)))  # [..., M*N, K]
    amp = wp_flat @ h_herm  # [..., K, K] S[i, k]
    return _sinr_from_amplitudes(amp, noise_w)


def pilot_overhead(tau_p: int | np.ndarray, tau_c: int) -> np.ndarray | float:
    """Fraction of a coherence block spent on pilots, tau_p / tau_c (eq. (4))."""
    return np.asarray(tau_p, dtype=float) / float(tau_c)


def net_sum_se(sinr: np.ndarray, tau_p: int | np.ndarray, tau_c: int) -> np.ndarray:
    """Net sum spectral efficiency, eq. (4): (1 - tau_p/tau_c) sum_k log2(1 + SINR_k).

    Parameters
    ----------
    sinr : ndarray, shape [..., K], linear
    tau_p : int or ndarray broadcastable to [...]
    tau_c : int, slots per coherence block

    Returns
    -------
    se : ndarray, shape [...], bit/s/Hz
    """
    return (1.0 - pilot_overhead(tau_p, tau_c)) * np.log2(1.0 + sinr).sum(axis=-1)


def antenna_node_view(ghat: np.ndarray, assoc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AN-indexed view of the estimated equivalent channels (spec 3.7, power-GNN input).

    Parameters
    ----------
    ghat : ndarray, shape [M, K, K], complex
    assoc : ndarray, shape [M, K], bool

    Returns
    -------
    an : ndarray, shape [n_AN, 2], int, rows (m, k) with a_mk = 1, AP-major order
    ghat_an : ndarray, shape [n_AN, K], complex, ghat_an[n] = ghat[m(n), k(n), :]
    """
    m_idx, k_idx = np.nonzero(assoc)
    return np.stack([m_idx, k_idx], axis=1), ghat[m_idx, k_idx, :]
