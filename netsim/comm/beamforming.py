"""Reference beamformers and power splits (the foundation's communication model).

Beamformers are stored per AP: ``w[k, m, :]`` is the ``N``-antenna beamformer of
AP ``m`` for user ``k``. A *direction* ``u[k, m, :]`` has unit norm per AP (or is
zero when the AP does not serve the user) and a power matrix ``p[m, k]`` (W)
scales it: ``w[k, m] = sqrt(p[m, k]) u[k, m]``. Per-AP power constraints are
then simply ``sum_k p[m, k] <= P_m``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_power", "mrt_directions"]


def mrt_directions(h_est: np.ndarray, active_aps: np.ndarray | None = None) -> np.ndarray:
    """Maximum-ratio-transmission directions, normalised per AP.

    Parameters
    ----------
    h_est : ndarray, shape (K, M, N), complex
        Estimated channels.
    active_aps : ndarray, shape (M,), bool, optional
        APs allowed to transmit; inactive APs get zero directions.

    Returns
    -------
    ndarray, shape (K, M, N), complex
        ``u[k, m] = h_est[k, m] / ||h_est[k, m]||`` (zero where the channel is zero or the AP
        is inactive). With this direction AP ``m`` adds its contribution to user ``k`` in phase
        with the others when the channel estimate is exact: ``h^H u = ||h||`` per AP.
    """
    norm = np.linalg.norm(h_est, axis=2, keepdims=True)  # [K, M, 1]
    u = np.divide(h_est, norm, out=np.zeros_like(h_est), where=norm > 0)  # [K, M, N]
    if active_aps is not None:
        u = u * np.asarray(active_aps, dtype=bool)[None, :, None]
    return u


def apply_power(directions: np.ndarray, power_w: np.ndarray) -> np.ndarray:
    """Beamformers ``w[k, m] = sqrt(p[m, k]) u[k, m]``; shapes (K, M, N) and (M, K) -> (K, M, N)."""
    return directions * np.sqrt(power_w).T[:, :, None]
