"""Sensing phase of the engine (seed 003): MUSIC + ML tracking, or the CRLB fidelity.

Sensing clusters
----------------
Each user is localized by a *sensing cluster*: the ``sensing.aps_per_user`` online APs nearest
to its predicted position (the first frame, with no track yet, uses the APs nearest to the
true position, standing for the serving APs the CPU knows from the user's uplink; the true
position also decides which acquired peak gets which user identity in frame 0, never the
estimate; frame 1 first confirms frame 0's estimates by a guarded local search,
:meth:`MusicSensing._confirm`, and where that is not trusted matches the peaks of a full
acquisition to frame 0's estimates, :meth:`MusicSensing._identify`).
Users whose clusters coincide are processed together. For a cluster:

1. every user within ``sensing.range_m`` of a cluster AP reflects: the frame's RCS
   coefficients ``alpha ~ CN(0, 1)`` per path are drawn here, and the echo statistics
   (:func:`netsim.sensing.echo.sample_echo_statistics`: ``R_yy`` and the echo-waveform
   correlation ``R_yx``) are formed with the residual CFO/TO of every AP (bistatic paths carry
   the pair's residual error);
2. ``music`` (:func:`netsim.sensing.localize.localize_cluster`): acquisition (refined MUSIC and
   ML-image candidates ranked by ML gain) when a user has no track, else the ML step from the
   predictions; a user whose echo is not detected there is searched in its own window only;
3. the CRLB of eq. (2) at the true positions with the SAME path gains ``alpha`` times the
   sync losses of each path (TO mismatch, coherent CFO integration), the snapshot count and
   the noise of the frame (the ``users`` table's ``crlb_m``). The CRLB-feasible time allocation
   (eq. 17) cannot know the next frame's RCS draw: it plans with the nominal bound (unit
   gains, same sync losses), :attr:`MusicSensing.planning_crlb_m2` (``crlb_plan_m``).

``crlb`` does steps 1 (gains only) and 3 and draws each member's estimate from
``N(true position, 2x2 CRB block)``.

Tracks (plain arrays, checkpoint-safe)
--------------------------------------
Per user: last estimate, velocity (two-point, from consecutive detections), window half width
``3 sqrt(CRLB) + 2 (|v| + 0.5 m/s) dt + 5 mm``, and a lost flag. A user not detected coasts on
its prediction, its window triples per frame (up to the cluster region) and a
``sensing_lost`` event is logged; ``sensing_reacquired`` when it is found again. A user that an
acquisition leaves ambiguous (a second explanation of its echo within ``AMBIGUITY_NATS``, e.g. a
ULA mirror ghost, or no detection) gets one more AP in its cluster (``extra_aps``, kept for its
later frames) and is acquired again in the same frame (``sensing_ambiguous`` event), with the RCS draws of the paths
it had already seen in that frame (the new AP's paths are fresh draws). A window search (lost or
uncertain track) gets the same check and the same remedy.

In frame 0 a cluster holds the users other clusters already placed in that frame (detected,
unambiguous) in its echo model and searches only the others when few are left
(``PLACED_ACQUISITION``; the answer is kept when clean, else the cluster is acquired in full).

Tracking frames follow no wrong track silently: a track whose cluster holds none of the user's
serving APs (uplink rule, :meth:`MusicSensing._check_serving`) is declared lost and re-acquired
in its uplink cluster (lost users' clusters are estimated first); a cluster whose estimates leave
its echo unexplained has its members searched again in widened windows
(:meth:`MusicSensing._check_residual`, ``sensing_unexplained``). A confirming frame's full
acquisition (the local confirmation not trusted) gets the same residual check in that frame.
A confirming frame then checks every cluster's estimates against the other clusters' estimates of
the same users (:meth:`MusicSensing._cross_check`, ``sensing_crosscheck``): a view that explains
the cluster's own echo better replaces a wrong acquisition in that frame.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from netsim.sensing.acquire import echo_subspace, unexplained_echo, uplink_boxes
from netsim.sensing.associate import (
    GATE_SIGMAS,
    SWAP_NATS,
    confirm_identities,
    gated_association,
    profile_cost,
    profile_permutation,
    resolve_flagged,
)
from netsim.sensing.config import IsacGeometry
from netsim.sensing.covariance import SensingCovarianceCache
from netsim.sensing.crosscheck import CROSS_MIN_M, consistent_set
from netsim.sensing.echo import cross_cfo_factors, sample_echo_statistics, sync_path_factors
from netsim.sensing.fim import fast_position_crb, fast_position_crb_batch, isotropic_covariance
from netsim.sensing.localize import ClusterResult, localize_cluster
from netsim.sensing.ml import MlProblem
from netsim.sensing.peaks import min_cost_assignment
from netsim.sensing.steering import GridCache
from netsim.units import dbm_to_w

__all__ = ["CrlbSensing", "MusicSensing"]

ACQUIRE_FRAMES = 2  # frames that run the acquisition for every user before tracking starts
MAX_TRACK_SPEED_MPS = 30.0  # a two-point velocity above this is an acquisition jump, not motion;
# lower when the scenario's mobility model bounds the speed (twice its top speed + 1 m/s)
AMBIGUITY_ROUNDS = 2  # re-acquisitions with a grown cluster within one frame
AMBIGUITY_NATS = 20.0  # log-likelihood gap below which an acquisition is ambiguous
CONFIRM_HALFWIDTH_M = 0.5  # frame 1 searches each user this far around frame 0's estimate (at least
# its track window): frame 0 senses before the first sync correction, its estimates can be 0.15 m off
CONFIRM_RESIDUAL = 0.5  # frame 1's local answer must leave no signal direction unexplained beyond
# this (netsim.sensing.acquire.unexplained_echo: <= 0.28 when right, 1.0 with a user missed)
TRACK_RESIDUAL = 0.5  # a tracking frame's estimates must explain the echo subspace this well
# (the same statistic; above it the cluster's members are searched again, MusicSensing._check_residual)
RECHECK_WINDOW_M = 3.0  # first widened window of a suspect [m] (then the cluster's region)
RESIDUAL_FRESH_FRAMES = 3  # the residual check runs on a cluster while a member's track is this young
RESIDUAL_PERIOD = 10  # ... or a member was searched this frame, and on every cluster each this many frames
# (wrong tracks start at acquisitions; ~1 ms of CPU per cluster, 5-10 % of a campus tracking frame)
UPLINK_GAIN_STD_DB = 1.0  # error of the CPU's per-AP uplink gain estimate of a user [dB] (its pilot's
# received power over the AP's antennas and the frame's pilots; the Rician part and estimation noise)
PROFILE_APS = 6  # a user's gain profile is compared at the APs that hear it best (by its uplink)
PROFILE_LOST_NATS = 50.0  # a track whose own profile misfit exceeds its mean (half the APs) by this
# is on no user's echo of that identity: declared lost (a 1 dB error per AP: P ~ 1e-20 for 6 APs)
FREE_YOUNG_FRAMES = 1  # a tracking step also estimates the users whose tracks are this young (frames)
CROSS_TOL_M = 1e-7  # last stencil of the ML step that refines a cross-cluster alternative [m] (the
# acquisition's final tolerance)
PLACED_ACQUISITION = True  # frame 0: a cluster holds the users other clusters already placed in this frame
# (non-members, detected and unambiguous there) in its echo model and acquires only the others
# (netsim.sensing.localize.localize_cluster(known_m=), when at most PLACED_MAX_NEW users are left): a user
# is then searched by about one cluster, not by every cluster that sees it
UPLINK_MARGIN_M = 5.0  # an acquisition images only where each user can be given its uplink registration
# (its serving APs its nearest, netsim.sensing.acquire.uplink_boxes), widened by this for cell edges [m]



class MusicSensing:
    """Stateful sensing model of one simulation (keeps the tracks between frames)."""

    fidelity = "music"
    members_only = True  # tracking estimates a cluster's members (+ coupled users) only

    def __init__(self, sim) -> None:
        self.sim = sim
        net, sc = sim.net, sim.scenario
        cfg = sc.sensing
        lam = net.wavelength_m
        # radar equation: two-hop power gain lambda^2 rcs / ((4 pi)^3 r1^2 r2^2), written as the
        # kernels' per-hop amplitude sqrt(kappa0) / r with kappa0 = lambda sqrt(rcs) / (4 pi)^1.5
        self.kappa0 = lam * np.sqrt(cfg.rcs_m2) / (4 * np.pi) ** 1.5
        self.power_w = dbm_to_w(cfg.power_dbm)
        self.noise_w = sc.channel.noise_power_w
        self.cache = SensingCovarianceCache()
        self.grid_cache = GridCache()  # acquisition grids of frame 0, reused by frame 1 (not pickled)
        self.initial_pos = net.user_pos_m
        k = net.n_users
        self.pos = np.full((k, 2), np.nan)  # last estimate [K, 2]
        self.vel = np.zeros((k, 2))  # [K, 2] m/s
        self.halfwidth = np.full(k, np.inf)  # [K] m (inf: never acquired)
        self.lost = np.zeros(k, dtype=bool)
        self.detected = np.zeros(k, dtype=bool)  # this frame
        self.t_last = np.nan
        self.n_frames = 0
        self._geoms: dict[tuple[int, ...], IsacGeometry] = {}
        self._iso: dict[tuple[bytes, bytes], np.ndarray] = {}  # isotropic covariance per cluster geometry
        self.planning_crlb_m2 = np.full(k, np.nan)  # nominal-RCS bound of the last frame [K]
        self.n_lost_events = 0
        self.n_searches = 0
        self.n_confirmed = 0  # clusters a confirming frame kept from its local search (no full acquisition)
        self.extra_aps = np.zeros(k, dtype=np.int64)  # APs added to a user's cluster (ambiguity)
        self.widen = np.zeros(k)  # [K] m: window a residual check asks for the next frame (0: none)
        self.n_residual_checks = 0  # tracking clusters whose echo residual was checked
        self.acquired_frame = np.full(k, -1, dtype=np.int64)  # [K] frame its track last (re)started
        self.relocated = np.zeros(k, dtype=bool)  # [K] declared lost by the uplink rule this frame
        self.n_unexplained = 0  # ... and found unexplained (members searched again)
        self.ul_rng = sim.streams.generator("uplink-gain")  # the uplink gain estimates' errors
        self.n_swaps = 0  # identity exchanges made by the uplink gain profiles
        self.n_profile_lost = 0  # tracks declared lost by their gain profile
        self.n_cross_moves = 0  # clusters a confirming frame's cross-cluster check changed
        mob = sc.users.mobility
        top = {"static": 0.0, "constant_velocity": mob.speed_mps,
               "random_waypoint": mob.speed_range_mps[1]}.get(mob.model, MAX_TRACK_SPEED_MPS)
        # speed prior of the user class: a faster two-point velocity is an acquisition jump
        self.max_speed_mps = min(MAX_TRACK_SPEED_MPS, 2.0 * top + 1.0)
        self.top_speed_mps = min(MAX_TRACK_SPEED_MPS, top)  # the class's top speed (m/s)

    # ------------------------------------------------------------------ helpers
    def _geometry(self, aps: np.ndarray) -> IsacGeometry:
        key = tuple(int(a) for a in aps)
        if key not in self._geoms:  # static per cluster (element positions cached inside)
            self._geoms[key] = self._make_geometry(aps)
        return self._geoms[key]

    def _make_geometry(self, aps: np.ndarray) -> IsacGeometry:
        net = self.sim.net
        return IsacGeometry(
            ap_centers_m=net.ap_center_m[aps], ap_axis_rad=net.ap_axis_rad[aps],
            n_antennas=net.n_antennas, spacing_m=net.spacing_m, wavelength_m=net.wavelength_m,
            kappa0=self.kappa0)

    def _region(self, aps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        net, cfg = self.sim.net, self.sim.scenario.sensing
        dep = self.sim.scenario.deployment
        lo = np.maximum(net.ap_center_m[aps].min(axis=0) - cfg.range_m, 0.0)
        hi = np.minimum(net.ap_center_m[aps].max(axis=0) + cfg.range_m, [dep.width_m, dep.height_m])
        return lo, hi

    def _covariance(self, geom: IsacGeometry) -> np.ndarray:
        cfg = self.sim.scenario.sensing
        if cfg.covariance == "optimized":
            return self.cache.get(geom, self.initial_pos, self.power_w, exact_jbb=True).r
        iso = self.__dict__.setdefault("_iso", {})  # read-only (M, N, N) per cluster geometry
        key = (geom.ap_centers_m.tobytes(), geom.ap_axis_rad.tobytes())
        if key not in iso:
            iso[key] = isotropic_covariance(geom, self.power_w)
        return iso[key]

    def _clusters(self, network, anchor: np.ndarray,
                  users: list[int] | None = None) -> dict[tuple[int, ...], list[int]]:
        cfg = self.sim.scenario.sensing
        clusters: dict[tuple[int, ...], list[int]] = {}
        ks = list(range(network.n_users)) if users is None else list(users)
        if not ks:
            return clusters
        near = self._nearest_online(network, anchor[ks])  # [K, A] nearest first
        for i, k in enumerate(ks):
            s = min(cfg.aps_per_user + int(self.extra_aps[k]), near.shape[1])
            key = tuple(sorted(int(a) for a in near[i, :s]))
            clusters.setdefault(key, []).append(k)
        return clusters

    @staticmethod
    def _nearest_online(network, points_m: np.ndarray) -> np.ndarray:  # noqa: ANN001
        """[K, A] the online APs' indices, nearest first (stable on ties), for each point of
        ``points_m`` [K, 2] (m): the sensing clusters' rule, and with the true positions the
        uplink registration's (a user's serving APs)."""
        online = np.flatnonzero(network.online)
        d = np.linalg.norm(network.ap_center_m[online][None] - points_m[:, None], axis=-1)  # [K, A]
        return online[np.argsort(d, kind="stable", axis=1)]

    @staticmethod
    def _effective_alpha(alpha, aps, pair):  # noqa: ANN001, ANN205
        """Path coefficients seen by the ML step and the bound: RCS x TO loss x CFO coherence.

        ``pair`` [tx, rx] over every AP (:meth:`_pair_factors`): the factors are elementwise in
        the pair's offsets, so the cluster's entries are the same as from its own offsets."""
        return alpha * pair[np.ix_(aps, aps)][None]  # [V, tx, rx]

    @staticmethod
    def _pair_factors(to_s, cfo_hz, n_snap, fc, t_u):  # noqa: ANN001, ANN205
        """TO loss x CFO coherence of every AP pair, transposed to [tx, rx]."""
        n_all = to_s.shape[0]
        f_to = sync_path_factors(n_all, to_s, fc, t_u)  # [rx, tx]
        gam = cross_cfo_factors(cfo_hz, n_all, n_snap, t_u)  # [rx, tx]
        return (f_to * gam).T  # [tx, rx]

    # ------------------------------------------------------------------ one frame
    def __call__(self, network, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sim = self.sim
        sc = sim.scenario
        cfg = sc.sensing
        true_pos = network.user_pos_m  # [K, 2]
        n_users = network.n_users
        if not np.any(network.online):
            return np.full((n_users, 2), np.nan), np.full(n_users, np.nan)
        now = float(sim.env.now)
        dt = now - self.t_last if np.isfinite(self.t_last) else 0.0
        acquired = np.isfinite(self.halfwidth)
        pred = np.where(acquired[:, None], self.pos + self.vel * dt, np.nan)  # [K, 2]
        if self.n_frames >= 1:  # the confirming frame too (a frame-0 acquisition a cluster away)
            self._check_serving(network, pred, true_pos)
        # a lost track's prediction is a guess: its cluster is chosen from the uplink registration
        # (the serving APs, modelled by the true position, as in frame 0)
        anchor = np.where((acquired & ~self.lost)[:, None], pred, true_pos)
        n_snap = int(min(cfg.max_snapshots, max(1, np.floor(sim.timing_sense_s / cfg.snapshot_duration_s + 1e-9))))
        to_s, cfo_hz, _ = network.offsets_to(sim.reference_ap)
        fc = sc.channel.carrier_hz
        est = np.full((n_users, 2), np.nan)
        crlb = np.full(n_users, np.nan)
        plan = np.full(n_users, np.nan)
        need_plan = sc.frame.time_allocation != "fixed"
        detected = np.ones(n_users, dtype=bool)
        n_online = int(np.sum(network.online))
        todo = self._clusters(network, anchor)
        force: set[int] = set()
        drawn: dict[tuple[int, int, int], complex] = {}  # this frame's RCS draw per (user, tx AP, rx AP)
        drawn_later: list = []  # round 0's draws, entered into ``drawn`` only if a cluster grows
        views: dict[tuple[int, ...], tuple[list[int], list[int], np.ndarray, np.ndarray]] = {}  # this
        # frame's estimates of every cluster: key -> (visible users, members, positions [V, 2], detected [V])
        placed: dict[int, np.ndarray] = {}  # frame 0: user -> position placed by a cluster this frame
        for _round in range(1 + AMBIGUITY_ROUNDS):
            redo = self._sense_clusters(network, rng, todo, force, true_pos, pred, n_snap, to_s, cfo_hz,
                                        fc, need_plan, est, crlb, plan, detected, drawn, _round > 0,
                                        drawn_later, views=views, placed=placed)
            # a user whose acquisition left two explanations of its echo of about equal
            # likelihood (mirror ghosts of ULAs seen near end-fire) gets more APs, at once
            redo = [k for k in redo if int(self.extra_aps[k]) < cfg.aps_per_user
                    and cfg.aps_per_user + int(self.extra_aps[k]) < n_online]
            if not redo or _round == AMBIGUITY_ROUNDS:
                break
            for k in redo:
                self.extra_aps[k] += 1
                sim.event("sensing_ambiguous", k, f"user {k}: two explanations of its echo within "
                          f"{AMBIGUITY_NATS:g} nats; its sensing cluster grows to "
                          f"{cfg.aps_per_user + int(self.extra_aps[k])} APs")
            todo = self._clusters(network, anchor, redo)
            force = set(redo)
        self.planning_crlb_m2 = plan
        reset = (self._check_identities(network, est, detected)
                 if self.n_frames >= 1 and self.fidelity == "music" else [])
        self._update_tracks(est, crlb, detected, pred, dt)
        for k in reset:  # an exchanged track starts again (young: the residual check watches it)
            self.vel[k] = 0.0
            self.acquired_frame[k] = self.n_frames
        self.relocated[:] = False
        self.t_last = now
        self.n_frames += 1
        if self.n_frames >= ACQUIRE_FRAMES and "grid_cache" in self.__dict__:
            self.grid_cache.clear()  # later acquisitions are rare (re-acquisition, grown clusters)
        return est, crlb

    def _sense_clusters(self, network, rng, todo, force, true_pos, pred, n_snap, to_s, cfo_hz,  # noqa: ANN001, ANN202, PLR0913
                        fc, need_plan, est, crlb, plan, detected, drawn, reuse, drawn_later=None, views=None,
                        placed=None):
        """Sense the clusters ``todo`` (key -> members), writing the members' rows of ``est``,
        ``crlb``, ``plan``, ``detected``; returns the members left ambiguous by an acquisition.

        ``views`` (a dict, or None) collects each cluster's estimates of all its visible users;
        in a confirming frame the clusters are then checked against each other's views
        (:meth:`_cross_check`).
        ``placed`` (a dict, or None) collects frame 0's placements (user -> position [2], m) over
        the frame's rounds: a later cluster holds them in its echo model (``PLACED_ACQUISITION``).

        ``drawn`` collects the frame's RCS coefficient of every (user, tx AP, rx AP) path; with
        ``reuse`` (a grown cluster sensed again in the same frame) the paths already drawn keep
        their coefficient (the same echo, seen by more APs); the draw itself is made in full
        either way, so the random stream does not depend on what is reused. With ``drawn_later``
        (a list) the first round only appends its draws there, in order, and the first reuse
        round enters them into ``drawn`` (the same table, built only when a cluster grows)."""
        cfg = self.sim.scenario.sensing
        ambiguous: list[int] = []
        # the pair factors are elementwise in the two APs' offsets: formed for the APs in use only
        # (a sorted set, not np.unique: its first call imports numpy.ma, about 12 ms of CPU)
        used = np.array(sorted({int(a) for key in todo for a in key}), dtype=int)
        pair = np.ones((to_s.shape[0], to_s.shape[0]), dtype=complex)  # [tx, rx], all APs
        pair[np.ix_(used, used)] = self._pair_factors(to_s[used], cfo_hz[used], n_snap, fc, cfg.snapshot_duration_s)
        if reuse and drawn_later:
            for a_l, v_l, aps_l in drawn_later:
                self._share_draws(a_l, v_l, aps_l, drawn, False)
            drawn_later.clear()
        jobs = []  # per cluster, in key order: every random draw is made here, in that order
        for key, members in sorted(todo.items()):
            aps = np.array(key)
            geom = self._geometry(aps)
            d_users = np.linalg.norm(true_pos[:, None, :] - network.ap_center_m[aps][None], axis=-1)
            visible = sorted(set(np.flatnonzero(d_users.min(axis=1) <= cfg.range_m)) | set(members))
            v = len(visible)
            m = len(aps)
            r = self._covariance(geom)
            alpha = (rng.standard_normal((v, m, m)) + 1j * rng.standard_normal((v, m, m))) / np.sqrt(2)
            if reuse or drawn_later is None:
                self._share_draws(alpha, visible, aps, drawn, reuse)  # [V, tx, rx]
            else:
                drawn_later.append((alpha.copy(), visible, aps))
            alpha_eff = self._effective_alpha(alpha, aps, pair)
            exact = True  # the structured bound costs K^3 per path: no need for the diagonal J_bb
            bound = fast_position_crb(geom, true_pos[visible], r, n_snap, self.noise_w,
                                        exact_jbb=exact, alpha=alpha_eff)  # [V, 2, 2]
            stats = sample_echo_statistics(
                geom, true_pos[visible], r, n_snap, self.noise_w, rng, alpha,
                residual_cfo_hz=cfo_hz[aps], residual_to_s=to_s[aps], fidelity=cfg.fidelity,
                carrier_hz=self.sim.scenario.channel.carrier_hz, snapshot_s=cfg.snapshot_duration_s)
            jobs.append((members, aps, geom, visible, bound, r, stats))
        # tracking frames estimate the clusters of lost users first: a lost user re-acquired in
        # its own cluster then enters the other clusters that see it at its new estimate (at its
        # old guess it left its echo unexplained next to their members; our dense geometry: a
        # close pair's identities swapped); no lost user: key order, unchanged
        order = list(range(len(jobs)))
        if self.n_frames >= ACQUIRE_FRAMES:
            order.sort(key=lambda i: not bool(np.any(self.lost[jobs[i][0]])))
        pred_f = pred.copy()  # [K, 2] predictions, updated by this frame's re-acquisitions
        hw_f = self.halfwidth.copy()  # [K] m
        placed = {} if placed is None else placed
        for i in order:
            members, aps, geom, visible, bound, r, stats = jobs[i]
            v, m = len(visible), len(aps)
            known = None
            if self.n_frames == 0 and PLACED_ACQUISITION:  # the non-members other clusters placed
                known = np.full((v, 2), np.nan)
                for j, k in enumerate(visible):
                    if k not in members and k in placed:
                        known[j] = placed[k]
            pos, det, amb = self._estimate(network, stats, geom, aps, visible, members, n_snap, pred_f,
                                           true_pos, hw_f, force_acquire=bool(force & set(members)), known=known)
            if known is not None:  # a member's estimate replaces another cluster's; a non-member's only if new
                for j, k in enumerate(visible):
                    if det[j] and not amb[j] and (k in members or k not in placed):
                        placed[k] = pos[j].copy()
            if views is not None:
                views[tuple(int(a) for a in aps)] = ([int(k) for k in visible], list(members), pos.copy(), det.copy())
            if need_plan:  # the nominal bound (unit RCS, sync losses): what eq. (17) plans with
                nominal = self._effective_alpha(np.ones((v, m, m), complex), aps, pair)
                bnom = np.trace(fast_position_crb(geom, true_pos[visible], r, n_snap, self.noise_w,
                                                    exact_jbb=True, alpha=nominal), axis1=1, axis2=2)
            for j, k in enumerate(visible):
                if k in members:
                    est[k], crlb[k], detected[k] = pos[j], np.trace(bound[j]), det[j]
                    if need_plan:
                        plan[k] = bnom[j]
                    if amb[j]:
                        ambiguous.append(k)
                    if self.lost[k] and det[j] and self.n_frames >= ACQUIRE_FRAMES:
                        pred_f[k] = pos[j]
                        hw_f[k] = 3.0 * np.sqrt(crlb[k]) + 0.01
        if views is not None and 1 <= self.n_frames < ACQUIRE_FRAMES:
            self._cross_check([(j[0], j[1], j[2], j[3], j[6]) for j in (jobs[i] for i in order)], views,
                              est, detected)
        return ambiguous

    @staticmethod
    def _share_draws(alpha: np.ndarray, visible: list[int], aps: np.ndarray,
                     drawn: dict[tuple[int, int, int], complex], reuse: bool) -> None:
        """Record ``alpha`` [V, tx, rx] in ``drawn``; with ``reuse``, overwrite the paths drawn before."""
        for j, k in enumerate(visible):
            for a, ta in enumerate(aps):
                for b, rb in enumerate(aps):
                    key = (int(k), int(ta), int(rb))
                    if reuse and key in drawn:
                        alpha[j, a, b] = drawn[key]
                    else:
                        drawn.setdefault(key, complex(alpha[j, a, b]))

    def _estimate(self, network, stats, geom, aps, visible, members, n_snap,  # noqa: ANN001, ANN202, PLR0913
                  pred, true_pos, hw_all, force_acquire=False, known=None):
        cfg = self.sim.scenario.sensing
        lo, hi = self._region(aps)
        exclusion = max(geom.aperture_m, 0.3)  # no user inside an AP's mounting
        hw = hw_all[visible]
        # the first frame senses before any sync correction has arrived (bistatic paths are
        # decorrelated): its tracks are confirmed by a second acquisition on the next frame
        tracking = (cfg.tracking and bool(np.all(np.isfinite(hw))) and self.n_frames >= ACQUIRE_FRAMES
                    and not force_acquire)
        # a confirming frame first tries a guarded local search around the previous estimates
        res = (self._confirm(stats, geom, aps, visible, lo, hi, hw, pred, exclusion)
               if not tracking and self._can_confirm(visible, hw, force_acquire) else None)
        if res is not None:
            pass
        elif tracking:
            span = float(np.max(hi - lo))
            # a lost track's window is centred inside the region of the cluster its uplink chose
            p_vis = np.where(self.lost[visible][:, None], np.clip(pred[visible], lo, hi), pred[visible])
            res = localize_cluster(stats, geom, self.noise_w, len(visible), lo, hi, cfg.grid_step_m,
                                   predicted_m=p_vis, halfwidth_m=np.minimum(hw, span),
                                   kind=cfg.spectrum, exclusion_m=exclusion, ambiguity_nats=AMBIGUITY_NATS,
                                   estimate_m=self._tracked_rows(visible, members) if self.members_only else None)
            res = self._check_residual(res, stats, geom, visible, members, aps, lo, hi, hw, exclusion, true_pos)
        else:
            grids = self.__dict__.setdefault("grid_cache", GridCache()) if self.n_frames < ACQUIRE_FRAMES else None
            res = localize_cluster(stats, geom, self.noise_w, len(visible), lo, hi, cfg.grid_step_m,
                                   kind=cfg.spectrum, exclusion_m=exclusion, ambiguity_nats=AMBIGUITY_NATS,
                                   grid_cache=grids, boxes_m=self._uplink_boxes(network, visible, true_pos, lo, hi),
                                   known_m=known, anchors_m=true_pos[visible] if known is not None else None)
            res = self._identify(res, visible, members, pred, true_pos)
            if 1 <= self.n_frames < ACQUIRE_FRAMES:  # a confirming frame's full acquisition: the same
                # echo-residual check as a tracking frame, in this frame (our dense family, seeds 13
                # and 17: a frame-1 acquisition 4.3 m / 5.6 m off, found only in frame 2)
                span = float(np.max(hi - lo))
                res = self._check_residual(res, stats, geom, visible, members, aps, lo, hi,
                                           np.where(np.isfinite(hw), hw, span), exclusion, true_pos)
        self.n_searches += int(np.sum(res.searched))
        pos = res.positions_m.copy()
        bad = ~np.all(np.isfinite(pos), axis=1)
        if np.any(bad):  # nothing found for them: keep the prediction, or the cluster centre
            fill = np.where(np.isfinite(pred[visible]), pred[visible], 0.5 * (lo + hi))
            pos[bad] = fill[bad]
        amb = res.ambiguous if res.ambiguous is not None else np.zeros(len(visible), dtype=bool)
        return pos, res.detected & ~bad, amb & ~bad

    def _cross_check(self, jobs: list, views: dict, est: np.ndarray, detected: np.ndarray) -> None:
        """Confirming frames: every cluster's estimates against the other clusters' views.

        ``jobs`` are this call's clusters ``(members, aps, geom, visible, stats)`` in the order they
        were estimated; ``views`` every cluster's estimates of this frame (key -> visible, members,
        positions, detected; earlier ambiguity rounds included). For each cluster the other
        clusters' detected estimates of its visible users (the user's own cluster's first) are
        tried as alternatives on this cluster's likelihood
        (:func:`netsim.sensing.crosscheck.consistent_set`: our dense family, seeds 13 and 17, a
        frame-1 acquisition 4.3 m / 5.6 m off that other clusters placed within 1 mm, 2.7 k and
        393 k nats more likely on the wrong cluster's own echo). A kept alternative is tracked
        once more from there (the tracking ML step and its detection rule, at a 1 mm window);
        each member it moves gets a ``sensing_crosscheck`` event, and its row of ``est`` and
        ``detected`` is rewritten (the bound stays: it is at the true position)."""
        cfg = self.sim.scenario.sensing
        for members, aps, geom, _visible, stats in jobs:
            key = tuple(int(a) for a in aps)
            vis, mem, pos, _ = views[key]  # the visible users as recorded (the same list)
            alts = []  # [V] (n_j, 2) other clusters' detected views, the user's own cluster first
            any_far = False
            for j, k in enumerate(vis):
                own, rest = [], []
                for key2, (vis2, mem2, pos2, det2) in views.items():
                    if key2 == key or k not in vis2 or not det2[vis2.index(k)]:
                        continue
                    (own if k in mem2 else rest).append(pos2[vis2.index(k)])
                a = np.array(own + rest, dtype=float).reshape(-1, 2)
                any_far = any_far or bool(np.any(np.linalg.norm(a - pos[j], axis=1) > CROSS_MIN_M))
                alts.append(a)
            if not any_far or not np.all(np.isfinite(pos)):
                continue
            lo, hi = self._region(aps)
            exclusion = max(geom.aperture_m, 0.3)
            prob = MlProblem.from_statistics(geom, stats.cross, stats.tx_cov, lo, hi, exclusion)
            new, moved, gain = consistent_set(prob, pos, alts, stats.n_snapshots / self.noise_w,
                                              cfg.grid_step_m / 10.0, CROSS_TOL_M)
            if not np.any(moved):
                continue
            v = len(vis)
            res = localize_cluster(stats, geom, self.noise_w, v, lo, hi, cfg.grid_step_m, predicted_m=new,
                                   halfwidth_m=np.full(v, 1e-3), kind=cfg.spectrum, exclusion_m=exclusion,
                                   ambiguity_nats=AMBIGUITY_NATS)
            if not np.all(np.isfinite(res.positions_m)):
                continue
            self.n_cross_moves = getattr(self, "n_cross_moves", 0) + 1  # (older checkpoints lack it)
            views[key] = (vis, mem, res.positions_m.copy(), res.detected.copy())
            for j, k in enumerate(vis):
                if k not in members:
                    continue
                step = float(np.linalg.norm(res.positions_m[j] - est[k])) if np.all(np.isfinite(est[k])) else np.inf
                if moved[j]:
                    self.sim.event("sensing_crosscheck", k, f"user {k}: cluster APs {list(key)} placed it at "
                                   f"({pos[j, 0]:.2f}, {pos[j, 1]:.2f}) m; other clusters' estimates of its "
                                   f"users explain this cluster's echo {gain:.0f} nats better: moved "
                                   f"{step:.2f} m to ({res.positions_m[j, 0]:.2f}, {res.positions_m[j, 1]:.2f}) m")
                est[k] = res.positions_m[j]
                detected[k] = bool(res.detected[j])

    def _tracked_rows(self, visible: list[int], members: list[int]) -> np.ndarray:
        """[V] bool: the users a tracking step estimates: the cluster's members, and every user
        whose track (re)started in the previous frame (``FREE_YOUNG_FRAMES``). Such a track has
        no two-point velocity from its own detections yet: its prediction lags a walking user by
        ``|v| dt`` (about 1 cm), and held there as a non-member its echo model biases the
        members, whose bound is sub-millimetre (our dense family, seeds 16 and 19, first tracking
        frame: members 14 mm and 0.14 m off with every other user held 7-14 mm off; estimating
        them too: 0.4 mm and 0.2 mm)."""
        want = np.isin(visible, members)  # [V]
        young = self.n_frames - self.acquired_frame[np.asarray(visible, dtype=int)] <= FREE_YOUNG_FRAMES
        return want | young

    def _uplink_boxes(self, network, visible: list[int], true_pos: np.ndarray, lo: np.ndarray,  # noqa: ANN001
                      hi: np.ndarray) -> np.ndarray | None:
        """[V, 2, 2] where each visible user can be given its uplink registration: the box of
        the order-``aps_per_user`` cell of its serving APs (the APs nearest to its true
        position, as for frame 0's clusters), widened by ``UPLINK_MARGIN_M``
        (:func:`netsim.sensing.acquire.uplink_boxes`); None with ``UPLINK_MARGIN_M`` None."""
        if UPLINK_MARGIN_M is None or not visible:
            return None
        cfg = self.sim.scenario.sensing
        online = np.flatnonzero(network.online)
        s = min(cfg.aps_per_user, online.size)
        near = self._nearest_online(network, true_pos[visible])[:, :s]  # [V, s] AP indices
        rows = np.searchsorted(online, near)  # [V, s] rows of the online APs
        return uplink_boxes(network.ap_center_m[online], rows, lo, hi, UPLINK_MARGIN_M)

    def _check_serving(self, network, pred: np.ndarray, true_pos: np.ndarray) -> None:  # noqa: ANN001
        """The uplink rule in tracking frames: a tracked user whose predicted position's sensing
        cluster holds none of its serving APs (the uplink registration, modelled as the APs
        nearest to its true position, as in frame 0) is on another user's echo or a ghost far
        from where it registers: it is declared lost (``sensing_lost``), its cluster is chosen
        from the uplink and its window covers that cluster's region (dense scenes: a wrong
        frame-0 acquisition 67 m off was otherwise tracked for good, with no event)."""
        cfg = self.sim.scenario.sensing
        s = min(cfg.aps_per_user, int(np.count_nonzero(network.online)))
        ks = np.flatnonzero(np.isfinite(self.halfwidth) & ~self.lost & np.all(np.isfinite(pred), axis=1))
        if ks.size == 0 or s == 0:
            return
        near_p = self._nearest_online(network, pred[ks])[:, :s]  # [K', s] the track's cluster
        near_t = self._nearest_online(network, true_pos[ks])[:, :s]  # [K', s] its serving APs
        dep = self.sim.scenario.deployment
        for i, k in enumerate(ks):
            if set(near_p[i].tolist()) & set(near_t[i].tolist()):
                continue
            self.lost[k] = True
            self.relocated[k] = True
            self.n_lost_events += 1
            self.halfwidth[k] = float(max(dep.width_m, dep.height_m))
            self.sim.event("sensing_lost", int(k), f"user {k}: its track's sensing cluster holds none of "
                           "its serving APs (uplink registration); re-acquired in its uplink cluster")

    def _uplink_gains_db(self, network) -> np.ndarray:  # noqa: ANN001
        """[K, M] dB: the CPU's estimate of every user's large-scale gain at every AP, from its
        uplink pilots: the true gain (:meth:`netsim.sim.world.Network.large_scale_gain`) with a
        Gaussian error of ``UPLINK_GAIN_STD_DB`` (stream ``uplink-gain``, one draw per user and
        AP every frame it is called, whatever is decided)."""
        g = 10.0 * np.log10(np.maximum(network.large_scale_gain(), 1e-300)).T  # [K, M]
        return g + UPLINK_GAIN_STD_DB * self.ul_rng.standard_normal(g.shape)

    @staticmethod
    def _model_gains_db(network, pts_m: np.ndarray) -> tuple[np.ndarray, float]:  # noqa: ANN001
        """([P, M] dB, sigma dB): the gains the CPU's path-loss model predicts at ``pts_m``
        [P, 2] and the spread of a measured gain about them (``nearfield``: the LOS gain, known
        exactly for a position; ``umi``: the median path loss, the link's shadowing unknown)."""
        if network.model == "umi":
            sig = float(np.hypot(UPLINK_GAIN_STD_DB, network.umi.shadowing_std_db))
            return network.umi_path_loss_db(pts_m).T, sig  # [P, M]
        g = network.large_scale_gain(pts_m)  # [M, P]
        return 10.0 * np.log10(np.maximum(g, 1e-300)).T, UPLINK_GAIN_STD_DB

    def _check_identities(self, network, est: np.ndarray, detected: np.ndarray) -> list[int]:  # noqa: ANN001
        """Identities between frames from the uplink gain profiles (issue 9, dense scenes).

        Two tracks that exchanged their users (inside one sensing cluster, where the uplink
        rule's serving APs cannot tell them apart) explain the echo exactly as well as the
        truth: no echo statistic can see it. The uplink can: every user's pilot is received by
        each AP with the user's own large-scale gain, and users metres apart have different
        gain profiles. Each detected user's measured profile
        (:meth:`_uplink_gains_db`, at its ``PROFILE_APS`` strongest online APs) is compared with
        the profiles the path-loss model predicts at the tracked positions
        (:func:`netsim.sensing.associate.profile_cost`); an exchange of identities that lowers
        the misfit by ``PROFILE_NATS`` is made (:func:`~netsim.sensing.associate.profile_permutation`,
        ``sensing_swap`` events, the tracks start again). A track whose own profile still
        misfits by ``PROFILE_LOST_NATS`` above its mean sits on no echo of that user: it is
        declared lost (``sensing_lost``) and re-acquired from its uplink cluster. Rewrites
        ``est`` and ``detected`` in place; returns the users whose tracks were exchanged."""
        meas = self._uplink_gains_db(network)  # [K, M] (drawn every frame from frame 1)
        ks = np.flatnonzero(detected & np.all(np.isfinite(est), axis=1))  # [P]
        online = np.flatnonzero(network.online)
        if ks.size == 0 or online.size == 0:
            return []
        g = meas[np.ix_(ks, online)]  # [P, A]
        model, sigma = self._model_gains_db(network, est[ks])
        model = model[:, online]  # [P, A]
        n_use = min(PROFILE_APS, online.size)
        top = np.argsort(-g, axis=1, kind="stable")[:, :n_use]  # [P, n_use] strongest by uplink
        use = np.zeros(g.shape, dtype=bool)
        np.put_along_axis(use, top, True, axis=1)
        cost = profile_cost(g, model, sigma, use)  # [P, P] nats
        perm, saved = profile_permutation(cost)
        swapped: list[int] = []
        if np.any(perm != np.arange(ks.size)):
            old = est[ks].copy()  # [P, 2]
            for i in np.flatnonzero(perm != np.arange(ks.size)):
                k, src = int(ks[i]), int(ks[perm[i]])
                est[k] = old[perm[i]]
                self.pos[k] = est[k]  # the track restarts at its own echo (no velocity jump)
                swapped.append(k)
                self.n_swaps += 1
                self.sim.event("sensing_swap", k, f"user {k}: its uplink gain profile fits user "
                               f"{src}'s track better (the exchange saves {saved[i]:.0f} nats); "
                               f"identities exchanged, now at ({est[k, 0]:.2f}, {est[k, 1]:.2f}) m")
            cost = cost[:, perm]  # [P, P] column i: the track user i now has
        misfit = np.diag(cost) - 0.5 * n_use  # [P] nats above the mean of a correct track
        span = float(max(self.sim.scenario.deployment.width_m, self.sim.scenario.deployment.height_m))
        for i in np.flatnonzero(misfit > PROFILE_LOST_NATS):
            k = int(ks[i])
            detected[k] = False
            if not self.lost[k]:
                self.lost[k] = True
                self.n_lost_events += 1
            self.n_profile_lost += 1
            self.widen[k] = span
            self.sim.event("sensing_lost", k, f"user {k}: its uplink gain profile does not fit its "
                           f"track ({misfit[i]:.0f} nats above a correct track's mean); re-acquired "
                           "from its uplink cluster")
        return swapped

    def _can_confirm(self, visible: list[int], hw: np.ndarray, force_acquire: bool) -> bool:
        """A confirming frame (1 .. ``ACQUIRE_FRAMES - 1``) first tries a local search around the
        previous estimates (:meth:`_confirm`) when every user the cluster sees has a track that
        was detected (no lost user: its estimate is a guess)."""
        cfg = self.sim.scenario.sensing
        return (cfg.tracking and 1 <= self.n_frames < ACQUIRE_FRAMES and not force_acquire
                and bool(np.all(np.isfinite(hw))) and not bool(np.any(self.lost[visible]))
                and bool(np.all(np.isfinite(self.pos[visible]))))

    def _confirm(self, stats, geom, aps, visible, lo, hi, hw, pred, exclusion):  # noqa: ANN001, ANN202, PLR0913
        """Frame 1 as a guarded local search: the tracking step from frame 0's estimates, every
        user searched in a window of at least ``CONFIRM_HALFWIDTH_M`` (frame 0's estimates can
        be decimetres off: it senses before the first sync correction), all of the cluster's
        users estimated. The answer is kept only when every user is detected and unambiguous,
        stays inside its window, and the users' responses explain the whole echo subspace
        (:func:`netsim.sensing.acquire.unexplained_echo` below ``CONFIRM_RESIDUAL``: a frame-0
        ghost leaves its user's true echo unexplained). Otherwise None, and the caller runs the
        full acquisition (a ``sensing_confirm_fallback`` event says why). Identities are the
        tracks' own (each user's window is searched for that user)."""
        cfg = self.sim.scenario.sensing
        span = float(np.max(hi - lo))
        win = np.minimum(np.maximum(hw, CONFIRM_HALFWIDTH_M), span)  # [V] m
        v = len(visible)
        res = localize_cluster(stats, geom, self.noise_w, v, lo, hi, cfg.grid_step_m,
                               predicted_m=pred[visible], halfwidth_m=win, kind=cfg.spectrum,
                               exclusion_m=exclusion, ambiguity_nats=AMBIGUITY_NATS)
        pos = res.positions_m
        why = ""
        if not np.all(np.isfinite(pos)) or not np.all(res.detected):
            why = "a user's echo was not detected in its window"
        elif res.ambiguous is not None and np.any(res.ambiguous):
            why = f"a user's echo has a second explanation within {AMBIGUITY_NATS:g} nats"
        elif np.any(np.max(np.abs(pos - pred[visible]), axis=1) > win):
            why = "an estimate left its window"
        else:
            m, n = geom.n_aps, geom.n_antennas
            sub = echo_subspace(stats.cov, m, n, self.noise_w, stats.n_snapshots, v * m, cfg.spectrum)
            left = unexplained_echo(sub, geom, pos)
            if left >= CONFIRM_RESIDUAL:
                why = f"the estimates leave {left:.2f} of a signal direction unexplained"
        if why:
            self.sim.event("sensing_confirm_fallback", -1, f"cluster APs {[int(a) for a in aps]}: frame "
                           f"{self.n_frames}'s local confirmation failed ({why}); full acquisition")
            self.n_searches += int(np.sum(res.searched))
            return None
        self.n_confirmed += 1
        perm = confirm_identities(pos, pred[visible], win)
        moved = np.flatnonzero(perm != np.arange(v))
        if moved.size:
            for i in moved:
                self.sim.event("sensing_association", int(visible[i]), f"user {visible[i]}: frame "
                               f"{self.n_frames}'s local answer in its window is nearer another user's "
                               "previous estimate; identities re-assigned by distance to the previous estimates")
            res = replace(res, **{f: getattr(res, f)[perm] for f in
                                  ("positions_m", "detected", "n_paths", "searched", "gap_nats", "ambiguous")
                                  if getattr(res, f) is not None})
        return res

    def _check_residual(self, res: ClusterResult, stats, geom, visible, members, aps, lo, hi, hw,  # noqa: ANN001, PLR0913
                        exclusion, true_pos) -> ClusterResult:
        """Tracking frame (and a confirming frame's full acquisition): do the estimates explain the
        cluster's echo? (issue 9, dense scenes)

        A track that an acquisition put on a ghost is followed there frame after frame, detected
        on the paths the ghost lights, while the user's own echo stays unexplained. With per-path
        RCS draws a user's echo spans its per-AP blocks ``e_m (x) a_m(p_k)``, so the signal
        subspace projected off the estimates' blocks
        (:func:`netsim.sensing.acquire.unexplained_echo`) keeps a direction (about 1) where an
        echo is unexplained; below ``TRACK_RESIDUAL`` nothing changes (and nothing is drawn).
        Above it every member is searched again from this frame's estimates, in a window widened
        to ``RECHECK_WINDOW_M``, then to the cluster's region (the other estimates' echoes
        projected out, the track's own answer competing: a correct member finds itself again;
        never a full-grid search of all users), the members' identities given by the uplink
        rule (nearest registration, as in frame 0). The answer that explains the most is kept;
        each member that moved gets a ``sensing_unexplained`` event. When the echo stays
        unexplained, a member whose cluster shares no AP with its uplink registration (its
        serving APs, modelled by the nearest APs to its true position) is returned undetected
        (``sensing_lost``: its next cluster comes from the uplink, its window covers the
        region), and every member gets the event (the culprit may be a user this cluster does
        not estimate)."""
        cfg = self.sim.scenario.sensing
        pos = res.positions_m
        v = len(visible)
        is_mem = np.isin(visible, members)  # [V]
        if not np.all(np.isfinite(pos)) or not np.any(is_mem):
            return res
        age = self.n_frames - self.acquired_frame[members]  # [members] frames since (re)acquisition
        if (self.n_frames % RESIDUAL_PERIOD and not np.any(age < RESIDUAL_FRESH_FRAMES)
                and not np.any(res.searched[is_mem])):
            return res  # an established track, no search this frame: checked periodically
        m, n = geom.n_aps, geom.n_antennas
        sub = echo_subspace(stats.cov, m, n, self.noise_w, stats.n_snapshots, v * m, cfg.spectrum)
        left = unexplained_echo(sub, geom, pos)
        self.n_residual_checks += 1
        if left < TRACK_RESIDUAL:
            return res
        self.n_unexplained += 1
        span = float(np.max(hi - lo))
        best, best_left = res, left
        mem = np.flatnonzero(is_mem)  # [F]
        reg = true_pos[np.array(visible)[mem]]  # [F, 2] the members' uplink registrations
        for wdw in (RECHECK_WINDOW_M, span):
            start = np.where(is_mem[:, None], np.clip(pos, lo, hi), best.positions_m)  # [V, 2]
            win = np.minimum(np.where(is_mem, np.maximum(hw, wdw), hw), span)  # [V] m
            new = localize_cluster(stats, geom, self.noise_w, v, lo, hi, cfg.grid_step_m,
                                   predicted_m=start, halfwidth_m=win, kind=cfg.spectrum,
                                   exclusion_m=exclusion, ambiguity_nats=AMBIGUITY_NATS,
                                   estimate_m=is_mem if self.members_only else None)
            self.n_searches += int(np.sum(new.searched))
            if not np.all(np.isfinite(new.positions_m)):
                continue
            if mem.size > 1:  # identities of the members by the uplink rule
                ri, ci = min_cost_assignment(np.linalg.norm(reg[:, None] - new.positions_m[mem][None], axis=-1))
                order = mem.copy()
                order[ri] = mem[ci]
                new = replace(new, positions_m=new.positions_m.copy(), detected=new.detected.copy(),
                              n_paths=new.n_paths.copy())
                for arr in (new.positions_m, new.detected, new.n_paths):
                    arr[mem] = arr[order]
            new_left = unexplained_echo(sub, geom, new.positions_m)
            if new_left < best_left - 0.05:
                best, best_left = new, new_left
            if best_left < TRACK_RESIDUAL:
                break
        moved = np.linalg.norm(best.positions_m - pos, axis=1)  # [V] m
        resolved = best_left < TRACK_RESIDUAL
        det = best.detected.copy()
        for j in mem:
            k = visible[j]
            far = False
            if not resolved:
                serving = set(int(a) for a in self._nearest_online(self.sim.net, true_pos[k:k + 1])[0, :cfg.aps_per_user])
                far = not serving & set(int(a) for a in aps)
            if moved[j] > max(hw[j], 1e-3) or not resolved:
                self.sim.event("sensing_unexplained", k, f"user {k}: the tracked estimates left {left:.2f} "
                               f"of a signal direction of its cluster's echo unexplained; searched again "
                               f"in a widened window: moved {moved[j]:.2f} m, {best_left:.2f} left"
                               + ("; its cluster holds none of its serving APs: declared lost" if far else ""))
            if far:
                det[j] = False
                self.widen[k] = span
        return replace(best, detected=det)

    def _identify(self, res: ClusterResult, visible: list[int], members: list[int],
                  pred: np.ndarray, true_pos: np.ndarray) -> ClusterResult:
        """Give the acquired positions (rows of ``res`` in found order) their users' identities.

        * frame 0: the uplink (each user registers with its serving APs), modelled as the
          nearest true position;
        * the confirming acquisition frames (1 .. ``ACQUIRE_FRAMES - 1``): the previous
          estimates, gated by their uncertainty (a third of the track window, ``3 sqrt(CRLB)``
          of that frame plus the motion allowance) and tested for exchangeable pairs
          (:func:`netsim.sensing.associate.gated_association`); a match outside its gate, or
          two users whose gates both hold the other's estimate, is resolved by
          :func:`~netsim.sensing.associate.resolve_flagged` (an ungated second matching with a
          0.1 m sigma floor where it is unambiguous, the only echo left, else the uplink) and
          logged as ``sensing_association``;
        * later re-acquisitions: the predictions (nearest, Hungarian).
        """
        v = len(visible)
        ok = np.all(np.isfinite(res.positions_m), axis=1)
        rows = np.flatnonzero(ok)  # [J] the found users
        est = res.positions_m[rows]  # [J, 2]
        p = pred[visible]  # [V, 2]
        col = np.full(v, -1, dtype=np.int64)
        confirming = 1 <= self.n_frames < ACQUIRE_FRAMES
        if rows.size and confirming and np.all(np.isfinite(p)):
            sigma = np.maximum(self.halfwidth[visible] / GATE_SIGMAS, 1e-3)  # [V] m
            col, flagged = gated_association(est, p, sigma)
            flagged = flagged | self.relocated[visible]  # its frame-0 estimate was a cluster away
            # every flagged user takes its identity from the uplink (a dense cluster's ungated
            # second matching permuted three identities for good: our dense family, seed 0)
            col, by_uplink = resolve_flagged(col, flagged, est, p, sigma, true_pos[visible],
                                             no_track=np.ones(v, dtype=bool))
            for j in np.flatnonzero(flagged):
                k = visible[j]
                if k not in members:
                    continue
                how = ("identity from the uplink registration" if by_uplink[j] else
                       "resolved by the second, ungated matching (or the cluster's only echo left)")
                self.sim.event("sensing_association", k, f"user {k}: its acquisition match to the "
                               f"previous estimate is outside the {GATE_SIGMAS:g}-sigma gate or "
                               f"exchangeable with another user's ({SWAP_NATS:g} nats); {how}")
        elif rows.size:
            confirmed = np.isfinite(p) & (self.n_frames >= ACQUIRE_FRAMES)
            anchors = np.where(confirmed, p, true_pos[visible])  # [V, 2]
            ri, ci = min_cost_assignment(np.linalg.norm(anchors[:, None] - est[None], axis=-1))
            col[ri] = ci
        take = col >= 0
        src = rows[np.where(take, col, 0)]  # [V] row of res for each user
        pos = np.where(take[:, None], res.positions_m[src], np.nan)
        gap = np.where(take, res.gap_nats[src], np.inf) if res.gap_nats is not None else None
        amb = np.where(take, res.ambiguous[src], True) if res.ambiguous is not None else None
        return replace(res, positions_m=pos, detected=take & res.detected[src],
                       n_paths=np.where(take, res.n_paths[src], 0), gap_nats=gap, ambiguous=amb)

    def _update_tracks(self, est, crlb, detected, pred, dt) -> None:  # noqa: ANN001
        sim = self.sim
        dep = sim.scenario.deployment
        span = float(max(dep.width_m, dep.height_m))
        was_acq = np.isfinite(self.halfwidth)
        for k in range(est.shape[0]):
            if detected[k]:
                if was_acq[k] and not self.lost[k] and dt > 0:
                    self.vel[k] = (est[k] - self.pos[k]) / dt
                    # an acquisition may move a track by metres (frame 0 senses before the first
                    # sync correction has arrived): such a jump is a re-acquisition, not a speed
                    # nor is one faster than the class's top speed plus the two-point difference's
                    # noise (3 sigma of two estimates at this frame's bound): a previous estimate off
                    # by decimetres (isac_paper without sync, seed 3: 78 mm in frame 2) made a 0.5 m/s
                    # walker 1.5-1.8 m/s and put its next predictions on a wrong likelihood peak
                    noise = 3.0 * np.sqrt(2.0 * crlb[k]) / dt if np.isfinite(crlb[k]) else np.inf
                    if np.linalg.norm(self.vel[k]) > min(self.max_speed_mps, self.top_speed_mps + noise):
                        self.vel[k] = 0.0
                elif not was_acq[k] or self.lost[k]:
                    self.vel[k] = 0.0
                if self.lost[k] or not was_acq[k] or self.n_frames < ACQUIRE_FRAMES:
                    self.acquired_frame[k] = self.n_frames
                if self.lost[k]:
                    sim.event("sensing_reacquired", k, f"user {k} re-acquired at "
                              f"({est[k, 0]:.2f}, {est[k, 1]:.2f}) m")
                self.lost[k] = False
                self.pos[k] = est[k]
                step = dt if dt > 0 else 0.01
                sc = np.sqrt(crlb[k]) if np.isfinite(crlb[k]) else 0.0
                self.halfwidth[k] = 3 * sc + 2 * (np.linalg.norm(self.vel[k]) + 0.5) * step + 0.005
            else:
                if not self.lost[k]:
                    self.n_lost_events += 1
                    sim.event("sensing_lost", k, f"user {k}: no echo detected near the prediction; "
                              "coasting, widening its window")
                self.lost[k] = True
                if np.all(np.isfinite(pred[k])):
                    est[k] = pred[k]
                self.pos[k] = est[k]
                hw = self.halfwidth[k] if np.isfinite(self.halfwidth[k]) else 0.5
                self.halfwidth[k] = min(max(3.0 * hw, float(self.widen[k])), span)
            self.widen[k] = 0.0
        self.detected = detected.copy()


class CrlbSensing(MusicSensing):
    """``sensing.method: crlb``: estimates drawn from N(true position, CRB of the frame).

    The same clusters, RCS draws, sync losses, snapshot count and bound as ``music``; no echo
    and no search. Valid where MUSIC + ML is efficient (users tracked at high SNR).
    """

    fidelity = "crlb"

    def _sense_clusters(self, network, rng, todo, force, true_pos, pred, n_snap, to_s, cfo_hz,  # noqa: ANN001, ANN202, PLR0913
                        fc, need_plan, est, crlb, plan, detected, drawn, reuse, drawn_later=None, views=None,
                        placed=None):
        """:meth:`MusicSensing._sense_clusters` for the fidelity (``views``, ``placed`` unused): the same clusters, visible sets
        and draws in the same order (per cluster its RCS coefficients, then the normal draw of
        its estimates), with the bounds of all clusters formed afterwards, one
        :func:`~netsim.sensing.fim.fast_position_crb_batch` call per cluster size (the same
        values as one call per cluster), and each member's estimate
        ``true + V diag(sqrt(w)) z`` (eigendecomposition ``V diag(w) V^T`` of its 2 x 2 block)."""
        cfg = self.sim.scenario.sensing
        used = np.array(sorted({int(a) for key in todo for a in key}), dtype=int)
        pair = np.ones((to_s.shape[0], to_s.shape[0]), dtype=complex)  # [tx, rx], all APs
        pair[np.ix_(used, used)] = self._pair_factors(to_s[used], cfo_hz[used], n_snap, fc, cfg.snapshot_duration_s)
        if reuse and drawn_later:
            for a_l, v_l, aps_l in drawn_later:
                self._share_draws(a_l, v_l, aps_l, drawn, False)
            drawn_later.clear()
        ap_xy = network.ap_center_m
        jobs = []  # (geometry, visible, members' rows, covariance, alpha_eff, z, aps)
        for key, members in sorted(todo.items()):
            aps = np.array(key)
            geom = self._geometry(aps)
            d_users = np.linalg.norm(true_pos[:, None, :] - ap_xy[aps][None], axis=-1)  # [K, M]
            visible = sorted(set(np.flatnonzero(d_users.min(axis=1) <= cfg.range_m)) | set(members))
            v, m = len(visible), len(aps)
            alpha = (rng.standard_normal((v, m, m)) + 1j * rng.standard_normal((v, m, m))) / np.sqrt(2)
            if reuse or drawn_later is None:
                self._share_draws(alpha, visible, aps, drawn, reuse)  # [V, tx, rx]
            else:
                drawn_later.append((alpha.copy(), visible, aps))
            z = rng.standard_normal((v, 2))  # the estimate's draw, for every visible user (stream)
            rows = [j for j, k in enumerate(visible) if k in members]
            jobs.append((geom, visible, rows, self._covariance(geom), self._effective_alpha(alpha, aps, pair), z, aps))
        bounds = self._batched_bounds(jobs, true_pos, n_snap, [j[4] for j in jobs])  # per job [V, 2, 2]
        if need_plan:  # the nominal bound (unit RCS, sync losses): what eq. (17) plans with
            nominal = [self._effective_alpha(np.ones((len(j[1]), len(j[6]), len(j[6])), complex), j[6], pair)
                       for j in jobs]
            bnom = self._batched_bounds(jobs, true_pos, n_snap, nominal)
        users = np.array([j[1][r] for j in jobs for r in j[2]], dtype=int)  # members, job order
        if users.size == 0:
            return []
        blk = np.concatenate([b[j[2]] for b, j in zip(bounds, jobs, strict=True)])  # [U, 2, 2]
        z = np.concatenate([j[5][j[2]] for j in jobs])  # [U, 2]
        c = np.where(np.isfinite(blk), blk, 0.0)
        w, vec = np.linalg.eigh(0.5 * (c + np.swapaxes(c, -1, -2)))
        step = np.einsum("vij,vj->vi", vec, np.sqrt(np.maximum(w, 0.0)) * z)  # [U, 2]
        est[users] = true_pos[users] + step
        crlb[users] = np.trace(blk, axis1=1, axis2=2)
        detected[users] = True
        if need_plan:
            plan[users] = np.trace(np.concatenate([b[j[2]] for b, j in zip(bnom, jobs, strict=True)]), axis1=1, axis2=2)
        return []

    def _batched_bounds(self, jobs, true_pos, n_snap, alphas):  # noqa: ANN001, ANN202
        """Bounds (V, 2, 2) of every job, in job order: one batched call per (V, M)."""
        out: list = [None] * len(jobs)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, j in enumerate(jobs):
            by_size.setdefault((len(j[1]), len(j[6])), []).append(i)
        for idx in by_size.values():
            b = fast_position_crb_batch([jobs[i][0] for i in idx], np.stack([true_pos[jobs[i][1]] for i in idx]),
                                        np.stack([jobs[i][3] for i in idx]), n_snap, self.noise_w,
                                        exact_jbb=True, alpha=np.stack([alphas[i] for i in idx]))  # [C, V, 2, 2]
            for c, i in enumerate(idx):
                out[i] = b[c]
        return out
