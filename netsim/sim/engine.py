"""The SimPy frame engine (the public names; the code lives in the modules below).

Processes
---------
* the APs (:class:`~netsim.sim.nodes.AccessPoint`): each owns its oscillator (one entry of
  the network's oscillator bank) and sends sync reports up over the shared uplink; the CPU's
  corrections come down the downlink as one
  :class:`~netsim.sim.sync_correction.CorrectionBatch` per report, applied (vectorised) by one
  process when the batch arrives;
* the :class:`~netsim.sim.cpu.CentralUnit` process: the frame loop (sync round, sensing,
  communication with its subframes) and a receiver process that turns sync reports into
  corrections;
* one process per scheduled fault (AP outage and recovery) and per fronthaul message in
  flight (:class:`~netsim.sim.fronthaul.Scheduled` calls).

Modules
-------
* :mod:`netsim.sim.fronthaul`: the SimPy environment, pending calls, fronthaul links;
* :mod:`netsim.sim.nodes`: APs, users, sync reports;
* :mod:`netsim.sim.frame`: a frame's timing and the state its phases share;
* :mod:`netsim.sim.cpu`: the CPU, the frame loop, the sync and sensing phases;
* :mod:`netsim.sim.comm_phase`: the communication phase (subframes);
* :mod:`netsim.sim.recording`: the frame's users, aps and frames rows;
* :mod:`netsim.sim.checkpointing`: frame boundaries, checkpoints, resume;
* :mod:`netsim.sim.simulation`: the :class:`Simulation` that wires them, and the run.

The engine calls pure kernels (``netsim.phy``, ``netsim.comm``, ...) through the
registries of :mod:`netsim.sim.methods` and emits records to a
:class:`netsim.trace.TraceWriter`.
"""

from __future__ import annotations

from netsim.sim.checkpointing import CHECKPOINT_FORMAT, RunInterrupted
from netsim.sim.cpu import CentralUnit
from netsim.sim.frame import PHASES, FrameState, FrameTiming, frame_timing
from netsim.sim.fronthaul import Environment, FronthaulLink, Scheduled
from netsim.sim.nodes import AccessPoint, SyncReport, UserProcess
from netsim.sim.simulation import RunSummary, Simulation, run_scenario

__all__ = ["CHECKPOINT_FORMAT", "PHASES", "AccessPoint", "CentralUnit", "Environment",
           "FrameState", "FrameTiming", "FronthaulLink", "RunInterrupted", "RunSummary",
           "Scheduled", "Simulation", "SyncReport", "UserProcess", "frame_timing", "run_scenario"]
