"""One frame's timing (sync, sensing, communication phases) and the state its phases hand to
each other."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netsim.scenario.models import Scenario
from netsim.sim import methods

__all__ = ["PHASES", "FrameState", "FrameTiming", "frame_timing"]

PHASES = ("sync", "sense", "comm", "power")


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
    rates_sum: list[np.ndarray] = field(default_factory=list)  # [S] per comm phase
    rates_min: list[np.ndarray] = field(default_factory=list)  # [S] per comm phase
    sinr_all: list[np.ndarray] = field(default_factory=list)  # [S, K] per comm phase
    iters: list[np.ndarray] = field(default_factory=list)  # [S] int per comm phase
    wall_comm: float = 0.0
    wall_power: float = 0.0
    n_gated: int = 0
    sync_rounds: int = 0
