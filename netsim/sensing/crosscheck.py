"""Cross-cluster consistency of one frame's acquisitions (issue 9, dense scenes).

Every sensing cluster estimates each user its APs see, not only its members, so in one frame a
user is placed by several clusters (its *views*). An acquisition can still pick a wrong set in
one cluster: the greedy choice ranks candidates by what they explain alone, and a ghost that
takes part of two users' echoes can beat a weak true user there (our dense family, seeds 13
and 17: a frame-1 acquisition put a member 4.3 m and 5.6 m off while other clusters of the same
frame placed it within 1 mm). The residual statistic cannot see it (the wrong set leaves as
little of the echo unexplained as correct sets of other clusters) but the cluster's own
likelihood can: the true set explained 2.7 k and 393 k nats more of those clusters' echo.

:func:`consistent_set` tests the other clusters' views of a cluster's users as alternatives on
the cluster's own data. With the per-path gains concentrated out, the log-likelihood of a set of
positions ``P`` is ``L f(P)`` with ``f(P) = sum_paths c_P^H H_PP^{-1} c_P``
(:func:`netsim.sensing.joint.joint_value`, ``L = n_snapshots / sigma^2``), so an alternative
is a better explanation of this cluster's echo exactly when its refined set has a larger
``f``. Each trial replaces one user's estimate by one of its views (or every user whose first
view disagrees, at once), refines the whole set by the ML step and is kept when it gains more
than ``nats``; the best trial is taken (refined once more, as an acquisition's final step) and
the trials repeated from it (a wrong acquisition can
misplace two users, each alone a smaller gain). A view that another user of the set already
occupies is not tried (two tracks on one echo explain nothing more).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.joint import joint_value, ml_step
from netsim.sensing.ml import MlProblem

__all__ = ["CROSS_MIN_M", "CROSS_NATS", "consistent_set"]

CROSS_MIN_M = 0.02  # a view farther than this from the cluster's estimate is an alternative [m]
# (tracked means within 3 sqrt(CRLB) or 1 cm; closer views are the same peak)
CROSS_NATS = 1.0  # an alternative must explain the cluster's echo this much better [nats]
# (both sets are local maxima of the same likelihood: the margin only absorbs the climbs' end error)


def consistent_set(
    prob: MlProblem,
    pos_m: ArrayLike,
    views_m: Sequence[ArrayLike],
    scale: float,
    h0_m: float,
    tol_m: float,
    min_dist_m: float = CROSS_MIN_M,
    nats: float = CROSS_NATS,
    rounds: int = 3,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], float]:
    """The most likely set among a cluster's estimates and other clusters' views of its users.

    Parameters
    ----------
    prob : MlProblem
        The cluster's ML problem (its echo-waveform correlation, region and AP exclusion).
    pos_m : array_like (V, 2) [m]
        The cluster's estimates of its V visible users (finite; a local maximum of the
        likelihood, as an acquisition or tracking step returns).
    views_m : sequence of V array_like (n_j, 2) [m]
        Other clusters' estimates of each user, the preferred first (e.g. from the user's own
        sensing cluster); ``n_j`` may be 0. Non-finite rows are ignored.
    scale : float [1 / W]
        ``L / sigma^2``: nats per unit of :func:`netsim.sensing.joint.joint_value`.
    h0_m, tol_m : float [m]
        First and last stencil half width of the ML step that refines each trial.
    min_dist_m : float [m]
        A view is an alternative when farther than this from the user's estimate and from
        every other user's.
    nats : float
        Gain in log-likelihood a trial needs to be kept.
    rounds : int
        Trials are repeated from the kept set at most this many times.

    Returns
    -------
    pos : ndarray (V, 2) [m]
        The kept set (``pos_m`` when no trial gains ``nats``).
    moved : ndarray (V,) bool
        Users farther than ``min_dist_m`` from their input estimate.
    gain : float [nats]
        Log-likelihood gained over ``pos_m`` (0 when unchanged).

    Raises
    ------
    ValueError
        On a non-finite ``pos_m``, a views list of the wrong length, or non-positive
        ``scale``, ``h0_m`` or ``tol_m``.
    """
    pos0 = np.array(pos_m, dtype=float).reshape(-1, 2)  # [V, 2]
    v = pos0.shape[0]
    if not np.all(np.isfinite(pos0)):
        raise ValueError("pos_m must be finite")
    if len(views_m) != v:
        raise ValueError(f"views_m needs one entry per user ({v}), got {len(views_m)}")
    if not (scale > 0 and h0_m > 0 and tol_m > 0):
        raise ValueError("scale, h0_m and tol_m must be positive")
    views = []
    for x in views_m:
        a = np.asarray(x, dtype=float).reshape(-1, 2)  # [n_j, 2]
        views.append(a[np.all(np.isfinite(a), axis=1)])
    pos = pos0.copy()
    f0 = float(joint_value(prob, pos))
    f_cur = f0
    if v == 0 or not np.isfinite(f0):
        return pos, np.zeros(v, dtype=bool), 0.0
    for _ in range(max(1, rounds)):
        trials = []  # [T] (V, 2) starting sets
        first = pos.copy()
        n_first = 0
        for j in range(v):
            for i, p in enumerate(views[j]):
                d = np.linalg.norm(pos - p, axis=1)  # [V] m
                if d[j] <= min_dist_m or np.any(np.delete(d, j) <= min_dist_m):
                    continue  # the same peak, or another user's echo
                start = pos.copy()
                start[j] = p
                trials.append(start)
                if i == 0:
                    first[j] = p
                    n_first += 1
        if n_first > 1:  # every user's preferred view at once (two users misplaced together)
            trials.append(first)
        if not trials:
            break
        best, f_best = None, f_cur
        for start in trials:
            new, _, _ = ml_step(prob, start, h0_m, tol_m, sweeps=3)
            f = float(joint_value(prob, new))
            if f > f_best:
                best, f_best = new, f
        if best is None or scale * (f_best - f_cur) <= nats:
            break
        fin, _, _ = ml_step(prob, best, 0.1 * h0_m, tol_m, sweeps=6)  # the kept trial to the acquisition's end
        f_fin = float(joint_value(prob, fin))
        pos, f_cur = (fin, f_fin) if f_fin > f_best else (best, f_best)
    moved = np.linalg.norm(pos - pos0, axis=1) > min_dist_m
    if not np.any(moved):
        return pos0, moved, 0.0
    return pos, moved, float(scale * (f_cur - f0))
