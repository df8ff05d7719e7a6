"""MUSIC sensing on geometries other than the bundled ones (issue 9, "Done when").

The stranger families of ``tests/integration/sensing_family.py``: a corridor with its APs along
the walls, 4- and 8-element arrays, users 1-3 m from an AP, and two users closer than 1 m; random
AP orientations, off-grid users, genie sync. At CI size one seed of each family runs a few frames
(about 5 CPU-s each); the 20-seed runs are opt-in (``NETSIM_SLOW_SENSING=1``). Each run asserts
issue 9's targets: after the first frame the user-frames are tracked (error <= 3 sqrt(CRLB) or
<= 1 cm, the engine's ``users.tracked``), none is off by more than 1 m, and no user-frame off by
more than 1 m goes without an event naming its user.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from netsim.scenario import ScenarioError
from netsim.sim.engine import Simulation

sys.path.insert(0, str(Path(__file__).parent))
from sensing_family import (  # noqa: E402
    STRANGER_FAMILIES,
    stranger_overrides,
    stranger_scenario,
    unlogged_misses,
)


def _geometry(family: str, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    sc = stranger_scenario(family, seed, 2)
    return np.asarray(sc.users.positions_m), np.asarray(sc.deployment.aps.positions_m), sc


@pytest.mark.parametrize("family", STRANGER_FAMILIES)
def test_each_family_builds_the_geometry_it_names(family):
    """Structural check of the families' definitions on 20 seeds (no simulation)."""
    spacings, antennas = set(), set()
    for seed in range(20):
        users, aps, sc = _geometry(family, seed)
        d = sc.deployment
        assert len(users) == 4
        assert np.all(users >= 0) and np.all(users[:, 0] <= d.width_m) and np.all(users[:, 1] <= d.height_m)
        dist = np.linalg.norm(users[:, None] - aps[None], axis=2)
        assert dist.min() > 0.9  # nobody on top of an AP
        # off any search grid: not a multiple of the 0.25 m grid step in either coordinate
        assert np.all(np.abs(users / 0.25 - np.round(users / 0.25)) > 1e-4)
        assert d.orientation.mode == "list" and len(set(d.orientation.angles_deg)) == len(aps)
        assert sc.sync.method == "genie" and sc.sensing.method == "music"
        spacings.add(d.antenna_spacing_wavelengths)
        antennas.add(d.antennas_per_ap)
        if family == "corridor":
            assert (d.width_m, d.height_m) == (120.0, 10.0) and len(aps) == 8
            assert np.all(np.diff(aps[:, 0]) > 0)  # along the corridor
        elif family == "few_antennas":
            assert d.antennas_per_ap == (4 if seed % 2 == 0 else 8)
        elif family == "near_ap":
            assert 1.0 - 1e-3 <= dist[0, 0] <= 1.5 + 1e-3 and 1.5 - 1e-3 <= dist[1, 1] <= 3.0 + 1e-3
        else:
            assert 0.2 - 1e-3 <= np.linalg.norm(users[0] - users[1]) <= 0.95 + 1e-3
    assert spacings == {0.5, 1.0, 2.0}
    assert antennas == ({4, 8} if family == "few_antennas" else {16})


def test_bad_family_input_and_malformed_overrides_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown stranger family 'hallway'"):
        stranger_overrides("hallway", 0, 3)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        stranger_overrides("corridor", -1, 3)
    with pytest.raises(ValueError, match="frames must be an integer >= 1"):
        stranger_overrides("corridor", 0, 0)
    with pytest.raises(ScenarioError, match="did you mean 'antennas_per_ap'"):
        stranger_scenario("few_antennas", 0, 3, extra=["deployment.antenna_per_ap=4"])
    with pytest.raises(ScenarioError, match="outside the area"):
        stranger_scenario("corridor", 0, 3, extra=["users.positions_m=[[60.0, 30.0]]"])
    with pytest.raises(ScenarioError, match="expected KEY=VALUE"):
        stranger_scenario("near_ap", 0, 3, extra=["sensing.method"])
    # an override the family does not own is applied, not dropped
    assert stranger_scenario("close_pair", 0, 3, extra=["sensing.range_m=12"]).sensing.range_m == 12.0


def _check_run(family: str, seed: int, frames: int) -> tuple[int, int, float]:
    t = Simulation(stranger_scenario(family, seed, frames)).run().tables
    u, ev = t["users"], t["events"]
    late = u[u.frame >= 1]
    assert unlogged_misses(u, ev) == [], (family, seed)
    assert late.loc_err_m.max() < 1.0, (family, seed, late[late.loc_err_m >= 1.0])
    return int(late.tracked.sum()), len(late), float(late.loc_err_m.max())


# one seed per family (fam16's 20-seed runs, 8 frames: every user-frame after frame 0 tracked up to frame 3):
# corridor seed 5 (2-wavelength spacing), few_antennas seed 0 (4 elements), near_ap seed 0 (user 0
# 1.3 m from AP 0), close_pair seed 1 (the pair 0.21 m apart)
CI_SEEDS = {"corridor": 5, "few_antennas": 0, "near_ap": 0, "close_pair": 1}


@pytest.mark.parametrize("family", STRANGER_FAMILIES)
def test_stranger_family_is_tracked_at_ci_size(family):
    n_tr, n, _ = _check_run(family, CI_SEEDS[family], 3)
    assert n_tr == n, (family, n_tr, n)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NETSIM_SLOW_SENSING"),
                    reason="about 2-3 CPU-min per family: set NETSIM_SLOW_SENSING=1")
@pytest.mark.parametrize("family", STRANGER_FAMILIES)
def test_stranger_family_20_seeds(family):
    """Issue 9 target on each stranger family: 20 seeds x 8 frames, >= 99.5 % of user-frames
    after the first frame tracked, none off by more than 1 m, none of those silent."""
    tracked = n = 0
    for seed in range(20):
        a, b, _ = _check_run(family, seed, 8)
        tracked, n = tracked + a, n + b
    assert tracked / n >= 0.995, (family, tracked, n)


def test_a_pair_inside_frame_zeros_uncertainty_keeps_its_identities():
    """close_pair seed 3: users 0 and 1 0.50 m apart, about 14 m from their nearest APs; frame 0
    (before the first sync correction) places them 0.30-0.32 m off with sqrt(CRLB) 0.5-0.7 m.
    Frame 1's local confirmation used to end with the two answers exchanged (each user 0.5 m
    off, 13-39 x sqrt(CRLB), in every later frame, with no event); its identities are now
    decided by distance to frame 0's estimates (``netsim.sensing.associate.confirm_identities``), logged as
    ``sensing_association``. About 1 CPU-s."""
    t = Simulation(stranger_scenario("close_pair", 3, 3)).run().tables
    u, ev = t["users"], t["events"]
    late = u[u.frame >= 1]
    assert late.tracked.all(), late[~late.tracked]
    assert late.loc_err_m.max() < 0.05
    moved = ev[(ev.kind == "sensing_association") & (ev.frame == 1)]
    assert set(moved.entity) == {0, 1}
