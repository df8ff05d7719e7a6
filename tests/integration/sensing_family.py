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
