"""Near-field MUSIC sensing (seed 003) live in the engine, coupled to synchronization."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from netsim.scenario import load_scenario
from netsim.sim.engine import Simulation

sys.path.insert(0, str(Path(__file__).parent))
from sensing_family import family_scenario  # noqa: E402


def run(*overrides):
    sc = load_scenario("scenarios/isac_paper.yaml",
                       ["run.frames=12", "frame.period_s=0.05", "oscillators.initial_offset_ppm=1",
                        *overrides])
    return Simulation(sc).run().tables


def test_users_table_has_estimates_errors_and_bounds():
    users = run("run.frames=3")["users"]
    assert users[["x_hat_m", "y_hat_m", "loc_err_m", "crlb_m"]].notna().all().all()
    np.testing.assert_allclose(
        users.loc_err_m, np.hypot(users.x_hat_m - users.x_m, users.y_hat_m - users.y_m))
    # the bound is evaluated per user and frame: positive, sub-millimetre in this geometry
    assert (users.crlb_m > 0).all() and (users.crlb_m < 5e-3).all()
    # the first frame's full-grid search lands on every user (seed-003 geometry, 2 ms sensing)
    assert (users[users.frame == 0].loc_err_m < 0.05).all()


def test_localization_degrades_when_timing_drifts_and_not_with_genie_sync():
    """Residual timing/frequency offsets between APs decorrelate the bistatic echoes: without
    sync the error grows with the drift (the estimator falls back on the monostatic paths) and
    so does the bound evaluated at the frame's sync losses; with genie sync both stay low. The
    estimator stays efficient against that bound either way."""
    err, bound, ratios = {}, {}, {}
    for method in ("genie", "none"):
        u = run(f"sync.method={method}")["users"]
        late = u[u.frame >= 6]
        ratios[method] = late.crlb_ratio.to_numpy()
        err[method] = late.loc_err_m.mean()
        bound[method] = late.crlb_m.mean()
        if method == "genie":
            assert 0.3 < late.crlb_ratio.median() < 2.0
    # measured (seed 3): none 0.70 mm vs genie 0.14 mm (error, frames 6-11); 8.3 mm at stop 13, when a
    # two-point velocity taken across frame 2's 78 mm miss (1.5-1.8 m/s for a 0.5 m/s walker, under
    # the old 2 top + 1 m/s prior) put frames 4-9's predictions 7-9 cm off, on likelihood peaks
    # 500-3400 nats below the truth's; such a velocity is now reset (top speed + its noise)
    assert err["none"] > 3 * err["genie"]
    assert bound["none"] > 3 * bound["genie"]
    assert 0.3 < np.median(ratios["none"]) < 2.0  # seed 3 alone (0.65; 2.36 at stop 13)
    # and on the user-frames of three seeds together (0.65)
    pooled = [ratios["none"]]
    for seed in (1, 2):
        u = run("sync.method=none", f"run.seed={seed}")["users"]
        pooled.append(u[u.frame >= 6].crlb_ratio.to_numpy())
    assert 0.3 < np.median(np.concatenate(pooled)) < 2.0


def test_crlb_feasible_time_allocation_meets_the_threshold_with_the_fewest_snapshots():
    """Seed 003 eq. (17): from frame 2 on, rho is the largest value whose sensing time keeps
    every user's CRLB below the threshold (users barely move, so the bound is met)."""
    threshold = 1e-8
    t = run("run.frames=5", "frame.period_s=0.02", "users.mobility.model=static",
            "frame.time_allocation=crlb_feasible", f"sensing.crlb_threshold_m2={threshold}")
    frames, users = t["frames"], t["users"]
    assert frames.comm_fraction.iloc[0] == 0.8  # the scenario's rho, before any bound is known
    # frame 0 senses before the first sync correction arrives (fronthaul latency): its bound,
    # evaluated at the frame's sync losses, lacks the bistatic paths and frame 1 plans long
    # sensing from it; from frame 2 on the plan is made on synchronised frames
    rho = frames.comm_fraction.iloc[2:]
    assert (rho < 0.8).all() and rho.nunique() == 1
    # the plan uses the nominal bound (unit RCS; the realised one follows each frame's draw)
    worst = users[users.frame >= 2].groupby("frame").crlb_plan_m.max().to_numpy() ** 2
    n_snap = np.round(frames.sense_duration_s.iloc[2:].to_numpy() / 1e-6)  # L = (1 - rho) T / T_u
    assert (worst <= threshold * (1 + 1e-6)).all()
    # CRLB = c / L: one snapshot fewer (rho one T_u / T higher) would miss the threshold
    assert (worst * n_snap / (n_snap - 1) > threshold * (1 - 1e-6)).all()


def test_crlb_fidelity_agrees_with_music_in_distribution():
    """Issue 9: where MUSIC + ML is efficient (tracked, genie sync), ``crlb`` draws estimates
    from the same frame bound; the error / sqrt(CRLB) statistics agree within 20 %, and crlb
    costs a small fraction (checked in benchmarks/isac.py, not here)."""
    stats = {}
    for method in ("music", "crlb"):
        u = run("run.frames=16", f"sensing.method={method}")["users"]
        late = u[u.frame >= 2]
        assert late.tracked.all()
        r = late.crlb_ratio.to_numpy()
        stats[method] = (float(np.sqrt(np.mean(r ** 2))), float(np.median(r)))
    for a, b in zip(stats["music"], stats["crlb"], strict=True):
        assert abs(a / b - 1) < 0.2, stats


def test_events_log_a_lost_and_reacquired_track():
    """A user the first frame cannot see as a whole (only monostatic paths before the first
    correction) is logged lost and re-acquired; every user is tracked afterwards."""
    t = run("run.frames=6", "sensing.aps_per_user=3")
    ev, users = t["events"], t["users"]
    lost = ev[ev.kind == "sensing_lost"]
    back = ev[ev.kind == "sensing_reacquired"]
    assert set(lost.entity) <= set(back.entity)
    assert users[users.frame >= 2].tracked.all()


def test_random_family_is_tracked():
    """Reduced family (tests/integration/sensing_family.py; about 15 CPU-s): seed 1, random APs
    and orientations, off-grid users and a pair 0.41 m apart seen by 1-wavelength arrays (its
    identities swapped before the acquisition frames took them from the uplink, and it needs
    the joint pair refinement): after the first frame every user-frame is tracked and within
    1 m. Near-AP (seeds 2, 5, ...) and the other seeds are in the 20-seed test below;
    off-grid, close-pair and near-AP clusters also in tests/unit/sensing."""
    u = Simulation(family_scenario(1, 4)).run().tables["users"]
    late = u[u.frame >= 1]
    assert late.tracked.all(), late[~late.tracked]
    assert late.loc_err_m.max() < 1.0


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("NETSIM_SLOW_SENSING"),
                    reason="about 5 CPU-min, 13 min wall alone on a loaded machine: set NETSIM_SLOW_SENSING=1 "
                           "(CI runs slow tests too)")
def test_random_family_20_seeds():
    """Issue 9 target on the full family (20 seeds x 10 frames): >= 99.5 % of user-frames after
    the first frame tracked, none off by more than 1 m, every lost track re-acquired."""
    tracked, n = 0, 0
    for seed in range(20):
        t = Simulation(family_scenario(seed, 10)).run().tables
        u, ev = t["users"], t["events"]
        late = u[u.frame >= 1]
        tracked += int(late.tracked.sum())
        n += len(late)
        assert late.loc_err_m.max() < 1.0, (seed, late.loc_err_m.max())
        lost = ev[ev.kind == "sensing_lost"]
        back = ev[ev.kind == "sensing_reacquired"]
        assert set(lost.entity[lost.frame < 9]) <= set(back.entity), seed  # lost, then found
    assert tracked / n >= 0.995, tracked / n
