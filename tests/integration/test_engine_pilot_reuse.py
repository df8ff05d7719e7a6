"""Seed-004 pilots in the engine: DSatur(+Tabu) re-runs only when the association or the
large-scale fading changed materially (comm.pilot_replan_db), with an events row; the
per-subframe chain (estimation, RZF, power) still runs every subframe."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import netsim.comm.pilot_assignment as pilot_assignment
from netsim.scenario import load_scenario
from netsim.sim.comm import PilotComm
from netsim.sim.engine import Simulation

SMALL = ["users.count=12", "deployment.antennas_per_ap=4", "frame.subframes=3",
         "comm.pilot_assignment=dsatur_tabu", "comm.power=equal"]


@pytest.fixture
def count_assignments(monkeypatch):
    calls = []
    real = pilot_assignment.dsatur_tabu

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    # the engine imports dsatur_tabu from its module at the call (lazy import)
    monkeypatch.setattr(pilot_assignment, "dsatur_tabu", counted)
    return calls


def run(*overrides):
    sc = load_scenario("scenarios/umi_cellfree.yaml", [*SMALL, *overrides])
    sim = Simulation(sc)
    return sim, sim.run().tables


def test_assignment_is_reused_while_nothing_changes(count_assignments):
    sim, t = run("run.frames=5")
    assert len(count_assignments) == 1  # pedestrians move ~1 cm per frame: far below 1 dB
    assert sim.comm.n_assignments == 1
    ev = t["events"]
    assert not (ev.kind == "pilots_reassigned").any() if len(ev) else True
    assert t["frames"].comm_pilot_length.nunique() == 1
    assert len(t["subframes"]) == 5 * 3 * 12  # the per-subframe chain ran every subframe


def test_zero_threshold_reassigns_every_frame(count_assignments):
    sim, t = run("run.frames=3", "comm.pilot_replan_db=0")
    assert len(count_assignments) == 3


def test_outage_changes_the_association_and_reassigns_with_an_event(count_assignments):
    # AP 3 (it serves 4 of the 12 users of this drop) goes down at 25 ms (frame 2 of 10 ms
    # frames) and comes back at 45 ms
    sim, t = run("run.frames=6", "faults=[{at_s: 0.025, ap: 3, duration_s: 0.02}]")
    assert sim.comm.planned_assoc[3].any()
    ev = t["events"]
    re = ev[ev.kind == "pilots_reassigned"]
    assert len(re) >= 2  # once for the outage, once for the return
    assert re.detail.str.contains("association changed").all()
    assert len(count_assignments) == 1 + len(re)


def _fake_sim(thr: float):
    return SimpleNamespace(scenario=SimpleNamespace(comm=SimpleNamespace(pilot_replan_db=thr)))


def test_staleness_threshold_on_the_large_scale_gain() -> None:
    rng = np.random.default_rng(3)
    beta = 10 ** rng.uniform(-12, -8, size=(4, 6))
    assoc = rng.random((4, 6)) < 0.5
    pc = PilotComm(_fake_sim(1.0))
    assert pc.assignment_stale(beta, assoc) == "first assignment"
    pc.colour = np.zeros(6, dtype=int)
    pc.planned_assoc = assoc.copy()
    pc.planned_beta_db = 10 * np.log10(beta)
    assert pc.assignment_stale(beta, assoc) is None
    m, k = np.argwhere(assoc)[0]
    moved = beta.copy()
    moved[m, k] *= 10 ** (0.9 / 10)  # 0.9 dB on a served link: reuse
    assert pc.assignment_stale(moved, assoc) is None
    moved[m, k] = beta[m, k] * 10 ** (-1.1 / 10)  # 1.1 dB: stale
    assert "1.10 dB" in pc.assignment_stale(moved, assoc)
    m2, k2 = np.argwhere(~assoc)[0]
    far = beta.copy()
    far[m2, k2] *= 100.0  # a link nobody uses: does not count
    assert pc.assignment_stale(far, assoc) is None
    flipped = assoc.copy()
    flipped[m2, k2] = True
    assert "association changed (1 AP-user pairs)" == pc.assignment_stale(beta, flipped)
    pc.sim = _fake_sim(0.0)
    assert pc.assignment_stale(beta, assoc) == "every frame"


@pytest.mark.parametrize(("value", "n_exact"), [("null", None), ("3", 3)])
def test_tabu_prescreen_setting_reaches_the_search(monkeypatch, value, n_exact):
    # comm.pilot_tabu_exact is the TabuConfig.n_exact of the engine's search (default 8;
    # null = every candidate exactly, spec 4.2)
    seen = []
    real = pilot_assignment.dsatur_tabu

    def spy(*args, **kwargs):
        seen.append(kwargs["config"].n_exact)
        res = real(*args, **kwargs)
        seen.append(res.info["n_screened"])
        return res

    monkeypatch.setattr(pilot_assignment, "dsatur_tabu", spy)
    run("run.frames=1", f"comm.pilot_tabu_exact={value}")
    assert seen[0] == n_exact
    assert (seen[1] == 0) == (n_exact is None)
    assert load_scenario("scenarios/umi_cellfree.yaml").comm.pilot_tabu_exact == 4  # the file's choice (N = 16)
