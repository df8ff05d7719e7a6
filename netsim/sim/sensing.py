"""Sensing phase of the engine: near-field 2D MUSIC (seed 003) on multi-static echoes.

Sensing clusters
----------------
In a large deployment a user's echo is only heard by the APs near it, and one covariance
over hundreds of antennas would be both slow and ill-posed. Each user is therefore
localized by a *sensing cluster*: the ``sensing.aps_per_user`` online APs nearest to its
predicted position. Users whose clusters coincide are processed together. For a cluster:

1. the CPU forms the sample covariance of the echoes received by the cluster's APs
   (:func:`netsim.sensing.echo.sample_echo_covariance`), generated from the TRUE positions of
   every user within ``sensing.range_m`` of the cluster (all of them reflect), with the
   residual CFO/TO of every AP relative to the reference AP (bistatic paths carry the pair's
   residual error, monostatic paths none), at the chosen fidelity (Wishart or snapshots);
2. MUSIC (``sensing.spectrum``: RARE per-AP spectrum or the composite one) searches a window
   around each predicted position (tracking) and falls back to the cluster's whole region
   when a peak is lost; the first frame searches the whole region;
3. the CRLB of each user's position (eq. 2) is evaluated at the true positions with the
   same covariance, snapshot count and noise (exact J_bb when the nuisance block is small,
   the paper's diagonal approximation otherwise).

With ``aps_per_user`` at least the number of APs (the paper's 3-AP setting) there is one
cluster: exactly the model of the paper.

A track is lost when its refined peak falls below a tenth of last frame's (the RCS fades from
frame to frame, and sidelobes are weaker than the user's own peak); far fallback peaks are then
gated here (coasting on the prediction for up to ``max_coast_frames``).
"""

from __future__ import annotations

import numpy as np

from netsim.sensing.config import IsacGeometry
from netsim.sensing.covariance import SensingCovarianceCache
from netsim.sensing.echo import sample_echo_covariance
from netsim.sensing.fim import isotropic_covariance, position_crlb
from netsim.sensing.music import MusicGrid, match_estimates, music_localize
from netsim.units import dbm_to_w

__all__ = ["MusicSensing"]

EXACT_JBB_MAX_PARAMS = 600  # 2 K M^2 nuisance parameters above which J_bb is taken diagonal


class MusicSensing:
    """Stateful sensing model of one simulation (keeps the tracks between frames)."""

    def __init__(self, sim) -> None:
        self.sim = sim
        net, sc = sim.net, sim.scenario
        cfg = sc.sensing
        lam = net.wavelength_m
        # radar equation: two-hop power gain lambda^2 rcs / ((4 pi)^3 r1^2 r2^2), written as the
        # kernels' per-hop amplitude sqrt(kappa0) / r with kappa0 = lambda sqrt(rcs) / (4 pi)^1.5
        # (the paper's kappa0 = lambda / (4 pi) corresponds to rcs = 4 pi m^2)
        self.kappa0 = lam * np.sqrt(cfg.rcs_m2) / (4 * np.pi) ** 1.5
        self.power_w = dbm_to_w(cfg.power_dbm)
        self.noise_w = sc.channel.noise_power_w
        self.last_est: np.ndarray | None = None  # [K, 2]
        self.last_peaks: np.ndarray | None = None  # [K]
        self.cache = SensingCovarianceCache()
        self.initial_pos = net.user_pos_m
        self.fallbacks = 0
        self.coast = np.zeros(net.n_users, dtype=int)  # consecutive frames on the prediction

    # ------------------------------------------------------------------ helpers
    def _geometry(self, aps: np.ndarray) -> IsacGeometry:
        net = self.sim.net
        return IsacGeometry(
            ap_centers_m=net.ap_center_m[aps], ap_axis_rad=net.ap_axis_rad[aps],
            n_antennas=net.n_antennas, spacing_m=net.spacing_m, wavelength_m=net.wavelength_m,
            kappa0=self.kappa0)

    def _grid(self, aps: np.ndarray) -> MusicGrid:
        net, cfg = self.sim.net, self.sim.scenario.sensing
        dep = self.sim.scenario.deployment
        lo = np.maximum(net.ap_center_m[aps].min(axis=0) - cfg.range_m, 0.0)
        hi = np.minimum(net.ap_center_m[aps].max(axis=0) + cfg.range_m, [dep.width_m, dep.height_m])
        aperture = net.spacing_m * (net.n_antennas - 1)
        return MusicGrid(x_min_m=lo[0], x_max_m=hi[0], y_min_m=lo[1], y_max_m=hi[1],
                         step_m=cfg.grid_step_m, exclusion_m=max(aperture, 0.05),
                         refine_step_m=cfg.refine_step_m, track_halfwidth_m=cfg.tracking_window_m,
                         track_step_m=min(0.025, cfg.tracking_window_m / 8))

    def _covariance(self, geom: IsacGeometry, users_pos: np.ndarray) -> np.ndarray:
        cfg = self.sim.scenario.sensing
        if cfg.covariance == "optimized":
            return self.cache.get(geom, users_pos, self.power_w, exact_jbb=True).r
        return isotropic_covariance(geom, self.power_w)

    # ------------------------------------------------------------------ one frame
    def __call__(self, network, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sim = self.sim
        sc = sim.scenario
        cfg = sc.sensing
        true_pos = network.user_pos_m  # [K, 2]
        n_users = network.n_users
        online = np.flatnonzero(network.online)
        if online.size == 0:
            return np.full((n_users, 2), np.nan), np.full(n_users, np.nan)
        predicted = self.last_est if self.last_est is not None else None
        # sensing cluster of each user: the online APs nearest to its predicted position. The
        # first frame has no track yet: it uses the APs nearest to the user's true position,
        # standing for the serving APs that the CPU knows from the user's uplink (acquisition).
        anchor = predicted if predicted is not None else true_pos
        sense_time = sim.timing_sense_s
        n_snap = int(min(cfg.max_snapshots, max(1, np.floor(sense_time / cfg.snapshot_duration_s + 1e-9))))
        ref = sim.reference_ap
        to_s, cfo_hz, _ = network.offsets_to(ref)
        s = min(cfg.aps_per_user, online.size)
        clusters: dict[tuple[int, ...], list[int]] = {}
        for k in range(n_users):
            where = anchor[k] if np.all(np.isfinite(anchor[k])) else true_pos[k]
            d = np.linalg.norm(network.ap_center_m[online] - where, axis=1)
            key = tuple(sorted(int(a) for a in online[np.argsort(d, kind="stable")[:s]]))
            clusters.setdefault(key, []).append(k)

        est = np.full((n_users, 2), np.nan)
        peaks = np.full(n_users, np.nan)
        crlb = np.full(n_users, np.nan)
        for key in sorted(clusters):
            aps = np.array(key)
            members = clusters[key]
            geom = self._geometry(aps)
            d_users = np.linalg.norm(true_pos[:, None, :] - network.ap_center_m[aps][None], axis=-1)
            visible = sorted(set(np.flatnonzero(d_users.min(axis=1) <= cfg.range_m)) | set(members))
            r = self._covariance(geom, self.initial_pos[visible])
            sample = sample_echo_covariance(
                geom, true_pos[visible], r, n_snap, self.noise_w, rng,
                residual_cfo_hz=cfo_hz[aps], residual_to_s=to_s[aps], fidelity=cfg.fidelity,
                carrier_hz=sc.channel.carrier_hz, snapshot_s=cfg.snapshot_duration_s)
            grid = self._grid(aps)
            use_track = cfg.tracking and predicted is not None and np.all(
                np.isfinite(predicted[visible]))
            res = music_localize(
                sample, geom, len(visible), self.noise_w, grid,
                predicted_pos=predicted[visible] if use_track else None,
                kind=cfg.spectrum,
                reference_peaks=self.last_peaks[visible] if use_track else None)
            if res.fell_back:
                self.fallbacks += 1
                sim.event("music_fallback", -1, f"cluster APs {list(key)}: a tracked peak was "
                          "lost; searched the whole region")
            pos = res.positions_m  # [len(visible), 2]
            if not use_track:  # full search: peaks come by strength; pair them with the users
                pos, pv = _assign(pos, res.peak_values, true_pos[visible] if predicted is None
                                  else predicted[visible])
            else:
                pv = res.peak_values
            if use_track and res.fell_back:
                # gating: a fallback peak far from the track is more likely another user's
                # echo or a sidelobe (the RCS fades from frame to frame) than the user itself;
                # coast on the prediction, and re-acquire after max_coast_frames misses
                pred_v = predicted[visible]
                jump = np.linalg.norm(pos - pred_v, axis=1)
                gate = 2.0 * cfg.tracking_window_m
                for j, k in enumerate(visible):
                    if jump[j] > gate and self.coast[k] < cfg.max_coast_frames:
                        self.coast[k] += 1
                        pos[j], pv[j] = pred_v[j], self.last_peaks[k]
                    else:
                        self.coast[k] = 0
            elif use_track:
                self.coast[visible] = 0
            n_nuis = 2 * len(visible) * len(aps) ** 2
            bound = position_crlb(geom, true_pos[visible], r, n_snap, self.noise_w,
                                  exact_jbb=n_nuis <= EXACT_JBB_MAX_PARAMS)
            for j, k in enumerate(visible):
                if k in members:
                    est[k], peaks[k], crlb[k] = pos[j], pv[j], bound[j]
        self.last_est, self.last_peaks = est.copy(), peaks.copy()
        return est, crlb


def _assign(pos: np.ndarray, peak_values: np.ndarray, anchor: np.ndarray):
    """Pair full-search peaks with users by the nearest-assignment to ``anchor``.

    On the very first frame there is no track: the anchor is the true position, which only
    decides *which* peak belongs to which user (identities), never the estimate itself.
    """
    perm, _ = match_estimates(pos, anchor)
    return pos[perm], np.asarray(peak_values)[perm]
