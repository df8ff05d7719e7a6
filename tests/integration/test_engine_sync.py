"""Over-the-air synchronization (seed 000) live in the engine."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.scenario import load_scenario
from netsim.sim.engine import Simulation

BASE = ["sync.method=genie", "sensing.method=genie",  # cheap references unless a test says
        "deployment.aps.count=9", "deployment.width_m=60", "deployment.height_m=60",
        "users.mobility.model=static", "sync.pilot_length_chips=64", "sync.swap_iterations=200",
        "oscillators.initial_time_offset_s=5e-8", "oscillators.initial_offset_ppm=1.0",
        "frame.subframes=2"]


def run(*overrides):
    sim = Simulation(load_scenario("scenarios/quickstart.yaml", [*BASE, *overrides]))
    return sim, sim.run().tables


@pytest.mark.parametrize("method", ["ml", "crb"])
def test_residuals_stay_bounded_with_sync_and_drift_without(method):
    common = ["run.frames=25", "frame.period_s=0.04"]
    _, synced = run(*common, f"sync.method={method}")
    _, free = run(*common, "sync.method=none")
    f, g = synced["frames"], free["frames"]
    # with sync the residual TO stays at the estimation error (a fraction of a 50 ns chip)
    assert f.residual_to_max_s.iloc[1:].max() < 10e-9
    assert f.residual_to_max_s.iloc[-5:].mean() < 2 * f.residual_to_max_s.iloc[1:6].mean() + 1e-9
    # without it the offsets keep growing: ~1 ppm x 1 s = microseconds
    assert g.residual_to_max_s.iloc[-1] > 100 * f.residual_to_max_s.iloc[1:].max()
    assert g.residual_to_max_s.iloc[-1] > 3 * g.residual_to_max_s.iloc[2]
    aps = synced["aps"]
    assert (aps.crb_to_s2.dropna() > 0).all()  # every measured AP reports its bound
    assert f.sync_ran.all() and (f.overhead_fraction > 0).all()


def test_ml_and_crb_fidelities_agree_in_distribution():
    """The cheap fidelity draws each residual from N(0, CRB); with the paper's 256-chip pilots
    and SNRs above 30 dB the ML estimator is efficient, so its errors normalised by the same
    bound have the same spread: RMS of error / sqrt(CRB) within 20 % for TO and CFO.

    The ML has rare ambiguity outliers that the Gaussian fidelity does not model (the
    multipath triangle model has near-equal secondary maxima of g a fraction of a chip away,
    spec 4; one such maximum beat the true peak by 3e-6 of g in this run): they are counted
    (|z| > 8, at most 2 % of the AP estimates) and left out of the RMS."""
    ratio = {}
    for method in ("ml", "crb"):
        _, t = run("run.frames=20", f"sync.method={method}", "sync.pilot_length_chips=256")
        aps = t["aps"].dropna(subset=["est_to_s"])
        z_to = (aps.est_to_s - aps.true_to_s) / np.sqrt(aps.crb_to_s2)
        z_cfo = (aps.est_cfo_hz - aps.true_cfo_hz) / np.sqrt(aps.crb_cfo_hz2)
        gross = (np.abs(z_to) > 8) | (np.abs(z_cfo) > 8)
        assert np.mean(gross) <= 0.02
        z_to, z_cfo = z_to[~gross], z_cfo[~gross]
        ratio[method] = (np.sqrt(np.mean(z_to**2)), np.sqrt(np.mean(z_cfo**2)))
        assert len(aps) >= 100
    for k in range(2):
        assert ratio["ml"][k] == pytest.approx(ratio["crb"][k], rel=0.2)
        assert ratio["crb"][k] == pytest.approx(1.0, rel=0.2)


def test_losing_a_master_replans_and_its_slaves_come_back_within_the_bound():
    sim, t0 = run("run.frames=2", "sync.method=crb")
    plan = sim.plan
    victim = int(next(m for m in plan.masters if m != plan.reference_ap))
    slaves = [int(a) for a in plan.slaves_of(int(plan.cluster_of_ap[victim]))]
    assert slaves, "the chosen master has slaves"
    fault = f"faults=[{{at_s: 0.1, ap: {victim}, duration_s: 0.3}}]"
    sim, t = run("run.frames=20", "frame.period_s=0.03", "sync.method=crb", fault)
    ev = t["events"]
    replans = ev[ev.kind == "replan"]
    assert len(replans) == 3 and replans.t_s.iloc[1] == pytest.approx(0.12, abs=0.011)
    assert "master_change" in set(ev.kind)
    aps = t["aps"]
    after = aps[(aps.t_s > 0.15) & aps.ap.isin(slaves)]
    assert len(after) and after.online.all()
    assert (after.residual_to_s.abs() < 10e-9).all()
    down = aps[(aps.ap == victim) & (aps.t_s > 0.11) & (aps.t_s < 0.39)]
    assert not down.online.any() and (down.cluster == -1).all()


def test_a_plan_over_the_overhead_budget_is_named_in_the_replan_event():
    """9 APs cannot be planned in 4 slots (2 K_C + tau >= 2 + 8 with one cluster, more with
    several): the planner falls back to the smallest-overhead plan (``within_budget`` False),
    and the run says so in its replan event instead of running over budget silently."""
    sim, t = run("run.frames=1", "sync.method=crb", "sync.overhead_budget_slots=4")
    assert not sim.plan.within_budget and sim.plan.overhead_slots > 4
    detail = t["events"].query("kind == 'replan'").detail.iloc[0]
    assert f"over budget: {sim.plan.overhead_slots} slots > sync.overhead_budget_slots = 4" in detail
    _, ok = run("run.frames=1", "sync.method=crb")
    assert "over budget" not in ok["events"].query("kind == 'replan'").detail.iloc[0]
