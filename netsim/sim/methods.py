"""Phase algorithms selectable by name from the scenario (small registries).

Each registry maps the scenario string to a callable with one fixed signature:

* ``SYNC_METHODS[name](network, plan, rng) -> SyncMeasurement``: offsets of every AP
  relative to ``plan.reference_ap`` as estimated by this sync round ("none" is not in
  the registry: with it no round ever runs);
* ``SYNC_PLANNERS[name](network, online, rng) -> SyncPlan``;
* ``SENSING_METHODS[name](sim)`` builds the run's sensing model, called every frame as
  ``model(network, rng) -> (est_pos_m (K, 2), crlb_m2 (K,))``;
* ``BEAMFORMERS[name](h_est (K, M, N), active (M,)) -> directions (K, M, N)``;
* power policies: :data:`netsim.comm.power.POWER_ALLOCATORS` (seed 004's registry).

A name that the scenario schema knows but this build has no implementation for
is reported by :func:`check_available` before the run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from netsim.comm.beamforming import mrt_directions
from netsim.comm.power import POWER_ALLOCATORS
from netsim.scenario.models import Scenario

if TYPE_CHECKING:  # pragma: no cover
    from netsim.sync.plan_config import SyncPlan, SyncPlanConfig
    from netsim.sync.round import SyncRoundConfig

# The seed-000 planner (netsim.sync.plan_alloc) and sync round (netsim.sync.round) are imported
# by the functions that use them, so a run with genie sync never loads them (start-up cost).

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
    invalid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Online APs whose estimate was not trusted this round (not corrected)."""
    crb_phase_rad2: np.ndarray | None = None
    """(M,) variance of the carrier-phase estimate (rad^2; NaN where not measured); the
    measurement covariance of the clock tracker together with ``crb_to_s2``/``crb_cfo_hz2``."""


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
        crb_phase_rad2=np.where(measured, 0.0, nan),
    )


def genie_sensing(network, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Genie localization: the estimated position is the true position (CRLB reported as NaN)."""
    return network.user_pos_m, np.full(network.n_users, np.nan)


def _plan_config(scenario: Scenario) -> SyncPlanConfig:
    from netsim.sync.plan_config import SyncPlanConfig

    sync = scenario.sync
    return SyncPlanConfig(
        sinr_req_db=sync.sinr_req_db, overhead_budget_slots=sync.overhead_budget_slots,
        pilot_length_chips=sync.pilot_length_chips, tx_power_w=sync.tx_power_w,
        noise_power_w=scenario.channel.noise_power_w, chip_time_s=sync.chip_time_s,
        swap_iterations=sync.swap_iterations,
        trust_sinr_db=sync.min_sinr_db, trust_guard_chips=sync.max_time_offset_chips,
    )


def _round_config(scenario: Scenario) -> SyncRoundConfig:
    from netsim.sync.round import SyncRoundConfig

    sync = scenario.sync
    return SyncRoundConfig(
        pilot_length_chips=sync.pilot_length_chips, chip_time_s=sync.chip_time_s,
        max_to_s=sync.max_time_offset_chips * sync.chip_time_s, max_cfo_hz=sync.max_cfo_hz,
        tx_power_w=sync.tx_power_w, noise_power_w=scenario.channel.noise_power_w,
        min_sinr_db=sync.min_sinr_db, ml_window_sigmas=sync.ml_window_sigmas,
        ml_window_min_chips=sync.ml_window_min_chips,
    )


def over_the_air_plan(network, online: np.ndarray, rng: np.random.Generator) -> SyncPlan:
    """Seed-000 planning (Algorithm 3): clusters, masters, pilot sharing, master tree."""
    from netsim.sync.plan_alloc import plan_network

    return plan_network(network.ap_center_m, online, _plan_config(network.scenario), rng)


def _measured_by(plan: SyncPlan) -> np.ndarray:
    """The AP whose receiver measures each AP: its master (slaves) or parent master (masters)."""
    out = np.full(plan.n_ap, -1, dtype=np.int64)  # [M]
    masters = np.asarray(plan.masters, dtype=np.int64)  # [K]
    parent = np.asarray(plan.master_parent, dtype=np.int64)  # [K]
    ap = np.flatnonzero(plan.cluster_of_ap >= 0)  # [A] planned APs
    k = plan.cluster_of_ap[ap]  # [A] their clusters
    slave = ap != masters[k]
    out[ap[slave]] = masters[k[slave]]
    m_ok = ~slave & (parent[k] >= 0)  # masters with a parent master
    out[ap[m_ok]] = masters[parent[k[m_ok]]]
    return out


def over_the_air_sync(method: str) -> Callable:
    """Sync model ``ml`` (waveform bursts + ML estimator) or ``crb`` (Gaussian residuals with
    the CRB as variance) of seed 000, through :func:`netsim.sync.round.sync_round`.

    Carrier phase: the ML estimator also estimates the link's taps, whose phase carries the
    carrier-phase offset. Its error is modelled as Gaussian with the single-tap relation
    between the phase and CFO bounds at the burst centre,
    ``var(phase) = (pi N Ts)^2 / 3 * CRB_CFO`` (from CRB_CFO = 6/((2 pi)^2 SNR N (N^2-1)) and
    var(phase) = 1/(2 SNR N)), using each AP's composite CFO bound.
    """

    def measure(network, plan: SyncPlan, rng: np.random.Generator,
                to_prior: tuple[np.ndarray, np.ndarray] | None = None) -> SyncMeasurement:
        from netsim.sync.round import sync_round

        sc = network.scenario
        osc = network.oscillators
        res = sync_round(plan, network.ap_center_m, osc.time_offset_s,
                         osc.carrier_hz * osc.freq_offset, _round_config(sc), method, rng,
                         to_prior=to_prior if method == "ml" else None)
        ref = res.reference_ap
        true_to, true_cfo, true_phase = network.offsets_to(ref)
        n_ts = sc.sync.pilot_length_chips * sc.sync.chip_time_s
        phase_var = (np.pi * n_ts) ** 2 / 3.0 * res.crb_cfo_hz2  # [M]
        phase_err = np.sqrt(np.where(np.isfinite(phase_var), phase_var, 0.0)) * rng.standard_normal(
            network.n_aps)
        ok = res.valid & (np.arange(network.n_aps) != ref)
        nan = np.full(network.n_aps, np.nan)
        return SyncMeasurement(
            reference_ap=ref,
            est_to_s=np.where(ok, res.est_time_offset_s, nan),
            est_cfo_hz=np.where(ok, res.est_cfo_hz, nan),
            est_phase_rad=np.where(ok, true_phase + phase_err, nan),
            crb_to_s2=np.where(ok, res.crb_time_offset_s2, nan),
            crb_cfo_hz2=np.where(ok, res.crb_cfo_hz2, nan),
            true_to_s=true_to,
            true_cfo_hz=true_cfo,
            measured_by=_measured_by(plan),
            invalid=np.flatnonzero(~res.valid & plan.online),
            crb_phase_rad2=np.where(ok, phase_var, nan),
        )

    measure.__name__ = f"over_the_air_sync_{method}"
    return measure


SYNC_PLANNERS: dict[str, Callable] = {
    "genie": star_plan, "ml": over_the_air_plan, "crb": over_the_air_plan}
SYNC_METHODS: dict[str, Callable] = {
    "genie": genie_sync, "ml": over_the_air_sync("ml"), "crb": over_the_air_sync("crb")}
def _music_sensing(sim) -> Callable:
    from netsim.sim.sensing import MusicSensing

    return MusicSensing(sim)


def _crlb_sensing(sim) -> Callable:
    from netsim.sim.sensing import CrlbSensing

    return CrlbSensing(sim)


# factories: called once per simulation, they return the per-frame callable
SENSING_METHODS: dict[str, Callable] = {
    "genie": lambda sim: genie_sensing, "music": _music_sensing, "crlb": _crlb_sensing}
BEAMFORMERS: dict[str, Callable] = {"mrt_plain": mrt_directions}


def gnn_frameworks(comm) -> dict[str, str | None]:
    """GNN weights a scenario's comm section needs: {framework: path or None (shipped)}."""
    need: dict[str, str | None] = {}
    if comm.power == "gnn":
        need["dts"] = comm.gnn_weights
    if comm.power == "sts_gnn":
        need["sts"] = comm.sts_gnn_weights
    if comm.pilot_assignment == "gnn":
        if comm.power == "sts_gnn":
            need["sts"] = comm.sts_gnn_weights
        else:
            need["dts"] = comm.gnn_weights
    return need


def gnn_meta(comm) -> dict | None:
    """Which GNN weights a run uses (path, training scenario and hash), for meta.json."""
    need = gnn_frameworks(comm)
    if not need:  # no GNN in this run: the GNN modules are not loaded
        return None
    from netsim.comm.power.gnn import resolve_weights

    return {fw: resolve_weights(path, fw).describe() for fw, path in need.items()} or None


def _gnn_weight_problems(scenario: Scenario) -> list[str]:
    problems = []
    if scenario.comm.pilot_assignment == "gnn" and scenario.comm.csi != "pilots":
        problems.append("comm.pilot_assignment: 'gnn' needs csi: pilots")
    need = gnn_frameworks(scenario.comm)
    if need:
        from netsim.comm.power.gnn import GNNWeightsError, resolve_weights
    for fw, path in need.items():
        key = "comm.gnn_weights" if fw == "dts" else "comm.sts_gnn_weights"
        try:
            resolve_weights(path, fw)
        except GNNWeightsError as exc:
            problems.append(f"{key}: {exc}")
    return problems


def check_available(scenario: Scenario) -> list[str]:
    """Problems with algorithm names that this build cannot run (empty list if all fine)."""
    problems = []
    checks = [
        ("sync.method", scenario.sync.method, {"none", *SYNC_METHODS}),
        ("sensing.method", scenario.sensing.method, set(SENSING_METHODS)),
        # rzf is built into the pilot pipeline (netsim.sim.comm.PilotComm); main/ei/mrt are the
        # seed-003 designs of netsim.sim.comm.LocationAwareComm
        ("comm.beamforming", scenario.comm.beamforming, {"rzf", "main", "ei", "mrt", *BEAMFORMERS}),
        ("comm.power", scenario.comm.power, {*POWER_ALLOCATORS, "sts_gnn"}),
    ]
    problems += _gnn_weight_problems(scenario)
    if scenario.comm.csi == "pilots" and scenario.comm.beamforming != "rzf":
        problems.append("comm.beamforming: csi 'pilots' uses distributed RZF; set beamforming: rzf")
    if scenario.comm.beamforming in ("main", "ei", "mrt") and scenario.comm.power != "equal":
        problems.append(f"comm.power: '{scenario.comm.beamforming}' designs its own power; "
                        "set power: equal")
    if scenario.comm.beamforming in ("main", "ei", "mrt") and scenario.comm.csi == "pilots":
        problems.append("comm.beamforming: the seed-003 designs need csi 'location' or 'perfect'")
    if scenario.comm.beamforming == "rzf" and scenario.comm.csi != "pilots":
        problems.append("comm.beamforming: 'rzf' is the beamformer of csi 'pilots'")
    for path, name, available in checks:
        if name not in available:
            problems.append(
                f"{path}: '{name}' is not available in this build "
                f"(available: {', '.join(sorted(available))})"
            )
    return problems
