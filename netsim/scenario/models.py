"""Typed scenario models.

A scenario file is YAML with the sections below. Every field has a default, a
unit in its name (SI unless the name says otherwise, e.g. ``_ppm``, ``_dbm``,
``_deg``) and a range. Unknown keys are errors. The models are frozen: a
validated :class:`Scenario` is an immutable parameter object that the engine
reads; nothing writes back into it.

Sections
--------
``deployment``   area, access points (grid/random/hexagon/list), antennas, ULA orientation
``users``        count or explicit positions, mobility model
``oscillators``  initial offsets, aging and noise of the APs' local oscillators
``frame``        frame length, subframes, slot durations, powers
``sync``         synchronization method and its parameters (seed 000)
``sensing``      localization method and its parameters (seed 003)
``comm``         CSI, beamforming and power control (seeds 003, 004)
``channel``      carrier, bandwidth, noise, path loss, small-scale fading
``fronthaul``    AP <-> CPU latency
``faults``       scheduled AP outages
``run``          frames or duration, seed, output, trace flushing
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

__all__ = [
    "ApLayout",
    "ChannelConfig",
    "CommConfig",
    "DeploymentConfig",
    "FaultConfig",
    "FrameConfig",
    "FronthaulConfig",
    "MobilityConfig",
    "OrientationConfig",
    "OscillatorConfig",
    "RunConfig",
    "Scenario",
    "SensingConfig",
    "SyncConfig",
    "UsersConfig",
]

Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class _Section(BaseModel):
    """Base of every scenario section: frozen, unknown keys forbidden, floats finite (NaN and
    infinity are refused unless a field says otherwise)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True,
                              allow_inf_nan=False, defer_build=True)


# ----------------------------------------------------------------------------- deployment
class ApLayout(_Section):
    """Where the access points are."""

    layout: Literal["grid", "random", "hexagon", "list"] = Field(
        "grid",
        description="grid: near-square grid over the area; random: uniform with a minimum "
        "distance; hexagon: centre + 6 sites at distance isd_m (7 APs); list: positions_m",
    )
    count: int = Field(9, ge=1, le=1000, description="number of APs (ignored for 'list')")
    min_distance_m: float = Field(5.0, ge=0.0, le=1e5, description="minimum AP spacing for 'random' (m)")
    isd_m: float = Field(200.0, gt=0.0, le=1e5, description="inter-site distance for 'hexagon' and the hex_cells user drop (m, at most 100 km)")
    positions_m: list[Point] | None = Field(
        None, max_length=1000, description="explicit [x, y] per AP (m), at most 1000")

    @model_validator(mode="after")
    def _check_list(self) -> ApLayout:
        if self.layout == "list" and not self.positions_m:
            raise ValueError("layout 'list' needs positions_m")
        if self.layout == "hexagon" and self.count != 7:
            raise ValueError("layout 'hexagon' places exactly 7 APs: set count: 7")
        return self


class OrientationConfig(_Section):
    """Orientation of each AP's uniform linear array (axis angle from the x axis)."""

    mode: Literal["fixed", "random", "list"] = Field("fixed")
    angle_deg: float = Field(90.0, ge=-360.0, le=360.0, description="axis angle for 'fixed' (deg)")
    angles_deg: list[float] | None = Field(
        None, max_length=1000, description="one axis angle per AP for 'list' (deg)")


class DeploymentConfig(_Section):
    """Service area and access points."""

    width_m: float = Field(100.0, gt=0.0, le=1e5, description="area width, x in [0, width] (m)")
    height_m: float = Field(100.0, gt=0.0, le=1e5, description="area height, y in [0, height] (m)")
    aps: ApLayout = Field(default_factory=ApLayout)
    antennas_per_ap: int = Field(8, ge=1, le=512, description="ULA elements per AP")
    antenna_spacing_wavelengths: float = Field(
        0.5, gt=0.0, le=100.0, description="ULA element spacing in wavelengths"
    )
    orientation: OrientationConfig = Field(default_factory=OrientationConfig)
    cpu_position_m: Point = Field(default_factory=lambda: [0.0, 0.0],
                                  description="[x, y] of the CPU (m); informational")


# ----------------------------------------------------------------------------- users
class MobilityConfig(_Section):
    """How users move. Draws come from each user's own random stream."""

    model: Literal["static", "constant_velocity", "random_waypoint", "trajectory"] = "static"
    speed_mps: float = Field(1.2, ge=0.0, le=100.0, description="speed for constant_velocity (m/s)")
    speed_range_mps: tuple[float, float] = Field(
        (0.5, 1.5), description="[min, max] waypoint speed for random_waypoint (m/s)"
    )
    pause_s: float = Field(0.0, ge=0.0, le=1e6, description="pause at each waypoint (s, at most 1e6)")
    trajectory_file: str | None = Field(
        None, max_length=4096,
        description="CSV with columns t_s,user,x_m,y_m (relative to the scenario file); checked "
        "at validation: present, well-formed, inside the area, one trajectory per user"
    )

    @model_validator(mode="after")
    def _check(self) -> MobilityConfig:
        lo, hi = self.speed_range_mps
        if not (0.0 < lo <= hi <= 100.0):
            raise ValueError("speed_range_mps must satisfy 0 < min <= max <= 100 m/s")
        if self.model == "trajectory" and not self.trajectory_file:
            raise ValueError("model 'trajectory' needs trajectory_file")
        return self


class UsersConfig(_Section):
    """Single-antenna users (also the sensing targets)."""

    count: int = Field(4, ge=1, le=1000, description="number of users (ignored if positions_m)")
    positions_m: list[Point] | None = Field(
        None, max_length=1000, description="initial [x, y] per user (m), at most 1000")
    margin_m: float = Field(
        1.0, ge=0.0, le=1e5,
        description="random initial positions keep this distance to the border (m)"
    )
    placement: Literal["uniform", "hex_cells"] = Field(
        "uniform",
        description="random initial positions: uniform in the area, or uniform in the APs' "
        "hexagonal cells at least min_ap_distance_m from every AP (seed 004)",
    )
    min_ap_distance_m: float = Field(
        10.0, ge=0.0, le=1e5,
        description="hex_cells: minimum 2-D AP distance (m); below isd_m / sqrt(3), the cell's "
        "corner distance")
    mobility: MobilityConfig = Field(default_factory=MobilityConfig)


# ----------------------------------------------------------------------------- oscillators
class OscillatorConfig(_Section):
    """Local oscillators of the APs: two-state clock model (time and frequency offset)."""

    initial_offset_ppm: float = Field(
        1.0, ge=0.0, le=1000.0,
        description="std of the initial fractional frequency offset of each AP (ppm)",
    )
    initial_time_offset_s: float = Field(
        0.0, ge=0.0, le=1.0, description="std of the initial time offset of each AP (s)"
    )
    aging_ppm_per_day: float = Field(
        0.0, ge=-100.0, le=100.0, description="deterministic frequency drift (ppm/day)"
    )
    adev_white_fm_at_1s: float = Field(
        1e-10, ge=0.0, le=1e-3, description="Allan deviation at 1 s due to white FM noise"
    )
    adev_random_walk_fm_at_1s: float = Field(
        1e-11, ge=0.0, le=1e-3, description="Allan deviation at 1 s due to random-walk FM noise"
    )
    phase_noise_rad2_per_s: float = Field(
        0.0, ge=0.0, le=1e6,
        description="extra carrier-phase Wiener noise diffusion (rad^2/s); 1e6 already "
        "randomizes the phase within a microsecond"
    )


# ----------------------------------------------------------------------------- frame
class FrameConfig(_Section):
    """Frame timing. A frame is: sync slots (if a sync round is due), then sensing for
    (1 - comm_fraction) and communication for comm_fraction of ``sense_comm_duration_s``."""

    sense_comm_duration_s: float = Field(
        10e-3, gt=0.0, le=10.0, description="sensing + communication time per frame (s)"
    )
    comm_fraction: float = Field(
        0.8, gt=0.0, lt=1.0, description="rho: communication share of sense_comm_duration_s"
    )
    subframes: int = Field(10, ge=1, le=1000, description="communication subframes per frame")
    sync_slot_s: float = Field(
        20e-6, gt=0.0, le=1.0, description="duration of one synchronization pilot slot (s)"
    )
    ap_power_dbm: float = Field(30.0, ge=-30.0, le=60.0, description="per-AP transmit power (dBm)")
    time_allocation: Literal["fixed", "crlb_feasible"] = Field(
        "fixed",
        description="fixed: comm_fraction every frame; crlb_feasible: the largest rho whose "
        "sensing time keeps every user's CRLB below sensing.crlb_threshold_m2 (seed 003 eq. 17), "
        "from the previous frame's bound",
    )
    min_comm_fraction: float = Field(0.05, gt=0.0, lt=1.0, description="lower clip of rho")
    max_comm_fraction: float = Field(0.99, gt=0.0, lt=1.0, description="upper clip of rho")
    period_s: float | None = Field(
        None, gt=0.0, le=86_400.0,
        description="frame repetition period (s, at most a day); frames start this far apart and the network "
        "idles (oscillators and users still evolve) in between. Default: back to back",
    )


# ----------------------------------------------------------------------------- sync
class SyncConfig(_Section):
    """Over-the-air synchronization (seed 000)."""

    method: Literal["none", "genie", "ml", "crb"] = Field(
        "genie",
        description="none: free-running; genie: exact correction; ml: waveform bursts + ML "
        "estimator; crb: residuals drawn from the Cramer-Rao bound",
    )
    period_frames: int = Field(1, ge=1, le=10**6, description="a sync round every N frames")
    replan_period_s: float = Field(
        60.0, gt=0.0, le=1e9, description="re-plan clusters, masters and pilots this often (s)"
    )
    reference_ap: int | None = Field(
        None, ge=0, le=10**6,
        description="AP that defines network time (default: chosen by the plan)"
    )
    pilot_length_chips: int = Field(256, ge=4, le=4096, description="pilot length N (chips)")
    chip_time_s: float = Field(
        50e-9, ge=1e-12, le=1e-3,
        description="chip interval Ts (s), 1 ps (1 THz of bandwidth) to 1 ms",
    )
    sinr_req_db: float = Field(15.0, ge=-20.0, le=60.0, description="per-link SINR requirement")
    overhead_budget_slots: int = Field(
        40, ge=1, le=10_000, description="budget L_S for 2 K_C + tau (slots)"
    )
    max_time_offset_chips: float = Field(
        8.0, gt=0.0, le=10_000.0, description="ML search window for the residual TO (chips)"
    )
    tx_power_w: float = Field(
        1.0, gt=0.0, le=1e4, description="sync pilot transmit power (W, at most 10 kW)"
    )
    max_cfo_hz: float = Field(
        100e3, gt=0.0, le=1e9, description="ML search range of the CFO, +/- (Hz, at most 1 GHz)"
    )
    min_sinr_db: float = Field(
        10.0, ge=-20.0, le=60.0,
        description="links below this SINR are not trusted; their APs are not corrected (dB)",
    )
    swap_iterations: int = Field(
        1000, ge=0, le=100_000, description="swap-matching iterations per tau (Algorithm 2)"
    )
    ml_window_sigmas: float = Field(
        8.0, ge=0.0, le=1e3,
        description="ml with kalman tracking: each link's coarse TO search covers the tracker's "
        "prediction +/- this many predicted stds (at least ml_window_min_chips) instead of the "
        "whole +/- max_time_offset_chips; links without a track search the whole window; 0: "
        "always the whole window",
    )
    ml_window_min_chips: float = Field(
        2.0, gt=0.0, le=10_000.0,
        description="smallest half-width of the tracker-centred TO search (chips)",
    )
    # -- clock tracking at the CPU and adaptive scheduling (issue 14; netsim.sync.tracking)
    tracking: Literal["none", "kalman"] = Field(
        "kalman",
        description="none: each round's estimate is applied once (per-round correction, seed "
        "000); kalman: a Kalman filter per AP on (TO, CFO, carrier phase) fuses the rounds and "
        "the CPU corrects with its prediction at the correction's arrival time (ml and crb only: "
        "genie estimates are exact, there is nothing to fuse)",
    )
    schedule: Literal["periodic", "adaptive"] = Field(
        "periodic",
        description="periodic: every cluster at every opportunity (every period_frames frames); "
        "adaptive (needs tracking: kalman): a cluster is measured only when an AP's predicted "
        "residual RMS would exceed an adaptive_max_* bound before the next opportunity",
    )
    adaptive_max_to_s: float | None = Field(
        2e-10, gt=0.0, description="adaptive: bound on the predicted residual TO RMS (s); null: none"
    )
    adaptive_max_cfo_hz: float | None = Field(
        None, gt=0.0, description="adaptive: bound on the predicted residual CFO RMS (Hz); null: none"
    )
    adaptive_max_phase_rad: float | None = Field(
        None, gt=0.0,
        description="adaptive: bound on the predicted residual carrier-phase RMS (rad); null: none",
    )
    gate_probability: float = Field(
        0.9999, gt=0.5, lt=1.0,
        description="kalman: innovation gate, chi-square quantile of the normalised innovation",
    )
    phase_lock_std_rad: float = Field(
        1.0, gt=0.0, le=3.0,
        description="kalman: phase innovations are used once their std given the round's TO and "
        "CFO innovations is below this (rad); the 2 pi ambiguity is then a Gaussian mixture over "
        "the integer, collapsed to its mean and covariance",
    )
    acquisition_lock_std_rad: float = Field(
        2.0, gt=0.0, le=3.0,
        description="kalman: the same threshold for the second (acquisition) round of a frame",
    )
    acquisition_round: bool = Field(
        True,
        description="kalman: when a scheduled AP's carrier phase is not predictable (new track, "
        "reset, not yet locked) and would stay predictable over the sync period once locked, a "
        "second round follows the first at once for its clusters (counted in the overhead); the "
        "phase change over that short gap resolves the CFO. adaptive: only with "
        "adaptive_max_phase_rad",
    )
    lost_after_rounds: int = Field(
        3, ge=1, le=10_000,
        description="an AP untrusted or gated this many rounds in a row triggers a re-plan",
    )

    @model_validator(mode="after")
    def _adaptive_needs_tracking(self) -> SyncConfig:
        if self.schedule == "adaptive" and self.tracking != "kalman":
            raise ValueError("sync.schedule 'adaptive' needs sync.tracking 'kalman' (the schedule "
                             "follows the filter's predicted residuals)")
        return self


# ----------------------------------------------------------------------------- sensing
class SensingConfig(_Section):
    """User localization (seed 003)."""

    method: Literal["genie", "music", "crlb"] = Field(
        "genie", description="genie: estimate = true position; music: near-field 2D MUSIC "
        "acquisition/tracking + ML refinement on the echoes; crlb: estimate drawn from "
        "N(true position, CRLB of the frame) (fast fidelity of music)"
    )
    fidelity: Literal["wishart", "snapshots"] = Field(
        "wishart", description="sample covariance from its Wishart law, or from echo snapshots"
    )
    snapshot_duration_s: float = Field(
        1e-6, ge=1e-12, le=1.0, description="T_u, one sensing snapshot (s), 1 ps to 1 s"
    )
    max_snapshots: int = Field(
        10_000, ge=1, le=10**6,
        description="cap on snapshots per frame (waveform fidelity cost, at most 1e6)"
    )
    power_dbm: float = Field(30.0, ge=-30.0, le=60.0, description="per-AP sensing power (dBm)")
    grid_step_m: float = Field(
        0.25, ge=1e-4, le=1e4,
        description="MUSIC full-grid step (m); the grid may hold at most 4e6 points",
    )
    tracking: bool = Field(True, description="search a window around predicted positions")
    tracking_window_m: float = Field(
        0.5, gt=0.0, le=1e4, description="half-width of the tracking window (m)"
    )
    refine_step_m: float = Field(
        1e-3, ge=1e-9, le=10.0,
        description="final step of the local peak refinement (m, 1 nm to 10 m); in the seed-003 "
        "room 1e-5 gives the same errors (median 2.6 mm against sqrt(CRLB) 0.13 mm): the step is "
        "not what limits MUSIC there"
    )
    max_coast_frames: int = Field(
        5, ge=0, le=10_000,
        description="frames a lost track keeps its prediction before a far peak is accepted",
    )
    spectrum: Literal["auto", "rare", "composite"] = Field(
        "auto", description="MUSIC spectrum of the candidate search: auto picks composite when the "
        "signal subspace is block-diagonal per AP (per-path RCS draws), else RARE (per-AP weights)"
    )
    covariance: Literal["isotropic", "optimized"] = Field(
        "isotropic",
        description="sensing covariance: isotropic P/N I per AP, or the CRB-optimal design (8) "
        "for the initial positions (cached; practical for a few APs only)",
    )
    aps_per_user: int = Field(
        3, ge=1, le=64, description="each user is localized by its nearest APs (sensing cluster)"
    )
    range_m: float = Field(
        30.0, gt=0.0, le=1e6,
        description="users within this distance of a cluster AP reflect into it (m)"
    )
    crlb_threshold_m2: float = Field(
        1e-6, gt=0.0, le=1e12, description="per-user CRLB target of the time allocation (m^2)"
    )
    rcs_m2: float = Field(
        1.0, gt=0.0, le=1e4,
        description="radar cross-section of a user (m^2): the echo of path m -> k -> m' has "
        "power gain lambda^2 rcs / ((4 pi)^3 r_mk^2 r_m'k^2) (radar equation)",
    )


# ----------------------------------------------------------------------------- comm
class CommConfig(_Section):
    """Communication phase: CSI, beamforming, power control."""

    csi: Literal["location", "perfect", "pilots"] = Field(
        "location",
        description="location: channels rebuilt from estimated positions; perfect: true "
        "geometric channel; pilots: uplink pilots + MMSE (seed 004)",
    )
    beamforming: Literal["mrt", "mrt_plain", "main", "ei", "rzf"] = Field(
        "mrt_plain",
        description="beamformer, designed once per frame. mrt_plain (default): maximum-ratio "
        "transmission, fast at any size; rzf: regularized zero-forcing; the seed-003 robust "
        "designs are opt-in: mrt and main (SDPs, seconds per frame, refused above the size "
        "guard) and ei (error-ignorant)",
    )
    power: Literal["equal", "wmmse", "maxmin", "gnn", "sts_gnn"] = Field(
        "equal", description="power allocation: per subframe (equal, wmmse, maxmin, gnn = "
        "DTS-Power-GNN) or once per frame from large-scale fading (sts_gnn = STS-GNN power "
        "head; needs csi: pilots)"
    )
    wmmse_stop: Literal["window", "spec"] = Field(
        "window",
        description="WMMSE stopping: window = sweeps + projected-gradient refinement until the "
        "gain over 10 iterations < 1e-5 Rsur (converged); spec = the paper's one-sweep rule "
        "(relative gain < 1e-4, at most 100 sweeps; can stop 2-4 % short on plateaus)",
    )
    power_warm_start: bool = Field(
        True, description="WMMSE starts each subframe from the previous subframe's powers"
    )
    subcarriers_evaluated: int = Field(
        8, ge=1, le=4096, description="subcarriers across the band on which rates are averaged"
    )
    cyclic_prefix_s: float = Field(
        0.5e-6, ge=0.0, le=1.0,
        description="OFDM cyclic prefix: timing offsets beyond it cause ISI (s, at most 1 s)"
    )
    symbol_duration_s: float = Field(
        4e-6, ge=1e-12, le=1.0, description="OFDM symbol duration without CP (s), 1 ps to 1 s"
    )
    reuse_distance_m: float = Field(
        0.0, ge=0.0, le=1e6,
        description="reuse last frame's beamformer if no user moved more than this (m)",
    )
    serving_aps: int = Field(
        0, ge=0, le=1000,
        description="seed-003 designs (main/ei/mrt): each user is served by its this many "
        "strongest APs (user-centric cluster); 0: every AP serves every user (the paper)",
    )
    # --- seed 004: uplink pilots, MMSE CSI, user-centric association (csi: pilots)
    pilot_power_dbm: float = Field(23.0, ge=-30.0, le=60.0, description="uplink pilot power per user (dBm)")
    coherence_slots: int = Field(
        200, ge=2, le=100_000, description="tau_c: slots per coherence block (pilot overhead tau_p/tau_c)"
    )
    association_eta_db: float = Field(
        -10.0, le=0.0, allow_inf_nan=True,
        description="AP m serves user k if beta_mk >= eta * max_m beta_mk (dB); -inf: all",
    )
    pilot_assignment: Literal["dsatur_tabu", "dsatur", "gnn"] = Field(
        "dsatur_tabu", description="frame-start pilot length and assignment (seed 004): "
        "dsatur_tabu / dsatur (spec 4.1-4.2) or gnn (DTS-Pilot-GNN; the STS-GNN pilot head "
        "when power is sts_gnn)"
    )
    pilot_replan_db: float = Field(
        1.0, ge=0.0, le=100.0,
        description="re-run the pilot assignment at a frame start only when the association "
        "changed or a served link's large-scale gain moved more than this (dB) since the last "
        "assignment (an events row pilots_reassigned); 0: every frame (the seed's policy)",
    )
    pilot_tabu_exact: int | None = Field(
        8, ge=1, le=100_000,
        description="tabu pre-screen: per iteration, the exact net-SE proxy J only for the "
        "candidate moves a large-scale estimate ranks best (this many non-tabu ones); null: "
        "every candidate exactly (the search of spec 4.2)",
    )
    gnn_pilot_refine: int = Field(
        0, ge=0, le=10_000,
        description="pilot_assignment gnn: at most this many greedy J~ moves after the GNN's "
        "rounding (netsim/comm/power/gnn_refine.py; new pilots at >= 16 antennas, none below 4; "
        "0: the GNN's own assignment)",
    )
    gnn_weights: str | None = Field(
        None, description="DTS GNN weights (.npz from netsim train-gnn) for power/pilot_assignment "
        "gnn; null: the shipped umi_cellfree weights"
    )
    sts_gnn_weights: str | None = Field(
        None, description="STS GNN weights (.npz) for power: sts_gnn; null: the shipped weights"
    )

    @model_validator(mode="after")
    def _check_gnn(self) -> CommConfig:
        if self.power == "sts_gnn" and self.csi != "pilots":
            raise ValueError("power: sts_gnn needs csi: pilots (it works on the LSF and association)")
        return self


# ----------------------------------------------------------------------------- channel
class ChannelConfig(_Section):
    """Propagation: near-field LOS geometric channel with an optional Rician NLOS part."""

    model: Literal["nearfield", "umi"] = Field(
        "nearfield", description="nearfield: spherical-wave LOS (+NLOS); umi: 3GPP UMi (seed 004)"
    )
    carrier_hz: float = Field(28e9, gt=1e6, le=1e12, description="carrier frequency (Hz)")
    bandwidth_hz: float = Field(20e6, gt=0.0, le=1e10, description="signal bandwidth (Hz)")
    noise_figure_db: float = Field(9.0, ge=0.0, le=30.0, description="receiver noise figure")
    path_loss_exponent: float = Field(2.0, ge=1.0, le=6.0, description="LOS amplitude ~ r^(-n/2)")
    rician_k_db: float = Field(
        10.0, ge=-50.0, le=300.0, description="Rician K factor; >= 300 dB means pure LOS"
    )
    min_doppler_hz: float = Field(
        0.0, ge=0.0, le=1e6,
        description="Doppler floor for static users (scatterer motion, Hz, at most 1 MHz)"
    )
    # --- umi (seed 004, 3GPP 38.901 street canyon)
    shadowing_std_db: float = Field(7.82, ge=0.0, le=30.0, description="umi: log-normal shadowing std (dB)")
    ap_height_m: float = Field(10.0, ge=0.0, le=500.0, description="umi: AP antenna height (m)")
    user_height_m: float = Field(1.5, ge=0.0, le=100.0, description="umi: user antenna height (m)")
    fading_correlation: Literal["jakes", "iid"] = Field(
        "jakes", description="umi: small-scale fading between subframes, Jakes Gauss-Markov or i.i.d."
    )

    @property
    def wavelength_m(self) -> float:
        return 299_792_458.0 / self.carrier_hz

    @property
    def noise_power_w(self) -> float:
        """Thermal noise k T B F at 290 K (W)."""
        return 1.380649e-23 * 290.0 * self.bandwidth_hz * 10 ** (self.noise_figure_db / 10)


class FronthaulConfig(_Section):
    """AP <-> CPU links (simpy Stores with a fixed latency)."""

    latency_s: float = Field(50e-6, ge=0.0, le=1.0, description="one-way latency (s)")


# ----------------------------------------------------------------------------- faults
class FaultConfig(_Section):
    """A scheduled fault."""

    at_s: float = Field(..., ge=0.0, le=1e9, description="start time (s)")
    ap: int = Field(..., ge=0, le=10**6, description="AP index")
    kind: Literal["outage"] = Field("outage")
    duration_s: float = Field(
        math.inf, gt=0.0, allow_inf_nan=True, description="outage length (s); inf = permanent"
    )

    @model_validator(mode="after")
    def _not_nan(self) -> FaultConfig:
        if math.isnan(self.duration_s):
            raise ValueError("duration_s must be a number of seconds or .inf, not NaN")
        return self


# ----------------------------------------------------------------------------- run
class RunConfig(_Section):
    """Run length, seed and output."""

    frames: int | None = Field(
        None, ge=1, le=10**9,
        description="number of frames (default 20 when duration_s is not given; at most 1e9)"
    )
    duration_s: float | None = Field(
        None, gt=0.0, le=1e9, description="simulated time (s, finite, at most 1e9 s)"
    )
    seed: int = Field(1, ge=0, lt=2**63, description="root seed of every random stream")
    replication: int = Field(
        0, ge=0, lt=2**63, description="replication number (independent substream)"
    )
    output_dir: str = Field("runs/latest", description="run directory (CLI --out overrides)")
    flush_every_rows: int = Field(
        20_000, ge=1, le=10**8,
        description="buffered trace rows of one table after which every table is flushed "
        "(at the next frame boundary, with a checkpoint)"
    )
    flush_every_s: float = Field(
        30.0, gt=0.0, le=1e6,
        description="wall-clock seconds between flushes of every table (at frame "
        "boundaries; checkpoint_every_s also flushes) (s)"
    )
    checkpoint_every_s: float = Field(
        5.0, gt=0.0, le=86_400.0,
        description="wall-clock seconds between checkpoints (flush + state, at a frame "
        "boundary); a killed run resumed with --resume loses at most this much work (s)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_length(cls, data: object) -> object:
        if isinstance(data, dict):
            if data.get("frames") is not None and data.get("duration_s") is not None:
                raise ValueError("give run.frames or run.duration_s, not both")
            if data.get("frames") is None and data.get("duration_s") is None:
                data = {**data, "frames": 20}
        return data


class Scenario(_Section):
    """A complete, validated scenario."""

    name: str = Field("scenario", max_length=200,
                      description="free-form name, copied into meta.json")
    description: str = Field("", max_length=10_000, description="free-form description")
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    users: UsersConfig = Field(default_factory=UsersConfig)
    oscillators: OscillatorConfig = Field(default_factory=OscillatorConfig)
    frame: FrameConfig = Field(default_factory=FrameConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    sensing: SensingConfig = Field(default_factory=SensingConfig)
    comm: CommConfig = Field(default_factory=CommConfig)
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    fronthaul: FronthaulConfig = Field(default_factory=FronthaulConfig)
    faults: list[FaultConfig] = Field(default_factory=list, max_length=10_000)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Scenario:
        from netsim.scenario.checks import cross_field_problems

        if info.context and info.context.get("cross_checks") is False:
            return self  # the loader runs them itself, next to the field errors
        problems = cross_field_problems(self)
        if problems:  # one line per problem (the loader lists them separately)
            raise ValueError("\n".join(problems))
        return self

    @property
    def n_aps(self) -> int:
        aps = self.deployment.aps
        return len(aps.positions_m) if aps.layout == "list" and aps.positions_m else aps.count

    @property
    def n_users(self) -> int:
        return len(self.users.positions_m) if self.users.positions_m else self.users.count
