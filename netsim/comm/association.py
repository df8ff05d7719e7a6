"""User-centric AP-UE association from large-scale fading (seed 004, spec 3.2).

Each UE k associates with its strongest AP m* = argmax_m beta_mk and additionally with every
AP m whose gain satisfies beta_mk >= eta * beta_{m* k}; eta is a threshold relative to the best
AP ([C]: the paper tunes it for net-SE, value lost; default -10 dB).
"""

from __future__ import annotations

import numpy as np

__all__ = ["associate", "DEFAULT_ETA_DB"]

DEFAULT_ETA_DB: float = -10.0


def associate(beta: np.ndarray, eta_db: float = DEFAULT_ETA_DB) -> np.ndarray:
    """Association matrix A (spec 3.2).

    Parameters
    ----------
    beta : ndarray, shape [..., M, K], float64, linear large-scale gains
    eta_db : float
        Relative threshold [dB] (<= 0). ``-inf`` associates every AP with every UE.

    Returns
    -------
    assoc : ndarray, shape [..., M, K], bool
        assoc[m, k] = True iff AP m serves UE k. Every column has at least one True,
        and assoc[argmax_m beta[:, k], k] is True.
    """
    if eta_db > 0:
        raise ValueError(f"eta_db must be <= 0 dB, got {eta_db}")
    best = beta.max(axis=-2, keepdims=True)  # [..., 1, K]
    eta = 10.0 ** (eta_db / 10.0)
    return beta >= eta * best  # [..., M, K]
