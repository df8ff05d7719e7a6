"""Trust check of the sync plan (netsim.sync.plan_alloc.untrusted_aps): the plan predicts which
APs the round will not trust for a low link SINR, and Algorithm 3 prefers trusted chains."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from netsim.scenario import parse_scenario
from netsim.scenario.checks import cost_warnings
from netsim.sync.plan import SyncPlanConfig, plan_network
from netsim.sync.plan_alloc import alg3_allocation, untrusted_aps
from netsim.sync.round import LINK_MASTER_BWD, SyncRoundConfig, sync_round

GUARD = 8.0  # chips: sync.max_time_offset_chips


def _cfgs(tx_power_w: float, req_db: float) -> tuple[SyncPlanConfig, SyncPlanConfig]:
    base = SyncPlanConfig(overhead_budget_slots=30, swap_iterations=50, tx_power_w=tx_power_w,
                          pilot_length_chips=64, sinr_req_db=req_db)
    return base, replace(base, trust_sinr_db=10.0, trust_guard_chips=GUARD)


@pytest.mark.parametrize("seed", [3, 11, 25])
def test_planner_trusted_aps_are_trusted_by_the_round(seed) -> None:
    """Independent check: the round (crb fidelity, offsets inside the search window, so only
    the SINR can fail a link) trusts every AP the planner predicted trusted (the prediction is
    conservative: it bounds the window and counts every co-pilot interferer), and distrusts
    the ones the planner flags in this interference-light deployment."""
    g = np.random.default_rng(seed)
    n = int(g.integers(14, 26))
    loc = g.uniform(0.0, float(g.uniform(150.0, 260.0)), (n, 2))  # off-grid, random
    _, on = _cfgs(1e-2, 5.0)  # weak pilots and a lax SINR requirement: some links fail
    plan = plan_network(loc, np.ones(n, bool), on, np.random.default_rng(seed))
    mas = plan.masters
    slaves = plan.slaves()
    bad = untrusted_aps(loc, mas, plan.cluster_of_ap[slaves], slaves, plan.pilot_of_ap[slaves], on)
    assert plan.predicted_untrusted == int(bad.sum())
    rcfg = SyncRoundConfig(pilot_length_chips=64, max_to_s=GUARD * 50e-9, tx_power_w=1e-2,
                           min_sinr_db=10.0)
    zero = np.zeros(n)
    res = sync_round(plan, loc, zero, zero, rcfg, "crb", np.random.default_rng(seed + 1))
    singular = np.zeros(n, bool)
    singular[res.links.tx_ap[res.links.singular]] = True
    assert not np.any(res.links.out_of_range)
    trusted = ~bad & ~singular
    assert np.all(res.valid[trusted]), np.flatnonzero(trusted & ~res.valid)
    assert bad.any()  # the case is not vacuous
    # the planner's window is at most 1.5 (L - 1) + 1 chips wider than the round's: within 0.5 dB
    low = res.links.sinr_db < 10.0 - 0.5
    lk = res.links
    child = np.where(lk.kind == LINK_MASTER_BWD, lk.rx_ap, lk.tx_ap)  # the AP the link serves
    assert np.all(bad[child[low]])


def test_alg3_prefers_fewer_untrusted_aps_on_the_same_candidates() -> None:
    """The check draws nothing, so with one seed both runs see the same candidates: with it the
    chosen allocation never has more untrusted APs, and in this deployment strictly fewer."""
    strict = done = 0
    for seed in (10, 22, 25, 4, 7, 1):
        g = np.random.default_rng(seed)
        n = int(g.integers(12, 30))
        loc = g.uniform(0.0, float(g.uniform(150.0, 600.0)), (n, 2))
        off, on = _cfgs(1e-2, 5.0)
        a = alg3_allocation(loc, off, np.random.default_rng(seed))
        b = alg3_allocation(loc, on, np.random.default_rng(seed))
        assert (a is None) == (b is None)
        if a is None:  # no K_C fits the budget (too many APs for 30 slots): nothing to choose
            continue
        done += 1
        last = (loc, b)
        bad_a = int(untrusted_aps(loc, a["masters"], a["labels"][a["slaves"]], a["slaves"],
                                  a["pilot"], on).sum())
        assert b["untrusted"] <= bad_a
        if b["untrusted"] == bad_a:
            assert b["sum_crb"] <= a["sum_crb"] * (1 + 1e-12) or b["kc"] == a["kc"]
        strict += b["untrusted"] < bad_a
    assert strict >= 1 and done >= 3
    # without a threshold the check is off: nothing is flagged
    loc, b = last
    assert not untrusted_aps(loc, b["masters"], b["labels"][b["slaves"]], b["slaves"],
                             b["pilot"], off).any()


def test_validate_warns_when_the_cfo_search_range_misses_initial_offsets() -> None:
    """Two APs' initial CFOs differ by N(0, 2 (ppm f_c)^2): at 1 ppm and 28 GHz the std is
    39.6 kHz, so 100 kHz (2.5 std) leaves ~1 % of the links out of range; 200 kHz does not."""
    base = {"sync": {"method": "crb", "max_cfo_hz": 1e5},
            "oscillators": {"initial_offset_ppm": 1.0}, "channel": {"carrier_hz": 28e9}}
    (w,) = [x for x in cost_warnings(parse_scenario(base)) if "max_cfo_hz" in x]
    assert "2.53 x" in w and "0.012" in w
    base["sync"]["max_cfo_hz"] = 2e5
    assert not [x for x in cost_warnings(parse_scenario(base)) if "max_cfo_hz" in x]
    base["sync"] = {"method": "genie", "max_cfo_hz": 1e5}  # genie never searches
    assert not [x for x in cost_warnings(parse_scenario(base)) if "max_cfo_hz" in x]
