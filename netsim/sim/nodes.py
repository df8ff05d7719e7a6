"""The network's nodes as the engine sees them: the APs (their sync reports) and the users
(how far each moved since the last beamformer design)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from netsim.sim.simulation import Simulation

__all__ = ["AccessPoint", "SyncReport", "UserProcess"]


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
    """A user: tracks its displacement since the last beamformer design.

    No SimPy process of its own (issue 10): the CPU's frame loop calls :meth:`at_frame_start`
    for every user at each frame start, where the user process used to wake up.
    """

    def __init__(self, sim: Simulation, index: int) -> None:
        self.sim = sim
        self.index = index
        self.anchor_m = sim.net.user_pos_m[index]
        self.moved_m = 0.0
        self.process = None

    def __getstate__(self):
        return {**self.__dict__, "process": None}

    def start(self) -> None:
        """Nothing to start (see the class docstring)."""

    def at_frame_start(self, pos_m: np.ndarray) -> None:
        """Displacement since the anchor, from the true positions ``pos_m`` (K, 2) m now."""
        self.moved_m = float(np.linalg.norm(pos_m[self.index] - self.anchor_m))

    def reset_anchor(self) -> None:
        self.anchor_m = self.sim.net.user_position_m(self.index)
        self.moved_m = 0.0
