"""Cross-field checks, file checks and cost warnings of a scenario.

The field models (:mod:`netsim.scenario.models`) check each value on its own: type, range,
finiteness. What needs several fields, or a file next to the scenario, is checked here, and
every problem is returned (a user fixes a file in one pass):

* :func:`cross_field_problems` - things that cannot run: AP indices, positions outside the area,
  layouts that do not fit, impossible user drops, frame period shorter than a frame, search
  grids and run lengths beyond the stated limits;
* :func:`file_problems` - the trajectory file: present, well-formed, inside the area, one
  trajectory per user;
* :func:`cost_warnings` - things that run but are expensive or degenerate at this size
  (printed by ``netsim validate``, never an error).
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from netsim.scenario.models import Scenario

__all__ = [
    "MAX_MUSIC_GRID_POINTS",
    "MAX_ROBUST_CPU_S_PER_FRAME",
    "MAX_ROBUST_MEMORY_BYTES",
    "MAX_RUN_FRAMES",
    "SDP_DIM_GUARD",
    "algorithm_summary",
    "cost_warnings",
    "cross_field_problems",
    "file_problems",
    "max_robust_dim",
    "robust_design_cost",
    "robust_guard_problem",
    "robust_problem_size",
]

MAX_MUSIC_GRID_POINTS = 4_000_000
"""Largest full MUSIC search grid accepted (points); 4e6 points x 8 APs x 8 antennas is ~4 GB
of complex steering vectors evaluated per frame."""
MAX_RUN_FRAMES = 10**9
"""Most frames a ``run.duration_s`` may ask for."""
SDP_DIM_GUARD = 96
"""``max_sdp_dim`` of the robust designs (netsim.comm.robust): above it they fall back to MRT."""


def deterministic_ap_positions(sc: Scenario) -> np.ndarray | None:
    """AP centres (M, 2) when the layout does not draw them at random, else None."""
    from netsim.phy.geometry import grid_positions, hexagon_positions

    dep, aps = sc.deployment, sc.deployment.aps
    if aps.layout == "list" and aps.positions_m:
        return np.asarray(aps.positions_m, dtype=float)
    if aps.layout == "grid":
        return grid_positions(aps.count, dep.width_m, dep.height_m)
    if aps.layout == "hexagon":
        return hexagon_positions(1, aps.isd_m, (dep.width_m / 2, dep.height_m / 2))
    return None


def _inside(p: np.ndarray, w: float, h: float, tol: float = 1e-9) -> np.ndarray:
    return (p[..., 0] >= -tol) & (p[..., 0] <= w + tol) & (p[..., 1] >= -tol) & (p[..., 1] <= h + tol)


def _blocked(skip: Collection[tuple[str, ...]], *deps: str) -> bool:
    """True when a check that reads the fields ``deps`` (dotted paths; a section stands for
    all its fields) would read one of the ``skip`` fields (invalid, replaced by defaults)."""
    for dep in deps:
        parts = tuple(dep.split("."))
        for bad in skip:
            n = min(len(parts), len(bad))
            if parts[:n] == tuple(bad[:n]):
                return True
    return False


APS = ("deployment.aps",)
"""Fields behind ``Scenario.n_aps`` and the AP positions."""
AREA = ("deployment.width_m", "deployment.height_m")
N_USERS = ("users.count", "users.positions_m")


def cross_field_problems(sc: Scenario, skip: Collection[tuple[str, ...]] = ()) -> list[str]:
    """Every cross-field problem of a scenario (empty: it can run).

    ``skip`` lists fields that were invalid in the file (each a tuple of keys, e.g.
    ``("deployment", "aps", "count")``) and hold defaults in ``sc``: a check that reads one of
    them is not run, so that every other problem can be shown together with the field errors
    without inventing problems from the defaults.
    """
    out: list[str] = []
    dep, users, n_ap = sc.deployment, sc.users, sc.n_aps
    w, h = dep.width_m, dep.height_m

    def ok(*deps: str) -> bool:
        return not _blocked(skip, *deps)

    for i, fault in enumerate(sc.faults if ok("faults", *APS) else ()):
        if fault.ap >= n_ap:
            out.append(f"faults[{i}].ap = {fault.ap} but there are only {n_ap} APs (0..{n_ap - 1})")
    if ok("sync.reference_ap", *APS) and sc.sync.reference_ap is not None \
            and sc.sync.reference_ap >= n_ap:
        out.append(f"sync.reference_ap = {sc.sync.reference_ap} but there are only {n_ap} APs")
    o = dep.orientation
    orient_ok = ok("deployment.orientation", *APS)
    if orient_ok and o.mode == "list" and (o.angles_deg is None or len(o.angles_deg) != n_ap):
        got = 0 if o.angles_deg is None else len(o.angles_deg)
        out.append(f"deployment.orientation.angles_deg: needs one angle per AP ({n_ap}), got {got}")
    if orient_ok and o.mode == "list" and o.angles_deg and any(abs(a) > 360 for a in o.angles_deg):
        out.append("deployment.orientation.angles_deg: angles must lie in [-360, 360] deg")

    for pts, what, deps in ((dep.aps.positions_m if dep.aps.layout == "list" else None,
                             "deployment.aps.positions_m", APS),
                            (users.positions_m, "users.positions_m", ("users.positions_m",))):
        if not ok(*deps, *AREA):
            continue
        for j, (x, y) in enumerate(pts or []):
            if not (0 <= x <= w and 0 <= y <= h):
                out.append(f"{what}[{j}] = [{x}, {y}] lies outside the area ({w} x {h} m)")
    ap_xy = deterministic_ap_positions(sc) if ok(*APS, *AREA) else None
    if ap_xy is not None and len(ap_xy) > 1:
        d = np.linalg.norm(ap_xy[:, None] - ap_xy[None], axis=-1) + np.eye(len(ap_xy)) * 1e9
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < 1e-2:
            out.append(f"deployment.aps: APs {min(i, j)} and {max(i, j)} are at the same place "
                       f"({d[i, j]:.3g} m apart); APs must be at least 1 cm apart")

    aps = dep.aps
    if aps.layout == "hexagon" and ap_xy is not None and not _inside(ap_xy, w, h).all():
        out.append(f"deployment.aps: a hexagon with isd_m = {aps.isd_m} m around the centre does "
                   f"not fit in the {w} x {h} m area (needs width >= 2 isd_m, height >= "
                   f"1.73 isd_m)")
    if ok(*APS, *AREA) and aps.layout == "random" and aps.min_distance_m > 0:
        # densest disc packing: n discs of diameter d need n (sqrt(3)/2) d^2 of the grown area
        d = aps.min_distance_m
        if aps.count * math.sqrt(3) / 2 * d * d > (w + d) * (h + d):
            out.append(f"deployment.aps: {aps.count} APs at least min_distance_m = {d} m apart "
                       f"cannot fit in the {w} x {h} m area")

    if ok("users.placement", "users.positions_m", "users.min_ap_distance_m", *APS) \
            and users.placement == "hex_cells" and not users.positions_m:
        corner = aps.isd_m / math.sqrt(3.0)  # farthest point of a hexagonal cell from its AP
        if users.min_ap_distance_m >= 0.95 * corner:
            out.append(f"users.min_ap_distance_m = {users.min_ap_distance_m} m leaves no room in "
                       f"the hexagonal cells of deployment.aps.isd_m = {aps.isd_m} m (must be "
                       f"below 0.95 isd_m / sqrt(3) = {0.95 * corner:.4g} m)")
        if ap_xy is not None:
            lo = ap_xy.min(axis=0) - [aps.isd_m / 2, corner]
            hi = ap_xy.max(axis=0) + [aps.isd_m / 2, corner]
            if lo.min() < -1e-9 or hi[0] > w + 1e-9 or hi[1] > h + 1e-9:
                out.append(f"users.placement hex_cells: the APs' hexagonal cells (isd_m = "
                           f"{aps.isd_m} m) reach [{lo[0]:.4g}, {lo[1]:.4g}] .. [{hi[0]:.4g}, "
                           f"{hi[1]:.4g}] m, outside the {w} x {h} m area; enlarge "
                           "deployment.width_m/height_m or reduce isd_m")
    if ok("users.margin_m", "users.positions_m", "users.placement", *AREA) \
            and users.margin_m * 2 >= min(w, h) and not users.positions_m \
            and users.placement == "uniform":
        out.append(f"users.margin_m = {users.margin_m} m leaves no room in the {w} x {h} m area")

    fr = sc.frame
    if ok("frame.min_comm_fraction", "frame.max_comm_fraction") \
            and fr.min_comm_fraction > fr.max_comm_fraction:
        out.append(f"frame.min_comm_fraction = {fr.min_comm_fraction} > frame.max_comm_fraction "
                   f"= {fr.max_comm_fraction}")
    longest = sc.sync.overhead_budget_slots * fr.sync_slot_s + fr.sense_comm_duration_s
    if ok("sync.overhead_budget_slots", "frame.sync_slot_s", "frame.sense_comm_duration_s",
          "frame.period_s") and fr.period_s is not None and longest > fr.period_s:
        out.append(f"frame.period_s = {fr.period_s} s is shorter than one frame ({longest:.6g} s: "
                   f"sync.overhead_budget_slots x frame.sync_slot_s + frame.sense_comm_duration_s)")
    if ok("run", "frame.period_s", "frame.sense_comm_duration_s") \
            and sc.run.duration_s is not None:
        shortest = fr.period_s or fr.sense_comm_duration_s
        if sc.run.duration_s / shortest > MAX_RUN_FRAMES:
            out.append(f"run.duration_s = {sc.run.duration_s} s is more than {MAX_RUN_FRAMES:.0e} "
                       f"frames of {shortest:.3g} s")

    se = sc.sensing
    if ok("sensing.method", "sensing.grid_step_m", *AREA) and se.method == "music":
        points = (w / se.grid_step_m + 1) * (h / se.grid_step_m + 1)
        if points > MAX_MUSIC_GRID_POINTS:
            out.append(f"sensing.grid_step_m = {se.grid_step_m} m gives a MUSIC grid of "
                       f"{points:.3g} points over the {w} x {h} m area (limit "
                       f"{MAX_MUSIC_GRID_POINTS:.0e}); use a coarser step")

    if ok("comm", *APS, *N_USERS, "deployment.antennas_per_ap"):
        refused = robust_guard_problem(sc)
        if refused:
            out.append(refused)

    mob = users.mobility
    if ok("users.mobility", "users.positions_m") and mob.model == "trajectory" \
            and users.positions_m is None and mob.trajectory_file is None:
        out.append("users.mobility.trajectory_file: needed by model 'trajectory'")
    return out


def file_problems(sc: Scenario, skip: Collection[tuple[str, ...]] = ()) -> list[str]:
    """Problems of the files a scenario references (the trajectory CSV); nothing when it
    would read a ``skip`` field (see :func:`cross_field_problems`)."""
    from pathlib import Path

    mob = sc.users.mobility
    if _blocked(skip, "users.mobility", *N_USERS, *AREA):
        return []
    if mob.model != "trajectory" or not mob.trajectory_file:
        return []
    path = Path(mob.trajectory_file)
    where = "users.mobility.trajectory_file"
    if not path.is_file():
        return [f"{where}: {path} not found"]
    if path.stat().st_size > 500_000_000:
        return [f"{where}: {path} is larger than 500 MB"]
    from netsim.phy.mobility import load_trajectories

    try:
        traj = load_trajectories(path, sc.deployment.width_m, sc.deployment.height_m)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        return [f"{where}: {str(err)[:300]}"]
    except Exception as err:  # noqa: BLE001 - pandas parser errors and friends
        return [f"{where}: {path} is not a readable CSV ({type(err).__name__}: {str(err)[:200]})"]
    k = sc.n_users
    missing = [u for u in range(k) if u not in traj]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        return [f"{where}: {path.name} has no trajectory for user(s) {shown} of the {k} users "
                f"(users.count / users.positions_m); it holds users {sorted(traj)[:10]}"]
    return []


def robust_problem_size(sc: Scenario) -> tuple[int, int]:
    """``(d, K)`` of the seed-003 robust design a run of ``sc`` solves every frame: an upper
    bound of the reduced dimension d (:func:`netsim.comm.robust.reduce_problem`, attained for
    generic channels) and the number of users K.

    Main and EI span, on every AP that serves somebody, all K users' channel blocks
    (``min(N, K)`` coordinates per AP); MRT spans only the served channels (one coordinate per
    served AP-user pair, at most N per AP). With ``comm.serving_aps = L`` at most ``K L`` APs
    serve somebody.
    """
    m, k, n = sc.n_aps, sc.n_users, sc.deployment.antennas_per_ap
    per_user = m if sc.comm.serving_aps == 0 else min(sc.comm.serving_aps, m)
    active = min(m, k * per_user)
    if sc.comm.beamforming == "mrt":
        return min(k * per_user, active * n), k
    return active * min(n, k), k


# Cost of one interior-point solve of the robust SDP (14)/(26), measured with
# benchmarks/robust_cost.py (Clarabel through cvxpy, one core, random channels): the size is
# s = K d^2 real unknowns of the LMIs' blocks (Main: K Hermitian d x d matrices).
#   K=2 d=4 (s=32): 10.6 MB, 0.53 s;  K=2 d=8 (128): 17.9 MB, 0.75 s;
#   K=2 d=16 (512): 112 MB, 4.3 s;   K=4 d=16 (1024): 272 MB, 13.8 s;
#   K=4 d=24 (2304): over 150 s (one solve, not finished).
# MRT (26) has the same K LMIs of size d + 1 but only K small blocks P_k: at K=4 d=16 it took
# 108 MB and 3.7 s, 0.40 and 0.27 of Main; those factors scale the same law.
# Above the largest finished point the model grows like a dense factorisation of s unknowns,
# memory ~ s^2 and time ~ s^3 (steeper than the measured local slopes 1.3 and 1.7, so the
# extrapolation over-estimates rather than under-estimates); below it, the measured slopes.
_COST_ANCHOR_S = 1024.0
_COST_ANCHOR_BYTES = 272e6
_COST_ANCHOR_CPU_S = 13.8
_COST_LOCAL_EXP = (1.3, 1.7)
_COST_FAR_EXP = (2.0, 3.0)
SOLVES_PER_FRAME = 12
"""Interior-point solves of one robust design (bisection on the rate to 0.01 bit/s/Hz, plus the
certificate and re-powering; 10 measured at d = 4)."""
MAX_ROBUST_MEMORY_BYTES = 2 * 2**30
"""Largest estimated memory of one robust SDP solve accepted (2 GiB)."""
_MRT_FACTOR = (0.40, 0.27)
MAX_ROBUST_CPU_S_PER_FRAME = 600.0
"""Largest estimated CPU time of the robust design of one frame accepted (s, one core)."""


def robust_design_cost(scheme: str, d: int, k: int) -> tuple[float, float]:
    """Estimated ``(peak bytes of one solve, CPU seconds per frame)`` of a robust design.

    ``scheme`` "main" or "mrt" (SDP: size ``s = K d^2``), "ei" (SOCP over ``K d`` complex
    unknowns: size ``s = K d``, the same law); see the measured points above.
    """
    size = float(k) * d * d if scheme in ("main", "mrt") else float(k) * d
    ratio = max(size, 1.0) / _COST_ANCHOR_S
    e_mem, e_cpu = _COST_LOCAL_EXP if ratio <= 1.0 else _COST_FAR_EXP
    f_mem, f_cpu = _MRT_FACTOR if scheme == "mrt" else (1.0, 1.0)
    return (f_mem * _COST_ANCHOR_BYTES * ratio ** e_mem,
            f_cpu * SOLVES_PER_FRAME * _COST_ANCHOR_CPU_S * ratio ** e_cpu)


def max_robust_dim(scheme: str, k: int) -> int:
    """Largest reduced dimension d whose estimated cost is within both limits (the run-time
    guard passed to :func:`netsim.comm.robust.design_beamformers` as ``max_sdp_dim``)."""
    lo, hi = 0, 1
    while _within_limits(scheme, hi, k) and hi < 1 << 20:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _within_limits(scheme, mid, k) else (lo, mid)
    return lo


def _within_limits(scheme: str, d: int, k: int) -> bool:
    mem, cpu = robust_design_cost(scheme, d, k)
    return mem <= MAX_ROBUST_MEMORY_BYTES and cpu <= MAX_ROBUST_CPU_S_PER_FRAME


def robust_guard_problem(sc: Scenario) -> str | None:
    """Why the robust design of ``sc`` is refused (estimated memory or time above the limits),
    or None."""
    bf = sc.comm.beamforming
    if bf not in ("main", "mrt", "ei"):
        return None
    d, k = robust_problem_size(sc)
    mem, cpu = robust_design_cost(bf, d, k)
    if mem <= MAX_ROBUST_MEMORY_BYTES and cpu <= MAX_ROBUST_CPU_S_PER_FRAME:
        return None
    return (f"comm.beamforming = {bf}: the robust design here has dimension d = {d} for {k} "
            f"users, an estimated {_bytes(mem)} of memory and {_seconds(cpu)} of CPU per frame "
            f"(limits {_bytes(MAX_ROBUST_MEMORY_BYTES)} and {MAX_ROBUST_CPU_S_PER_FRAME:.0f} s); "
            f"use comm.serving_aps (user-centric clusters), fewer users, or mrt_plain")


def _bytes(x: float) -> str:
    return f"{x / 2**30:.3g} GiB" if x >= 2**30 else f"{x / 2**20:.3g} MiB"


def _seconds(x: float) -> str:
    return f"{x / 3600:.3g} h" if x >= 3600 else f"{x:.3g} s"


def algorithm_summary(sc: Scenario) -> list[str]:
    """The algorithms a run of ``sc`` uses, one ``phase: choice`` line each."""
    return [
        f"sync: {sc.sync.method} (a round every {sc.sync.period_frames} frame(s))",
        f"sensing: {sc.sensing.method}" + (f" ({sc.sensing.fidelity}, {sc.sensing.spectrum}, "
                                           f"covariance {sc.sensing.covariance})"
                                           if sc.sensing.method == "music" else ""),
        f"csi: {sc.comm.csi}",
        f"beamforming: {sc.comm.beamforming}"
        + (" (robust SDP, seed 003)" if sc.comm.beamforming in ("mrt", "main") else ""),
        f"power: {sc.comm.power}",
        f"channel: {sc.channel.model}, {sc.comm.subcarriers_evaluated} subcarrier(s), "
        f"{sc.frame.subframes} subframe(s) per frame",
    ]


def cost_warnings(sc: Scenario) -> list[str]:
    """Choices that are valid but expensive or degenerate at this size (for ``validate``)."""
    out: list[str] = []
    m, k, n = sc.n_aps, sc.n_users, sc.deployment.antennas_per_ap
    bf = sc.comm.beamforming
    if bf in ("mrt", "main", "ei"):
        d, k_users = robust_problem_size(sc)
        mem, cpu = robust_design_cost(bf, d, k_users)
        out.append(f"comm.beamforming: {bf} solves a robust {'SOCP' if bf == 'ei' else 'SDP'} "
                   f"of dimension ~{d} for {k_users} users every frame (estimated {_bytes(mem)}, "
                   f"{_seconds(cpu)} of CPU per frame); mrt_plain is the fast choice")
    if sc.comm.power in ("wmmse", "maxmin") and m * k > 20_000:
        out.append(f"comm.power: {sc.comm.power} iterates over {m} APs x {k} users every subframe")
    if sc.sync.method == "ml" and m > 100:
        out.append(f"sync: ml simulates the waveform bursts of {m} APs every round; crb is the "
                   "fast fidelity level")
    window_s = sc.sync.max_time_offset_chips * sc.sync.chip_time_s
    if sc.sync.method in ("ml", "crb") and sc.oscillators.initial_time_offset_s > 10 * window_s:
        out.append(f"oscillators.initial_time_offset_s = {sc.oscillators.initial_time_offset_s} s "
                   f"is far beyond the sync search window (sync.max_time_offset_chips x "
                   f"chip_time_s = {window_s:.3g} s): most links will be out of range and "
                   "left uncorrected")
    # two APs' initial CFOs differ by N(0, 2 (ppm 1e-6 f_c)^2); beyond max_cfo_hz their link is
    # out of the search range, and an AP corrected to the reference stays that far from the
    # other's cluster, so its APs are never trusted (measured on campus with 100 kHz: 5 links
    # of 41 out of range, 13 APs untrusted from frame 0, 10 re-plans in 30 frames)
    pair_std_hz = math.sqrt(2.0) * sc.oscillators.initial_offset_ppm * 1e-6 * sc.channel.carrier_hz
    if sc.sync.method in ("ml", "crb") and sc.sync.max_cfo_hz < 4.0 * pair_std_hz:
        p_out = math.erfc(sc.sync.max_cfo_hz / pair_std_hz / math.sqrt(2.0))
        out.append(f"sync.max_cfo_hz = {sc.sync.max_cfo_hz:.3g} Hz is only "
                   f"{sc.sync.max_cfo_hz / pair_std_hz:.2f} x the std of two APs' initial CFO "
                   f"difference (sqrt(2) x oscillators.initial_offset_ppm x carrier_hz = "
                   f"{pair_std_hz:.3g} Hz): each sync link is out of range with probability "
                   f"{p_out:.2g} at start-up, and its APs stay uncorrected; use >= "
                   f"{4.0 * pair_std_hz:.3g} Hz")
    se = sc.sensing
    dep = sc.deployment
    # acquisition images each sensing cluster's region: its APs' bounding box +- range_m,
    # clipped to the area (at least (2 range_m)^2; campus: ~9e4 points of 0.25 m, ~1 CPU-s)
    side_x, side_y = min(dep.width_m, 2.0 * se.range_m), min(dep.height_m, 2.0 * se.range_m)
    points = (side_x / se.grid_step_m + 1) * (side_y / se.grid_step_m + 1)
    if se.method == "music" and points > 2e5:
        out.append(f"sensing: music acquisition images at least {points:.3g} grid points per sensing "
                   f"cluster (grid_step_m = {se.grid_step_m} m, range_m = {se.range_m} m, "
                   f"{min(se.aps_per_user, m)} APs x {n} antennas) in a user's first frames")
    if se.method == "music" and se.covariance == "optimized" and m > 8:
        out.append(f"sensing.covariance: optimized designs an SDP over {m} APs (practical for a "
                   "few APs only)")
    if se.method == "music" and se.fidelity == "snapshots" and se.max_snapshots * m * n > 10**7:
        out.append(f"sensing.fidelity: snapshots simulates up to {se.max_snapshots} echo "
                   f"snapshots of {m * n} antennas per frame")
    entries = m * n * k * sc.comm.subcarriers_evaluated * sc.frame.subframes
    if entries > 5 * 10**7:
        out.append(f"size: {m} APs x {n} antennas x {k} users x {sc.comm.subcarriers_evaluated} "
                   f"subcarriers x {sc.frame.subframes} subframes = {entries:.2g} channel "
                   "entries per frame")
    return out
