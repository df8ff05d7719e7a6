"""Uplink pilots and MMSE channel estimation with pilot contamination (seed 004, spec 3.5).

Model (Foundations of user-centric cell-free massive MIMO, Sec. 4; spec eqs. (1)-(2), (28), [C]):
after despreading with its own pilot sequence (PS), AP m observes for UE k

    y[m,k,:] = sqrt(tau_p p_u) sum_i Cp[k,i] h[m,i,:] + n[m,s(k),:],   n ~ CN(0, sigma^2 I_N),

where Cp[k,i] = 1 iff k and i share a PS, s(k) is the PS (colour) of UE k. With i.i.d. Rayleigh
(correlation beta I_N) the MMSE estimate and its per-antenna error variance are

    psi_mk  = tau_p p_u sum_i Cp[k,i] beta_mi + sigma^2
    hhat_mk = sqrt(tau_p p_u) beta_mk / psi_mk * y_mk
    c_mk    = beta_mk - tau_p p_u beta_mk^2 / psi_mk,     NMSE_mk = c_mk / beta_mk   (28).

Pilot assignment is represented by a colour vector ``colour [..., K]`` of ints (PS index of
each UE); tau_p = number of distinct colours (eq. (6)).

Convention for the engine: the *unknown-part variance* ``err_var [M, K]`` is c_mk where
a_mk = 1 (estimated channel) and beta_mk where a_mk = 0 (AP m only knows the statistics). It
is what the RZF regulariser (3.6) and the WMMSE variance term (4.3) need.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "copilot_matrix",
    "pilot_length",
    "draw_pilot_noise",
    "pilot_observation",
    "mmse_estimate",
    "nmse_theory",
    "unknown_variance",
    "estimate_channels",
]


def copilot_matrix(colour: np.ndarray) -> np.ndarray:
    """Co-pilot matrix Cp = X~^T X~ (spec 3.4).

    Parameters
    ----------
    colour : ndarray, shape [..., K], int, PS index per UE

    Returns
    -------
    cp : ndarray, shape [..., K, K], float64, Cp[k, i] = 1 iff colour[k] == colour[i]
    """
    colour = np.asarray(colour)
    return (colour[..., :, None] == colour[..., None, :]).astype(float)  # [..., K, K]


def pilot_length(colour: np.ndarray) -> np.ndarray | int:
    """tau_p = number of distinct PSs in use (eq. (6)); shape [...] for colour [..., K]."""
    colour = np.asarray(colour)
    s = np.sort(colour, axis=-1)
    n = 1 + np.count_nonzero(np.diff(s, axis=-1), axis=-1)
    return int(n) if np.ndim(n) == 0 else n


def draw_pilot_noise(
    shape_mkn: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Unit-variance CN(0, 1) pilot noise, e.g. shape [..., M, K_max, N] (one per AP and PS)."""
    return (rng.standard_normal(shape_mkn) + 1j * rng.standard_normal(shape_mkn)) / np.sqrt(2.0)


def pilot_observation(
    h: np.ndarray,
    colour: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    *,
    rng: np.random.Generator | None = None,
    noise: np.ndarray | None = None,
    tau_p: int | np.ndarray | None = None,
    noise_per: str = "pilot",
) -> np.ndarray:
    """Despread uplink pilot observations y[m, k, :] (spec 3.5, eq. (1) [C]).

    One noise vector per (AP, PS): UEs sharing a PS get identical observations, as in a real
    receiver.

    Parameters
    ----------
    h : ndarray, shape [..., M, K, N], complex, true channels
    colour : ndarray, shape [..., K] (broadcast against h's batch axes), int PS index per UE
    p_pilot_w : float
        Pilot power per UE p_u [W].
    noise_w : float
        Noise power sigma^2 [W].
    rng : numpy.random.Generator, optional
        Used to draw the noise when ``noise`` is not given.
    noise : ndarray, shape [..., M, K_max, N], complex, optional
        Unit-variance CN(0, 1) noise per (AP, PS), K_max > max(colour); given for common
        random numbers (tabu search). Scaled here by sqrt(noise_w).
    tau_p : int or ndarray [...], optional
        Pilot length; defaults to the number of distinct colours.
    noise_per : {"pilot", "ue"}
        One noise vector per (AP, PS) (exact, [C] default) or per (AP, UE) (the simplification
        the spec allows; co-pilot UEs then see different noise).

    Returns
    -------
    y : ndarray, shape [..., M, K, N], complex128
    """
    colour = np.asarray(colour)
    if tau_p is None:
        tau_p = pilot_length(colour)
    tau_p = np.asarray(tau_p, dtype=float)
    cp = copilot_matrix(colour)  # [..., K, K]
    gain = np.sqrt(tau_p * p_pilot_w)[..., None, None, None]  # [..., 1, 1, 1]
    y = gain * (cp[..., None, :, :] @ h)  # [..., M, K, N]: sum_i Cp[k,i] h[m,i,:]
    m, k, n = h.shape[-3:]
    if noise is None:
        if rng is None:
            raise ValueError("give either rng or noise")
        noise = draw_pilot_noise(h.shape[:-3] + (m, k, n), rng)  # [..., M, K_max=K, N]
    noise_b = np.broadcast_to(noise, y.shape[:-2] + noise.shape[-2:])  # [..., M, K_max, N]
    if noise_per == "pilot":
        idx = np.broadcast_to(colour[..., None, :, None], y.shape)  # [..., M, K, N]
    elif noise_per == "ue":
        idx = np.broadcast_to(np.arange(k)[:, None], y.shape)  # [..., M, K, N]
    else:
        raise ValueError(f"noise_per={noise_per!r}; allowed: 'pilot', 'ue'")
    n_k = np.take_along_axis(noise_b, idx, axis=-2)  # [..., M, K, N]
    return y + np.sqrt(noise_w) * n_k  # [..., M, K, N]


def _psi(
    beta: np.ndarray, cp: np.ndarray, tau_p: np.ndarray, p_pilot_w: float, noise_w: float
) -> np.ndarray:
    """psi_mk = tau_p p_u sum_i Cp[k,i] beta_mi + sigma^2, shape [..., M, K]."""
    contam = beta @ cp  # [..., M, K]: sum_i beta_mi Cp[i,k] (Cp symmetric)
    return tau_p[..., None, None] * p_pilot_w * contam + noise_w


def mmse_estimate(
    y: np.ndarray,
    beta: np.ndarray,
    colour: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    assoc: np.ndarray,
    *,
    tau_p: int | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MMSE estimates of the local channels and the unknown-part variance (spec 3.5).

    Parameters
    ----------
    y : ndarray, shape [..., M, K, N], complex, pilot observations
    beta : ndarray, shape [M, K] or [..., M, K], linear large-scale gains
    colour : ndarray, shape [..., K], int
    p_pilot_w, noise_w : float, W
    assoc : ndarray, shape [M, K] or [..., M, K], bool
    tau_p : optional pilot length (default: number of distinct colours)

    Returns
    -------
    hhat : ndarray, shape [..., M, K, N], complex128, zero where assoc is False
    err_var : ndarray, shape [..., M, K], float64
        c_mk (eq. (28) numerator times beta) where assoc, beta_mk where not associated.
    """
    colour = np.asarray(colour)
    if tau_p is None:
        tau_p = pilot_length(colour)
    tau_p = np.asarray(tau_p, dtype=float)
    cp = copilot_matrix(colour)  # [..., K, K]
    psi = _psi(beta, cp, tau_p, p_pilot_w, noise_w)  # [..., M, K]
    tp = tau_p[..., None, None]
    coef = np.sqrt(tp * p_pilot_w) * beta / psi * assoc  # [..., M, K]
    hhat = coef[..., None] * y  # [..., M, K, N]
    c = beta - tp * p_pilot_w * beta**2 / psi  # [..., M, K]
    return hhat, unknown_variance(beta, c, assoc)


def nmse_theory(
    beta: np.ndarray,
    colour: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    *,
    tau_p: int | np.ndarray | None = None,
) -> np.ndarray:
    """Normalised MSE of the MMSE estimate, eq. (28), shape [..., M, K].

    NMSE_mk = (tau_p p_u sum_{i != k} Cp[k,i] beta_mi + sigma^2) / psi_mk.
    """
    colour = np.asarray(colour)
    if tau_p is None:
        tau_p = pilot_length(colour)
    tau_p = np.asarray(tau_p, dtype=float)
    cp = copilot_matrix(colour)
    psi = _psi(beta, cp, tau_p, p_pilot_w, noise_w)
    return (psi - tau_p[..., None, None] * p_pilot_w * beta) / psi


def unknown_variance(beta: np.ndarray, c: np.ndarray, assoc: np.ndarray) -> np.ndarray:
    """err_var = c where assoc else beta (variance of what AP m does not know about h_mk)."""
    return np.where(assoc, c, beta)


def estimate_channels(
    h: np.ndarray,
    beta: np.ndarray,
    assoc: np.ndarray,
    colour: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One subframe's pilot phase + MMSE estimation (engine convenience).

    Parameters
    ----------
    h : ndarray, shape [M, K, N], complex, true channels of this subframe
    beta : ndarray, shape [M, K]
    assoc : ndarray, shape [M, K], bool
    colour : ndarray, shape [K], int
    p_pilot_w, noise_w : float, W
    rng : numpy.random.Generator (pilot noise)

    Returns
    -------
    hhat : ndarray, shape [M, K, N], complex128
    err_var : ndarray, shape [M, K], float64
    """
    y = pilot_observation(h, colour, p_pilot_w, noise_w, rng=rng)
    return mmse_estimate(y, beta, colour, p_pilot_w, noise_w, assoc)
