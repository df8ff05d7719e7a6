"""The CPU's correction path: sync reports -> (clock tracker) -> correction batches.

:class:`SyncCorrection` is the state the CPU keeps about the APs' clocks between rounds
(``sync.tracking``): with ``none`` each round's estimate is turned into a correction once
(per-round correction, seed 000); with ``kalman`` a :class:`netsim.sync.tracking.ClockTracker`
fuses the rounds, gates outliers, and the correction is the filter's predicted state at the
instant it reaches the AP (downlink latency included). It also decides which clusters a round
measures (``sync.schedule: periodic | adaptive``) and notices APs that stay untrusted round
after round (``sync.lost_after_rounds``: a re-plan, since their link is the problem).

Everything here is plain attributes (numpy arrays, ints) reachable from the CPU, so a
checkpoint pickles it; the only SimPy-facing code is in :mod:`netsim.sim.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from netsim.sync.tracking import ClockTracker

__all__ = ["CorrectionBatch", "RoundSchedule", "SyncCorrection"]

# floor of the measurement variances handed to the filter (a genie round reports 0)
_MIN_VAR = np.array([1e-30, 1e-12, 1e-12])  # s^2, Hz^2, rad^2


@dataclass(frozen=True)
class CorrectionBatch:
    """CPU -> APs, one fronthaul message per report: offsets to remove.

    The values refer to time ``t_ref_s``; the AP extrapolates them to the instant the batch
    arrives with the sent CFO (``to + cfo/f_c dt``, ``phase + 2 pi cfo dt``). Per-round
    correction sends the estimates with ``t_ref_s`` = measurement time; the tracker sends its
    prediction for the arrival time, so ``dt = 0``.
    """

    aps: np.ndarray  # (k,) int
    t_ref_s: float
    to_s: np.ndarray  # (k,) s
    cfo_hz: np.ndarray  # (k,) Hz
    phase_rad: np.ndarray  # (k,) rad


@dataclass(frozen=True)
class RoundSchedule:
    """Which APs one sync round measures and what it costs.

    Attributes
    ----------
    aps : ndarray (M,), bool
        APs whose estimates are used (their clusters' slaves and the masters on the chain to
        the reference).
    n_clusters : int
        Clusters measured (the chain closure of the clusters that needed it).
    overhead_slots : int
        ``2 n_clusters + (pilots used by their slaves)``; the plan's ``2 K_C + tau`` when every
        cluster is measured.
    """

    aps: np.ndarray
    n_clusters: int
    overhead_slots: int


class SyncCorrection:
    """Correction state of the CPU (see the module docstring).

    Parameters
    ----------
    scenario : Scenario
    n_aps : int
    carrier_hz : float
    noise : ClockNoise
        The APs' oscillator noise (the filter's process model).
    """

    def __init__(self, scenario, n_aps: int, carrier_hz: float, noise) -> None:
        sync = scenario.sync
        # genie estimates are exact: nothing to fuse, so the tracker runs for ml / crb only
        self.mode = sync.tracking if sync.method in ("ml", "crb") else "none"
        self.schedule_mode = sync.schedule
        self.carrier_hz = float(carrier_hz)
        self.tracker: ClockTracker | None = None
        if self.mode == "kalman":
            from netsim.sync.tracking import ClockTracker, TrackerConfig

            cfg = TrackerConfig(noise=noise, carrier_hz=carrier_hz,
                                gate_probability=sync.gate_probability,
                                phase_lock_std_rad=sync.phase_lock_std_rad,
                                acquisition_lock_std_rad=sync.acquisition_lock_std_rad)
            ref = sync.reference_ap if sync.reference_ap is not None else 0
            self.tracker = ClockTracker(n_aps, cfg, reference=ref)
        self.bounds = np.array([
            np.inf if sync.adaptive_max_to_s is None else sync.adaptive_max_to_s,
            np.inf if sync.adaptive_max_cfo_hz is None else sync.adaptive_max_cfo_hz,
            np.inf if sync.adaptive_max_phase_rad is None else sync.adaptive_max_phase_rad,
        ])  # [3] s, Hz, rad
        self.acquire = bool(getattr(sync, "acquisition_round", False))
        self.noise = noise
        self.lost_after = int(sync.lost_after_rounds)
        self.untrusted_rounds = np.zeros(n_aps, dtype=np.int64)  # [M] consecutive
        self.gated_this_frame = 0
        self.measured_this_frame = 0
        self.gated_aps = np.zeros(n_aps, dtype=bool)  # [M] gated since the last take_gated()
        self._phase_floor: dict[float, float] = {}  # sync interval s -> phase_floor_rad, rad
        self.pending_until_s = -np.inf  # latest arrival time of a correction sent (s)

    # ------------------------------------------------------------------ topology
    def on_replan(self, old_plan, new_plan) -> None:
        """Tracks survive a re-plan; only a new reference changes what they are relative to."""
        self.untrusted_rounds[:] = 0
        if self.tracker is not None and new_plan is not None:
            ref = int(new_plan.reference_ap)
            if ref != self.tracker.reference:
                self.tracker.rereference(ref)

    def reset(self, ap: int) -> None:
        """Forget AP ``ap``'s track (outage, recovery, dropped correction)."""
        self.untrusted_rounds[ap] = 0
        if self.tracker is not None and ap != self.tracker.reference:
            self.tracker.reset([ap])

    # ------------------------------------------------------------------ scheduling
    def schedule(self, plan, online: np.ndarray, t_horizon_s: float) -> RoundSchedule:
        """Clusters to measure this round.

        ``periodic``: all. ``adaptive``: a cluster is measured when one of its online APs has
        no track yet or a predicted residual RMS at ``t_horizon_s`` (the time the next
        opportunity's correction would land) above a bound; then every cluster on its master
        chain to the reference is measured too (the slaves' offsets are chained through them).
        """
        cluster = np.asarray(plan.cluster_of_ap)  # [M]
        parent = getattr(plan, "master_parent", None)
        if self.schedule_mode == "periodic" or parent is None or self.tracker is None:
            return RoundSchedule(aps=(cluster >= 0) & online, n_clusters=len(plan.masters),
                                 overhead_slots=int(plan.overhead_slots))
        std = self.tracker.residual_std(t_horizon_s)  # [M, 3]
        need_ap = (~np.isfinite(std).all(axis=1) | (std > self.bounds).any(axis=1))  # [M]
        return _clusters_for(plan, online, need_ap, self.tracker.reference)

    def acquisition(self, plan, first: RoundSchedule, t_s: float, interval_s: float
                    ) -> RoundSchedule | None:
        """Second round right after ``first`` (phase acquisition), or ``None``.

        An AP of ``first`` needs it when its phase innovation at ``t_s``, given the TO and CFO
        innovations, would have a std above ``phase_lock_std_rad`` (new or reset track, CFO not yet known well
        enough: the round could not resolve the 2 pi ambiguity), provided the oscillator noise
        alone over the sync period ``interval_s`` (:func:`netsim.sync.tracking.phase_floor_rad`)
        stays below 0.5 rad, so that a locked phase stays locked from round to round. Under
        ``adaptive`` only when a phase bound is set. The round measures the clusters of those APs
        (and their master chains); the phase change over the short gap between the two rounds
        resolves the CFO to ``sqrt(2 var_phi + (2 pi f_c)^2 2 q1 gap) / (2 pi gap)``.
        """
        if self.tracker is None or not self.acquire or first.n_clusters == 0:
            return None
        if self.schedule_mode == "adaptive" and not np.isfinite(self.bounds[2]):
            return None
        cache = self.__dict__.setdefault("_phase_floor", {})  # (checkpoints from before it)
        floor = cache.get(interval_s)
        if floor is None:  # a function of the (fixed) sync period: once per period value
            from netsim.sync.tracking import phase_floor_rad

            floor = float(phase_floor_rad(interval_s, self.noise, self.carrier_hz))
            cache[interval_s] = floor
        if floor >= 0.5:
            return None
        lock = self.tracker.config.phase_lock_std_rad
        # the usual case once locked: an upper bound of every std is already far below the
        # lock threshold, so no AP needs the round (the same decision as the exact stds)
        if not (first.aps & ~(self.tracker.phase_std_bound(t_s) <= 0.5 * lock)).any():
            return None
        std = self.tracker.phase_std_given_rest(t_s)  # [M] (inf: no track yet)
        need_ap = first.aps & (std > lock)  # [M]
        if not need_ap.any():
            return None
        return _clusters_for(plan, first.aps, need_ap, self.tracker.reference)

    # ------------------------------------------------------------------ rounds
    def note_round(self, measured: np.ndarray, untrusted: np.ndarray) -> np.ndarray:
        """Count consecutive untrusted rounds of the APs this round measured.

        Parameters
        ----------
        measured : ndarray (M,), bool
            APs the round was meant to measure.
        untrusted : ndarray (M,), bool
            Of those, the ones whose estimate was not used (invalid, or gated by the filter).

        Returns
        -------
        ndarray (k,), int
            APs untrusted ``lost_after_rounds`` rounds in a row (their counters restart).
        """
        self.untrusted_rounds[measured & ~untrusted] = 0
        self.untrusted_rounds[measured & untrusted] += 1
        lost = np.flatnonzero(self.untrusted_rounds >= self.lost_after)
        self.untrusted_rounds[lost] = 0
        return lost

    def on_report(self, report, t_now_s: float, latency_s: float, event) -> CorrectionBatch | None:
        """One sync report -> a correction batch; see :meth:`on_reports`."""
        return self.on_reports([report], t_now_s, latency_s, event)

    def on_reports(self, reports, t_now_s: float, latency_s: float, event
                   ) -> CorrectionBatch | None:
        """Turn the reports of one sync round into one correction batch (``None`` when nothing
        is corrected).

        The reports (one per measuring AP, measured at the same instant, disjoint AP sets)
        are fused in one batched tracker update: the tracker is a bank of independent
        per-AP filters, so this is the same as one update per report (tested), with the
        ``sync_gated`` events in the same order. ``event(kind, ap, detail)`` logs gated
        measurements and track restarts.
        """
        reports = [r for r in reports if np.asarray(r.aps).size]
        if not reports:
            return None
        t_meas = reports[0].t_meas_s
        acq = bool(getattr(reports[0], "acquisition", False))
        if any(r.t_meas_s != t_meas or bool(getattr(r, "acquisition", False)) != acq
               for r in reports):
            raise ValueError("reports fused in one update must come from one round")

        def cat(name: str) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(r, name), dtype=float) for r in reports])

        aps = np.concatenate([np.asarray(r.aps, dtype=np.int64) for r in reports])  # [k]
        self.measured_this_frame += int(aps.size)
        if self.tracker is None:
            return CorrectionBatch(aps=aps, t_ref_s=t_meas, to_s=cat("to_s"),
                                   cfo_hz=cat("cfo_hz"), phase_rad=cat("phase_rad"))
        trk = self.tracker
        keep = aps != trk.reference
        aps = aps[keep]
        z = np.stack([cat("to_s")[keep], cat("cfo_hz")[keep], cat("phase_rad")[keep]], -1)  # [k, 3]
        var = np.stack([cat("crb_to_s2")[keep], cat("crb_cfo_hz2")[keep],
                        cat("crb_phase_rad2")[keep]], -1)  # [k, 3]
        var = np.maximum(np.where(np.isfinite(var), var, np.inf), _MIN_VAR)  # [k, 3]
        usable = np.isfinite(z).all(axis=1) & np.isfinite(var).all(axis=1)  # [k]
        aps, z, var = aps[usable], z[usable], var[usable]
        if aps.size == 0:
            return None
        upd = trk.update(aps, t_meas, z, var, acquisition=acq)
        for j in np.flatnonzero(upd.gated):
            restarted = " (restarted the track)" if upd.initialized[j] else ""
            event("sync_gated", int(aps[j]),
                  f"innovation NIS {upd.nis[j]:.3g} > gate ({upd.dof[j]} dof){restarted}")
        self.gated_this_frame += int(upd.gated.sum())
        fix = upd.accepted | upd.initialized  # [k]
        self.gated_aps[aps[upd.gated & ~upd.initialized]] = True
        if not fix.any():
            return None
        t_apply = t_now_s + latency_s
        self.pending_until_s = max(self.pending_until_s, t_apply)
        u = trk.correct(aps[fix], t_apply)  # [j, 3]
        return CorrectionBatch(aps=aps[fix], t_ref_s=t_apply, to_s=u[:, 0], cfo_hz=u[:, 1],
                               phase_rad=u[:, 2])

    def take_gated(self) -> np.ndarray:
        """(M,) bool: APs gated since the last call (cleared)."""
        out = self.gated_aps.copy()
        self.gated_aps[:] = False
        return out

    def to_prior(self, t_s: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The tracker's prediction of every AP's time offset relative to the reference at
        ``t_s`` and its std, ((M,), (M,)) s (NaN for APs without a track), for the ML round's
        search windows; None without a tracker, or while a correction is still on its way to
        an AP (the tracker already counts it as applied, the AP's clock does not yet)."""
        if self.tracker is None or t_s < getattr(self, "pending_until_s", -np.inf):
            return None
        mean, cov = self.tracker.predict(t_s)  # [M, 3], [M, 3, 3]
        return mean[:, 0], np.sqrt(cov[:, 0, 0])

    def residual_std(self, t_s: float) -> np.ndarray:
        """(M, 3) the tracker's predicted residual std (TO s, CFO Hz, phase rad) at ``t_s``;
        NaN without tracking or for APs without a track (0 for the reference)."""
        n = self.untrusted_rounds.shape[0]
        if self.tracker is None:
            return np.full((n, 3), np.nan)
        return self.tracker.residual_std(t_s)


def _clusters_for(plan, online: np.ndarray, need_ap: np.ndarray, ref: int) -> RoundSchedule:
    """Round over the clusters of the APs ``need_ap`` (M,) bool, closed along their master
    chains towards the reference cluster (the slaves' offsets are chained through them)."""
    cluster = np.asarray(plan.cluster_of_ap)  # [M]
    parent = plan.master_parent
    need_ap = need_ap & online & (cluster >= 0) & (np.arange(len(cluster)) != ref)  # [M]
    need = np.zeros(len(plan.masters), dtype=bool)  # [K_C]
    need[np.unique(cluster[need_ap])] = True
    for c in np.flatnonzero(need):  # chain closure towards the reference cluster
        p = int(parent[c])
        while p >= 0 and not need[p]:
            need[p] = True
            p = int(parent[p])
    aps = (cluster >= 0) & online & need[np.maximum(cluster, 0)]  # [M]
    if not need.any():
        return RoundSchedule(aps=aps, n_clusters=0, overhead_slots=0)
    pilots = np.asarray(plan.pilot_of_ap)[aps]
    n_pilots = int(np.unique(pilots[pilots >= 0]).size)
    k = int(need.sum())
    return RoundSchedule(aps=aps, n_clusters=k, overhead_slots=2 * k + n_pilots)
