"""Distributed regularised zero-forcing beamforming (seed 004, spec 3.6).

Each AP m computes unit-norm beamformers for its associated UEs K_m from its local MMSE
estimates and the statistics of everything else (Foundations of user-centric cell-free
massive MIMO, local P-RZF; exact form [C]):

    Hm      = hhat[m, K_m, :].T                                   (N x n_m)
    a_m     = sum_{i in K_m} c_mi + sum_{i not in K_m} beta_mi + sigma^2 / p_u
            = sum_i err_var[m, i] + sigma^2 / p_u
    Wbar_m  = (Hm Hm^H + a_m I_N)^{-1} Hm    (= Hm (Hm^H Hm + a_m I)^{-1})
    w[m,k]  = Wbar_m[:, k] / ||Wbar_m[:, k]||,   zero for k not in K_m.

The dense form used here keeps all K columns of hhat[m] (zero for unassociated UEs): zero
columns do not change Hm Hm^H and give zero beamformers, so it equals the ragged form
exactly, and it vectorises over APs and any leading batch axes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rzf_regularisation", "rzf_beamformers"]


def rzf_regularisation(
    err_var: np.ndarray, noise_w: float, p_pilot_w: float
) -> np.ndarray:
    """a_m = sum_i err_var[m, i] + sigma^2 / p_u, shape [..., M] (spec 3.6 [C])."""
    return err_var.sum(axis=-1) + noise_w / p_pilot_w  # [..., M]


def rzf_beamformers(
    hhat: np.ndarray,
    assoc: np.ndarray,
    regularisation: np.ndarray | float,
) -> np.ndarray:
    """Unit-norm distributed RZF beamformers (spec 3.6).

    Parameters
    ----------
    hhat : ndarray, shape [..., M, K, N], complex, estimated local channels (zero where
        AP m does not serve UE k)
    assoc : ndarray, shape [M, K] or [..., M, K], bool
    regularisation : float or ndarray broadcastable to [..., M]
        a_m, see :func:`rzf_regularisation` (dimensionless, same scale as beta). a_m -> 0
        gives zero forcing among the APs' own UEs when n_m <= N.

    Returns
    -------
    w : ndarray, shape [..., M, K, N], complex128
        ||w[m, k]|| = 1 where assoc[m, k], zero elsewhere.
    """
    n_ant = hhat.shape[-1]
    hm = np.ascontiguousarray(np.swapaxes(hhat, -1, -2))  # [..., M, N, K]
    gram = hm @ np.conj(hhat)  # [..., M, N, N] = Hm Hm^H
    reg = np.asarray(regularisation, dtype=float)[..., None, None]  # [..., M, 1, 1]
    mat = gram + reg * np.eye(n_ant)  # [..., M, N, N]
    wbar = np.linalg.solve(mat, hm)  # [..., M, N, K]
    w = np.swapaxes(wbar, -1, -2)  # [..., M, K, N]
    norm = np.linalg.norm(w, axis=-1, keepdims=True)  # [..., M, K, 1]
    ok = assoc[..., None] & (norm > 0)
    return np.where(ok, w / np.where(norm > 0, norm, 1.0), 0.0)  # [..., M, K, N]
