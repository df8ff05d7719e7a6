"""The SimPy frame engine.

Processes
---------
* the APs (:class:`AccessPoint`): each owns its oscillator (one entry of the network's
  oscillator bank) and sends sync reports up over the shared uplink; the CPU's corrections
  come down the downlink as one :class:`~netsim.sim.sync_correction.CorrectionBatch` per
  report, applied (vectorised) by one process when the batch arrives;
* the :class:`CentralUnit` process: the frame loop (sync round, sensing, communication
  with its subframes) and a receiver process that turns sync reports into corrections;
* one :class:`UserProcess` per user: tracks how far its user moved since the last
  beamformer design (the CPU reuses a beamformer when nobody moved far);
* one process per scheduled fault (AP outage and recovery).

Fronthaul links are :class:`FronthaulLink` objects: a ``simpy.Store`` whose items are
delivered ``latency_s`` after they were sent.

The engine calls pure kernels (``netsim.phy``, ``netsim.comm``, ...) through the
registries of :mod:`netsim.sim.methods` and emits records to a
:class:`netsim.trace.TraceWriter`.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import simpy

import netsim
from netsim.comm.rates import downlink_sinr_batch, rates_bps_hz_batch, subcarrier_frequencies
from netsim.rng import RandomStreams
from netsim.runs import CHECKPOINT_FILE, RunDirError, prepare_run_dir, read_run_meta, write_meta
from netsim.scenario.loader import scenario_to_yaml
from netsim.scenario.models import Scenario
from netsim.sim import methods
from netsim.sim.checks import check_record, mean_sinr_db
from netsim.sim.comm import make_comm
from netsim.sim.sync_correction import CorrectionBatch, RoundSchedule, SyncCorrection
from netsim.sim.world import Network
from netsim.trace import TraceWriter
from netsim.units import dbm_to_w

__all__ = ["AccessPoint", "CentralUnit", "Environment", "FronthaulLink", "RunInterrupted", "RunSummary",
           "Scheduled", "Simulation", "UserProcess", "frame_timing", "run_scenario"]

PHASES = ("sync", "sense", "comm", "power")
# Bump when the pickled state changes shape, so an old checkpoint gets a clear error instead of
# an AttributeError on resume. 2: Network keeps user positions in `_pos` (was `_user_pos`).
CHECKPOINT_FORMAT = 2

log = logging.getLogger(__name__)


class Environment(simpy.Environment):
    """A SimPy environment that can also schedule an event at an absolute time.

    ``timeout(t - now)`` would round ``now + (t - now)``; a resumed run must wake its pending
    calls at exactly the times the uninterrupted run had (``t_s`` saved in the checkpoint).
    """

    def timeout_at(self, t_s: float) -> simpy.events.Event:
        if t_s < self.now:
            raise ValueError(f"cannot schedule at {t_s} s, before now ({self.now} s)")
        event = simpy.events.Event(self)
        event._ok = True  # a triggered event, like a Timeout, processed at t_s
        event._value = None
        # same heap entry as Environment.schedule(), at the absolute time
        heapq.heappush(self._queue, (t_s, simpy.core.NORMAL, next(self._eid), event))
        return event


class Scheduled:
    """A call ``getattr(target, method)(*args)`` due at ``t_s``: plain, picklable data.

    Every future action of the simulation that is pending across a frame boundary (fault
    starts and ends, fronthaul messages in flight) is one of these, so a checkpoint saves it
    and a resumed run re-schedules it at the same time and in the same order.
    """

    __slots__ = ("args", "event", "method", "seq", "t_s", "target")

    def __init__(self, t_s: float, seq: int, target: Any, method: str, args: tuple) -> None:
        self.t_s, self.seq, self.target, self.method, self.args = t_s, seq, target, method, args
        self.event: simpy.events.Event | None = None  # runtime only

    def __getstate__(self):
        return (self.t_s, self.seq, self.target, self.method, self.args)

    def __setstate__(self, state) -> None:
        self.t_s, self.seq, self.target, self.method, self.args = state
        self.event = None


class FronthaulLink:
    """A one-way fronthaul link: messages put now are delivered ``latency_s`` later, in order.

    The receiving process waits on :meth:`receive` (a ``simpy.Store``). A message in flight is
    a :class:`Scheduled` delivery of the simulation, so it survives a checkpoint; the store
    itself is runtime state, rebuilt by :meth:`attach`.
    """

    def __init__(self, sim: Simulation, latency_s: float) -> None:
        self.sim = sim
        self.latency_s = latency_s
        self.env: simpy.Environment | None = None
        self.store: simpy.Store | None = None
        self.attach(sim.env)

    def attach(self, env: simpy.Environment) -> None:
        """Create the store in ``env`` (a new run or a resumed one)."""
        self.env = env
        self.store = simpy.Store(env)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["env"] = state["store"] = None
        return state

    def send(self, message: Any) -> None:
        if self.latency_s == 0:
            self.store.put(message)
            return
        self.sim.call_at(self.env.now + self.latency_s, self, "deliver", message)

    def deliver(self, message: Any) -> None:
        self.store.put(message)

    def receive(self) -> simpy.events.Event:
        return self.store.get()


@dataclass(frozen=True)
class SyncReport:
    """Measuring AP -> CPU: estimates of the APs it measured in one sync round."""

    sender: int
    t_meas_s: float
    aps: np.ndarray
    to_s: np.ndarray
    cfo_hz: np.ndarray
    phase_rad: np.ndarray
    crb_to_s2: np.ndarray | None = None
    crb_cfo_hz2: np.ndarray | None = None
    crb_phase_rad2: np.ndarray | None = None
    acquisition: bool = False  # the frame's second (phase-acquisition) round


@dataclass
class FrameTiming:
    sync_s: float
    sense_s: float
    comm_s: float
    subframe_s: float


def frame_timing(scenario: Scenario, overhead_slots: int, comm_fraction: float | None = None
                 ) -> FrameTiming:
    """Phase durations of one frame with ``overhead_slots`` sync slots (s)."""
    fr = scenario.frame
    rho = fr.comm_fraction if comm_fraction is None else comm_fraction
    sense = (1.0 - rho) * fr.sense_comm_duration_s
    comm = rho * fr.sense_comm_duration_s
    return FrameTiming(overhead_slots * fr.sync_slot_s, sense, comm, comm / fr.subframes)


class AccessPoint:
    """An AP: its oscillator is entry ``index`` of the network's bank; it sends sync reports
    over the shared uplink. Corrections reach it in batches (:meth:`CentralUnit.deliver`)."""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.index = index
        self.process = None

    def __getstate__(self):
        return {**self.__dict__, "process": None}

    def start(self) -> None:
        """Nothing to start: the APs' downlink is one batch process of the CPU (issue 10)."""

    def send_report(self, report: SyncReport) -> None:
        self.sim.cpu.uplink.send(report)


class UserProcess:
    """User process: wakes at every frame start and tracks its displacement since the last
    beamformer design."""

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.index = index
        self.anchor_m = sim.net.user_pos_m[index]
        self.moved_m = 0.0
        self.process = None

    def __getstate__(self):
        return {**self.__dict__, "process": None}

    def start(self) -> None:
        self.process = self.sim.env.process(self.run())

    def run(self):
        while True:
            yield self.sim.frame_start
            self.moved_m = float(np.linalg.norm(self.sim.net.user_pos_m[self.index] - self.anchor_m))

    def reset_anchor(self) -> None:
        self.anchor_m = self.sim.net.user_pos_m[self.index]
        self.moved_m = 0.0


@dataclass
@dataclass
class RunSummary:
    """What a finished (or failed) run reports back."""

    status: str
    frames: int
    sim_time_s: float
    wall_s: float
    wall_per_phase_s: dict[str, float]
    out_dir: Path | None
    tables: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None

    @property
    def real_time_factor(self) -> float:
        """Simulated seconds per wall second."""
        return self.sim_time_s / self.wall_s if self.wall_s > 0 else math.inf


@dataclass
class FrameState:
    """What one frame's phases hand to each other (local to one frame; never checkpointed)."""

    t_frame: float
    replanned: bool = False
    sync_due: bool = False
    meas: methods.SyncMeasurement | None = None
    timing: FrameTiming | None = None
    wall_sync: float = 0.0
    true_pos: np.ndarray | None = None  # [K, 2]
    est_pos: np.ndarray | None = None  # [K, 2]
    crlb_m2: np.ndarray | None = None  # [K]
    crlb_plan_m2: np.ndarray | None = None  # [K] bound the time allocation planned with
    wall_sense: float = 0.0
    rho_now: float = 0.0
    ap_rows: dict[str, np.ndarray] = field(default_factory=dict)
    reused: bool = False
    rates_sum: list[float] = field(default_factory=list)
    rates_min: list[float] = field(default_factory=list)
    sinr_all: list[np.ndarray] = field(default_factory=list)
    iters: list[int] = field(default_factory=list)
    wall_comm: float = 0.0
    wall_power: float = 0.0
    n_gated: int = 0
    sync_rounds: int = 0


class CentralUnit:
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
        return {**self.__dict__, "receiver": None, "deliverer": None, "process": None}

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
                  + (f"; {weak} AP(s) behind a link predicted below sync.min_sinr_db" if weak else ""))
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
        """Each measuring AP reports its estimates to the CPU over the uplink."""
        measured_by = meas.measured_by
        for sender in np.unique(measured_by[measured_by >= 0]):
            aps = np.flatnonzero((measured_by == sender) & np.isfinite(meas.est_to_s))
            if aps.size == 0:
                continue
            phase_var = (meas.crb_phase_rad2 if meas.crb_phase_rad2 is not None
                         else np.full(len(measured_by), np.nan))  # [M]
            self.sim.aps[int(sender)].send_report(SyncReport(
                sender=int(sender), t_meas_s=t_meas, aps=aps, to_s=meas.est_to_s[aps],
                cfo_hz=meas.est_cfo_hz[aps], phase_rad=meas.est_phase_rad[aps],
                crb_to_s2=meas.crb_to_s2[aps], crb_cfo_hz2=meas.crb_cfo_hz2[aps],
                crb_phase_rad2=phase_var[aps], acquisition=acquisition))

    def receive(self):
        """CPU side of the uplink: each sync report -> (tracker) -> one correction batch."""
        sim = self.sim
        while True:
            report: SyncReport = yield self.uplink.receive()
            batch = self.sync.on_report(report, sim.env.now, self.downlink.latency_s, sim.event)
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
            ev, sim.frame_start = sim.frame_start, env.event()
            ev.succeed()
            yield env.timeout(0)  # let user processes see the frame start
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
        meas = methods.SYNC_METHODS[sim.scenario.sync.method](sim.net, self.plan, sim.rngs["sync"])
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

    def comm_phase(self, fs: FrameState):
        """Beamformers once per frame; per subframe power control and rates on the TRUE channel."""
        sim = self.sim
        sc, net, env = sim.scenario, sim.net, sim.env
        timing = fs.timing
        w0 = time.perf_counter()
        sim.advance_world()
        comm_start = env.now
        ref = self.reference_ap
        to_s, cfo_hz, phase = net.offsets_to(ref)
        fs.ap_rows = self.ap_rows(fs.meas, to_s, cfo_hz, phase)
        fs.n_gated = self.sync.gated_this_frame
        fs.reused = sim.comm.frame_setup(fs.est_pos, fs.crlb_m2)
        wall_power = 0.0
        not_converged = 0
        users = np.arange(net.n_users)  # [K] shared by the frame's subframe rows (read-only)
        # the subframes' times, as the timeouts below produce them (now + (t_sub - now)), and
        # their true channels in one batch (None: evaluated one by one)
        times, now = [], env.now
        for s in range(sc.frame.subframes):
            t_sub = comm_start + s * timing.subframe_s
            if t_sub > now:
                now = now + (t_sub - now)
            times.append(now)
        h_batch = net.true_channels(times)
        # nothing else acts before the last subframe (no correction arriving, no fault): the
        # oscillators are advanced through the subframe times in one go (bit-identical)
        quiet = h_batch is not None and env.peek() > times[-1]
        if quiet:
            to_hist, phase_hist = net.advance_through(times, ref)  # [S, M] each
        h_all, w_all, phase_all, to_all, t_all, txs = [], [], [], [], [], []
        for s in range(sc.frame.subframes):
            t_sub = comm_start + s * timing.subframe_s
            if quiet:  # no other process acts before times[-1]: no need to wake up per subframe
                to_s, phase = to_hist[s], phase_hist[s]
                t_all.append(times[s])
            else:
                if t_sub > env.now:
                    yield env.timeout(t_sub - env.now)
                sim.advance_world()
                t_all.append(env.now)
            if h_batch is None:
                h_true = net.true_channel()  # [K, M, N]
            elif t_all[-1] != times[s]:  # cannot happen: the batch assumed these times
                raise RuntimeError(f"subframe {s} at {env.now} s, the batch assumed {times[s]} s")
            else:
                h_true = h_batch[s]  # [K, M, N]
            if not net.online.all():  # offline APs send nothing (x 1 would change no bit)
                h_true = h_true * net.online[None, :, None]
            if not quiet:
                to_s, _, phase = net.offsets_to(ref)
            wp = time.perf_counter()
            tx = sim.comm.subframe(h_true)
            wall_power += time.perf_counter() - wp
            h_all.append(h_true)
            w_all.append(tx.w)
            phase_all.append(phase)
            to_all.append(to_s)
            txs.append(tx)
            not_converged += not tx.converged
        if quiet and times[-1] > env.now:  # the time the last subframe's timeout reached
            yield env.timeout_at(times[-1])
        # every subframe's SINR in one batch (the same values as one call per subframe)
        # the batch itself when no subframe masked it (no copy); one w when every subframe
        # sent the same array (location-aware CSI with a per-frame allocation)
        h_stack = (h_batch if h_batch is not None and len(h_all) == len(h_batch)
                   and all(h.base is h_batch for h in h_all) else np.stack(h_all))
        w_stack = (np.broadcast_to(w_all[0], (len(w_all), *w_all[0].shape))
                   if all(w is w_all[0] for w in w_all) else np.stack(w_all))
        sinr = downlink_sinr_batch(h_stack, w_stack, sc.channel.noise_power_w,
                                   np.stack(phase_all), np.stack(to_all), sim.subcarrier_hz,
                                   sc.comm.cyclic_prefix_s,
                                   sc.comm.symbol_duration_s)  # [S, F, K]
        n_sub, n_user = len(txs), net.n_users
        se = rates_bps_hz_batch(sinr)  # [S, K] bit/s/Hz before the pre-log factor
        rate = np.array([tx.rate_factor for tx in txs])[:, None] * se  # [S, K]
        sinr_eff_db = 10 * np.log10(2.0 ** se - 1.0 + 1e-300)  # [S, K]
        power = np.stack([tx.power_w for tx in txs])  # [S, M, K]
        sim.trace.emit("subframes", frame=sim.frame, subframe=np.repeat(np.arange(n_sub), n_user),
                       t_s=np.repeat(np.asarray(t_all, dtype=float), n_user),
                       user=np.tile(users, n_sub), power_w=power.sum(axis=1).reshape(-1),
                       ap_power_w=power.transpose(0, 2, 1).reshape(n_sub * n_user, -1),
                       sinr_db=sinr_eff_db.reshape(-1), rate_bps_hz=rate.reshape(-1))
        fs.rates_sum.extend(rate.sum(axis=1))
        fs.rates_min.extend(rate.min(axis=1))
        fs.sinr_all.extend(sinr_eff_db)
        fs.iters.extend(tx.iterations for tx in txs)
        if not_converged:
            sim.event("power_not_converged", -1,
                      f"{sc.comm.power}: {not_converged} of {sc.frame.subframes} subframes "
                      "hit the iteration cap (last iterate used)")
        end = comm_start + timing.comm_s
        if end > env.now:
            yield env.timeout(end - env.now)
        fs.wall_comm = time.perf_counter() - w0 - wall_power
        fs.wall_power = wall_power
        sim.wall["comm"] += fs.wall_comm
        sim.wall["power"] += wall_power

    def record(self, fs: FrameState) -> dict:
        """Emit the frame's users, aps and frames rows; return the frames row."""
        sim = self.sim
        sc, net = sim.scenario, sim.net
        timing, t_frame = fs.timing, fs.t_frame
        true_pos, est_pos, crlb_m2, ap_rows = fs.true_pos, fs.est_pos, fs.crlb_m2, fs.ap_rows
        err = np.linalg.norm(est_pos - true_pos, axis=1)  # [K]
        sqrt_crlb = np.sqrt(crlb_m2)  # [K]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = err / sqrt_crlb  # [K]; NaN with genie sensing (no bound)
        # tracked: within 3 sqrt(CRLB) of the truth, or within 1 cm (issue 9's definition)
        tracked = (err <= 0.01) | (np.isfinite(ratio) & (ratio <= 3.0))
        sim.trace.emit("users", frame=sim.frame, t_s=t_frame, user=np.arange(net.n_users),
                       x_m=true_pos[:, 0], y_m=true_pos[:, 1], x_hat_m=est_pos[:, 0],
                       y_hat_m=est_pos[:, 1], loc_err_m=err, crlb_m=sqrt_crlb,
                       speed_mps=net.user_speeds_mps(), crlb_ratio=ratio, tracked=tracked,
                       crlb_plan_m=np.sqrt(fs.crlb_plan_m2))
        sim.trace.emit("aps", frame=sim.frame, t_s=t_frame, **ap_rows)
        self.check_lost_aps()
        online = net.online
        res_cfo, res_to = ap_rows["residual_cfo_hz"][online], ap_rows["residual_to_s"][online]
        res_phase = ap_rows["residual_phase_rad"][online]
        record = dict(
            frame=sim.frame, t_s=t_frame, sync_ran=fs.sync_due, sync_rounds=fs.sync_rounds,
            replanned=fs.replanned,
            sync_duration_s=timing.sync_s, sense_duration_s=timing.sense_s,
            comm_duration_s=timing.comm_s,
            overhead_fraction=timing.sync_s / (timing.sync_s + sc.frame.sense_comm_duration_s),
            comm_fraction=fs.rho_now, n_online_aps=int(online.sum()),
            n_clusters=len(self.plan.masters) if self.plan is not None else 0,
            n_pilots=int(self.plan.n_pilots) if self.plan is not None else 0,
            residual_cfo_rms_hz=_rms(res_cfo), residual_cfo_max_hz=_absmax(res_cfo),
            residual_to_rms_s=_rms(res_to), residual_to_max_s=_absmax(res_to),
            residual_phase_rms_rad=_rms(res_phase),
            n_measured_aps=int(np.isfinite(fs.meas.est_to_s).sum()) if fs.meas else 0,
            n_gated=fs.n_gated,
            sensing_rmse_m=_rms(err), crlb_rms_m=float(np.sqrt(np.mean(crlb_m2))),
            sensing_ratio_median=float(np.median(ratio)) if np.all(np.isfinite(ratio)) else float("nan"),
            tracked_fraction=float(np.mean(tracked)),
            beamformer_reused=fs.reused, comm_pilot_length=int(sim.comm.pilot_length),
            power_iterations_mean=float(np.mean(fs.iters)),
            sum_rate_bps_hz=float(np.mean(fs.rates_sum)),
            min_rate_bps_hz=float(np.mean(fs.rates_min)),
            certified_min_rate_bps_hz=self.certified_rate(),
            mean_sinr_db=mean_sinr_db(fs.sinr_all),  # served users only (dB)
            wall_sync_s=fs.wall_sync, wall_sense_s=fs.wall_sense, wall_comm_s=fs.wall_comm,
            wall_power_s=fs.wall_power,
        )
        sim.trace.emit("frames", **record)
        return record

    def certified_rate(self) -> float:
        """Certified worst-case minimum user rate of this frame's seed-003 design over the error
        balls [bit/s/Hz] (including the pre-log rho); NaN for the other beamformers or when the
        design fell back to equal-power MRT."""
        comm = self.sim.comm
        design = getattr(comm, "last_design", None)
        if design is None or design.status != "ok" or getattr(comm, "robust_w", None) is None:
            return float("nan")
        return float(design.rate_wc)

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

    def ap_rows(self, meas, to_s, cfo_hz, phase) -> dict[str, np.ndarray]:
        net = self.sim.net
        n = net.n_aps
        nan = np.full(n, np.nan)
        plan = self.plan
        if plan is not None:
            cluster = np.asarray(plan.cluster_of_ap)
            is_master = np.isin(np.arange(n), plan.masters)
        else:
            cluster, is_master = np.full(n, -1), np.zeros(n, dtype=bool)
        online = net.online.copy()
        std = np.where(online[:, None], self.sync.residual_std(self.sim.env.now), np.nan)  # [M, 3]
        return dict(
            ap=np.arange(n), x_m=net.ap_center_m[:, 0], y_m=net.ap_center_m[:, 1],
            cluster=cluster, is_master=is_master,
            is_reference=np.arange(n) == self.reference_ap, online=online,
            true_cfo_hz=meas.true_cfo_hz if meas else nan,
            est_cfo_hz=meas.est_cfo_hz if meas else nan,
            residual_cfo_hz=np.where(online, cfo_hz, np.nan),
            true_to_s=meas.true_to_s if meas else nan,
            est_to_s=meas.est_to_s if meas else nan,
            residual_to_s=np.where(online, to_s, np.nan),
            residual_phase_rad=np.where(online, phase, np.nan),
            crb_cfo_hz2=meas.crb_cfo_hz2 if meas else nan,
            crb_to_s2=meas.crb_to_s2 if meas else nan,
            track_to_std_s=std[:, 0], track_cfo_std_hz=std[:, 1], track_phase_std_rad=std[:, 2],
        )


class RunInterrupted(Exception):
    """The run stopped at a frame boundary because the process got SIGTERM or SIGINT."""

    def __init__(self, signum: int, frame: int) -> None:
        self.signum = signum
        self.frame = frame
        super().__init__(f"{signal.Signals(signum).name} received; stopped after frame {frame - 1}")


# attributes of a Simulation that live only while it runs (never checkpointed)
_RUNTIME = ("env", "frame_start", "on_frame", "trace", "_stop_signal", "_last_save",
            "_session_t0", "_old_handlers")


class Simulation:
    """One simulation run of a scenario: the wiring of the network, the processes and the trace.

    Parameters
    ----------
    scenario : Scenario
        Validated scenario.
    out_dir : path, optional
        Run directory; ``None`` keeps the trace in memory (``summary.tables``). A folder that
        holds another run is refused (:class:`netsim.runs.RunDirError`) unless ``overwrite``.
    on_frame : callable, optional
        Called after every frame as ``on_frame(frame, t_s, frame_record)`` (progress bars).
    overwrite : bool
        Clear ``out_dir`` first when it holds an earlier run.

    Attributes
    ----------
    net : Network
        Continuous-time state (oscillators, users, fading).
    cpu : CentralUnit
        The CPU process (frame loop, sync plan, corrections).
    aps, users : list of AccessPoint, list of UserProcess
    comm, sensing : the communication pipeline and the sensing model of the scenario
    rngs : dict of numpy.random.Generator
        Algorithm streams ``sync``, ``sensing``, ``power``, ``pilots``.
    scheduled : dict of Scheduled
        Pending calls (faults, fronthaul messages in flight), by sequence number.

    Checkpoints
    -----------
    With a run directory, every flush of the trace (``run.flush_every_rows`` rows, or
    ``run.checkpoint_every_s`` / ``run.flush_every_s`` wall seconds, or a stop signal) happens
    at a frame boundary and is followed by a checkpoint: this object pickled without its
    SimPy side (environment, processes, stores: see ``__getstate__`` of each class), with
    every generator's state, the pending :class:`Scheduled` calls and the trace's position.
    :meth:`resume` rebuilds the processes from it. State added to the simulation must
    therefore be plain picklable attributes reachable from here (no generators, lambdas or
    open files; the environment only through ``sim.env``), and every action pending across a
    frame boundary must go through :meth:`call_at`.
    """

    def __init__(
        self,
        scenario: Scenario,
        out_dir: str | Path | None = None,
        on_frame: Callable[[int, float, dict], None] | None = None,
        overwrite: bool = False,
    ) -> None:
        problems = methods.check_available(scenario)
        if problems:
            raise ValueError("scenario uses algorithms this build cannot run:\n  - "
                             + "\n  - ".join(problems))
        self.scenario = scenario
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None:
            prepare_run_dir(self.out_dir, overwrite=overwrite)
        self.on_frame = on_frame
        self.streams = RandomStreams(scenario.run.seed, scenario.run.replication)
        self.net = Network(scenario, self.streams)
        self.env = Environment()
        self.trace = TraceWriter(self.out_dir, scenario.run.flush_every_rows,
                                 scenario.run.flush_every_s)
        self.trace.check = check_record  # a non-finite rate/SINR/power/position fails the run
        self.frame_start = self.env.event()
        self.scheduled: dict[int, Scheduled] = {}
        self._next_seq = 0
        self.cpu = CentralUnit(self)
        self.aps = [AccessPoint(self, m) for m in range(self.net.n_aps)]
        self.users = [UserProcess(self, k) for k in range(self.net.n_users)]
        self.frame = 0
        self.wall = dict.fromkeys(PHASES, 0.0)
        self.rngs = {name: self.streams.generator(name)
                     for name in ("sync", "sensing", "power", "pilots")}
        self.p_max_w = np.full(self.net.n_aps, dbm_to_w(scenario.frame.ap_power_dbm))
        self.subcarrier_hz = subcarrier_frequencies(
            scenario.channel.bandwidth_hz, scenario.comm.subcarriers_evaluated)
        self.comm = make_comm(self)
        self.sensing = methods.SENSING_METHODS[scenario.sensing.method](self)
        self._check_timing()
        # run bookkeeping (checkpointed: a resumed run continues these)
        self.started_utc: str | None = None
        self.wall_before_s = 0.0  # wall seconds of earlier sessions of this run
        self.resumed_utc: list[str] = []
        self.checkpoint_error: str | None = None
        self.last_checkpoint: dict[str, Any] | None = None
        self._init_runtime()
        self._start_processes()

    def _init_runtime(self) -> None:
        self._stop_signal: int | None = None
        self._last_save = time.monotonic()
        self._session_t0 = time.perf_counter()
        self._old_handlers: dict[int, Any] = {}

    def _start_processes(self, resume: bool = False) -> None:
        """Start every SimPy process. New run: APs, users, faults, CPU receiver, CPU loop.
        Resumed run: APs, users, CPU receiver, the pending calls in their order, CPU loop."""
        for ap in self.aps:
            ap.start()
        for user in self.users:
            user.start()
        if resume:
            self.cpu.start(sorted(self.scheduled.values(), key=lambda e: e.seq))
            return
        for i, fault in enumerate(self.scenario.faults):
            self.call_at(self.env.now + fault.at_s, self, "_fault_down", i)
        self.cpu.start()

    # ------------------------------------------------------------------ pending calls
    def call_at(self, t_s: float, target: Any, method: str, *args: Any) -> Scheduled:
        """Call ``getattr(target, method)(*args)`` at simulated time ``t_s``.

        ``target`` and ``args`` must be picklable state of this simulation: the call is
        saved in checkpoints while it is pending.
        """
        entry = Scheduled(t_s, self._next_seq, target, method, args)
        self._next_seq += 1
        self.scheduled[entry.seq] = entry
        self.env.process(self._wait_and_call(entry))
        return entry

    def _wait_and_call(self, entry: Scheduled):
        entry.event = self.env.timeout_at(entry.t_s)
        yield entry.event
        del self.scheduled[entry.seq]
        getattr(entry.target, entry.method)(*entry.args)

    # ------------------------------------------------------------------ CPU state (aliases)
    @property
    def plan(self):
        """The CPU's current sync plan (``None`` before the first plan or with no AP online)."""
        return self.cpu.plan

    @plan.setter
    def plan(self, value) -> None:
        self.cpu.plan = value

    @property
    def comm_fraction(self) -> float:
        """rho of the next (or current) frame, chosen by the CPU."""
        return self.cpu.comm_fraction

    @comm_fraction.setter
    def comm_fraction(self, value: float) -> None:
        self.cpu.comm_fraction = value

    @property
    def timing_sense_s(self) -> float:
        """Duration of this frame's sensing phase (s)."""
        return self.cpu.timing_sense_s

    @property
    def reference_ap(self) -> int:
        return self.cpu.reference_ap

    @property
    def uplink(self) -> FronthaulLink:
        return self.cpu.uplink

    # ------------------------------------------------------------------ helpers
    def _check_timing(self) -> None:
        fr = self.scenario.frame
        if fr.period_s is not None:
            longest = frame_timing(self.scenario, self.scenario.sync.overhead_budget_slots)
            total = longest.sync_s + fr.sense_comm_duration_s
            if total > fr.period_s:
                raise ValueError(
                    f"frame.period_s = {fr.period_s} s is shorter than one frame "
                    f"({total:.6g} s with the full sync overhead budget)")

    def advance_world(self) -> None:
        self.net.advance_to(self.env.now)

    def event(self, kind: str, entity: int, detail: str = "") -> None:
        self.trace.emit("events", t_s=self.env.now, frame=self.frame, kind=kind,
                        entity=entity, detail=detail)

    def done(self) -> bool:
        """True when the run has simulated its frames (or its duration)."""
        run = self.scenario.run
        if run.frames is not None:
            return self.frame >= run.frames
        return self.env.now >= run.duration_s - 1e-12

    def expected_frames(self) -> int:
        """Number of frames the run will simulate (for progress bars)."""
        run, fr = self.scenario.run, self.scenario.frame
        if run.frames is not None:
            return run.frames
        per = fr.period_s or (fr.sense_comm_duration_s + (
            0 if self.scenario.sync.method in ("none", "genie") else fr.sync_slot_s * 2))
        return max(1, math.ceil(run.duration_s / per))

    # ------------------------------------------------------------------ faults
    def _fault_down(self, i: int) -> None:
        fault = self.scenario.faults[i]
        self.advance_world()
        self.net.online[fault.ap] = False
        self.event("outage", fault.ap, f"faults[{i}]: down for {fault.duration_s} s")
        self.cpu.sync.reset(fault.ap)
        self.cpu.request_replan(f"AP {fault.ap} outage")
        if not math.isinf(fault.duration_s):
            self.call_at(self.env.now + fault.duration_s, self, "_fault_up", i)

    def _fault_up(self, i: int) -> None:
        fault = self.scenario.faults[i]
        self.advance_world()
        self.net.online[fault.ap] = True
        self.event("recovery", fault.ap, f"faults[{i}]: back online")
        self.cpu.sync.reset(fault.ap)
        self.cpu.request_replan(f"AP {fault.ap} recovery")

    # ------------------------------------------------------------------ frame boundaries
    def frame_boundary(self) -> None:
        """Called by the CPU between frames (and before the first): commit the trace; flush
        and checkpoint when due; stop here when a signal asked for it."""
        self.trace.commit()
        stop = self._stop_signal
        if self.out_dir is None:
            if self.trace.flush_due():
                self.trace.flush()
            return
        every = self.scenario.run.checkpoint_every_s
        if (stop is not None or self.done() or self.trace.flush_due()
                or time.monotonic() - self._last_save >= every):
            self.save()
        if stop is not None:
            raise RunInterrupted(stop, self.frame)

    def save(self) -> None:
        """Flush the trace, write the checkpoint and ``meta.json`` (at a frame boundary)."""
        self.trace.flush()
        if self._write_checkpoint():
            self.last_checkpoint = {"frame": self.frame, "t_s": self.env.now,
                                    "utc": datetime.now(UTC).isoformat()}
        self._last_save = time.monotonic()
        write_meta(self.out_dir, self._meta("running"))

    def pending_is_checkpointable(self) -> bool:
        """True when every event in the SimPy queue is a :class:`Scheduled` call's wake-up (or
        one nobody waits for): only then does the checkpoint hold everything that is pending."""
        known = {id(e.event) for e in self.scheduled.values() if e.event is not None}
        return all(id(ev) in known or not ev.callbacks for *_, ev in self.env._queue)

    def __getstate__(self):
        state = self.__dict__.copy()
        for name in _RUNTIME:
            state.pop(name, None)
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self.env = self.trace = self.frame_start = self.on_frame = None
        self._init_runtime()

    def _write_checkpoint(self) -> bool:
        if not self.pending_is_checkpointable():
            log.debug("frame %d: an unregistered event is pending; no checkpoint", self.frame)
            return False
        try:
            blob = pickle.dumps({
                "format": CHECKPOINT_FORMAT, "netsim_version": netsim.__version__,
                "frame": self.frame, "t_s": self.env.now, "trace": self.trace.position(),
                "sim": self,
            }, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001 - a checkpoint problem must not stop the run
            self.checkpoint_error = f"{type(err).__name__}: {err}"
            log.warning("checkpoint failed (%s); the run goes on without one", err)
            return False
        path = self.out_dir / CHECKPOINT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        return True

    @classmethod
    def resume(cls, run_dir: str | Path,
               on_frame: Callable[[int, float, dict], None] | None = None) -> Simulation:
        """The simulation of a killed or interrupted run, ready to :meth:`run` on from its
        last checkpoint (from the start, with the folder's scenario, when it has none).

        Raises
        ------
        RunDirError
            ``run_dir`` is not a run directory, or the checkpoint cannot be used.
        """
        run_dir = Path(run_dir)
        meta = read_run_meta(run_dir)
        if meta.get("status") == "finished":
            raise RunDirError(f"{run_dir}: the run already finished ({meta.get('frames')} "
                              "frames); nothing to resume")
        path = run_dir / CHECKPOINT_FILE
        if not path.exists():
            from netsim.scenario.loader import load_scenario

            if not (run_dir / "scenario.yaml").exists():
                raise RunDirError(f"{run_dir}: no checkpoint and no scenario.yaml to restart from")
            scenario = load_scenario(run_dir / "scenario.yaml")
            sim = cls(scenario, run_dir, on_frame, overwrite=True)
            sim.resumed_utc = [datetime.now(UTC).isoformat()]
            sim.started_utc = meta.get("started_utc")
            return sim
        try:
            data = pickle.loads(path.read_bytes())
        except Exception as err:  # noqa: BLE001 - unreadable or from incompatible code
            raise RunDirError(f"{path}: cannot read the checkpoint ({type(err).__name__}: {err})"
                              ) from err
        if data.get("format") != CHECKPOINT_FORMAT:
            raise RunDirError(f"{path}: checkpoint format {data.get('format')} written by netsim "
                              f"{data.get('netsim_version')}; this netsim reads format "
                              f"{CHECKPOINT_FORMAT}")
        sim: Simulation = data["sim"]
        sim.out_dir = run_dir
        sim.on_frame = on_frame
        sc = sim.scenario
        sim.trace = TraceWriter(run_dir, sc.run.flush_every_rows, sc.run.flush_every_s,
                                resume=data["trace"])
        sim.trace.check = check_record
        sim.env = Environment(initial_time=data["t_s"])
        sim.frame_start = sim.env.event()
        sim.resumed_utc = [*sim.resumed_utc, datetime.now(UTC).isoformat()]
        sim._start_processes(resume=True)
        return sim

    # ------------------------------------------------------------------ run
    def _meta(self, status: str, error: str | None = None) -> dict:
        sc = self.scenario
        wall_s = self.wall_before_s + time.perf_counter() - self._session_t0
        return {
            "netsim_version": netsim.__version__,
            "scenario_name": sc.name,
            "seed": sc.run.seed,
            "replication": sc.run.replication,
            "status": status,
            "error": error,
            "started_utc": self.started_utc,
            "resumed_utc": list(self.resumed_utc),
            "ended_utc": datetime.now(UTC).isoformat() if status != "running" else None,
            "updated_utc": datetime.now(UTC).isoformat(),
            "frames": self.frame,
            "sim_time_s": self.env.now,
            "wall_s": wall_s,
            "wall_per_phase_s": dict(self.wall),
            "checkpoint": self.last_checkpoint,
            "checkpoint_error": self.checkpoint_error,
            "algorithms": {
                "sync": sc.sync.method, "sensing": sc.sensing.method,
                "beamforming": sc.comm.beamforming, "power": sc.comm.power, "csi": sc.comm.csi,
                "pilot_assignment": sc.comm.pilot_assignment,
            },
            "gnn_weights": methods.gnn_meta(sc.comm),
            "n_aps": self.net.n_aps,
            "n_users": self.net.n_users,
        }

    def _install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT: stop at the next frame boundary (flush, checkpoint, ``status:
        interrupted``); a second signal stops at once (the last frame boundary's state is
        kept). Only with a run directory and in the main thread (not in Dask workers)."""
        if self.out_dir is None or threading.current_thread() is not threading.main_thread():
            return

        def handler(signum, _frame):
            if self._stop_signal is not None:
                raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
            self._stop_signal = signum

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}

    def run(self) -> RunSummary:
        """Run to the end (a resumed simulation: from its checkpoint to the end).

        A failure stops the run with ``meta.json`` status ``failed`` and the error re-raised;
        SIGTERM/SIGINT stop it at the next frame boundary with status ``interrupted``
        (:class:`RunInterrupted`). Either way the tables keep every complete frame (chunk
        folders, readable by :func:`netsim.load_run`, resumable by :meth:`resume`); only a
        finished run's chunks are merged into one Parquet file per table.
        """
        self._session_t0 = time.perf_counter()
        self._last_save = time.monotonic()
        if self.started_utc is None:
            self.started_utc = datetime.now(UTC).isoformat()
        if self.out_dir is not None:
            (self.out_dir / "scenario.yaml").write_text(scenario_to_yaml(self.scenario))
            write_meta(self.out_dir, self._meta("running"))
        status, error = "finished", None
        self._install_signal_handlers()
        try:
            self.env.run(until=self.cpu.process)
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt too: keep what we have
            status = "interrupted" if isinstance(exc, KeyboardInterrupt | RunInterrupted) else "failed"
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._restore_signal_handlers()
            wall = self.wall_before_s + time.perf_counter() - self._session_t0
            self.trace.close(merge=status == "finished")
            if self.out_dir is not None:
                write_meta(self.out_dir, self._meta(status, error))
                if status == "finished":
                    (self.out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        tables = {} if self.out_dir is not None else self.trace.tables()
        return RunSummary(status=status, frames=self.frame, sim_time_s=self.env.now, wall_s=wall,
                          wall_per_phase_s=dict(self.wall), out_dir=self.out_dir, tables=tables)


def _restrict(meas: methods.SyncMeasurement, aps: np.ndarray) -> methods.SyncMeasurement:
    """The measurement of the scheduled APs only (the others are NaN / not measured)."""
    if aps[np.isfinite(meas.est_to_s) | np.isin(np.arange(aps.size), meas.invalid)].all():
        return meas

    def keep(x):
        return None if x is None else np.where(aps, x, np.nan)

    return replace(
        meas, est_to_s=keep(meas.est_to_s), est_cfo_hz=keep(meas.est_cfo_hz),
        est_phase_rad=keep(meas.est_phase_rad), crb_to_s2=keep(meas.crb_to_s2),
        crb_cfo_hz2=keep(meas.crb_cfo_hz2), crb_phase_rad2=keep(meas.crb_phase_rad2),
        measured_by=np.where(aps, meas.measured_by, -1),
        invalid=meas.invalid[aps[meas.invalid]])


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.sqrt(np.mean(x**2))) if x.size else math.nan


def _absmax(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.max(np.abs(x))) if x.size else math.nan


def run_scenario(scenario: Scenario, out_dir: str | Path | None = None, **kwargs) -> RunSummary:
    """Build and run a :class:`Simulation` (convenience for notebooks and tests)."""
    return Simulation(scenario, out_dir, **kwargs).run()
