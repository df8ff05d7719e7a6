"""Phase algorithms selectable by name from the scenario (small registries).

Each registry maps the scenario string to a callable with one fixed signature:

* ``SYNC_METHODS[name](network, plan, rng) -> SyncMeasurement``: offsets of every AP
  relative to ``plan.reference_ap`` as estimated by this sync round ("none" is not in
  the registry: with it no round ever runs);
* ``SYNC_PLANNERS[name](network, online, rng) -> SyncPlan``;
* ``SENSING_METHODS[name](network, rng) -> (est_pos_m (K, 2), crlb_m2 (K,))``;
* ``BEAMFORMERS[name](h_est (K, M, N), active (M,)) -> directions (K, M, N)``;
* power policies: :data:`netsim.comm.power.POWER_ALLOCATORS` (seed 004's registry).

A name that the scenario schema knows but this build has no implementation for
is reported by :func:`check_available` before the run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from netsim.comm.beamforming import mrt_directions
from netsim.comm.power import POWER_ALLOCATORS
from netsim.scenario.models import Scenario

__all__ = [
    "BEAMFORMERS",
    "POWER_ALLOCATORS",
    "SENSING_METHODS",
    "SYNC_METHODS",
    "SYNC_PLANNERS",
    "StarPlan",
    "SyncMeasurement",
    "check_available",
]


@dataclass(frozen=True)
class SyncMeasurement:
    """Result of one sync round: per-AP estimates relative to the reference AP.

    All arrays have shape (M,); entries of APs that were not measured (offline, or the
    reference itself) are NaN in the estimates and CRBs.
    """

    reference_ap: int
    est_to_s: np.ndarray
    est_cfo_hz: np.ndarray
    est_phase_rad: np.ndarray
    crb_to_s2: np.ndarray
    crb_cfo_hz2: np.ndarray
    true_to_s: np.ndarray
    true_cfo_hz: np.ndarray
    measured_by: np.ndarray  # (M,) int: AP whose receiver measured this AP (-1: none)


@dataclass(frozen=True)
class StarPlan:
    """The trivial plan of the reference sync models: one cluster, the reference AP is its
    master, every other online AP is its slave, no over-the-air overhead."""

    cluster_of_ap: np.ndarray
    masters: np.ndarray
    reference_ap: int
    n_pilots: int = 0
    overhead_slots: int = 0

    @property
    def measured_by(self) -> np.ndarray:
        out = np.where(self.cluster_of_ap >= 0, self.reference_ap, -1)
        out[self.reference_ap] = -1
        return out


def star_plan(network, online: np.ndarray, rng: np.random.Generator) -> StarPlan:
    """Plan of the ``genie`` model: the configured (or lowest-index online) AP is the reference."""
    ref = network.scenario.sync.reference_ap
    if ref is None or not online[ref]:
        ref = int(np.flatnonzero(online)[0])
    cluster = np.where(online, 0, -1)
    return StarPlan(cluster_of_ap=cluster, masters=np.array([ref]), reference_ap=ref)


def genie_sync(network, plan, rng: np.random.Generator) -> SyncMeasurement:
    """Genie synchronization: every online AP's offsets are known exactly at the sync instant.

    The estimate equals the true time offset, CFO and carrier phase of each AP relative to the
    reference; the CPU's correction then removes them (up to the drift during the fronthaul
    latency, which the correction predicts with the exact CFO).
    """
    ref = plan.reference_ap
    to_s, cfo_hz, phase = network.offsets_to(ref)
    measured = plan.measured_by >= 0  # [M]
    nan = np.full(network.n_aps, np.nan)
    return SyncMeasurement(
        reference_ap=ref,
        est_to_s=np.where(measured, to_s, np.nan),
        est_cfo_hz=np.where(measured, cfo_hz, np.nan),
        est_phase_rad=np.where(measured, phase, np.nan),
        crb_to_s2=np.where(measured, 0.0, nan),
        crb_cfo_hz2=np.where(measured, 0.0, nan),
        true_to_s=to_s,
        true_cfo_hz=cfo_hz,
        measured_by=plan.measured_by,
    )


def genie_sensing(network, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Genie localization: the estimated position is the true position (CRLB reported as NaN)."""
    return network.user_pos_m, np.full(network.n_users, np.nan)


SYNC_PLANNERS: dict[str, Callable] = {"genie": star_plan}
SYNC_METHODS: dict[str, Callable] = {"genie": genie_sync}
SENSING_METHODS: dict[str, Callable] = {"genie": genie_sensing}
BEAMFORMERS: dict[str, Callable] = {"mrt_plain": mrt_directions}


def check_available(scenario: Scenario) -> list[str]:
    """Problems with algorithm names that this build cannot run (empty list if all fine)."""
    problems = []
    checks = [
        ("sync.method", scenario.sync.method, {"none", *SYNC_METHODS}),
        ("sensing.method", scenario.sensing.method, set(SENSING_METHODS)),
        # rzf is built into the pilot pipeline (netsim.sim.comm.PilotComm)
        ("comm.beamforming", scenario.comm.beamforming, {"rzf", *BEAMFORMERS}),
        ("comm.power", scenario.comm.power, set(POWER_ALLOCATORS)),
    ]
    if scenario.comm.csi == "pilots" and scenario.comm.beamforming != "rzf":
        problems.append("comm.beamforming: csi 'pilots' uses distributed RZF; set beamforming: rzf")
    if scenario.comm.beamforming == "rzf" and scenario.comm.csi != "pilots":
        problems.append("comm.beamforming: 'rzf' is the beamformer of csi 'pilots'")
    for path, name, available in checks:
        if name not in available:
            problems.append(
                f"{path}: '{name}' is not available in this build "
                f"(available: {', '.join(sorted(available))})"
            )
    return problems
