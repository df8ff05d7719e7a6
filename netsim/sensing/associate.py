"""Identity of acquired users: gated matching of a frame's estimates to earlier estimates.

An acquisition returns positions without identities. The first frame takes them from the uplink
(each user registers with its serving APs); a later acquisition (frame 1, confirming frame 0)
matches its estimates ``e_j`` to the users' previous estimates ``a_k`` (the anchors), whose
uncertainty is an isotropic Gaussian of standard deviation ``sigma_k`` (a third of the track's
window, :mod:`netsim.sim.sensing`). With the negative log-likelihood

``c_kj = |e_j - a_k|^2 / (2 sigma_k^2)``  [nats]

the ML identity assignment minimises ``sum_k c_k,j(k)`` (Hungarian,
:func:`netsim.sensing.peaks.min_cost_assignment`). A match is *not trusted* (flagged) when

* it lies outside the gate, ``|e_j - a_k| > gate sigma_k`` (a frame-0 ghost or a track that
  moved more than its uncertainty), or the anchor got no estimate;
* exchanging it with another matched anchor, or with an unclaimed estimate inside the gate,
  costs less than ``swap_nats`` (two users' gates overlap: the frames cannot tell who is who).

An anchor may also stay unmatched: each has a "no estimate" option at the gate's cost, so an
anchor far from every estimate cannot take another user's. The caller resolves the flagged
anchors (:func:`resolve_flagged`: a second, ungated pass with a sigma floor, the only echo left,
else the uplink).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.peaks import min_cost_assignment

__all__ = ["GATE_SIGMAS", "SIGMA_FLOOR_M", "SWAP_NATS", "gated_association", "resolve_flagged"]

GATE_SIGMAS = 3.0  # a match farther than this many sigma from its anchor is not trusted
SWAP_NATS = 4.5  # an exchange of two identities cheaper than this is ambiguous (90:1)
SIGMA_FLOOR_M = 0.1  # sigma of a flagged anchor in the second pass [m]
_BIG = 1e15  # cost cap [nats] (ghost anchors metres off at mm sigmas reach 1e7 - 1e9)


def gated_association(
    est_m: ArrayLike,
    anchors_m: ArrayLike,
    sigma_m: ArrayLike,
    gate: float = GATE_SIGMAS,
    swap_nats: float = SWAP_NATS,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """ML assignment of estimates to anchors with a gate and an exchange test (module docstring).

    Parameters
    ----------
    est_m : array_like (J, 2) [m]
        Estimates of the frame (finite).
    anchors_m : array_like (K, 2) [m]
        Previous estimates of the K users (finite).
    sigma_m : array_like (K,) [m], > 0
        Their standard deviation per axis.
    gate : float
        Gate radius in sigmas.
    swap_nats : float
        Exchange cost below which two matches are ambiguous.

    Returns
    -------
    col : ndarray (K,) int
        Estimate matched to each anchor (-1: none).
    flagged : ndarray (K,) bool
        Matches not trusted (outside the gate, unmatched, or exchangeable within ``swap_nats``).
    """
    e = np.asarray(est_m, dtype=float).reshape(-1, 2)  # [J, 2]
    a = np.asarray(anchors_m, dtype=float).reshape(-1, 2)  # [K, 2]
    s = np.asarray(sigma_m, dtype=float).reshape(-1)  # [K]
    if s.shape[0] != a.shape[0]:
        raise ValueError("sigma_m needs one value per anchor")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a)) and np.all(s > 0)):
        raise ValueError("estimates and anchors must be finite and sigma_m positive")
    k, j = a.shape[0], e.shape[0]
    col = np.full(k, -1, dtype=np.int64)
    flagged = np.ones(k, dtype=bool)
    if k == 0 or j == 0:
        return col, flagged
    d2 = np.sum(np.square(a[:, None] - e[None]), axis=-1)  # [K, J] m^2
    cost = d2 / (2.0 * s[:, None] ** 2)  # [K, J] nats
    # one "no estimate" column per anchor at the gate's cost: an anchor with no estimate inside
    # its gate takes it rather than another user's estimate (far anchors cannot distort the rest)
    miss = min(0.5 * gate * gate, _BIG) if np.isfinite(gate) else _BIG
    dummy = np.full((k, k), 2.0 * _BIG)
    np.fill_diagonal(dummy, miss)
    ri, ci = min_cost_assignment(np.concatenate([np.minimum(cost, _BIG), dummy], axis=1))  # [K, J + K]
    real = ci < j
    ri, ci = ri[real], ci[real]
    col[ri] = ci
    inside = cost <= 0.5 * gate * gate  # [K, J]: |e - a| <= gate sigma
    flagged[:] = True
    flagged[ri] = ~inside[ri, ci]
    used = np.zeros(j, dtype=bool)
    used[ci] = True
    for x in range(ri.size):
        kx, jx = ri[x], ci[x]
        for y in range(x + 1, ri.size):  # exchange with another matched anchor
            ky, jy = ri[y], ci[y]
            if cost[kx, jy] + cost[ky, jx] - cost[kx, jx] - cost[ky, jy] < swap_nats:
                flagged[kx] = flagged[ky] = True
        free = ~used & inside[kx]  # an unclaimed estimate inside the gate
        if np.any(cost[kx, free] - cost[kx, jx] < swap_nats):
            flagged[kx] = True
    return col, flagged


def resolve_flagged(
    col: ArrayLike,
    flagged: ArrayLike,
    est_m: ArrayLike,
    anchors_m: ArrayLike,
    sigma_m: ArrayLike,
    uplink_m: ArrayLike,
    floor_m: float = SIGMA_FLOOR_M,
    no_track: ArrayLike | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Identities of the flagged anchors.

    The trusted matches stay. Flagged anchors in ``no_track`` (their previous estimate was no
    detection: a guess, not a track) take their identity from the uplink first, as a user's
    first acquisition does: they claim the unclaimed estimates nearest to their uplink
    positions (Hungarian on distance) before the others are matched (a guess metres off would
    otherwise take another user's estimate in the ungated pass: our users in the seed-003 room,
    frame 0 before the first sync correction, 2-8 m off, permuted three identities for good). The flagged anchors and the unclaimed estimates are matched again
    by likelihood without a gate, with each sigma raised to ``floor_m`` (the previous frame's
    bound can be far too small: frame 0 senses before the first sync correction, its estimates
    were measured up to 0.3 m off for a bound of millimetres); a match of this second pass is kept
    when exchanging it with any other of the pass costs at least ``SWAP_NATS``. If then exactly
    one anchor and one estimate are left they belong together (every user the cluster senses is
    registered with it). Anchors still left take the unclaimed estimates nearest to their uplink
    positions (Hungarian on distance): the uplink's registration, the model of the first frame.

    Parameters
    ----------
    col, flagged : array_like (K,)
        From :func:`gated_association`.
    est_m : array_like (J, 2) [m]
    anchors_m : array_like (K, 2) [m]
    sigma_m : array_like (K,) [m]
    uplink_m : array_like (K, 2) [m]
        Positions standing for the uplink registration (used only for ``no_track`` anchors
        and in the last case).
    floor_m : float [m]
    no_track : array_like (K,) bool or None
        Anchors without a track (None: all have one).

    Returns
    -------
    col : ndarray (K,) int
        Estimate of each anchor (-1: none).
    by_uplink : ndarray (K,) bool
        Anchors whose identity came from the uplink.
    """
    c = np.array(col, dtype=np.int64)
    f = np.asarray(flagged, dtype=bool)
    e = np.asarray(est_m, dtype=float).reshape(-1, 2)
    by_uplink = np.zeros(c.shape[0], dtype=bool)
    fl = np.flatnonzero(f)
    if fl.size == 0:
        return c, by_uplink
    claimed = set(int(x) for x in c[~f] if x >= 0)
    free = np.array([x for x in range(e.shape[0]) if x not in claimed], dtype=np.int64)
    c[fl] = -1
    if free.size == 0:
        return c, by_uplink
    if no_track is not None and np.any(np.asarray(no_track, dtype=bool)[fl]):
        guess = fl[np.asarray(no_track, dtype=bool)[fl]]  # [G] flagged anchors without a track
        up = np.asarray(uplink_m, dtype=float).reshape(-1, 2)[guess]  # [G, 2]
        ri, ci = min_cost_assignment(np.linalg.norm(up[:, None] - e[free][None], axis=-1))
        c[guess[ri]] = free[ci]
        by_uplink[guess] = True
        free = np.setdiff1d(free, free[ci])
        fl = np.setdiff1d(fl, guess)
        if fl.size == 0 or free.size == 0:
            return c, by_uplink
    a = np.asarray(anchors_m, dtype=float).reshape(-1, 2)[fl]  # [F, 2]
    s = np.maximum(np.asarray(sigma_m, dtype=float).reshape(-1)[fl], floor_m)  # [F]
    sub, sub_fl = gated_association(e[free], a, s, gate=np.inf)
    ok = ~sub_fl & (sub >= 0)
    c[fl[ok]] = free[sub[ok]]
    left = fl[~ok]
    free = np.setdiff1d(free, free[sub[ok]])
    if left.size == 0 or free.size == 0:
        return c, by_uplink
    if left.size == 1 and free.size == 1:
        c[left[0]] = free[0]
        return c, by_uplink
    up = np.asarray(uplink_m, dtype=float).reshape(-1, 2)[left]  # [F', 2]
    ri, ci = min_cost_assignment(np.linalg.norm(up[:, None] - e[free][None], axis=-1))
    c[left[ri]] = free[ci]
    by_uplink[left] = True
    return c, by_uplink
