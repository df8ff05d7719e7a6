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
    "MAX_RUN_FRAMES",
    "SDP_DIM_GUARD",
    "algorithm_summary",
    "cost_warnings",
    "cross_field_problems",
    "file_problems",
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


def _sdp_dim(sc: Scenario) -> int:
    """Rough reduced SDP dimension of the seed-003 robust designs (sum over APs of the users'
    span they serve, at most N per AP)."""
    m, k, n = sc.n_aps, sc.n_users, sc.deployment.antennas_per_ap
    serving = sc.comm.serving_aps
    per_ap = k if serving == 0 else min(k, math.ceil(k * min(serving, m) / m))
    return m * min(n, per_ap)


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
    if bf in ("mrt", "main"):
        dim = _sdp_dim(sc)
        if dim > SDP_DIM_GUARD:
            out.append(f"comm.beamforming: {bf} is a robust SDP of dimension ~{dim} here, above "
                       f"the guard {SDP_DIM_GUARD}: every frame falls back to equal-power MRT "
                       "(logged); use mrt_plain, or comm.serving_aps to cluster")
        else:
            out.append(f"comm.beamforming: {bf} solves a robust SDP of dimension ~{dim} every "
                       "frame (seconds to minutes per frame); mrt_plain is the fast choice")
    if bf == "ei":
        out.append(f"comm.beamforming: ei solves a convex program over {m * n * k} complex "
                   "variables every frame (seconds per frame); mrt_plain is the fast choice")
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
    se = sc.sensing
    dep = sc.deployment
    points = (dep.width_m / se.grid_step_m + 1) * (dep.height_m / se.grid_step_m + 1)
    if se.method == "music" and points > 1e5:
        out.append(f"sensing: music searches a full grid of {points:.3g} points (grid_step_m = "
                   f"{se.grid_step_m} m) at acquisition, over {m} APs x {n} antennas")
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
