"""Checkpoints of a run: the frame boundary (flush, checkpoint, stop on a signal), the pickled
state without its SimPy side, and :meth:`Checkpointing.resume` from a run directory."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import netsim
from netsim.runs import CHECKPOINT_FILE, RunDirError, read_run_meta, write_meta
from netsim.sim.checks import check_record
from netsim.sim.fronthaul import Environment
from netsim.trace import TraceWriter

if TYPE_CHECKING:
    from netsim.sim.simulation import Simulation

__all__ = ["CHECKPOINT_FORMAT", "Checkpointing"]

# Bump when the pickled state changes shape, so an old checkpoint gets a clear error instead of
# an AttributeError on resume. 2: Network keeps user positions in `_pos` (was `_user_pos`).
# 3: MUSIC tracks keep the user class's top speed (`MusicSensing.top_speed_mps`), the uplink
# gain-profile check draws from its own stream, and sync corrections keep the time until which
# a correction is in flight (the ML window's prior).
CHECKPOINT_FORMAT = 3

log = logging.getLogger("netsim.sim.engine")

# attributes of a Simulation that live only while it runs (never checkpointed)
_RUNTIME = ("env", "on_frame", "trace", "_stop_signal", "_last_save",
            "_session_t0", "_old_handlers")


class RunInterrupted(Exception):
    """The run stopped at a frame boundary because the process got SIGTERM or SIGINT."""

    def __init__(self, signum: int, frame: int) -> None:
        self.signum = signum
        self.frame = frame
        super().__init__(f"{signal.Signals(signum).name} received; stopped after frame {frame - 1}")


class Checkpointing:
    """Mixin of :class:`~netsim.sim.simulation.Simulation`: frame boundaries, checkpoints and
    resume."""

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
        self.env = self.trace = self.on_frame = None
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
        sim.resumed_utc = [*sim.resumed_utc, datetime.now(UTC).isoformat()]
        sim._start_processes(resume=True)
        return sim
