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
  costs less than ``swap_nats`` (two users' gates overlap: the frames cannot tell who is who);
* its estimate also lies inside the gate of an anchor left without a trusted match (two
  previous estimates on one echo: either identity may own it).

An anchor may also stay unmatched: each has a "no estimate" option at the gate's cost, so an
anchor far from every estimate cannot take another user's. The caller resolves the flagged
anchors (:func:`resolve_flagged`: a second, ungated pass with a sigma floor, the only echo left,
else the uplink).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.peaks import min_cost_assignment

__all__ = ["GATE_SIGMAS", "MOVE_NATS", "PROFILE_NATS", "SIGMA_FLOOR_M", "SWAP_NATS", "gated_association",
           "profile_cost", "profile_permutation", "resolve_flagged"]

GATE_SIGMAS = 3.0  # a match farther than this many sigma from its anchor is not trusted
SWAP_NATS = 4.5  # an exchange of two identities cheaper than this is ambiguous (90:1)
SIGMA_FLOOR_M = 0.1  # sigma of a flagged anchor in the second pass [m]
PROFILE_NATS = 25.0  # an identity exchange the uplink gain profiles favour by this much is made
# (a false exchange of correct tracks needs a 7-sigma measurement error: sqrt(2 x 25), see below)
MOVE_NATS = 5.0  # charged per user whose track an exchange changes (prefer the fewest moves)
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
    # an estimate inside the gate of an anchor left without a trusted match is claimed twice:
    # two tracks on one echo (a frame-0 acquisition gave one user's peak to two identities; our
    # dense family, seed 1: the match kept the wrong one and the other took the leftover peak)
    orphan = np.flatnonzero(col < 0)
    orphan = np.concatenate([orphan, ri[~inside[ri, ci]]])  # [O] unmatched or matched outside
    if orphan.size:
        shared = np.any(inside[orphan][:, ci], axis=0)  # [R] matched estimate in an orphan's gate
        flagged[ri[shared]] = True
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


def profile_cost(
    meas_db: ArrayLike,
    pred_db: ArrayLike,
    sigma_db: float,
    use: ArrayLike,
) -> NDArray[np.float64]:
    """Negative log-likelihood of each user's uplink gain profile at each candidate position.

    The uplink gives the CPU, per user ``k`` and AP ``a``, an estimate of the large-scale gain
    ``g_ka`` [dB] (its pilot's received power, which carries the user's identity); a position
    ``p`` predicts ``G_a(p)`` [dB] through the path-loss model. With Gaussian errors in dB,

    ``c_kp = sum_a use_ka (g_ka - G_a(p))^2 / (2 sigma^2)``  [nats].

    Parameters
    ----------
    meas_db : array_like (K, A) [dB]
        Measured gains of the K users at the A APs.
    pred_db : array_like (P, A) [dB]
        Gains the model predicts at the P candidate positions.
    sigma_db : float [dB], > 0
        Standard deviation of a measured gain about the model (measurement and model error).
    use : array_like (K, A) bool
        The APs that take part for each user (e.g. those that hear it best).

    Returns
    -------
    ndarray (K, P) [nats]
    """
    g = np.asarray(meas_db, dtype=float)  # [K, A]
    h = np.asarray(pred_db, dtype=float)  # [P, A]
    u = np.asarray(use, dtype=bool)  # [K, A]
    if g.ndim != 2 or h.ndim != 2 or g.shape[1] != h.shape[1] or u.shape != g.shape:
        raise ValueError("meas_db (K, A), pred_db (P, A) and use (K, A) must agree in A")
    if not sigma_db > 0:
        raise ValueError("sigma_db must be positive")
    if not (np.all(np.isfinite(g[u])) and np.all(np.isfinite(h[:, np.any(u, axis=0)]))):
        raise ValueError("gains used must be finite")
    diff = np.where(u[:, None, :], g[:, None, :] - np.where(np.isfinite(h), h, 0.0)[None], 0.0)  # [K, P, A]
    return np.sum(diff * diff, axis=-1) / (2.0 * sigma_db * sigma_db)


def profile_permutation(cost: ArrayLike, nats: float = PROFILE_NATS,
                        move_nats: float = MOVE_NATS) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Identity exchanges among tracked users that their uplink gain profiles demand.

    ``cost`` [K, K] is :func:`profile_cost` of the K users at their own tracks' positions (the
    diagonal is the current assignment). The ML assignment (Hungarian), with ``move_nats``
    charged for every user that changes track (of near-equal assignments the one that moves
    the fewest: two users a few decimetres apart have profiles the measurement cannot tell
    apart, and a swap elsewhere must not drag them along), is split into its cycles; a cycle
    is made only when it lowers the cost by at least ``nats`` (a swap of two tracks, or a
    longer permutation: each of its users takes the position of the next).

    For two correct tracks with profile difference ``d_a`` and measurement errors ``n``, the
    exchange saves ``-(D + sum_a d_a (n_ia - n_ja) / sigma^2)`` nats with ``D = sum d_a^2 / sigma^2``:
    a Gaussian of mean ``-D`` and standard deviation ``sqrt(2 D)``, whose probability of
    exceeding ``nats`` is largest at ``D = nats`` and needs ``z >= sqrt(2 nats)`` (7.1 sigma
    at 25 nats).

    Returns
    -------
    perm : ndarray (K,) int
        User ``k`` takes the track of user ``perm[k]`` (``perm[k] == k``: unchanged).
    saved : ndarray (K,) [nats]
        The saving of the cycle each user is in (0 where unchanged).
    """
    c = np.asarray(cost, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or not np.all(np.isfinite(c)):
        raise ValueError("cost must be a finite (K, K) matrix")
    k = c.shape[0]
    perm = np.arange(k)
    saved = np.zeros(k)
    if k < 2:
        return perm, saved
    pen = c + move_nats * (1.0 - np.eye(k))  # [K, K] nats, the charged cost
    if np.all(np.diag(pen) <= pen.min(axis=1)):
        return perm, saved  # each user's own track is its row minimum: no exchange can pay
    ri, ci = min_cost_assignment(pen)
    best = np.arange(k)
    best[ri] = ci
    seen = np.zeros(k, dtype=bool)
    for start in range(k):
        if seen[start] or best[start] == start:
            seen[start] = True
            continue
        cyc = [start]
        seen[start] = True
        nxt = int(best[start])
        while nxt != start:
            cyc.append(nxt)
            seen[nxt] = True
            nxt = int(best[nxt])
        idx = np.array(cyc)
        gain = float(np.sum(c[idx, idx]) - np.sum(c[idx, best[idx]]))
        if gain >= nats:
            perm[idx] = best[idx]
            saved[idx] = gain
    return perm, saved


def confirm_identities(est_m: np.ndarray, prev_m: np.ndarray, win_m: np.ndarray) -> np.ndarray:
    """Identities of a kept local confirmation (frame 1), by distance to the previous estimates.

    The echo likelihood and the residual are symmetric under exchanging two users' positions, so
    when users' windows overlap (a pair closer than frame 0's pre-sync uncertainty) the order in
    which the local climbs ended is no evidence of who is who; the previous estimates are. Each
    estimate is assigned to a user by the minimum of ``sum |e_j - p_i|^2 / w_i^2`` over the
    assignments (Hungarian), an estimate outside user ``i``'s window not allowed for ``i``, so
    only users with overlapping windows can exchange. (Our close-pair family, seed 3: a pair
    0.50 m apart, frame-0 estimates 0.30-0.32 m off with sqrt(CRLB) 0.5-0.7 m, came out of frame
    1's climbs exchanged, each 0.5 m off and tracked so with no event.)

    Parameters
    ----------
    est_m : ndarray (V, 2) [m]
        The local answer, row ``j`` the estimate found in user ``j``'s window.
    prev_m : ndarray (V, 2) [m]
        The users' previous estimates (the windows' centres).
    win_m : ndarray (V,) [m]
        Half widths of the users' (square) windows, > 0.

    Returns
    -------
    ndarray (V,) int
        ``perm``: user ``i`` takes estimate ``perm[i]`` (the identity where nothing is gained).
    """
    est = np.asarray(est_m, dtype=float)
    prev = np.asarray(prev_m, dtype=float)
    win = np.asarray(win_m, dtype=float)
    v = est.shape[0]
    if est.shape != (v, 2) or prev.shape != (v, 2) or win.shape != (v,):
        raise ValueError(f"confirm_identities: est {est.shape}, prev {prev.shape}, win {win.shape}: "
                         "need (V, 2), (V, 2), (V,)")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(prev)) and np.all(win > 0)):
        raise ValueError("confirm_identities: estimates and previous estimates must be finite, windows > 0")
    ident = np.arange(v)
    if v < 2:
        return ident
    d = est[None, :, :] - prev[:, None, :]  # [user i, estimate j, 2]
    inside = np.all(np.abs(d) <= win[:, None, None], axis=2)
    if np.count_nonzero(inside) == v:  # every estimate in its own window only: nothing to decide
        return ident
    cost = np.where(inside, np.sum(d ** 2, axis=2) / win[:, None] ** 2, 1e12)
    rows, cols = min_cost_assignment(cost)
    perm = ident.copy()
    perm[rows] = cols
    # keep the identity unless the exchange is strictly cheaper (ties stay as they are)
    if not cost[ident, perm].sum() < cost[ident, ident].sum() - 1e-12:
        return ident
    return perm
