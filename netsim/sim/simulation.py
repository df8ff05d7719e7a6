"""A simulation run: the wiring of the network, the processes and the trace (the checkpoint side
is the mixin :class:`~netsim.sim.checkpointing.Checkpointing`)."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import netsim
from netsim.comm.rates import subcarrier_frequencies
from netsim.rng import RandomStreams
from netsim.runs import CHECKPOINT_FILE, prepare_run_dir, write_meta
from netsim.scenario.loader import scenario_to_yaml
from netsim.scenario.models import Scenario
from netsim.sim import methods
from netsim.sim.checkpointing import Checkpointing, RunInterrupted
from netsim.sim.checks import check_record
from netsim.sim.comm import make_comm
from netsim.sim.cpu import CentralUnit
from netsim.sim.frame import PHASES, frame_timing
from netsim.sim.fronthaul import Environment, FronthaulLink, Scheduled
from netsim.sim.nodes import AccessPoint, UserProcess
from netsim.sim.world import Network
from netsim.trace import TraceWriter
from netsim.units import dbm_to_w

__all__ = ["RunInterrupted", "RunSummary", "Simulation", "run_scenario"]


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
    # in-memory run: a netsim.trace.LazyTables (each table becomes pandas when first read)
    tables: Mapping[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None

    @property
    def real_time_factor(self) -> float:
        """Simulated seconds per wall second."""
        return self.sim_time_s / self.wall_s if self.wall_s > 0 else math.inf



class Simulation(Checkpointing):
    """One simulation run of a scenario: the wiring of the network, the processes and the trace.

    Parameters
    ----------
    scenario : Scenario
        Validated scenario.
    out_dir : path, optional
        Run directory; ``None`` keeps the trace in memory (``summary.tables``, each table
        converted to pandas when first read). A folder that holds another run is refused
        (:class:`netsim.runs.RunDirError`) unless ``overwrite``.
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




def run_scenario(scenario: Scenario, out_dir: str | Path | None = None, **kwargs) -> RunSummary:
    """Build and run a :class:`Simulation` (convenience for notebooks and tests)."""
    return Simulation(scenario, out_dir, **kwargs).run()
