"""The central unit (CPU): the frame loop, the sync phase (plan, rounds, reports, corrections)
and the sensing phase. The communication phase and the frame records are the mixins
:class:`~netsim.sim.comm_phase.CommPhase` and :class:`~netsim.sim.recording.FrameRecorder`."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from netsim.sim import methods
from netsim.sim.comm_phase import CommPhase
from netsim.sim.frame import FrameState, frame_timing
from netsim.sim.fronthaul import FronthaulLink, Scheduled
from netsim.sim.nodes import SyncReport
from netsim.sim.recording import FrameRecorder
from netsim.sim.sync_correction import CorrectionBatch, RoundSchedule, SyncCorrection

if TYPE_CHECKING:
    from netsim.sim.simulation import Simulation

__all__ = ["CentralUnit"]


class CentralUnit(CommPhase, FrameRecorder):
    """The CPU: runs the frame loop and turns sync reports into AP corrections.

    Two SimPy processes: :meth:`frames` (sync round, sensing, communication with its
    subframes, records) and :meth:`receive` (uplink -> per-AP corrections on the downlinks).
    Its state between frames is plain attributes (the sync plan, why the next frame must
    re-plan, the next frame's ``comm_fraction``, the last sync measurement), so a checkpoint
    can pickle it; the processes are rebuilt by :meth:`start`.
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.uplink = FronthaulLink(sim, sim.scenario.fronthaul.latency_s)
        self.plan = None
        self.plan_time_s = 0.0
        self.replan_reason: str | None = "start"
        self.comm_fraction = sim.scenario.frame.comm_fraction  # rho of the next frame
        self.timing_sense_s = 0.0
        self.last_meas: methods.SyncMeasurement | None = None
        net = sim.net
        self.sync = SyncCorrection(sim.scenario, net.n_aps, net.oscillators.carrier_hz,
                                   net.oscillators.noise)
        self.last_schedule: RoundSchedule | None = None
        self.downlink = FronthaulLink(sim, sim.scenario.fronthaul.latency_s)  # CPU -> APs
        self.receiver = None
        self.deliverer = None
        self.process = None

    def __getstate__(self):
        return {**self.__dict__, "receiver": None, "deliverer": None, "process": None,
                "_ap_static": None}

    def start(self, scheduled: list[Scheduled] = ()) -> None:
        """Start the receiver, the downlink deliverer, the ``scheduled`` calls (of a resumed
        run) and the frame loop."""
        env = self.sim.env
        self.uplink.attach(env)
        self.downlink.attach(env)
        self.receiver = env.process(self.receive())
        self.deliverer = env.process(self.deliver())
        for entry in scheduled:
            env.process(self.sim._wait_and_call(entry))
        self.process = env.process(self.frames())

    def request_replan(self, reason: str) -> None:
        """Ask for a new sync plan at the next frame (topology changed)."""
        self.replan_reason = reason

    @property
    def reference_ap(self) -> int:
        if self.plan is not None:
            return int(self.plan.reference_ap)
        ref = self.sim.scenario.sync.reference_ap
        online = np.flatnonzero(self.sim.net.online)
        if ref is not None and self.sim.net.online[ref]:
            return ref
        return int(online[0]) if online.size else 0

    # ------------------------------------------------------------------ sync
    def maybe_replan(self) -> bool:
        sim = self.sim
        sync = sim.scenario.sync
        if sync.method == "none":
            return False
        period_due = self.plan is not None and (
            sim.env.now - self.plan_time_s >= sync.replan_period_s - 1e-12)
        if self.replan_reason is None and not period_due:
            return False
        reason = self.replan_reason or "period"
        old = self.plan
        if not sim.net.online.any():
            self.plan = None
            sim.event("replan_failed", -1, "no AP online")
            self.replan_reason = None
            return False
        planner = methods.SYNC_PLANNERS[sync.method]
        self.plan = planner(sim.net, sim.net.online.copy(), sim.rngs["sync"])
        self.plan_time_s = sim.env.now
        self.replan_reason = None
        self.sync.on_replan(old, self.plan)
        n_clusters = len(self.plan.masters)
        weak = int(getattr(self.plan, "predicted_untrusted", 0))
        sim.event("replan", -1, f"{reason}: {n_clusters} cluster(s), {self.plan.n_pilots} pilot(s), "
                  f"reference AP {self.plan.reference_ap}"
                  + (f"; {weak} AP(s) behind a link predicted below sync.min_sinr_db" if weak else "")
                  + ("" if getattr(self.plan, "within_budget", True) else
                     f"; over budget: {self.plan.overhead_slots} slots > sync.overhead_budget_slots = "
                     f"{sync.overhead_budget_slots} (no allocation fits; the smallest-overhead plan is used)"))
        if old is not None:
            before = set(int(m) for m in old.masters)
            after = set(int(m) for m in self.plan.masters)
            for m in sorted(after - before):
                sim.event("master_change", m, "became master")
            for m in sorted(before - after):
                sim.event("master_change", m, "no longer master")
            if old.reference_ap != self.plan.reference_ap:
                sim.event("reference_change", int(self.plan.reference_ap),
                          f"was AP {old.reference_ap}")
        return True

    def send_reports(self, meas: methods.SyncMeasurement, t_meas: float,
                     acquisition: bool = False) -> None:
        """Each measuring AP reports its estimates to the CPU over the uplink; the reports of
        one round travel (and are fused by the tracker) as one uplink message, since they are
        sent at the same instant and arrive together."""
        measured_by = meas.measured_by
        reports = []
        senders = measured_by[measured_by >= 0]  # [j]
        # the distinct senders in increasing order (np.unique's; it would import numpy.ma)
        for sender in np.flatnonzero(np.bincount(senders)) if senders.size else ():
            aps = np.flatnonzero((measured_by == sender) & np.isfinite(meas.est_to_s))
            if aps.size == 0:
                continue
            phase_var = (meas.crb_phase_rad2 if meas.crb_phase_rad2 is not None
                         else np.full(len(measured_by), np.nan))  # [M]
            reports.append(SyncReport(
                sender=int(sender), t_meas_s=t_meas, aps=aps, to_s=meas.est_to_s[aps],
                cfo_hz=meas.est_cfo_hz[aps], phase_rad=meas.est_phase_rad[aps],
                crb_to_s2=meas.crb_to_s2[aps], crb_cfo_hz2=meas.crb_cfo_hz2[aps],
                crb_phase_rad2=phase_var[aps], acquisition=acquisition))
        if reports:
            self.uplink.send(tuple(reports))

    def receive(self):
        """CPU side of the uplink: each round's sync reports -> (tracker) -> one correction batch."""
        sim = self.sim
        while True:
            msg = yield self.uplink.receive()  # one round's reports (a lone one: old checkpoint)
            reports = [msg] if isinstance(msg, SyncReport) else list(msg)
            batch = self.sync.on_reports(reports, sim.env.now, self.downlink.latency_s, sim.event)
            if batch is not None:
                self.downlink.send(batch)

    def deliver(self):
        """APs' side of the downlink: apply each correction batch when it arrives (one process
        for all APs; the offsets are extrapolated from ``t_ref_s`` to now with the sent CFO)."""
        sim = self.sim
        net = sim.net
        f_c = net.oscillators.carrier_hz
        while True:
            batch: CorrectionBatch = yield self.downlink.receive()
            aps = np.asarray(batch.aps)
            up = net.online[aps]  # [k]
            for ap in aps[~up]:
                sim.event("correction_dropped", int(ap), "AP offline when it arrived")
                self.sync.reset(int(ap))
            if not up.any():
                continue
            sim.advance_world()
            dt = sim.env.now - batch.t_ref_s
            cfo = np.asarray(batch.cfo_hz)[up]  # [j] Hz
            net.oscillators.correct(
                aps[up],
                np.asarray(batch.to_s)[up] + cfo / f_c * dt,
                cfo / f_c,
                phase_rad=np.asarray(batch.phase_rad)[up] + 2 * np.pi * cfo * dt,
            )

    # ------------------------------------------------------------------ frame loop
    def frames(self):
        """The frame loop (a SimPy process): one iteration per frame, phases in order."""
        sim = self.sim
        env = sim.env
        period_s = sim.scenario.frame.period_s
        while True:
            sim.frame_boundary()  # flush, checkpoint, stop on a signal: only between frames
            if sim.done():
                return
            t_frame = env.now
            sim.advance_world()
            pos = sim.net.user_positions_now()  # [K, 2] (read-only)
            for user in sim.users:  # where the user processes woke up (same values)
                user.at_frame_start(pos)
            # the events due now and queued after this process's wake-up act before the frame
            # goes on (as when the user processes had to run first): same order as before
            yield env.timeout(0)
            fs = FrameState(t_frame=t_frame)
            yield from self.sync_phase(fs)
            yield from self.sense_phase(fs)
            yield from self.comm_phase(fs)
            record = self.record(fs)
            sim.frame += 1
            sim.trace.commit()  # the frame's rows are complete
            if sim.on_frame is not None:
                sim.on_frame(sim.frame - 1, env.now, record)
            if period_s is not None:
                next_start = t_frame + period_s
                if next_start > env.now:
                    yield env.timeout(next_start - env.now)

    def sync_phase(self, fs: FrameState):
        """Re-plan when needed, run the sync round, send the reports, wait out the overhead."""
        sim = self.sim
        sc, net, env = sim.scenario, sim.net, sim.env
        w0 = time.perf_counter()
        fs.replanned = self.maybe_replan()
        self.sync.gated_this_frame = self.sync.measured_this_frame = 0
        opportunity = (sc.sync.method != "none" and self.plan is not None
                       and sim.frame % sc.sync.period_frames == 0)
        slots = 0
        if opportunity:
            sched = self.sync.schedule(self.plan, net.online, self.sync_horizon(fs.t_frame))
            fs.sync_due = sched.n_clusters > 0
        waited = 0.0
        if fs.sync_due:
            # phase acquisition (sync.acquisition_round): decided before the first round
            acq = self.sync.acquisition(self.plan, sched, env.now, self.sync_interval_s())
            meas = self.sync_round(sched.aps)
            invalid = np.zeros(net.n_aps, dtype=bool)
            invalid[meas.invalid] = True
            self.last_meas = meas
            self.last_schedule = (sched.aps, invalid)
            fs.meas = meas
            slots = sched.overhead_slots
            fs.sync_rounds = 1
            if acq is not None and acq.n_clusters > 0:
                # the second round starts when the first ends, and not before the first's
                # corrections are in place (uplink + downlink latency)
                waited = max(slots * sc.frame.sync_slot_s,
                             2.0 * sc.fronthaul.latency_s + sc.frame.sync_slot_s)
                fs.wall_sync += time.perf_counter() - w0
                if waited > 0:
                    yield env.timeout(waited)
                w0 = time.perf_counter()
                sim.advance_world()
                self.sync_round(acq.aps, acquisition=True)
                slots += acq.overhead_slots
                fs.sync_rounds = 2
        fs.timing = frame_timing(sc, slots, self.comm_fraction)
        if waited > fs.timing.sync_s:  # the wait for the corrections is sync air time too
            fs.timing.sync_s = waited
        fs.wall_sync += time.perf_counter() - w0
        sim.wall["sync"] += fs.wall_sync
        if fs.timing.sync_s - waited > 0:
            yield env.timeout(fs.timing.sync_s - waited)

    def sync_round(self, aps: np.ndarray, acquisition: bool = False) -> methods.SyncMeasurement:
        """One sync round now over the APs ``aps`` (M,) bool: measure, log the untrusted
        estimates, send the reports up."""
        sim = self.sim
        method = sim.scenario.sync.method
        if method == "ml" and sim.scenario.sync.ml_window_sigmas > 0:
            # the tracker's TO prediction narrows each locked link's coarse ML search
            meas = methods.SYNC_METHODS[method](sim.net, self.plan, sim.rngs["sync"],
                                                to_prior=self.sync.to_prior(sim.env.now))
        else:
            meas = methods.SYNC_METHODS[method](sim.net, self.plan, sim.rngs["sync"])
        meas = _restrict(meas, aps)
        for ap in meas.invalid:
            sim.event("sync_untrusted", int(ap),
                      "estimate not trusted (low SINR, out of range or singular FIM); "
                      "not corrected this round")
        self.send_reports(meas, sim.env.now, acquisition)
        return meas

    def sync_interval_s(self) -> float:
        """Time between two sync opportunities (s): ``period_frames`` frames."""
        sc = self.sim.scenario
        fr = sc.frame
        frame_s = (fr.period_s if fr.period_s is not None
                   else fr.sense_comm_duration_s + sc.sync.overhead_budget_slots * fr.sync_slot_s)
        return sc.sync.period_frames * frame_s

    def sync_horizon(self, t_frame: float) -> float:
        """When the correction of the next sync opportunity would land at the earliest (s):
        the adaptive schedule keeps every predicted residual within its bound until then."""
        sc = self.sim.scenario
        fr = sc.frame
        budget_s = sc.sync.overhead_budget_slots * fr.sync_slot_s
        frame_s = fr.period_s if fr.period_s is not None else fr.sense_comm_duration_s + budget_s
        latency = 2.0 * sc.fronthaul.latency_s
        return t_frame + sc.sync.period_frames * frame_s + budget_s + latency

    def check_lost_aps(self) -> None:
        """After a round: APs untrusted (invalid or gated) ``sync.lost_after_rounds`` rounds in a
        row trigger a re-plan: their sync link, not the AP, is the likely problem."""
        if self.last_schedule is None:
            return
        measured, invalid = self.last_schedule
        self.last_schedule = None
        lost = self.sync.note_round(measured, invalid | self.sync.take_gated())
        n = self.sim.scenario.sync.lost_after_rounds
        for ap in lost:
            self.sim.event("ap_lost", int(ap), f"untrusted or gated {n} rounds in a row: re-plan "
                           "(its sync link, not the AP, is the likely problem)")
        if lost.size:
            self.request_replan(f"AP(s) {', '.join(str(int(a)) for a in lost)} lost")

    def sense_phase(self, fs: FrameState):
        """Localize the users; choose the next frame's time split."""
        sim = self.sim
        w0 = time.perf_counter()
        sim.advance_world()
        fs.true_pos = sim.net.user_pos_m  # [K, 2]
        self.timing_sense_s = fs.timing.sense_s
        fs.est_pos, fs.crlb_m2 = sim.sensing(sim.net, sim.rngs["sensing"])
        fs.wall_sense = time.perf_counter() - w0
        sim.wall["sense"] += fs.wall_sense
        fs.rho_now = self.comm_fraction
        # eq. (17) plans with the sensing model's nominal bound when it has one (the realised
        # bound depends on this frame's RCS draw, unknown to the next frame)
        plan = getattr(sim.sensing, "planning_crlb_m2", None)
        fs.crlb_plan_m2 = plan.copy() if plan is not None else fs.crlb_m2
        self.allocate_time(fs.crlb_plan_m2, fs.timing.sense_s)
        yield sim.env.timeout(fs.timing.sense_s)

    def allocate_time(self, crlb_m2: np.ndarray, sense_s: float) -> None:
        """Time allocation for the next frame (``frame.time_allocation``).

        ``crlb_feasible`` (seed 003 eq. 17): with the per-snapshot bounds c_k = CRLB_k L of this
        frame, the sensing phase needs L = ceil(max_k c_k / eps_th) snapshots, so
        rho = 1 - L T_u / T, clipped to [min_comm_fraction, max_comm_fraction] (an event is
        logged when the threshold cannot be met).
        """
        sc = self.sim.scenario
        if sc.frame.time_allocation == "fixed" or not np.all(np.isfinite(crlb_m2)):
            return
        n_snap = min(sc.sensing.max_snapshots,
                     max(1, int(np.floor(sense_s / sc.sensing.snapshot_duration_s + 1e-9))))
        c_max = float(np.max(crlb_m2)) * n_snap  # per-snapshot bound of the worst user (m^2)
        need = int(np.ceil(c_max / sc.sensing.crlb_threshold_m2 - 1e-12))
        rho = 1.0 - need * sc.sensing.snapshot_duration_s / sc.frame.sense_comm_duration_s
        lo, hi = sc.frame.min_comm_fraction, sc.frame.max_comm_fraction
        if rho < lo:
            self.sim.event("crlb_infeasible", -1, f"needs {need} snapshots; rho clipped to {lo}")
        self.comm_fraction = float(np.clip(rho, lo, hi))



def _restrict(meas: methods.SyncMeasurement, aps: np.ndarray) -> methods.SyncMeasurement:
    """The measurement of the scheduled APs only (the others are NaN / not measured)."""
    flagged = np.zeros(aps.size, dtype=bool)  # [M] the APs reported invalid
    flagged[meas.invalid] = True
    if aps[np.isfinite(meas.est_to_s) | flagged].all():
        return meas

    def keep(x):
        return None if x is None else np.where(aps, x, np.nan)

    return replace(
        meas, est_to_s=keep(meas.est_to_s), est_cfo_hz=keep(meas.est_cfo_hz),
        est_phase_rad=keep(meas.est_phase_rad), crb_to_s2=keep(meas.crb_to_s2),
        crb_cfo_hz2=keep(meas.crb_cfo_hz2), crb_phase_rad2=keep(meas.crb_phase_rad2),
        measured_by=np.where(aps, meas.measured_by, -1),
        invalid=meas.invalid[aps[meas.invalid]])
