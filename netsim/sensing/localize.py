"""One sensing cluster's localisation: MUSIC candidates, ML ranking and refinement, detection.

Pipeline (:func:`localize_cluster`)
-----------------------------------
* **Acquisition** (no prediction): refined MUSIC candidates over the region
  (:func:`netsim.sensing.acquire.candidates`), then greedy selection by the ML gain on the
  echo-waveform correlation, each pick's echo explained away (Schur complement,
  :class:`netsim.sensing.ml.MlProblem`) before the next: a ridge or grating-lobe ghost of a user
  already taken explains nothing new, so it cannot outrank a weaker true user.
* **Tracking** (predictions given): the ML step starts from each prediction; only users whose
  echo is not detected there get a search, in their own window (MUSIC candidates in the box,
  others projected out, ranked by ML gain), and the window's answer gets the acquisition's
  ambiguity check. No full-grid search for all.
* **ML step** (:func:`netsim.sensing.joint.ml_step`): per-user sweeps kept monotone in the joint
  likelihood, then users whose echo signatures are coupled (a close pair in one resolution
  cell) are refined jointly.
* **Detection**: per path (tx m, rx m'), the ML gain of the user at its estimate against the
  other users, in units of its noise-only mean ``sigma^2 / L``, is Exp(1) under noise; a user is
  detected when at least ``need_paths`` paths, and at least ``REL_PATHS`` of the paths of the
  cluster's best user, exceed ``snr_threshold`` (a single AP's range ridge or grating lobe lights
  one path, a crossing of two APs' ridges about four of nine, a true user every path whose RCS
  draw is not faded).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.acquire import EchoSubspace, candidates, echo_subspace, unexplained_echo
from netsim.sensing.config import IsacGeometry
from netsim.sensing.echo import EchoStatistics
from netsim.sensing.joint import COUPLED, coupling, ml_step
from netsim.sensing.ml import MlImageCache, MlProblem
from netsim.sensing.optimize import maximize_2d
from netsim.sensing.peaks import local_max_3x3, min_cost_assignment

__all__ = ["ClusterResult", "localize_cluster", "mirror_points"]

REL_PATHS = 0.6  # a detection lights at least this fraction of the best user's paths
NEAR_AP_M = 3.0  # acquisition adds a fine grid within this distance of every cluster AP [m],
# or within step D / lambda where that is nearer (beyond it every path's focal spot is wider than the step)
NEAR_AP_STEP_M = 0.04  # its step [m]
ROUND_TOL_M = 1e-5  # the ML step of each successive-cancellation round stops here (the final one at tol_m):
# a round's estimates only shape the next residual image and the pick
CLEAN_RESIDUAL = 0.4  # a fast acquisition must leave less of a signal direction unexplained (stricter than
# frame 1's confirmation, netsim.sim.sensing.CONFIRM_RESIDUAL 0.5: correct sets measured 0.03-0.32 on campus
# and the family's frame 0, a missed user 0.99-1.0, a ghost in place of a weak user 0.43-0.65)
SUB_MIN_ANTENNAS = 16  # acquisition first images arrays of at least this many elements with their central
# half only: its candidate images (ML image, residual images) cost a quarter per point and their peaks are
# about twice as wide, so its grids are coarser by the aperture ratio (1/16 to 1/20 of the cost); every
# candidate is still climbed, chosen and refined on the full aperture, and the answer is kept only when
# clean (_clean_set), else the cluster is acquired again on full-aperture images
BOX_CANDIDATES = 4  # a boxed first image proposes this many candidates per user (+4; the whole region's: 8, +8):
# its images hold far fewer spurious peaks, and climbing candidates is most of an acquisition's cost
BOX_MAX_FRACTION = 0.5  # acquisition first images inside the users' boxes (localize_cluster(boxes_m=)) only when
# their areas add up to less than this fraction of the region (else that pass would save little)
RESCUE = True  # an unclean first acquisition pass is searched again (_rescue) before the costlier passes
RESCUE_MAX_USERS = 4  # ... when the cluster sees at most this many users (campus 24 users, clusters of 5-10:
# the rescue found no clean set in 9 of 13 and made frame 0 1.6x costlier; 12 users, clusters of 2-4: it
# found all 12 users in frame 0 where the passes found 10, at 0.3-0.9 CPU-s instead of 1.5-3 s per cluster)
RIDGE_SPAN = (0.5, 2.0)  # _ridge_candidates samples each point's radial line from r / 2 to 2 r ...
RIDGE_SAMPLES = 96  # ... at this many log-spaced ranges (1.5 % of r apart) ...
RIDGE_KEEP = 3  # ... and climbs the strongest of its 1-D local maxima
PAIR_SETS = 30000  # _pair_swaps evaluates about this many sets per pass (the candidates of best single-swap
# value first; campus 12 users: 3 users to place, 120-140 candidates, all of them within the budget)
PLACED_MAX_NEW = 2  # localize_cluster(known_m=) searches around the placed users only when at most this many
# users are left to find (campus 24 users: with 3-10 left the known pass failed in most clusters and the
# passes without it were paid on top, frame 0 50 -> 92 CPU-s)
SET_CHUNK = 16384  # sets per vectorised _joint_value call of the pair swaps (memory: B M^2 J^2 complex)
TRACK_TOL_M = 1e-6  # final stencil half width of the tracking ML step's per-user sweeps [m]
TRACK_STOP = 0.01  # its sweeps stop once no user moved by this fraction of its window
FREE_COUPLING = 0.05  # tracking also estimates a non-member whose echo couples to a member's this much
TRACK_MEMBER_GROUPS = True  # tracking's joint step only for coupled groups that hold a member
TRACK_BOX_OTHERS = False  # tracking's sweeps keep a freed non-member inside its own track window
TRACK_GROUP_STOP = True  # tracking's sweeps stop on the users that do not get the joint step
TRACK_NAT_STOP = True  # tracking's sweeps end each climb inside its quadratic zone (in nats)
TRACK_WANT_STOP = True  # tracking's sweeps stop on the members' moves only
TRACK_FIRST_STENCIL = 1.0 / 8.0  # the tracking ML step's first stencil is this fraction of the track window
# (clipped to [1 mm, grid step]): the window is a 3-sigma-plus-motion bound (campus: 40-50 mm) while the
# prediction misses the peak by 0.3-7 mm, and a peak that narrow is not quadratic over a window-wide
# stencil (its Newton trial failed twice per climb before the stencil reached a few mm)
TRACK_POST_SEARCH = False  # the ML steps after a tracking window search take the same options (off: isac_paper
# without sync, 12 frames, its median error / sqrt(CRLB) went 0.72 -> 2.33)


@dataclass(frozen=True)
class ClusterResult:
    """Output of :func:`localize_cluster`.

    Attributes
    ----------
    positions_m : ndarray (K, 2) [m]
        Estimates, in the order of ``predicted`` (or of ``anchors`` after acquisition).
    detected : ndarray (K,) bool
    n_paths : ndarray (K,) int
        Paths with the user's echo detected at its estimate.
    searched : ndarray (K,) bool
        Users that needed a window search (or the acquisition).
    n_points : int
        Spectrum evaluations on grids.
    signal_dim : int
        Dimension of the MUSIC signal subspace (0 when no search needed it).
    kind : str
        MUSIC spectrum used ("composite" or "rare"; "none" when no search needed it).
    """

    positions_m: NDArray[np.float64]
    detected: NDArray[np.bool_]
    n_paths: NDArray[np.int64]
    searched: NDArray[np.bool_]
    n_points: int
    signal_dim: int
    kind: str
    gap_nats: NDArray[np.float64] | None = None
    ambiguous: NDArray[np.bool_] | None = None


def _path_snr(prob: MlProblem, pos: NDArray[np.float64], scale: float) -> NDArray[np.float64]:
    """Per-user, per-path ML gain at the estimates over its noise-only mean, (K, M, M)."""
    a_est, w, minv = prob.others_terms(pos)
    return prob.criterion(pos[:, None, :], a_est, w, minv, per_path=True)[:, 0] * scale


def _best_new(prob: MlProblem, cand: NDArray[np.float64], others: NDArray[np.float64],
              scale: float, snr_thr: float, need: int):  # noqa: ANN202
    """Index of the candidate with the largest ML gain among those detected, or -1."""
    a_o, w, minv = prob.new_user_terms(others)
    per = prob.criterion(cand[None], a_o, w, minv, per_path=True)[0] * scale  # [C, M, M]
    npaths = np.sum(per > snr_thr, axis=(-2, -1))  # [C]
    enough = max(need, int(np.ceil(REL_PATHS * npaths.max()))) if npaths.size else need
    gain = np.where(npaths >= enough, per.sum(axis=(-2, -1)), -np.inf)
    i = int(np.argmax(gain))
    return (i if np.isfinite(gain[i]) else -1), npaths


def localize_cluster(
    stats: EchoStatistics,
    geom: IsacGeometry,
    noise_w: float,
    n_users: int,
    lo_m: ArrayLike,
    hi_m: ArrayLike,
    step_m: float,
    predicted_m: ArrayLike | None = None,
    halfwidth_m: ArrayLike | None = None,
    anchors_m: ArrayLike | None = None,
    kind: str = "auto",
    exclusion_m: float = 0.1,
    snr_threshold: float = 25.0,
    need_paths: int | None = None,
    tol_m: float = 1e-7,
    ambiguity_nats: float = 20.0,
    grid_cache: object | None = None,
    estimate_m: ArrayLike | None = None,
    boxes_m: ArrayLike | None = None,
    known_m: ArrayLike | None = None,
) -> ClusterResult:
    """Localise the K users whose echoes one cluster's APs receive.

    Parameters
    ----------
    stats : EchoStatistics
        ``R_yy``, ``R_yx`` and ``R_x`` of the cluster (M APs).
    geom : IsacGeometry
    noise_w : float [W]
    n_users : int
        K (users reflecting into this cluster).
    lo_m, hi_m : array_like (2,) [m]
        Region searched at acquisition.
    step_m : float [m]
        Coarse grid step of the MUSIC candidate maps.
    predicted_m : array_like (K, 2) [m] or None
        Predicted positions (tracking); None: acquisition.
    halfwidth_m : array_like (K,) [m] or None
        Each user's window (the search box of a user not detected at its prediction, and the
        first stencil of its ML step).
    anchors_m : array_like (K, 2) [m] or None
        Acquisition only: positions that decide which found user is which (Hungarian, nearest).
    kind : {"auto", "composite", "rare"}
        MUSIC spectrum (see :mod:`netsim.sensing.acquire`).
    snr_threshold : float
        Per-path detection threshold (in noise-only means).
    need_paths : int or None
        Paths needed for a detection (default 2, or 1 with a single AP).
    ambiguity_nats : float
        A user whose best other explanation (:func:`_resolve_alternatives`) is within this
        log-likelihood gap is flagged ``ambiguous``: every acquired user, and in tracking every
        user that needed a window search (``inf`` turns the tracking check off).
    grid_cache : netsim.sensing.steering.GridCache or None
        Acquisition grids and their responses kept from an earlier frame (same values).
    estimate_m : array_like (K,) bool or None
        Tracking only: the users whose positions the caller needs (the cluster's members; None:
        all). A user is also estimated when its echo signature is coupled to one of theirs
        (:func:`netsim.sensing.joint.coupling` above ``FREE_COUPLING`` at the predictions) or
        its window is wider than ``step_m``; every other user is held at its prediction, its
        echo still in the model with free path gains, and its row of the result is that
        prediction (``searched`` False). The cost then grows with the members, not with every
        user the cluster's APs see.
    boxes_m : array_like (B, 2, 2) [m] or None
        Acquisition only: the candidate images (ML and MUSIC, coarse and near-AP grids) are
        formed only at grid points inside one of these boxes, the places where the users can
        be (:func:`netsim.sensing.acquire.uplink_boxes`: their uplink registrations); None: the
        whole region. Candidates are climbed, chosen and refined as before (a climb may leave
        its box). With ``known_m`` one box per user (K rows).
    known_m : array_like (K, 2) [m] or None
        Acquisition only: the users another cluster's acquisition already placed in this frame
        (finite rows; NaN: not placed). They are held in the echo model (free path gains) while
        only the others are searched (:func:`_acquire_set` with ``known``; the images are
        residual images of the placed users' fitted echoes and only the other users' boxes are
        imaged), then refined with them in the ML step. The search then grows with the users
        not yet placed, not with every user the cluster's APs see. Kept when clean
        (:func:`_clean_set` over all K, a distinct estimate in every searched user's box; after
        a :func:`_rescue`); otherwise the cluster is acquired as without ``known_m``. Only used
        when at most ``PLACED_MAX_NEW`` users are left to find.
        Identities: the placed users keep their rows, the others are matched to ``anchors_m``.

    Returns
    -------
    ClusterResult
    """
    m, n = geom.n_aps, geom.n_antennas
    need = need_paths if need_paths is not None else (1 if m == 1 else min(m, 3))
    scale = stats.n_snapshots / noise_w
    subs: list[EchoSubspace] = []  # the MUSIC subspace, formed on first use (tracking rarely needs it)

    def subspace() -> EchoSubspace:
        if not subs:
            subs.append(echo_subspace(stats.cov, m, n, noise_w, stats.n_snapshots, n_users * m, kind))
        return subs[0]

    lo = np.asarray(lo_m, dtype=float)
    hi = np.asarray(hi_m, dtype=float)
    if boxes_m is not None:
        boxes_m = np.asarray(boxes_m, dtype=float).reshape(-1, 2, 2)  # [B, lo/hi, 2]
    prob = MlProblem.from_statistics(geom, stats.cross, stats.tx_cov, lo, hi, exclusion_m)
    npts = 0
    gap = np.full(n_users, np.inf)
    if predicted_m is None:
        # a fast acquisition first, on the central sub-aperture's images (_sub_problem), and
        # with boxes_m first imaged inside the boxes only; each is kept only when clean
        # (_clean_set; a boxed answer also holds a distinct estimate in every user's box), else
        # the next: the sub-aperture over the whole region, then the full aperture's images
        fast = _sub_problem(prob)
        tiers = [(fast, None)] if fast is not prob else []
        if boxes_m is not None:
            area = np.prod(np.clip(np.minimum(boxes_m[:, 1], hi) - np.maximum(boxes_m[:, 0], lo), 0.0, None), axis=-1)
            if np.sum(area) < BOX_MAX_FRACTION * np.prod(np.maximum(hi - lo, 1e-9)):  # [B] m^2: a saving
                tiers.insert(0, (fast, boxes_m))
        tiers.append((prob, None))
        npts = 0
        kn = None if known_m is None else np.all(np.isfinite(np.asarray(known_m, dtype=float).reshape(n_users, 2)), axis=1)
        if kn is not None and (not np.any(kn) or np.all(kn) or np.sum(~kn) > PLACED_MAX_NEW):
            kn = None
        placed = None
        if kn is not None:  # [K] the users placed by another cluster: search only the others
            known = np.asarray(known_m, dtype=float).reshape(n_users, 2)[kn]  # [J, 2]
            bx = None
            if boxes_m is not None and boxes_m.shape[0] == n_users:
                bx = boxes_m[~kn]
                area = np.prod(np.clip(np.minimum(bx[:, 1], hi) - np.maximum(bx[:, 0], lo), 0.0, None), axis=-1)
                if np.sum(area) >= BOX_MAX_FRACTION * np.prod(np.maximum(hi - lo, 1e-9)):
                    bx = None
            j = known.shape[0]
            est, gap_e, allc, n2 = _acquire_set(subspace, prob, fast, geom, lo, hi, step_m, exclusion_m, n_users,
                                                tol_m, scale, grid_cache, bx, known=known)
            npts += n2
            ok_k = _clean_set(subspace, geom, est, n_users) and _covers(est[j:], bx)
            if not ok_k and RESCUE and n_users - j <= RESCUE_MAX_USERS:
                est, gap_e = _rescue(prob, geom, est, allc, n_users, step_m, tol_m, scale, bx, lock=j)
                ok_k = _clean_set(subspace, geom, est, n_users) and _covers(est[j:], bx)
            if ok_k:
                placed = (est, gap_e)
        for t, (img, bx) in enumerate(tiers if placed is None else []):
            est, gap_e, allc, n2 = _acquire_set(subspace, prob, img, geom, lo, hi, step_m, exclusion_m, n_users,
                                                tol_m, scale, grid_cache, bx)
            npts += n2
            if t == len(tiers) - 1 or (_clean_set(subspace, geom, est, n_users) and _covers(est, bx)):
                break
            if t == 0 and RESCUE and n_users <= RESCUE_MAX_USERS:  # the first pass's pool, searched again
                est_r, gap_r = _rescue(prob, geom, est, allc, n_users, step_m, tol_m, scale, bx)
                if _clean_set(subspace, geom, est_r, n_users) and _covers(est_r, bx):
                    est, gap_e = est_r, gap_r
                    break
        anchors = np.asarray(anchors_m, dtype=float).reshape(-1, 2) if anchors_m is not None else None
        pos = np.full((n_users, 2), np.nan)
        if placed is not None:  # the placed users keep their rows; the others by their anchors
            est, gap_e = placed
            j = int(np.sum(kn))
            pos[kn], gap[kn] = est[:j], np.inf
            new_rows = np.flatnonzero(~kn)
            e_new = est[j:]
            if anchors is not None:
                ri, ci = min_cost_assignment(np.linalg.norm(anchors[new_rows][:, None] - e_new[None], axis=-1))
                pos[new_rows[ri]], gap[new_rows[ri]] = e_new[ci], gap_e[j:][ci]
            else:
                pos[new_rows[: e_new.shape[0]]] = e_new
                gap[new_rows[: e_new.shape[0]]] = gap_e[j:]
        elif est.shape[0] and anchors is not None:
            cost = np.linalg.norm(anchors[:, None] - est[None], axis=-1)  # [K, J]
            ri, ci = min_cost_assignment(cost)
            pos[ri] = est[ci]
            gap[ri] = gap_e[ci]
        elif est.shape[0]:
            pos[: est.shape[0]] = est
            gap[: est.shape[0]] = gap_e
        searched = np.ones(n_users, dtype=bool)
    else:
        pred = np.asarray(predicted_m, dtype=float).reshape(-1, 2)
        hw = np.broadcast_to(np.asarray(halfwidth_m if halfwidth_m is not None else step_m, dtype=float),
                             (n_users,)).copy()
        free = None
        want = None
        kap = np.zeros((n_users, n_users))
        if n_users > 1:
            kap = coupling(prob, pred)  # [K, K]
            np.fill_diagonal(kap, 0.0)
        if estimate_m is not None:
            want = np.asarray(estimate_m, dtype=bool).reshape(n_users)
            free = want | (hw > step_m) | np.any(kap[:, want] > FREE_COUPLING, axis=1)
            if np.all(free):
                free = None
        mv = np.ones(n_users, dtype=bool) if free is None else free
        # a coupled pair among the users estimated: its joint step needs the sweeps' fine end
        # point (family seed 13: a 1e-5 m sweep stencil left the pair 3.3 sqrt(CRLB) off);
        # with TRACK_MEMBER_GROUPS only a pair holding a wanted user gets the joint step
        wp = mv if want is None or not TRACK_MEMBER_GROUPS else mv & want
        pair = bool(np.any(kap[np.ix_(wp, mv)] > COUPLED))
        # the tracking ML step's per-user sweeps stop their stencils at TRACK_TOL_M (a tenth of
        # the smallest sqrt(CRLB) seen, 10 um for a user near an AP of family seed 1, where a
        # 10 um stencil moved the estimate by 1.4 sqrt(CRLB); 1 um: within 0.05), and
        # sweeping once every user moved by less than TRACK_STOP of its window (at least
        # 3 sqrt(CRLB)); with a coupled pair they keep tol_m, as does the pair's joint step
        # a freed non-member (coupled to a member) is another cluster's member: that cluster
        # tracks it inside its window, so here it only needs its echo modelled, and the sweeps
        # keep it inside that window (seen from this cluster's APs it can be a weak echo, or a
        # pair inside one resolution cell, that wanders by decimetres along its ridge from
        # sweep to sweep and keeps the sweeps going: campus, 24 users)
        box = None
        if TRACK_BOX_OTHERS and want is not None:
            other = mv & ~want  # [K]
            if np.any(other):
                wide = np.where(other, hw, np.inf)  # [K] m
                box = np.stack([pred - wide[:, None], pred + wide[:, None]], axis=1)  # [K, 2, 2]
        # the tracking options of every ML step below (the sweeps' stop tests and the climbs' end)
        trk = dict(want=want if TRACK_MEMBER_GROUPS else None, group_stop=TRACK_GROUP_STOP,
                   nat=1.0 / scale if TRACK_NAT_STOP else None, stop_users=want if TRACK_WANT_STOP else None)
        pos = _ml_step(prob, pred, np.clip(TRACK_FIRST_STENCIL * hw, 1e-3, step_m), tol_m, sweeps=6, free=free,
                       stop=np.maximum(100 * tol_m, TRACK_STOP * hw),
                       sweep_tol=tol_m if pair else max(tol_m, TRACK_TOL_M), box=box, **trk)
        snr = _path_snr(prob, pos, scale)
        det = np.sum(snr > snr_threshold, axis=(-2, -1)) >= need
        # a window search for the users not detected at their prediction, and for those whose
        # window (track uncertainty) is wider than the ML step's basin (about a grid step)
        searched = ~det | (hw > step_m)
        if free is not None:
            searched &= free
        window_pool: list[NDArray[np.float64]] = []
        for k in np.flatnonzero(searched):
            keep = det.copy()
            keep[k] = False
            others = pos[keep]
            c0 = pred[k]
            box_lo = np.maximum(c0 - hw[k], lo)
            box_hi = np.minimum(c0 + hw[k], hi)
            if np.any(box_hi <= box_lo):
                box_lo, box_hi = c0 - hw[k], c0 + hw[k]
            st = min(step_m, hw[k] / 2.0)
            resid = replace(prob, d=_subtract(prob, others))
            cand, n1 = _acquisition_candidates(subspace(), resid, geom, box_lo, box_hi, st, exclusion_m,
                                               8, tol_m)
            npts += n1
            cand = np.concatenate([pos[k][None], cand])  # the ML step's own answer competes
            window_pool.append(cand)
            i, _ = _best_new(prob, cand, others, scale, snr_threshold, need)
            if i < 0:
                continue
            a_o, w, minv = prob.new_user_terms(others)
            pos[k], _ = _refine_new(prob, cand[i], a_o, w, minv, st / 4.0, tol_m)
        if np.any(searched):
            post = trk if TRACK_POST_SEARCH else {}
            pos = _ml_step(prob, pos, 1e-3, tol_m, sweeps=3, free=free, **post)
            # the window search's answer gets the acquisition's ambiguity check: its best other
            # explanation among the window's candidates and the mirror images of the estimate
            if np.isfinite(ambiguity_nats) and np.all(np.isfinite(pos)):
                pos, gap_w = _resolve_alternatives(prob, geom, pos, np.concatenate(window_pool), scale,
                                                   step_m, tol_m, only=np.flatnonzero(searched),
                                                   step_kw=post)
                gap[searched] = gap_w[searched]
    ok = np.all(np.isfinite(pos), axis=1)
    n_paths = np.zeros(n_users, dtype=np.int64)
    if predicted_m is not None and not np.any(searched) and np.all(ok):
        n_paths = np.sum(snr > snr_threshold, axis=(-2, -1))  # the ML step's answer, unchanged
    elif np.any(ok):
        snr = _path_snr(prob, pos[ok], scale)
        n_paths[ok] = np.sum(snr > snr_threshold, axis=(-2, -1))
    # relative rule: a user lights about as many paths as the best user of the cluster (a
    # grating-lobe or ridge-crossing ghost lights only some; unsynchronised APs lose the
    # bistatic paths of every user alike)
    need_rel = max(need, int(np.ceil(REL_PATHS * n_paths.max()))) if n_users else need
    detected = ok & (n_paths >= need_rel)
    dim, used = (subs[0].dim, subs[0].kind) if subs else (0, "none")
    # an acquisition that leaves a user with a second explanation of about equal likelihood, or
    # none detected, cannot tell where it is from this cluster's echoes
    # (tracking: a window search whose answer has such a second explanation)
    ambiguous = (gap < ambiguity_nats) | ~detected if predicted_m is None else gap < ambiguity_nats
    return ClusterResult(pos, detected, n_paths, searched, npts, dim, used, gap, ambiguous)


def _acquire_set(subspace, prob, img_prob, geom, lo, hi, step_m, exclusion_m, n_users, tol_m, scale,  # noqa: ANN001, ANN202, PLR0913
                 grid_cache, boxes=None, known=None):
    """The acquisition's set of users: candidates from the images of ``img_prob`` (``prob`` or
    its sub-aperture, :func:`_sub_problem`), successive cancellation, the joint choice, the ML
    step and the alternatives check (all on ``prob``). Returns ``(est (J, 2), gap (J,), pool
    (C, 2), n_points)``; ``boxes`` (B, 2, 2) bound the images' points (``localize_cluster(boxes_m=)``).

    ``known`` (J, 2) [m]: users already placed (``localize_cluster(known_m=)``): the first image
    is the residual of their fitted echoes, only ``n_users - J`` users are searched, the
    placed ones are never swapped out (they move only in the ML steps) and only the new ones
    get the alternatives check; the first J rows of ``est`` are the placed users."""
    images = MlImageCache(img_prob, grid_cache)  # the grids' image terms, shared by the rounds below
    j0 = 0 if known is None else int(np.asarray(known).reshape(-1, 2).shape[0])
    n_new = n_users - j0
    n_first = 8 * n_new + 8 if boxes is None else BOX_CANDIDATES * n_new + 4  # [candidates of the first image]
    if j0:
        known = np.asarray(known, dtype=float).reshape(-1, 2)
        cand, npts = _acquisition_candidates(subspace(), replace(prob, d=_subtract(prob, known)), geom, lo, hi,
                                             step_m, exclusion_m, n_first, tol_m, music=False, images=images,
                                             fit_pos=known, boxes=boxes)
    else:
        cand, npts = _acquisition_candidates(subspace(), prob, geom, lo, hi, step_m, exclusion_m, n_first, tol_m,
                                             images=images, boxes=boxes)
    # successive cancellation: each round images the residual of the users found so far
    # (weak echoes hide below strong users' sidelobes and grating lobes), and the pick of
    # the round maximises the joint likelihood of the set; a final swap pass over all
    # candidates corrects early picks that were ghosts
    pool = [cand]
    found_idx: list[int] = list(range(j0))
    est_f = known if j0 else np.zeros((0, 2))
    allc = np.concatenate([est_f, cand])
    for rnd in range(n_new):
        if rnd > 0:
            resid = replace(prob, d=_subtract(prob, est_f))
            c2, n2 = _acquisition_candidates(subspace(), resid, geom, lo, hi, step_m, exclusion_m,
                                             2 * n_users + 6, tol_m, music=False, images=images,
                                             fit_pos=est_f, boxes=boxes)
            npts += n2
            pool.append(c2)
            allc = np.concatenate([est_f, *pool[1:], cand])
            found_idx = list(range(est_f.shape[0]))
        sel = _select_subset(prob, allc, len(found_idx) + 1, passes=0, fixed=found_idx)
        if len(sel) <= len(found_idx):
            break
        est_f = _ml_step(prob, allc[sel], step_m / 10.0, max(tol_m, ROUND_TOL_M), sweeps=3)
    allc = np.concatenate([est_f, *pool[1:], cand])
    sel = _select_subset(prob, allc, est_f.shape[0], passes=3, fixed=list(range(est_f.shape[0])),
                         swap_fixed=True, lock=j0)
    est = np.array([allc[i] for i in sel]).reshape(-1, 2)
    gap_e = np.zeros(0)
    if est.shape[0] > j0:
        est = _ml_step(prob, est, step_m / 10.0, tol_m, sweeps=6)
        est, gap_e = _resolve_alternatives(prob, geom, est, allc, scale, step_m, tol_m,
                                           only=np.arange(j0, est.shape[0]) if j0 else None)
    elif j0:
        gap_e = np.full(est.shape[0], np.inf)
    return est, gap_e, allc, npts


def _clean_set(subspace, geom: IsacGeometry, est: NDArray[np.float64], n_users: int) -> bool:  # noqa: ANN001
    """A fast acquisition is kept when it found every user and their responses explain the
    whole echo subspace (:func:`netsim.sensing.acquire.unexplained_echo` below
    ``CLEAN_RESIDUAL``: a missed user, or a ghost in its place, leaves its echo's direction).

    Detection and ambiguity are not part of the test: both are weighed on the full aperture's
    likelihood whichever images proposed the candidates, and a frame sensed before the first
    sync correction (bistatic paths decorrelated) leaves users undetected or ambiguous on any
    aperture (measured on the 20-seed family's frame 0: the full acquisition flags the same
    users); the caller's remedy (more APs) applies to either answer."""
    if est.shape[0] < n_users or not np.all(np.isfinite(est)):
        return False
    return unexplained_echo(subspace(), geom, est) < CLEAN_RESIDUAL


def _covers(est: NDArray[np.float64], boxes: NDArray[np.float64] | None) -> bool:
    """Whether the estimates (J, 2) can be matched one to one to the boxes (B, 2, 2), each
    estimate inside its box (every user registered there has an estimate; None: True)."""
    if boxes is None:
        return True
    if est.shape[0] < boxes.shape[0]:
        return False
    from netsim.sensing.acquire import in_boxes

    inside = np.stack([in_boxes(est, b[None]) for b in boxes])  # [B, J]
    ri, ci = min_cost_assignment(np.where(inside, 0.0, 1.0))
    return ri.size == boxes.shape[0] and bool(np.all(inside[ri, ci]))


def _ml_step(prob: MlProblem, start: NDArray[np.float64], h0: float | NDArray[np.float64], tol: float,
             sweeps: int, free: NDArray[np.bool_] | None = None, stop: float | NDArray[np.float64] | None = None,
             sweep_tol: float | None = None, want: NDArray[np.bool_] | None = None,
             box: NDArray[np.float64] | None = None, group_stop: bool = False,
             nat: float | None = None, stop_users: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """The ML step (:func:`netsim.sensing.joint.ml_step`): per-user sweeps kept monotone in the
    joint likelihood, then a joint refinement of every group of coupled users (a close pair
    inside one resolution cell, where per-user sweeps stop centimetres short); only the users
    ``free`` (None: all) move, each inside its ``box`` row (K, 2, 2) when given."""
    pos, _, _ = ml_step(prob, start, h0, tol, sweeps, free=free, stop_m=stop, sweep_tol_m=sweep_tol, want=want,
                        box_m=box, group_stop=group_stop, nat=nat, stop_users=stop_users)
    return pos


def _joint_value(c: NDArray, h: NDArray, sets: NDArray) -> NDArray[np.float64]:
    """``sum_paths c_S^H H_SS^{-1} c_S`` for index sets (B, J) of candidates -> (B,)."""
    cs = c[sets]  # [B, J, M, M]
    hs = h[:, :, sets[:, :, None], sets[:, None, :]]  # [M, M, B, J, J]
    hs = np.moveaxis(hs, 2, 0)  # [B, M, M, J, J]
    cs = np.moveaxis(cs, 1, -1)  # [B, M, M, J]
    j = sets.shape[1]
    reg = 1e-6 * np.abs(np.trace(hs, axis1=-2, axis2=-1))[..., None, None] * np.eye(j) + 1e-300
    x = np.linalg.solve(hs + reg, cs[..., None])[..., 0]  # [B, M, M, J]
    return np.sum(np.real(np.sum(cs.conj() * x, axis=-1)), axis=(-2, -1))


def _select_subset(prob: MlProblem, cand: NDArray[np.float64], k: int, passes: int = 4,
                   fixed: list[int] | None = None, swap_fixed: bool = False, lock: int = 0) -> list[int]:
    """Joint ML choice of k of the candidates: forward selection, then single swaps.

    Maximises the concentrated likelihood of the set, ``sum_paths c_S^H H_SS^{-1} c_S`` (module
    :mod:`netsim.sensing.ml`). Forward selection alone can take a ghost first (a point on the
    ridges of several users collects parts of each one's echo); a swap to the true users then
    explains strictly more, so the swap passes remove it. The first ``lock`` of ``fixed`` are
    never swapped (users placed by another cluster).
    """
    n = cand.shape[0]
    k = min(k, n)
    if k == 0:
        return []
    a = prob_near(prob, cand)  # [C, M, N]
    c, rv, _ = prob._path_terms(a)  # [C, M, M], [C, M, N]
    u = np.einsum("isn,jsn->sij", a.conj(), a)  # [M(s), C, C]
    v = np.einsum("jtn,itn->tij", a, rv)  # [M(t), C, C]
    h = u[:, None] * v[None, :]  # [M, M, C, C]
    sel: list[int] = list(fixed or [])
    for _ in range(k - len(sel)):
        rest = np.array([i for i in range(n) if i not in sel])
        sets = np.concatenate([np.tile(np.array(sel, dtype=int), (rest.size, 1)), rest[:, None]], axis=1)
        val = _joint_value(c, h, sets)
        sel.append(int(rest[int(np.argmax(val))]))
    best = float(_joint_value(c, h, np.array([sel]))[0])
    for _ in range(passes):
        improved = False
        for pos in range(lock if (swap_fixed or not fixed) else len(fixed), k):
            rest = np.array([i for i in range(n) if i not in sel])
            if rest.size == 0:
                break
            sets = np.tile(np.array(sel, dtype=int), (rest.size, 1))
            sets[:, pos] = rest
            val = _joint_value(c, h, sets)
            i = int(np.argmax(val))
            if val[i] > best * (1 + 1e-9):
                best, sel[pos], improved = float(val[i]), int(rest[i]), True
        if not improved:
            break
    return sel


def prob_near(prob: MlProblem, pts: NDArray[np.float64]) -> NDArray[np.complex128]:
    from netsim.sensing.ml import near_response

    return near_response(prob.geom, pts)


def _subtract(prob: MlProblem, pos: NDArray[np.float64]) -> NDArray[np.complex128]:
    """``D`` minus the fitted echoes of the users at ``pos`` (per-path LS gains ``H^{-1} c``)."""
    if pos.shape[0] == 0:
        return prob.d
    a, beta = prob.fit_gains(pos)  # [J, M, N], [M(s), M(t), J]
    # fitted block (s, t): sum_j beta_j a_s(p_j) a_t(p_j)^T R_t
    at_r = np.einsum("jtq,tqn->jtn", a, prob.r)  # [J, M(t), N]: a_t^T R_t
    fit = np.einsum("stj,jsp,jtn->sptn", beta, a, at_r)  # [M, N, M, N]
    return prob.d - fit


def _acquisition_candidates(sub, prob, geom, lo, hi, step, exclusion, n_cand, tol, music=True,  # noqa: ANN001, ANN202, PLR0913
                            near_ap_m=NEAR_AP_M, images=None, fit_pos=None, boxes=None):
    """Union of the ML image's and the MUSIC quality's strongest local maxima, each refined
    on the single-user ML criterion (so that they are ranked at their peaks).

    ``images`` (:class:`netsim.sensing.ml.MlImageCache` of the cluster's full problem) keeps
    each grid's image terms between successive-cancellation rounds; ``prob`` is then the
    residual problem of the users at ``fit_pos`` and the images are its residual images.
    ``boxes`` (B, 2, 2) [m]: only grid points inside one of them are imaged (None: all)."""
    from netsim.sensing.acquire import _exclude, box_interior, in_boxes

    def grid_peaks(g_lo, g_hi, nx, ny, n_keep):
        """The ``n_keep`` highest local maxima of the ML image on an ``ny x nx`` grid."""
        if images is not None and images.grids is not None:  # kept from an earlier frame
            g, g_ok = images.grids.grid(geom, g_lo, g_hi, nx, ny, exclusion)
        else:
            gx, gy = np.meshgrid(np.linspace(g_lo[0], g_hi[0], nx), np.linspace(g_lo[1], g_hi[1], ny))
            g = np.stack([gx, gy], axis=-1)  # [ny, nx, 2]
            g_ok = _exclude(geom, g, exclusion)
        if boxes is not None:
            g_ok = g_ok & in_boxes(g, boxes)  # a new mask (a kept grid's stays)
        im = np.zeros(g_ok.shape)
        im[g_ok] = _image(prob, g[g_ok], images, fit_pos)
        pk = local_max_3x3(im) & (im > 0)
        if boxes is not None:
            pk &= box_interior(g, boxes)  # not a ridge cut by a box edge (users lie 5 m inside)
        jy, jx = np.nonzero(pk)
        o = np.argsort(im[jy, jx])[::-1][:n_keep]
        return g, g_ok, g[jy[o], jx[o]]

    # images of a sub-aperture (images.problem, _sub_problem): peaks wider by the aperture ratio,
    # grids coarser by it (the near-AP reach below, step D / lambda, is the same)
    sub_n = images.problem.geom.n_antennas if images is not None else geom.n_antennas
    factor = geom.aperture_m / images.problem.geom.aperture_m if sub_n < geom.n_antennas else 1.0
    g_step = step * factor
    nx = max(2, int(np.ceil((hi[0] - lo[0]) / g_step)) + 1)
    ny = max(2, int(np.ceil((hi[1] - lo[1]) / g_step)) + 1)
    pts, ok, c_ml = grid_peaks(lo, hi, nx, ny, n_cand)  # c_ml [C, 2]
    n_eval = int(ok.sum())
    # deep near field of an AP: peaks far narrower than the grid step; a fine grid there. A
    # path through AP m focuses on a spot of cross-range width about r lambda / D (aperture D):
    # it is narrower than the step only within r = step D / lambda of the AP
    reach = min(near_ap_m, step * geom.aperture_m / geom.wavelength_m)
    if reach > 0:
        fine = min(step, NEAR_AP_STEP_M) * factor
        for c in geom.ap_centers_m:
            b_lo = np.maximum(c - reach, lo)
            b_hi = np.minimum(c + reach, hi)
            if np.any(b_hi <= b_lo):
                continue
            if boxes is not None and not np.any(np.all(np.minimum(b_hi, boxes[:, 1]) > np.maximum(b_lo, boxes[:, 0]),
                                                       axis=-1)):
                continue  # no user can be near this AP
            nx2 = int(np.ceil((b_hi[0] - b_lo[0]) / fine)) + 1
            ny2 = int(np.ceil((b_hi[1] - b_lo[1]) / fine)) + 1
            _, ok2, c2 = grid_peaks(b_lo, b_hi, nx2, ny2, 4)
            c_ml = np.concatenate([c_ml, c2])
            n_eval += int(ok2.sum())
    if music:
        # the ML image's responses when it is full-aperture; a sub-aperture image's are not MUSIC's
        full = images is not None and sub_n == geom.n_antennas
        steer = images.get(pts[ok]).a if full else None
        c_mu, _ = candidates(sub, geom, lo, hi, g_step, exclusion, n_cand, steering=steer,
                             grids=images.grids if images is not None else None,
                             tol_m=g_step / 10.0 if factor > 1.0 else None,  # climbed on the ML next
                             boxes_m=boxes)
        cand = np.concatenate([c_ml, c_mu])
    else:
        cand = c_ml
    a_o, w, minv = prob.new_user_terms(None)
    p, f = maximize_2d(lambda idx, x: prob.criterion(x, a_o, w, minv), cand, g_step / 2.0, step / 100.0)
    keep = _distinct(p, f, step / 10.0)  # candidates that climbed the same peak: keep the strongest
    if boxes is not None:  # a peak that climbed out of every box is where no user can be
        keep = [i for i in keep if in_boxes(p[i], boxes)]
    return p[keep], n_eval + (int(ok.sum()) if music else 0)


def _distinct(p: NDArray[np.float64], f: NDArray[np.float64], dist_m: float) -> list[int]:
    """Indices of the points (C, 2) farther than ``dist_m`` from every higher one (by ``f``),
    strongest first."""
    order = np.argsort(f)[::-1]
    far = np.sqrt(np.sum(np.square(p[:, None] - p[None]), axis=-1)) > dist_m  # [C, C]
    keep: list[int] = []
    for i in order:
        if far[i, keep].all():
            keep.append(int(i))
    return keep


def _sub_problem(prob: MlProblem) -> MlProblem:
    """The problem seen by the central elements of every array (half of them, of the parity of
    N, when ``N >= SUB_MIN_ANTENNAS``; else ``prob`` itself): the blocks of ``D`` and ``R_t``
    between those elements, on the geometry of the shorter ULAs (same centres, axes, spacing:
    its responses are those elements' responses). Acquisition images it (a quarter of the cost
    per point, peaks twice as wide)."""
    geom = prob.geom
    n = geom.n_antennas
    if n < SUB_MIN_ANTENNAS:
        return prob
    ns = n // 2 + (n % 2 != (n // 2) % 2)  # same parity as n: centred on the same centre
    i0 = (n - ns) // 2
    sl = slice(i0, i0 + ns)
    g = IsacGeometry(ap_centers_m=geom.ap_centers_m, ap_axis_rad=geom.ap_axis_rad, n_antennas=ns,
                     spacing_m=geom.spacing_m, wavelength_m=geom.wavelength_m, kappa0=geom.kappa0)
    d = np.ascontiguousarray(prob.d[:, sl][:, :, :, sl])  # [M, N', M, N']
    r = np.ascontiguousarray(prob.r[:, sl, sl])  # [M, N', N']
    return MlProblem(g, d, r, prob.lo, prob.hi, prob.exclusion_m)


def _image(prob, pts, images, fit_pos):  # noqa: ANN001, ANN202
    """ML image of ``prob`` at ``pts`` (P, 2); from the cache as a residual image when given."""
    from netsim.sensing.ml import ml_image

    if images is None:
        return ml_image(prob, pts)
    return images.get(pts).values(fit_pos)


def _refine_new(prob, start, a_o, w, minv, h0, tol):  # noqa: ANN001, ANN202
    p, f = maximize_2d(lambda idx, pts: prob.criterion(pts, a_o, w, minv), np.asarray(start)[None], h0, tol)
    return p[0], f[0]


def mirror_points(geom: IsacGeometry, pts_m: ArrayLike) -> NDArray[np.float64]:
    """Mirror images of points across every AP's array line, (..., M, 2) [m].

    A ULA's response is exactly symmetric about the line through its elements
    (``|p - q_n| = |p' - q_n|`` for the mirror ``p'`` of ``p``): each AP alone cannot tell a point
    from its mirror, and a user seen near end-fire by several APs may have a ghost of almost
    equal likelihood near one of these images.
    """
    p = np.asarray(pts_m, dtype=float)  # [..., 2]
    c = geom.ap_centers_m  # [M, 2]
    u = geom.axis_unit  # [M, 2]
    d = p[..., None, :] - c  # [..., M, 2]
    along = np.sum(d * u, axis=-1)  # [..., M]
    return c + 2.0 * along[..., None] * u - d  # [..., M, 2]


def _resolve_alternatives(prob: MlProblem, geom: IsacGeometry, est: NDArray[np.float64],
                          pool: NDArray[np.float64], scale: float, step_m: float, tol_m: float,
                          rounds: int = 3, only: ArrayLike | None = None, step_kw: dict | None = None,
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Best other explanation of each user's echo, and the log-likelihood gap to it.

    For user j, with the other users held at their estimates, the alternatives are the
    acquisition candidates and the mirror images of ``est_j`` (:func:`mirror_points`) farther than
    ``step_m`` from every estimate, each climbed on the single-user criterion ``f_j``. By the
    Schur complement the joint log-likelihood of the set changes by ``scale (f_j(alt) -
    f_j(est_j))`` nats when j is moved there. A better alternative replaces the estimate (the
    set is then refined again); otherwise the gap ``scale (f_j(est_j) - max f_j(alt))`` is returned
    (``inf`` when there is no alternative): a small gap means the frame cannot tell the two
    points apart.

    ``only`` (indices) restricts the check to those users (the others' gaps stay ``inf``);
    ``step_kw`` are options of the ML step that follows a replaced estimate (tracking's, see
    :func:`localize_cluster`; None: none).

    Returns
    -------
    est : ndarray (J, 2) [m]
    gap : ndarray (J,) [nats]
    """
    est = est.copy()
    k = est.shape[0]
    gap = np.full(k, np.inf)
    users = range(k) if only is None else [int(j) for j in np.asarray(only).ravel()]
    for _ in range(rounds):
        moved = False
        for j in users:
            others = np.delete(est, j, axis=0)
            a_o, w, minv = prob.new_user_terms(others)

            def crit(idx, x, a_o=a_o, w=w, minv=minv):  # noqa: ANN001, ANN202
                x = np.asarray(x)  # [b, S, 2]: every row is the same problem (user j)
                return prob.criterion(x.reshape(1, -1, 2), a_o, w, minv).reshape(x.shape[:-1])

            cand = np.concatenate([pool.reshape(-1, 2), mirror_points(geom, est[j])])
            dist = np.linalg.norm(cand[:, None] - est[None], axis=-1)  # [C, J]
            cand = cand[np.all(dist > step_m, axis=1)]
            if cand.shape[0] == 0:
                gap[j] = np.inf
                continue
            f_c = crit(None, cand[None])[0]  # [C]
            n_pool = cand.shape[0] - geom.n_aps
            top = np.argsort(f_c[: max(n_pool, 0)])[::-1][:4]
            start = np.concatenate([cand[top], cand[max(n_pool, 0):]])
            p, f = maximize_2d(crit, start, step_m / 2.0, step_m / 100.0)
            dist = np.linalg.norm(p[:, None] - est[None], axis=-1)  # [S, J]
            far = np.all(dist > step_m, axis=1)
            if not np.any(far):
                gap[j] = np.inf
                continue
            i = int(np.flatnonzero(far)[np.argmax(f[far])])
            f0 = float(crit(None, est[j][None, None])[0, 0])
            gap[j] = scale * (f0 - f[i])
            if gap[j] < -1.0:  # a better explanation the search missed: take it
                est[j] = p[i]
                est = _ml_step(prob, est, step_m / 10.0, tol_m, sweeps=3, **(step_kw or {}))
                moved = True
        if not moved:
            break
    return est, gap


def _set_terms(prob: MlProblem, cand: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """``c`` (C, M, M) and ``H`` (M, M, C, C) of candidate points, for :func:`_joint_value`."""
    a = prob_near(prob, cand)  # [C, M, N]
    c, rv, _ = prob._path_terms(a)  # [C, M, M], [C, M, N]
    u = np.einsum("isn,jsn->sij", a.conj(), a)  # [M(s), C, C]
    v = np.einsum("jtn,itn->tij", a, rv)  # [M(t), C, C]
    return c, u[:, None] * v[None, :]  # [M, M, C, C]


def _pair_swaps(c: NDArray, h: NDArray, sel: list[int], passes: int = 3, lock: int = 0) -> tuple[list[int], int]:
    """Local search of the joint ML choice (:func:`_select_subset`) by exchanging *two* chosen
    candidates at once for any two others (every pair of positions, every pair of the rest).

    A set of ghosts that share out several users' echoes between them (each ghost on one
    user's ridge at one AP and on another user's at the next) is a local maximum of single
    swaps: replacing one ghost by a true user loses the share of the others' echo it held.
    Exchanging two at once reaches the true set (campus, 12 users, frame 0: three clusters
    whose single-swap optimum was three ghosts 4-13 m off; the pair swaps found the
    exhaustive optimum of the pool in each). The first ``lock`` positions stay.

    Returns
    -------
    sel : list of int
        The chosen indices (same length).
    n_sets : int
        Sets evaluated (the search's work).
    """
    n = c.shape[0]
    k = len(sel)
    sel = list(sel)
    n_sets = 0
    if k - lock < 2 or n - k < 2:
        return sel, n_sets
    best = float(_joint_value(c, h, np.array([sel]))[0])
    pos_pairs = [(i, j) for i in range(lock, k) for j in range(i + 1, k)]
    # the pairs are drawn from the candidates of best single-swap value, as many as PAIR_SETS allows
    n_top = int(np.floor(0.5 + np.sqrt(0.25 + 2.0 * PAIR_SETS / len(pos_pairs))))  # C(n_top, 2) * pairs ~ budget
    for _ in range(passes):
        improved = False
        rest_all = np.array([x for x in range(n) if x not in sel])
        if rest_all.size > n_top:
            single = np.full(rest_all.size, -np.inf)
            for i in range(lock, k):
                sets = np.tile(np.array(sel, dtype=int), (rest_all.size, 1))
                sets[:, i] = rest_all
                single = np.maximum(single, _joint_value(c, h, sets))
                n_sets += rest_all.size
            pool = rest_all[np.argsort(-single)[:n_top]]
        else:
            pool = rest_all
        for i, j in pos_pairs:
            rest = np.array([x for x in pool if x not in sel])
            iu, ju = np.triu_indices(rest.size, 1)
            sets = np.tile(np.array(sel, dtype=int), (iu.size, 1))  # [B, k]
            sets[:, i] = rest[iu]
            sets[:, j] = rest[ju]
            val = np.concatenate([_joint_value(c, h, sets[s:s + SET_CHUNK]) for s in range(0, iu.size, SET_CHUNK)])
            n_sets += iu.size
            b = int(np.argmax(val))
            if val[b] > best * (1 + 1e-9):
                best, sel, improved = float(val[b]), [int(x) for x in sets[b]], True
        if not improved:
            break
    return sel, n_sets


def _ridge_candidates(prob: MlProblem, pts: NDArray[np.float64], step_m: float,
                      boxes: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Peaks along the radial ridges through candidate points, each climbed (single-user ML).

    Seen by one AP, a user's echo is a ridge along the radial line from that AP's centre
    (the linear phase term of the ULA response fixes the angle, the weak curvature term the
    range): centimetres wide across, metres long, flat to a few per cent over a metre. A
    climb that reaches the crest creeps along it and stops short of the peak (campus: 3 cm to
    1.4 m), and where another user's ridge from another AP crosses it the single-user
    criterion has a ghost peak stronger than the true user's. For every point the radial
    line from the AP of its strongest paths is sampled (``RIDGE_SAMPLES`` log-spaced ranges
    over ``RIDGE_SPAN`` times its range), its ``RIDGE_KEEP`` strongest 1-D local maxima are
    climbed in 2-D: the true users on that ridge (not only its strongest crossing) then enter
    the candidate pool. Returns the climbed points (R, 2) inside the region (and a box).
    """
    geom = prob.geom
    p = np.asarray(pts, dtype=float).reshape(-1, 2)
    if p.shape[0] == 0:
        return p
    a_o, w, minv = prob.new_user_terms(None)
    per = prob.criterion(p[None], a_o, w, minv, per_path=True)[0]  # [C, M(rx), M(tx)]
    m = np.argmax(per.sum(axis=1) + per.sum(axis=2), axis=1)  # [C] the AP of the strongest paths
    cm = geom.ap_centers_m[m]  # [C, 2]
    dv = p - cm
    r = np.maximum(np.linalg.norm(dv, axis=1), 1e-9)  # [C] m
    s = np.exp(np.linspace(np.log(RIDGE_SPAN[0]), np.log(RIDGE_SPAN[1]), RIDGE_SAMPLES))  # [S]
    line = cm[:, None] + (dv / r[:, None])[:, None] * (r[:, None, None] * s[None, :, None])  # [C, S, 2]
    f = prob.criterion(line.reshape(1, -1, 2), a_o, w, minv).reshape(line.shape[:2])  # [C, S]
    fp = np.pad(f, ((0, 0), (1, 1)), constant_values=-np.inf)
    loc = (f >= fp[:, :-2]) & (f >= fp[:, 2:]) & (f > 0)  # [C, S] 1-D local maxima
    rank = np.where(loc, f, -np.inf)
    top = np.argsort(-rank, axis=1)[:, :RIDGE_KEEP]  # [C, keep]
    ok = np.take_along_axis(loc, top, axis=1)  # [C, keep]
    start = np.take_along_axis(line, top[..., None], axis=1)[ok]  # [R, 2]
    if start.shape[0] == 0:
        return start
    h0 = np.minimum(0.5 * (s[1] / s[0] - 1.0) * np.linalg.norm(start - np.repeat(cm, ok.sum(axis=1), axis=0), axis=1),
                    step_m / 2.0)  # [R] half a sample spacing
    out, _ = maximize_2d(lambda idx, x: prob.criterion(x.reshape(1, -1, 2), a_o, w, minv).reshape(x.shape[:-1]),
                         start, h0, step_m / 100.0)
    if boxes is not None:
        from netsim.sensing.acquire import in_boxes

        out = out[in_boxes(out, boxes)]
    return out


def _rescue_pool(prob: MlProblem, est: NDArray[np.float64], pool: NDArray[np.float64], step_m: float,
                 boxes: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Candidates of :func:`_rescue`: ``est`` (J, 2) first, then the pool and the ridge peaks
    through ``est`` and the pool (:func:`_ridge_candidates`), one per peak (the strongest of
    those closer than ``step_m / 10``), none that close to an estimate."""
    a_o, w, minv = prob.new_user_terms(None)
    ridge = _ridge_candidates(prob, np.concatenate([est, pool]), step_m, boxes)
    extra = np.concatenate([pool, ridge])
    f = prob.criterion(extra[None], a_o, w, minv)[0]  # [C]
    extra = extra[_distinct(extra, f, step_m / 10.0)]
    if est.shape[0]:
        far = np.all(np.linalg.norm(extra[:, None] - est[None], axis=-1) > step_m / 10.0, axis=1)
        extra = extra[far]
    return np.concatenate([est, extra])


def _rescue(prob: MlProblem, geom: IsacGeometry, est: NDArray[np.float64], pool: NDArray[np.float64],
            k: int, step_m: float, tol_m: float, scale: float,
            boxes: NDArray[np.float64] | None = None, lock: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Second search of an acquisition pass whose answer left the echo unexplained.

    The pass's pool gains the peaks along the radial ridges through its points
    (:func:`_ridge_candidates`), the set is completed to ``k`` users by forward selection and
    improved by single and pair swaps (:func:`_select_subset`, :func:`_pair_swaps`) on the
    joint likelihood, then refined and checked as an acquisition's answer (ML step,
    :func:`_resolve_alternatives`). The first ``lock`` rows of ``est`` are users placed by
    another cluster (``localize_cluster(known_m=)``): kept in the set, no alternatives check.
    Returns ``(est (J, 2), gap (J,))``."""
    cand = _rescue_pool(prob, est, pool, step_m, boxes)
    sel = _select_subset(prob, cand, k, passes=3, fixed=list(range(est.shape[0])), swap_fixed=True, lock=lock)
    c, h = _set_terms(prob, cand)
    sel, _ = _pair_swaps(c, h, sel, lock=lock)
    out = np.array([cand[i] for i in sel]).reshape(-1, 2)
    if out.shape[0] <= lock:
        return out, np.full(out.shape[0], np.inf)
    out = _ml_step(prob, out, step_m / 10.0, tol_m, sweeps=6)
    return _resolve_alternatives(prob, geom, out, cand, scale, step_m, tol_m,
                                 only=np.arange(lock, out.shape[0]) if lock else None)

