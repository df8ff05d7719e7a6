"""A random family of sensing scenarios (issue 9), shared by tests and ``benchmarks/isac.py``.

Seed ``s`` gives 9 APs at random positions (at least 12 m apart) with random array
orientations on a 60 m x 60 m site, 16-element ULAs at 0.5, 1 or 2 wavelengths spacing (by
seed), 4 walking users at random off-grid positions; ``s % 3 == 1`` puts two users 0.3-0.6 m
apart, ``s % 3 == 2`` puts one user 1-2 m from an AP. MUSIC sensing with genie sync.

The *dense* family (:func:`dense_family_overrides`, issue 9's dense scenes): 9 APs at least 9 m
apart on a 40 m x 40 m site, random orientations, spacing 0.5 / 1 / 2 wavelengths by seed, 8
walking users at random off-grid positions, two of them pairs 0.4-1.5 m apart and one 1-2.5 m
from an AP, sensing range 15 m (each cluster sees several users).
"""

from __future__ import annotations

import numpy as np

from netsim.scenario import load_scenario

STRANGER_FAMILIES = ("corridor", "few_antennas", "near_ap", "close_pair")
_STRANGER_BASE_SEED = {"corridor": 7000, "few_antennas": 8000, "near_ap": 9000, "close_pair": 10000}


def family_overrides(seed: int, frames: int) -> list[str]:
    rng = np.random.default_rng(1000 + seed)
    aps: list[list[float]] = []
    while len(aps) < 9:
        p = rng.uniform(5.0, 55.0, 2)
        if all(np.hypot(*(p - q)) >= 12.0 for q in aps):
            aps.append([float(p[0]), float(p[1])])
    users = [rng.uniform(4.0, 56.0, 2) for _ in range(4)]
    if seed % 3 == 1:
        ang = rng.uniform(0, 2 * np.pi)
        users[1] = users[0] + rng.uniform(0.3, 0.6) * np.array([np.cos(ang), np.sin(ang)])
    elif seed % 3 == 2:
        ang = rng.uniform(0, 2 * np.pi)
        users[0] = np.asarray(aps[0]) + rng.uniform(1.0, 2.0) * np.array([np.cos(ang), np.sin(ang)])
    users = [np.clip(u, 1.0, 59.0) for u in users]
    angles = rng.uniform(0.0, 180.0, 9).round(3).tolist()
    spacing = [0.5, 1.0, 2.0][seed % 3 if seed % 2 else (seed // 2) % 3]
    fmt = lambda pts: "[" + ", ".join(f"[{x:.4f}, {y:.4f}]" for x, y in pts) + "]"  # noqa: E731
    return [
        "deployment.width_m=60", "deployment.height_m=60",
        f"deployment.aps={{layout: list, positions_m: {fmt(aps)}}}",
        "deployment.antennas_per_ap=16", f"deployment.antenna_spacing_wavelengths={spacing}",
        f"deployment.orientation={{mode: list, angles_deg: {angles}}}",
        f"users.positions_m={fmt(users)}",
        "users.mobility={model: random_waypoint, speed_range_mps: [0.5, 1.5], pause_s: 1.0}",
        "sync.method=genie", "sensing.method=music", "sensing.aps_per_user=3",
        f"run.frames={frames}", f"run.seed={seed}",
    ]


def family_scenario(seed: int, frames: int = 20, base: str = "scenarios/campus.yaml"):
    return load_scenario(base, family_overrides(seed, frames))


def dense_family_overrides(seed: int, frames: int, n_users: int = 8) -> list[str]:
    rng = np.random.default_rng(5000 + seed)
    size = 40.0
    aps: list[np.ndarray] = []
    while len(aps) < 9:
        p = rng.uniform(4.0, size - 4.0, 2)
        if all(np.hypot(*(p - q)) >= 9.0 for q in aps):
            aps.append(p)
    users = [rng.uniform(3.0, size - 3.0, 2) for _ in range(n_users)]
    for a, b in ((1, 0), (3, 2)):  # two close pairs
        ang = rng.uniform(0, 2 * np.pi)
        users[a] = users[b] + rng.uniform(0.4, 1.5) * np.array([np.cos(ang), np.sin(ang)])
    ang = rng.uniform(0, 2 * np.pi)  # a user near an AP
    users[4] = aps[0] + rng.uniform(1.0, 2.5) * np.array([np.cos(ang), np.sin(ang)])
    users = [np.clip(u, 1.0, size - 1.0) for u in users]
    angles = rng.uniform(0.0, 180.0, 9).round(3).tolist()
    fmt = lambda pts: "[" + ", ".join(f"[{x:.4f}, {y:.4f}]" for x, y in pts) + "]"  # noqa: E731
    return [
        f"deployment.width_m={size:g}", f"deployment.height_m={size:g}",
        f"deployment.aps={{layout: list, positions_m: {fmt(aps)}}}",
        "deployment.antennas_per_ap=16", f"deployment.antenna_spacing_wavelengths={[0.5, 1.0, 2.0][seed % 3]}",
        f"deployment.orientation={{mode: list, angles_deg: {angles}}}",
        f"users.positions_m={fmt(users)}",
        "users.mobility={model: random_waypoint, speed_range_mps: [0.5, 1.5], pause_s: 1.0}",
        "sync.method=genie", "sensing.method=music", "sensing.aps_per_user=3", "sensing.range_m=15",
        f"run.frames={frames}", f"run.seed={seed}",
    ]


def dense_family_scenario(seed: int, frames: int = 10, base: str = "scenarios/campus.yaml"):
    return load_scenario(base, dense_family_overrides(seed, frames))


def _fmt(pts) -> str:  # noqa: ANN001
    return "[" + ", ".join(f"[{float(x):.4f}, {float(y):.4f}]" for x, y in pts) + "]"


def _random_aps(rng: np.random.Generator, n: int, size: float, min_sep: float, border: float) -> list[np.ndarray]:
    aps: list[np.ndarray] = []
    while len(aps) < n:
        p = rng.uniform(border, size - border, 2)
        if all(np.hypot(*(p - q)) >= min_sep for q in aps):
            aps.append(p)
    return aps


def _clear_point(rng: np.random.Generator, aps: list[np.ndarray], lo: float, hi: float) -> np.ndarray:
    """A uniform point in [lo, hi]^2 at least 1 m from every AP (redrawn until it is)."""
    while True:
        p = rng.uniform(lo, hi, 2)
        if min(np.hypot(*(p - a)) for a in aps) >= 1.0:
            return p


def _near(rng: np.random.Generator, centre: np.ndarray, lo: float, hi: float) -> np.ndarray:
    ang = rng.uniform(0, 2 * np.pi)
    return centre + rng.uniform(lo, hi) * np.array([np.cos(ang), np.sin(ang)])


def stranger_overrides(family: str, seed: int, frames: int) -> list[str]:
    """``--set`` overrides (on ``scenarios/campus.yaml``) of seed ``seed`` of a stranger family.

    Parameters
    ----------
    family : str
        One of :data:`STRANGER_FAMILIES`.
    seed : int
        Family member, >= 0 (also the run seed).
    frames : int
        Frames of the run, >= 1.

    Returns
    -------
    list of str
        ``KEY=VALUE`` overrides; :func:`netsim.scenario.load_scenario` validates them.
    """
    if family not in STRANGER_FAMILIES:
        raise ValueError(f"unknown stranger family {family!r}; choose one of {', '.join(STRANGER_FAMILIES)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames!r}")
    rng = np.random.default_rng(_STRANGER_BASE_SEED[family] + int(seed))
    n_users, antennas = 4, 16
    spacing = [0.5, 1.0, 2.0][seed % 3]
    if family == "corridor":
        width, height = 120.0, 10.0
        aps = [np.array([7.5 + 15.0 * i + rng.uniform(-3.0, 3.0),
                         rng.uniform(1.0, 3.0) if i % 2 else rng.uniform(7.0, 9.0)]) for i in range(8)]
        users = [np.array([rng.uniform(3.0, width - 3.0), rng.uniform(2.0, height - 2.0)]) for _ in range(n_users)]
    else:
        width = height = 50.0
        aps = _random_aps(rng, 9, width, 10.0, 4.0)
        users = [_clear_point(rng, aps, 3.0, width - 3.0) for _ in range(n_users)]
        if family == "few_antennas":
            antennas = 4 if seed % 2 == 0 else 8
            spacing = [0.5, 1.0, 2.0][(seed // 2) % 3]
        elif family == "near_ap":
            users[0] = _near(rng, aps[0], 1.0, 1.5)
            users[1] = _near(rng, aps[1], 1.5, 3.0)
        else:  # close_pair
            users[1] = _near(rng, users[0], 0.2, 0.95)
            users[1] = np.clip(users[1], 1.0, width - 1.0)
    users = [np.clip(u, 1.0, np.array([width, height]) - 1.0) for u in users]
    angles = rng.uniform(0.0, 180.0, len(aps)).round(3).tolist()
    return [
        f"deployment.width_m={width:g}", f"deployment.height_m={height:g}",
        f"deployment.aps={{layout: list, positions_m: {_fmt(aps)}}}",
        f"deployment.antennas_per_ap={antennas}", f"deployment.antenna_spacing_wavelengths={spacing}",
        f"deployment.orientation={{mode: list, angles_deg: {angles}}}",
        f"users.positions_m={_fmt(users)}",
        "users.mobility={model: random_waypoint, speed_range_mps: [0.5, 1.5], pause_s: 1.0}",
        "sync.method=genie", "sensing.method=music", "sensing.aps_per_user=3",
        f"run.frames={frames}", f"run.seed={seed}",
    ]


def stranger_scenario(family: str, seed: int, frames: int = 6, base: str = "scenarios/campus.yaml",
                      extra: list[str] | tuple[str, ...] = ()):
    """The scenario of :func:`stranger_overrides`; ``extra`` overrides are applied after the
    family's (a malformed one raises :class:`netsim.scenario.ScenarioError`)."""
    return load_scenario(base, [*stranger_overrides(family, seed, frames), *extra])


def unlogged_misses(users, events) -> list[tuple[int, int]]:  # noqa: ANN001
    """(frame, user) of the user-frames after frame 0 off by more than 1 m with no event naming
    that user: none in that frame, and no ``sensing_lost`` still open (not followed by a
    ``sensing_reacquired`` up to that frame). ``users``/``events``: the run's tables."""
    ev = events[events.kind.str.startswith("sensing")]
    bad = []
    for row in users[(users.frame >= 1) & (users.loc_err_m > 1.0)].itertuples():
        mine = ev[ev.entity == row.user]
        if (mine.frame == row.frame).any():
            continue
        lost = mine[(mine.kind == "sensing_lost") & (mine.frame <= row.frame)].frame
        back = mine[(mine.kind == "sensing_reacquired") & (mine.frame <= row.frame)].frame
        if len(lost) and (not len(back) or back.max() < lost.max()):
            continue
        bad.append((int(row.frame), int(row.user)))
    return bad
