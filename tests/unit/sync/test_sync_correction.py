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
    corr = _corr("sync.tracking=none")
    batch = _feed(corr, [1, 2], 0.5)
    assert batch.t_ref_s == 0.5 and corr.tracker is None
    kal = _corr("sync.tracking=kalman")
    kal.on_replan(None, FakePlan())
    b = _feed(kal, [1, 2], 0.5)
    assert b.t_ref_s == 0.5 + 1e-4  # the prediction for the arrival time
    assert np.isnan(kal.residual_std(1.0)[3]).all() and kal.residual_std(1.0)[0].sum() == 0


def test_acquisition_round_only_for_tracks_without_a_predictable_phase():
    corr = _corr("sync.tracking=kalman")
    corr.on_replan(None, FakePlan())
    online = np.ones(8, bool)
    first = corr.schedule(FakePlan(), online, 0.01)
    # no tracks yet: the whole round is repeated (same clusters, same cost)
    acq = corr.acquisition(FakePlan(), first, 0.0, 0.01)
    assert acq is not None and acq.n_clusters == 3 and acq.overhead_slots == 9
    # 128-chip-like round: CFO std 400 Hz, phase std 5 mrad; a second round 0.74 ms later
    _feed(corr, np.arange(1, 8), 0.0, var=(1e-19, 400.0**2, 2.5e-5))
    # 10 ms later the phase is unpredictable (2 pi 0.01 400 = 25 rad): acquisition again
    acq = corr.acquisition(FakePlan(), first, 0.01, 0.01)
    assert acq is not None and acq.n_clusters == 3
    # a track whose CFO is known to 2 Hz predicts the phase over 10 ms (0.26 rad diffusion):
    # only cluster 2 (AP 7 reset) and its chain need the second round
    for ap in range(1, 8):
        corr.reset(ap)
    _feed(corr, np.arange(1, 8), 0.0, var=(1e-19, 4.0, 2.5e-5))
    assert corr.acquisition(FakePlan(), first, 0.01, 0.01) is None
    corr.reset(7)
    acq = corr.acquisition(FakePlan(), first, 0.01, 0.01)
    assert acq.n_clusters == 3 and np.flatnonzero(acq.aps).tolist() == list(range(8))
    # phase that the oscillators alone spread by > 0.5 rad per sync period: never acquired
    assert corr.acquisition(FakePlan(), first, 0.01, 1.0) is None
    # switched off, without tracking, and under adaptive without a phase bound: never
    assert _corr("sync.tracking=kalman", "sync.acquisition_round=false").acquisition(
        FakePlan(), first, 0.0, 0.01) is None
    assert _corr("sync.tracking=none").acquisition(FakePlan(), first, 0.0, 0.01) is None
    assert _corr("sync.method=genie").acquisition(FakePlan(), first, 0.0, 0.01) is None
    ada = _corr("sync.tracking=kalman", "sync.schedule=adaptive")
    assert ada.acquisition(FakePlan(), first, 0.0, 0.01) is None
    ada = _corr("sync.tracking=kalman", "sync.schedule=adaptive", "sync.adaptive_max_phase_rad=0.3")
    assert ada.acquisition(FakePlan(), first, 0.0, 0.01) is not None


def _reports(rng, groups, t, acquisition=False):
    """One round's reports: one per sender, disjoint AP groups, random estimates (some wild)."""
    out = []
    for sender, aps in groups:
        k = len(aps)
        to = rng.normal(0, 1e-9, k)
        to[rng.random(k) < 0.2] = 3e-7  # a few outliers the gate rejects
        out.append(SyncReport(sender=sender, t_meas_s=t, aps=np.asarray(aps),
                              to_s=to, cfo_hz=rng.normal(0, 5.0, k),
                              phase_rad=rng.uniform(-np.pi, np.pi, k),
                              crb_to_s2=rng.uniform(1e-21, 1e-19, k),
                              crb_cfo_hz2=rng.uniform(0.1, 10.0, k),
                              crb_phase_rad2=rng.uniform(1e-4, 1e-2, k),
                              acquisition=acquisition))
    return out


def test_fused_round_update_equals_one_update_per_report():
    # the tracker is a bank of independent per-AP filters: fusing a round's reports (disjoint
    # AP sets, same instant) must give bit-identical tracks, corrections and event order
    rng = np.random.default_rng(11)
    a, b = _corr("sync.tracking=kalman"), _corr("sync.tracking=kalman")
    groups = [(0, [1, 2]), (3, [4, 5]), (0, [3]), (3, [6]), (6, [7])]
    ev_a, ev_b = [], []
    for r in range(8):
        t = 0.01 * r
        if r == 5:
            a.reset(4)
            b.reset(4)
        reps = _reports(rng, groups, t, acquisition=(r == 1))
        fused = a.on_reports(reps, t, 1e-4, lambda *e: ev_a.append(e))
        parts = [b.on_report(x, t, 1e-4, lambda *e: ev_b.append(e)) for x in reps]
        parts = [p for p in parts if p is not None]
        if fused is None:
            assert not parts
            continue
        np.testing.assert_array_equal(fused.aps, np.concatenate([p.aps for p in parts]))
        for name in ("to_s", "cfo_hz", "phase_rad"):
            np.testing.assert_array_equal(getattr(fused, name),
                                          np.concatenate([getattr(p, name) for p in parts]))
        assert fused.t_ref_s == parts[0].t_ref_s
    assert ev_a == ev_b and len(ev_a) > 0  # some measurements were gated
    for name in ("mean", "cov", "t_s", "active", "rejections", "meas_var"):
        np.testing.assert_array_equal(getattr(a.tracker, name), getattr(b.tracker, name))
    assert a.gated_this_frame == b.gated_this_frame
    assert a.measured_this_frame == b.measured_this_frame


def test_fused_reports_must_come_from_one_round():
    corr = _corr("sync.tracking=kalman")
    reps = _reports(np.random.default_rng(2), [(0, [1]), (3, [4])], 0.0)
    late = _reports(np.random.default_rng(3), [(6, [7])], 0.001)
    try:
        corr.on_reports(reps + late, 0.001, 1e-4, lambda *e: None)
    except ValueError as exc:
        assert "one round" in str(exc)
    else:
        raise AssertionError("reports of two rounds were fused")
    assert corr.on_reports([], 0.0, 1e-4, lambda *e: None) is None
