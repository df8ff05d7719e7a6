"""The CPU's correction state (netsim.sim.sync_correction): scheduling, lost APs, batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsim.phy.oscillator import ClockNoise
from netsim.scenario import load_scenario
from netsim.sim.engine import SyncReport
from netsim.sim.sync_correction import SyncCorrection

NOISE = ClockNoise.from_allan(1e-11, 1e-12)


@dataclass
class FakePlan:
    # clusters: 0 = {0 (master, reference), 1, 2}, 1 = {3 (master), 4, 5}, 2 = {6 (master), 7}
    # master tree 2 -> 1 -> 0; pilots of the slaves: 1,4 share pilot 0; 2 -> 1; 5,7 -> 2
    cluster_of_ap = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    masters = np.array([0, 3, 6])
    master_parent = np.array([-1, 0, 1])
    pilot_of_ap = np.array([-1, 0, 1, -1, 0, 2, -1, 2])
    reference_ap = 0
    overhead_slots = 2 * 3 + 3


def _corr(*overrides):
    sc = load_scenario("scenarios/quickstart.yaml", ["sync.method=crb", *overrides])
    return SyncCorrection(sc, 8, 28e9, NOISE)


def _feed(corr, aps, t, var=(1e-20, 1.0, 1e-4)):
    k = len(aps)
    rep = SyncReport(sender=0, t_meas_s=t, aps=np.asarray(aps), to_s=np.zeros(k),
                     cfo_hz=np.zeros(k), phase_rad=np.zeros(k),
                     crb_to_s2=np.full(k, var[0]), crb_cfo_hz2=np.full(k, var[1]),
                     crb_phase_rad2=np.full(k, var[2]))
    return corr.on_report(rep, t, 1e-4, lambda *a: None)


def test_periodic_measures_every_online_ap_at_the_plan_cost():
    corr = _corr("sync.tracking=kalman")
    online = np.ones(8, bool)
    online[5] = False
    s = corr.schedule(FakePlan(), online, 1.0)
    assert s.overhead_slots == FakePlan.overhead_slots and s.n_clusters == 3
    np.testing.assert_array_equal(s.aps, online)


def test_adaptive_measures_a_needy_cluster_with_its_master_chain_and_counts_its_slots():
    corr = _corr("sync.tracking=kalman", "sync.schedule=adaptive", "sync.adaptive_max_to_s=1e-9")
    corr.on_replan(None, FakePlan())
    online = np.ones(8, bool)
    # no tracks yet: everything is measured
    s = corr.schedule(FakePlan(), online, 0.01)
    assert s.n_clusters == 3 and s.overhead_slots == 9
    batch = _feed(corr, np.arange(1, 8), 0.0)
    assert batch is not None and np.all(batch.aps == np.arange(1, 8))
    # fresh tracks (0.1 ns std) predicted 10 ms ahead stay below 1 ns: nothing to measure
    s = corr.schedule(FakePlan(), online, 0.01)
    assert s.n_clusters == 0 and s.overhead_slots == 0 and not s.aps.any()
    # AP 7 loses its track (outage): cluster 2 and its chain (clusters 1, 0) are measured;
    # pilots used by their slaves: 0, 1, 2 -> 2*3 + 3
    corr.reset(7)
    s = corr.schedule(FakePlan(), online, 0.01)
    assert s.n_clusters == 3 and s.overhead_slots == 9
    # only AP 2 (cluster 0, the reference's) needs it: one cluster, one pilot
    _feed(corr, [7], 0.0)
    corr.reset(2)
    s = corr.schedule(FakePlan(), online, 0.01)
    assert s.n_clusters == 1 and s.overhead_slots == 2 + 2
    np.testing.assert_array_equal(np.flatnonzero(s.aps), [0, 1, 2])


def test_untrusted_rounds_in_a_row_are_counted_per_ap_and_reported_once():
    corr = _corr("sync.lost_after_rounds=3")
    measured = np.ones(8, bool)
    bad = np.zeros(8, bool)
    bad[4] = True
    assert corr.note_round(measured, bad).size == 0
    assert corr.note_round(measured, bad).size == 0
    np.testing.assert_array_equal(corr.note_round(measured, bad), [4])
    assert corr.note_round(measured, bad).size == 0  # counter restarted
    good = np.zeros(8, bool)
    corr.note_round(measured, good)
    assert corr.untrusted_rounds[4] == 0
    # an AP that was not scheduled keeps its count
    corr.note_round(measured, bad)
    corr.note_round(~measured, bad)
    assert corr.untrusted_rounds[4] == 1


def test_per_round_batch_carries_the_estimates_at_the_measurement_time():
    corr = _corr()
    batch = _feed(corr, [1, 2], 0.5)
    assert batch.t_ref_s == 0.5 and corr.tracker is None
    kal = _corr("sync.tracking=kalman")
    kal.on_replan(None, FakePlan())
    b = _feed(kal, [1, 2], 0.5)
    assert b.t_ref_s == 0.5 + 1e-4  # the prediction for the arrival time
    assert np.isnan(kal.residual_std(1.0)[3]).all() and kal.residual_std(1.0)[0].sum() == 0
