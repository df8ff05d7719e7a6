"""Statistical net-SE of single pilot moves: the tabu search's pre-screen (seed 004, spec 4.2).

The tabu search (:func:`netsim.comm.pilot_assignment.tabu_reassign`) ranks candidate moves
(user k to pilot s) by the Monte-Carlo proxy J, which costs an RZF solve per AP, draw and
candidate. This module gives a large-scale-only estimate J~ of the same quantity, so the search
can evaluate J exactly for the few moves J~ ranks best (the pre-screen, ``TabuConfig.n_exact``).
J~ is a ranking device, not a rate: the search still decides on the exact J.

Model, for an assignment ``colour`` with tau_p pilots (t = tau_p p_u), per-pair powers p_mk
(equal power P_max / |K_m| on the served pairs, zero elsewhere) and N antennas per AP:

    psi_mk   = t sum_{i: c_i = c_k} beta_mi + sigma^2                   (spec 3.5)
    gamma_mk = t beta_mk^2 / psi_mk,  err_mk = beta_mk - gamma_mk if a_mk else beta_mk
    A[k, i]  = sum_m a_mi sqrt(p_mi) sqrt(N t) beta_mk / sqrt(psi_mi)   for c_i = c_k

A[k, i] is the mean amplitude of UE i's stream at UE k when AP m beams along the MMSE estimate
hhat_mi (unit norm): E[h_mk^H hhat_mi] / sqrt(E||hhat_mi||^2), non-zero only for co-pilot
pairs (pilot contamination makes hhat_mi carry h_mk). Local RZF leaves of a served user's
channel the part its AP does not know (err_mk), and of an unserved user's all of it (beta_mk):

    SINR~_k = A[k, k]^2 / (sum_{i != k, c_i = c_k} A[k, i]^2 + sum_m P_m err_mk + sigma^2)
    J~      = (1 - tau_p / tau_c) sum_k log2(1 + SINR~_k)                       (eq. (4))

with P_m = sum_i p_mi the AP's total power. The desired and coherent terms are those of the
MR closed form of cell-free massive MIMO (Ngo et al., IEEE TWC 2017, with normalised
beamformers); the non-coherent term is the RZF-aware approximation above ([C]).
"""

from __future__ import annotations

import numpy as np

__all__ = ["screen_moves", "screen_dense", "group_terms"]


def screen_moves(
    beta: np.ndarray,
    assoc: np.ndarray,
    power: np.ndarray,
    n_ant: int,
    colour: np.ndarray,
    users: np.ndarray,
    pilots: np.ndarray,
    *,
    p_pilot_w: float,
    noise_w: float,
    tau_c: int,
) -> np.ndarray:
    """J~ (module docstring) of each single move ``users[b] -> pilots[b]`` from ``colour``.

    Parameters
    ----------
    beta : ndarray [M, K] float, linear large-scale gains
    assoc : ndarray [M, K] bool
    power : ndarray [M, K] float, W, per-pair downlink power (zero off the association)
    n_ant : int, antennas per AP N
    colour : ndarray [K] int, the current assignment
    users, pilots : ndarray [B] int, the moves (a pilot may be one no user has yet)
    p_pilot_w, noise_w : float, W
    tau_c : int, slots per coherence block

    Returns
    -------
    j : ndarray [B] float, bit/s/Hz, the statistical net sum-SE of each moved assignment

    A move that keeps tau_p changes the terms of the users on its two pilots only (psi_mk
    depends on k through its pilot, A[k, i] is non-zero for co-pilot pairs only): those are
    recomputed per move from the current per-user terms (:func:`_moves_same_length`). Moves
    that change tau_p change every term and take the full form (:func:`screen_dense`).
    """
    colour = np.asarray(colour, dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    pilots = np.asarray(pilots, dtype=np.int64)
    if users.shape != pilots.shape or users.ndim != 1:
        raise ValueError(f"users {users.shape} and pilots {pilots.shape} must be equal 1-d")
    n_p = int(max(colour.max(initial=0), pilots.max(initial=0))) + 1
    counts = np.bincount(colour, minlength=n_p)  # [P] users per pilot
    old = colour[users]  # [B]
    same = (counts[old] > 1) & (counts[pilots] > 0) & (pilots != old)  # [B] tau_p kept
    j = np.empty(users.shape[0])
    kw = dict(p_pilot_w=p_pilot_w, noise_w=noise_w, tau_c=tau_c)
    if not same.all():
        j[~same] = screen_dense(beta, assoc, power, n_ant, colour, users[~same], pilots[~same],
                                **kw)
    if same.any():
        j[same] = _moves_same_length(beta, assoc, power, n_ant, colour, counts, users[same],
                                     pilots[same], **kw)
    return j


def _log_terms(beta: np.ndarray, assoc: np.ndarray, power: np.ndarray, n_ant: int,
               c: np.ndarray, t: np.ndarray, noise_w: float) -> np.ndarray:
    """log2(1 + SINR~_k) [B, K] of the assignments ``c [B, K]`` with t = tau_p p_u ``[B]``."""
    n_b, n_ue = c.shape
    n_ap = beta.shape[0]
    n_p = int(c.max(initial=0)) + 1
    onehot = (c[:, None, :] == np.arange(n_p)[None, :, None]).astype(float)  # [B, P, K]
    psum = beta[None] @ np.swapaxes(onehot, 1, 2)  # [B, M, P] sum of beta over a pilot's users
    own = np.broadcast_to(c[:, None, :], (n_b, n_ap, n_ue))  # [B, M, K]
    psi = t[:, None, None] * np.take_along_axis(psum, own, axis=2) + noise_w  # [B, M, K]
    gamma = t[:, None, None] * beta**2 / psi  # [B, M, K]
    err = np.where(assoc, beta - gamma, beta)  # [B, M, K]
    coef = np.where(assoc, np.sqrt(power * n_ant * t[:, None, None] / psi), 0.0)  # [B, M, K]
    amp = beta.T[None] @ coef  # [B, K(receiver k), K(stream i)] A[k, i] before the pilot mask
    cp = c[:, :, None] == c[:, None, :]  # [B, K, K] co-pilot pairs
    a2 = np.where(cp, amp * amp, 0.0)  # [B, K, K]
    sig = np.diagonal(a2, axis1=1, axis2=2)  # [B, K]
    contam = a2.sum(axis=-1) - sig  # [B, K]
    residual = power.sum(axis=1) @ err  # [B, K] sum_m P_m err_mk
    return np.log2(1.0 + sig / (contam + residual + noise_w))  # [B, K]


def screen_dense(
    beta: np.ndarray,
    assoc: np.ndarray,
    power: np.ndarray,
    n_ant: int,
    colour: np.ndarray,
    users: np.ndarray,
    pilots: np.ndarray,
    *,
    p_pilot_w: float,
    noise_w: float,
    tau_c: int,
) -> np.ndarray:
    """:func:`screen_moves` on the full [B, K, K] grid, for any moves (also those changing
    tau_p); the reference of the incremental path. Same arguments, returns [B]."""
    colour = np.asarray(colour, dtype=np.int64)
    users = np.asarray(users, dtype=np.int64)
    pilots = np.asarray(pilots, dtype=np.int64)
    n_b = users.shape[0]
    c = np.repeat(colour[None], n_b, axis=0)  # [B, K]
    c[np.arange(n_b), users] = pilots
    s = np.sort(c, axis=1)
    tau = 1 + np.count_nonzero(np.diff(s, axis=1), axis=1)  # [B] distinct pilots
    terms = _log_terms(beta, assoc, power, n_ant, c, tau * p_pilot_w, noise_w)  # [B, K]
    return (1.0 - tau / tau_c) * terms.sum(axis=-1)  # [B]


def group_terms(beta_t: np.ndarray, served: np.ndarray, power_t: np.ndarray, n_ant: int,
                p_total: np.ndarray, grp: np.ndarray, t, noise_w: float) -> np.ndarray:
    """log2(1 + SINR~_k) [..., G] of the users ``grp`` when each row of ``grp`` is the whole set
    of one pilot's users (module docstring; the per-group form both the tabu pre-screen and the
    GNN pilot refinement, :mod:`netsim.comm.power.gnn_refine`, evaluate).

    Parameters
    ----------
    beta_t : ndarray [K, M] float, beta^T (linear LSF gains)
    served : ndarray [K, M] bool, a^T (the association)
    power_t : ndarray [K, M] float, W, p^T (per-pair downlink power, zero off the association)
    n_ant : int, antennas per AP N
    p_total : ndarray [M] float, W, P_m = sum_i p_mi
    grp : ndarray [..., G] int, each row the users of one pilot (-1 = empty slot)
    t : float or ndarray [...], W, tau_p p_u of each row's assignment (one value for all rows,
        or one per row: rows of assignments with different tau_p in one call)
    noise_w : float, W

    Returns
    -------
    terms : ndarray [..., G] float, bit/s/Hz (0 in empty slots); the group's T_g is the sum
    over the last axis.
    """
    t = np.asarray(t, dtype=float)[..., None]  # [..., 1] (broadcast over G / M)
    valid = grp >= 0  # [..., G]
    idx = np.where(valid, grp, 0)  # [..., G]
    bt = np.where(valid[..., None], beta_t[idx], 0.0)  # [..., G, M] beta_mk of the members
    psi = t * bt.sum(axis=-2) + noise_w  # [..., M] psi of the pilot at each AP
    # a_mk sqrt(p_mk N t) of the members (p = 0 off the association)
    e = np.where(valid[..., None], np.sqrt(power_t[idx] * (n_ant * t)[..., None]), 0.0)  # [..., G, M]
    amp = (bt / np.sqrt(psi)[..., None, :]) @ np.swapaxes(e, -1, -2)  # [..., G(k), G(i)] A
    a2 = amp * amp
    sig = np.diagonal(a2, axis1=-2, axis2=-1)  # [..., G]
    contam = a2.sum(axis=-1) - sig  # [..., G] (empty slots contribute zeros)
    err = np.where(served[idx], bt - t[..., None] * bt**2 / psi[..., None, :], bt)  # [..., G, M]
    residual = err @ p_total  # [..., G] sum_m P_m err_mk
    return np.where(valid, np.log2(1.0 + sig / (contam + residual + noise_w)), 0.0)  # [..., G]


def _moves_same_length(beta, assoc, power, n_ant, colour, counts, users, pilots, *,
                       p_pilot_w, noise_w, tau_c) -> np.ndarray:
    """J~ [B] of moves that keep tau_p: the current per-pilot sums of the users' terms, with
    the move's old pilot (without the mover) and new pilot (with it) recomputed."""
    tau = int((counts > 0).sum())
    t = tau * p_pilot_w
    beta_t, served, power_t = beta.T, assoc.T, power.T  # [K, M]
    p_total = power.sum(axis=1)  # [M]
    # members of each pilot, padded: mem[p, g] (-1 = empty slot), one spare slot per pilot
    order = np.argsort(colour, kind="stable")  # [K] users grouped by pilot
    start = np.cumsum(counts) - counts  # [P]
    slot = np.arange(colour.size) - start[colour[order]]  # [K] place within its pilot
    mem = np.full((counts.size, int(counts.max()) + 1), -1, dtype=np.int64)  # [P, G]
    mem[colour[order], slot] = order
    per_pilot = group_terms(beta_t, served, power_t, n_ant, p_total, mem, t, noise_w).sum(axis=-1)  # [P]
    old = colour[users]  # [B]
    grp = np.stack([mem[old], mem[pilots]], axis=1)  # [B, 2, G] old pilot, new pilot
    grp[:, 0][grp[:, 0] == users[:, None]] = -1  # the mover leaves its old pilot
    grp[:, 1, -1] = users  # and joins the new one (the spare slot)
    new = group_terms(beta_t, served, power_t, n_ant, p_total, grp, t, noise_w).sum(axis=(1, 2))  # [B]
    total = per_pilot.sum() - per_pilot[old] - per_pilot[pilots] + new  # [B]
    return (1.0 - tau / tau_c) * total
