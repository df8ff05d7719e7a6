"""Tests of the Kalman clock tracker (netsim.sync.tracking) against true simulated clocks."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats

from netsim.phy.oscillator import ClockNoise, OscillatorBank, clock_transition
from netsim.sync.tracking import (
    ClockTracker,
    TrackerConfig,
    chi2_quantile,
    phase_floor_rad,
    tracking_transition,
    wrap_phase,
)

CAMPUS = ClockNoise.from_allan(1e-11, 1e-12, aging_per_s=1e-8 / 86400)  # scenarios/campus.yaml
DRIFT = ClockNoise.from_allan(1e-11, 3e-11, aging_per_s=0.5e-6 / 86400)  # drift_longrun.yaml
SCALE = np.array([1e-9, 1.0, 1.0])  # the tracker's internal units (ns, Hz, rad)


def test_transition_composes_exactly_and_matches_the_two_state_model() -> None:
    """Chapman-Kolmogorov: F(2dt) = F(dt)^2 and Q(2dt) = F Q F^T + Q; the (x, y) block is the
    oscillator module's Q mapped to (ns, Hz) and doubled for a difference of two clocks."""
    fc, dt = 28e9, 0.013
    f1, q1 = tracking_transition(dt, CAMPUS, fc)
    f2, q2 = tracking_transition(2 * dt, CAMPUS, fc)
    np.testing.assert_allclose(f1 @ f1, f2, rtol=1e-13)
    np.testing.assert_allclose(f1 @ q1 @ f1.T + q1, q2, rtol=1e-12)
    _, _, q_osc = clock_transition(dt, CAMPUS)
    d = np.diag([1e9, fc])
    np.testing.assert_allclose(q1[:2, :2], 2 * d @ q_osc @ d, rtol=1e-13)
    # the phase moves with the same white-FM increment as the time offset: exact tie
    assert q1[0, 2] == pytest.approx(2 * 1e9 * 2 * np.pi * fc * q_osc[0, 0], rel=1e-12)


def test_phase_floor_is_the_white_fm_diffusion_quoted_in_the_issue() -> None:
    # campus oscillators at 28 GHz over 10 ms: sqrt(q1 dt) 2 pi f_c = 1e-12 * 2 pi * 28e9 = 0.176
    one = phase_floor_rad(0.01, CAMPUS, 28e9, relative=False)
    assert float(one) == pytest.approx(2 * np.pi * 28e9 * np.sqrt(1e-22 * 0.01), rel=1e-6)
    assert float(one) == pytest.approx(0.18, abs=0.005)
    assert float(phase_floor_rad(0.01, CAMPUS, 28e9)) == pytest.approx(np.sqrt(2) * one)


def _mc_run(noise, fc, r_std, period_s, n_steps, n_mc, seed, latency_s, tracker_noise=None,
            outlier_rate=0.0, jitter=0.5):
    """Track n_mc independent (AP, reference) clock pairs with corrections; return per-step
    NEES sums (after the update and after the correction) and NIS sums with their dof."""
    rng = np.random.default_rng(seed)
    bank = OscillatorBank(1e-7 * rng.standard_normal(2 * n_mc), 1e-6 * rng.standard_normal(2 * n_mc),
                          noise, fc, np.random.default_rng(seed + 1))
    ap, ref = np.arange(1, 2 * n_mc, 2), np.arange(0, 2 * n_mc, 2)
    cfg = TrackerConfig(noise=tracker_noise or noise, carrier_hz=fc)
    trk = ClockTracker(n_mc + 1, cfg, reference=n_mc)  # tracks 0..n_mc-1: one per pair
    idx = np.arange(n_mc)
    var = np.broadcast_to(np.asarray(r_std, dtype=float) ** 2, (n_mc, 3))
    t = 0.0
    rows = []

    def truth():
        s = np.stack([bank.to_s(ap, ref), bank.cfo_hz(ap, ref),
                      bank.phase_rad[ap] - bank.phase_rad[ref]], -1)  # [n_mc, 3]
        return s

    def nees(mean_si, cov_int):
        """NEES and its dof: 3 where the track's phase is defined modulo 2 pi (its std below
        the lock threshold), else 2 on (TO, CFO) alone (a wrapped phase error against an
        unwrapped std of many radians is not Gaussian)."""
        e = (truth() - mean_si) / SCALE  # [n_mc, 3]
        e[:, 2] = wrap_phase(e[:, 2])
        full = np.einsum("ji,ji->j", e, np.linalg.solve(cov_int, e[..., None])[..., 0])
        e2 = e[:, :2]
        xy = np.einsum("ji,ji->j", e2, np.linalg.solve(cov_int[:, :2, :2], e2[..., None])[..., 0])
        lock = np.sqrt(cov_int[:, 2, 2]) < cfg.phase_lock_std_rad
        return np.where(lock, full, xy), np.where(lock, 3, 2)

    for step in range(n_steps):
        t += period_s * (1.0 + jitter * (rng.random() - 0.5))
        bank.advance_to(t)
        z = truth() + np.sqrt(var) * rng.standard_normal((n_mc, 3))
        bad = rng.random(n_mc) < outlier_rate
        z[bad, 0] += 200 * np.sqrt(var[bad, 0])  # gross TO errors (ML outliers)
        z[:, 2] = wrap_phase(z[:, 2])
        upd = trk.update(idx, t, z, var)
        good = ~bad
        e_post, d_post = nees(trk.mean[idx] * SCALE, trk.cov[idx])
        bank.advance_to(t + latency_s)
        u = trk.correct(idx, t + latency_s)
        bank.correct(ap, u[:, 0], u[:, 1] / fc, phase_rad=u[:, 2])
        e_corr, d_corr = nees(np.zeros((n_mc, 3)), trk.cov[idx])
        act = np.isfinite(upd.nis) & good
        rows.append(dict(step=step, nees_post=e_post[good].sum(), dof_post=int(d_post[good].sum()),
                         nees_corr=e_corr[good].sum(), dof_corr=int(d_corr[good].sum()),
                         n_post=int(good.sum()),
                         nis=upd.nis[act].sum(), nis_dof=int(upd.dof[act].sum()),
                         gated_bad=int((upd.gated & bad).sum()), n_bad=int(bad.sum()),
                         gated_good=int((upd.gated & good).sum()),
                         locked=float(upd.phase_used.mean())))
    return rows, trk


def _inside(total, dof, alpha):
    lo, hi = stats.chi2.ppf([alpha / 2, 1 - alpha / 2], dof)
    return lo <= total <= hi


CASES = {
    # campus clocks at 28 GHz, 10 ms frames, 128-chip-like CFO noise (acquisition then lock)
    "campus": (CAMPUS, 28e9, (2e-10, 30.0, 0.01), 0.01, 60),
    # drift_longrun clocks at 3.5 GHz, ~1 s between rounds (irregular)
    "drift": (DRIFT, 3.5e9, (1e-9, 5.0, 0.05), 1.0, 40),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_nees_and_nis_inside_chi_square_bands_over_1000_monte_carlo_runs(case) -> None:
    """10^3 independent clock pairs (true simulated oscillators, exact two-state noise),
    irregular measurement intervals, latency-delayed corrections. At every step the summed
    NEES (state error against the filter's covariance, after the update and after the
    correction) and the summed NIS are chi-square with 3 n / sum(dof) degrees of freedom; the
    two-sided bands are Bonferroni-corrected over all steps (total alpha 1 %)."""
    noise, fc, r_std, period, n_steps = CASES[case]
    rows, _ = _mc_run(noise, fc, r_std, period, n_steps, 1000, seed=11, latency_s=2e-4)
    alpha = 0.01 / (3 * n_steps)
    for r in rows:
        assert _inside(r["nees_post"], r["dof_post"], alpha), r
        assert _inside(r["nees_corr"], r["dof_corr"], alpha), r
        if r["step"] > 0:
            assert _inside(r["nis"], r["nis_dof"], alpha), r
    if case == "campus":  # acquisition (phase unused) first, then phase lock: after the first
        # 10 ms gap (30 Hz CFO std: conditional phase std ~1.9 rad) the integer ambiguity is
        # certain for some pairs only
        assert rows[0]["locked"] == 0.0 and rows[1]["locked"] < 0.95 and rows[-1]["locked"] > 0.99
    else:  # 1 s between rounds: the RW-FM CFO wander alone (~0.3 Hz) spreads the phase by
        # radians, so the phase is never predictable across a gap and stays unused
        assert max(r["locked"] for r in rows) < 0.01


def test_the_consistency_check_detects_a_mis_specified_filter() -> None:
    """Power of the test above: a filter that models one clock instead of the difference of
    two (half the process noise) is overconfident once phase-locked; its NEES leaves the band."""
    noise, fc, r_std, period, n_steps = CASES["campus"]
    half = ClockNoise(noise.white_fm_s2_per_s / 2, noise.random_walk_fm_per_s / 2,
                      noise.aging_per_s)
    rows, _ = _mc_run(noise, fc, r_std, period, n_steps, 1000, seed=12, latency_s=2e-4,
                      tracker_noise=half)
    alpha = 0.01 / (3 * n_steps)
    outside = [not _inside(r["nees_corr"], r["dof_corr"], alpha) for r in rows[-20:]]
    assert np.mean(outside) > 0.8


def test_gate_rejects_gross_errors_and_keeps_the_rest_consistent() -> None:
    noise, fc, r_std, period, _ = CASES["campus"]
    rows, trk = _mc_run(noise, fc, r_std, period, 30, 500, seed=13, latency_s=2e-4,
                        outlier_rate=0.02)
    later = rows[5:]  # tracks initialised by an outlier have been restarted by then
    n_bad = sum(r["n_bad"] for r in later)
    n_good = sum(r["n_post"] for r in later)
    assert sum(r["gated_bad"] for r in later) >= 0.98 * n_bad
    assert sum(r["gated_good"] for r in later) <= 0.002 * n_good
    alpha = 0.01 / len(later)
    bands = [_inside(r["nees_corr"], r["dof_corr"], alpha) for r in later]
    assert np.mean(bands) >= 0.9
    assert (trk.rejections <= trk.config.max_rejections).all()


def test_track_restarts_after_consecutive_rejections_of_a_real_jump() -> None:
    cfg = TrackerConfig(noise=CAMPUS, carrier_hz=28e9, max_rejections=3)
    trk = ClockTracker(2, cfg, reference=1)
    var = np.array([[1e-20, 100.0, 1e-4]])
    for k in range(10):
        trk.update([0], 0.01 * k, [[0.0, 0.0, 0.0]], var)
    results = [trk.update([0], 0.01 * (10 + k), [[50e-9, 0.0, 0.0]], var) for k in range(3)]
    assert [bool(r.gated[0]) for r in results] == [True, True, True]
    assert [bool(r.initialized[0]) for r in results] == [False, False, True]
    assert trk.mean[0, 0] == pytest.approx(50.0)  # ns: restarted from the jump
    assert trk.rejections[0] == 0


def test_correction_zeroes_the_mean_at_the_arrival_time_and_predicts_phase_forward() -> None:
    cfg = TrackerConfig(noise=ClockNoise(0.0, 0.0), carrier_hz=1e9)
    trk = ClockTracker(2, cfg, reference=0)
    trk.update([1], 1.0, [[2e-9, 50.0, 0.1]], [[1e-20, 1.0, 1e-4]])
    u = trk.correct([1], 1.001)
    # noiseless model: x grows by c/f_c dt, phase by 2 pi c dt
    np.testing.assert_allclose(u[0], [2e-9 + 50.0 / 1e9 * 1e-3, 50.0, 0.1 + 2 * np.pi * 50 * 1e-3])
    assert np.all(trk.mean[1] == 0) and trk.t_s[1] == 1.001


def test_rereference_is_conservative_and_exact_in_the_mean() -> None:
    """Three-clock network tracked relative to AP 0, then re-referenced to AP 1: the mean is
    the difference of the tracks; the error against the truth relative to AP 1 has a NEES of
    at most 3 on average (the over-bounding covariance)."""
    n_mc, fc = 400, 28e9
    noise = CAMPUS
    rng = np.random.default_rng(5)
    bank = OscillatorBank(1e-8 * rng.standard_normal(3 * n_mc), 1e-7 * rng.standard_normal(3 * n_mc),
                          noise, fc, np.random.default_rng(6))
    r0, a1, a2 = (np.arange(j, 3 * n_mc, 3) for j in range(3))
    nees = []
    # one tracker per Monte-Carlo network (3 tracks each), vectorised as 3 trackers of n_mc
    cfg = TrackerConfig(noise=noise, carrier_hz=fc)
    trackers = [ClockTracker(3, cfg, reference=0) for _ in range(n_mc)]
    var = np.array([4e-20, 900.0, 1e-4])
    for k in range(1, 6):
        bank.advance_to(0.01 * k)
        ph = bank.phase_rad
        for mc, trk in enumerate(trackers):
            i0, i1, i2 = r0[mc], a1[mc], a2[mc]
            s = np.array([[bank.to_s(j, i0), bank.cfo_hz(j, i0), ph[j] - ph[i0]] for j in (i1, i2)])
            z = s + np.sqrt(var) * rng.standard_normal((2, 3))
            trk.update([1, 2], 0.01 * k, z, np.broadcast_to(var, (2, 3)))
    ph = bank.phase_rad
    for mc, trk in enumerate(trackers):
        m_before = trk.mean.copy()
        trk.rereference(1)
        assert trk.reference == 1 and np.all(trk.mean[1] == 0)
        np.testing.assert_allclose(trk.mean[2, :2], (m_before[2] - m_before[1])[:2])
        i0, i1, i2 = r0[mc], a1[mc], a2[mc]
        for j, tr in ((i0, 0), (i2, 2)):
            s = np.array([bank.to_s(j, i1), bank.cfo_hz(j, i1), ph[j] - ph[i1]]) / SCALE
            e = s - trk.mean[tr]
            e[2] = wrap_phase(e[2])
            nees.append(e @ np.linalg.solve(trk.cov[tr], e))
    assert np.mean(nees) < 3.0 * 1.1
    assert np.mean(nees) > 0.5  # still informative (not blown up)


def test_state_is_picklable_and_inputs_are_checked() -> None:
    cfg = TrackerConfig(noise=CAMPUS, carrier_hz=28e9)
    trk = ClockTracker(3, cfg)
    trk.update([1, 2], 0.5, np.zeros((2, 3)), np.ones((2, 3)) * [1e-20, 1.0, 1e-3])
    clone = pickle.loads(pickle.dumps(trk))
    np.testing.assert_array_equal(clone.cov, trk.cov)
    with pytest.raises(ValueError, match="reference"):
        trk.update([0], 1.0, np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="finite"):
        trk.update([1], 1.0, [[np.nan, 0, 0]], np.ones((1, 3)))
    with pytest.raises(ValueError, match="backwards"):
        trk.update([1], 0.1, np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="active"):
        ClockTracker(3, cfg).correct([1], 1.0)
    with pytest.raises(ValueError):
        TrackerConfig(noise=CAMPUS, carrier_hz=28e9, gate_probability=1.0)
    assert np.isnan(ClockTracker(3, cfg).residual_std(1.0, [1])).all()


def _pairs(n, seed, noise=CAMPUS, fc=28e9):
    rng = np.random.default_rng(seed)
    bank = OscillatorBank(1e-7 * rng.standard_normal(2 * n), 1e-6 * rng.standard_normal(2 * n),
                          noise, fc, np.random.default_rng(seed + 1))
    ap, ref = np.arange(1, 2 * n, 2), np.arange(0, 2 * n, 2)

    def truth():  # unwrapped relative phase
        return np.stack([bank.to_s(ap, ref), bank.cfo_hz(ap, ref),
                         bank.phase_rad[ap] - bank.phase_rad[ref]], -1)  # [n, 3]

    return rng, bank, truth


# one 128-chip round of campus: ~350 ps TO, ~400 Hz CFO, phase (pi N Ts)^2/3 CRB_CFO = 4.6 mrad
R128 = np.array([3.5e-10, 400.0, 4.6e-3])


def test_conditional_phase_std_matches_monte_carlo_regression_on_true_clocks() -> None:
    """phase_std_given_rest (a Schur complement of the predicted S) against the residual std of
    regressing the true unwrapped phase innovation on the TO and CFO innovations."""
    n = 4000
    rng, bank, truth = _pairs(n, seed=5)
    trk = ClockTracker(n + 1, TrackerConfig(noise=CAMPUS, carrier_hz=28e9), reference=n)
    idx = np.arange(n)
    z = truth() + R128 * rng.standard_normal((n, 3))
    trk.update(idx, 0.0, z, np.broadcast_to(R128**2, (n, 3)))
    for gap in (3e-4, 1e-3):  # predicted phase std 0.75 and 2.5 rad
        bank_t = bank.t_s if hasattr(bank, "t_s") else None
        del bank_t
        bank.advance_to(gap)
        z2 = truth() + R128 * rng.standard_normal((n, 3))
        m, _ = trk.predict(gap, idx)
        nu = z2 - m  # [n, 3] unwrapped (true phase)
        a = np.column_stack([nu[:, :2] / np.std(nu[:, :2], axis=0), np.ones(n)])
        coef, *_ = np.linalg.lstsq(a, nu[:, 2], rcond=None)
        resid = np.std(nu[:, 2] - a @ coef)
        want = trk.phase_std_given_rest(gap, idx, np.broadcast_to(R128**2, (n, 3)))
        assert np.ptp(want) < 1e-9 * want.max() + 1e-12
        assert resid == pytest.approx(want[0], rel=0.05), (gap, resid, want[0])


def test_two_rounds_a_short_gap_apart_resolve_the_cfo_from_the_phase() -> None:
    """Acquisition: a round 0.74 ms after the first (conditional phase std ~1.3 rad) gives
    each pair a mixture over the integer ambiguity. Where the best integer is certain the CFO
    error is the phase-difference one (15 Hz: the white-FM diffusion over the gap dominates the
    4.6 mrad phase errors), not 400 Hz / sqrt(2); the collapsed posterior stays consistent
    (NEES of all pairs in its band)."""
    n, gap = 3000, 7.4e-4
    rng, bank, truth = _pairs(n, seed=9)
    trk = ClockTracker(n + 1, TrackerConfig(noise=CAMPUS, carrier_hz=28e9), reference=n)
    idx = np.arange(n)
    var = np.broadcast_to(R128**2, (n, 3))
    z = truth() + R128 * rng.standard_normal((n, 3))
    z[:, 2] = wrap_phase(z[:, 2])
    trk.update(idx, 0.0, z, var)
    bank.advance_to(gap)
    z = truth() + R128 * rng.standard_normal((n, 3))
    m_pred, _ = trk.predict(gap, idx)
    nu_true = z[:, 2] - m_pred[:, 2]  # unwrapped phase innovation (known here only)
    n_true = np.round((nu_true - wrap_phase(nu_true)) / (2 * np.pi))  # [n]
    z[:, 2] = wrap_phase(z[:, 2])
    assert (trk.phase_std_given_rest(gap, idx) > 1.0).all()  # a regular round would not use it
    upd = trk.update(idx, gap, z, var, acquisition=True)
    assert upd.accepted.all()
    err = (truth() - trk.mean[idx] * SCALE)  # [n, 3]
    err[:, 2] = wrap_phase(err[:, 2])
    res = upd.phase_used
    assert 0.5 < res.mean() < 0.95  # resolved for most pairs, not for all
    # the phase difference over the gap: two measurement errors and the white-FM diffusion of
    # both clocks (2 pi f_c)^2 2 q1 gap, which dominates here
    theory = np.sqrt(2 * R128[2] ** 2 + (2 * np.pi * 28e9) ** 2 * 2 * 1e-22 * gap) / (2 * np.pi * gap)
    # wrong integers (a CFO error of 1/gap = 1.35 kHz) where the best one looked certain: at
    # most the 1e-3 that certainty allows (plus sampling)
    slip = np.abs(err[:, 1]) > 300.0
    assert (res & slip).sum() <= 3
    assert np.sqrt(np.mean(err[res & ~slip, 1] ** 2)) == pytest.approx(theory, rel=0.15)
    assert np.sqrt(np.mean(err[~res, 1] ** 2)) > 4 * theory
    # where resolved the collapsed posterior is consistent (NEES band, slips aside)
    e = err / SCALE
    nees = np.einsum("ji,ji->j", e, np.linalg.solve(trk.cov[idx], e[..., None])[..., 0])
    sel = res & ~slip
    assert _inside(nees[sel].sum(), 3 * sel.sum(), 0.01), (nees[sel].mean(), sel.sum())
    # where not, the integer weights are calibrated: the best integer is right as often as its
    # posterior probability says (binomial band, 4 sigma)
    p = upd.integer_probability[~res]
    assert np.isfinite(p).all()
    hits = (upd.integer == n_true)[~res].sum()
    assert abs(hits - p.sum()) < 4 * np.sqrt(np.sum(p * (1 - p))), (hits, p.sum())


@pytest.mark.parametrize("dof", [1, 2, 3])
def test_gate_quantile_matches_scipy_chi2_without_importing_it(dof) -> None:
    """The tracker's own chi-square quantile (closed-form survival functions + bisection)
    against scipy.stats.chi2.ppf (independent implementation) over the probabilities a gate
    uses; hostile input gets a clear error."""
    for p in (0.01, 0.3, 0.5, 0.9, 0.99, 0.9999, 1 - 1e-9):
        want = stats.chi2.ppf(p, dof)
        assert chi2_quantile(p, dof) == pytest.approx(want, rel=1e-13, abs=0.0)
    # the survival function at the quantile is the complement (a property, not a number)
    x = chi2_quantile(0.95, dof)
    assert stats.chi2.sf(x, dof) == pytest.approx(0.05, rel=1e-12)
    for bad in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            chi2_quantile(bad, dof)
    with pytest.raises(ValueError):
        chi2_quantile(0.9, 4)


def test_transition_process_noise_is_the_matrix_product_bit_for_bit() -> None:
    """Q3 written out entry by entry equals G Q2 G^T of eq. T1 (the product form, built here
    independently) exactly, for random intervals, both noise levels and carriers."""
    g = np.random.default_rng(7)
    for noise in (CAMPUS, DRIFT):
        for fc in (28e9, 3.5e9):
            dt = g.exponential(g.choice([1e-3, 1.0, 60.0]), (6,))
            for rel in (True, False):
                _, q3 = tracking_transition(dt, noise, fc, rel)
                qxx = noise.white_fm_s2_per_s * dt + noise.random_walk_fm_per_s * dt**3 / 3.0
                qxy = noise.random_walk_fm_per_s * dt**2 / 2.0
                qyy = noise.random_walk_fm_per_s * dt
                gm = np.array([[1.0 / 1e-9, 0.0], [0.0, fc], [2.0 * np.pi * fc, 0.0]])
                q2 = np.stack([np.stack([qxx, qxy], -1), np.stack([qxy, qyy], -1)], -2)
                want = gm @ q2 @ gm.T
                want[..., 2, 2] += noise.phase_noise_rad2_per_s * dt
                np.testing.assert_array_equal(q3, (2.0 if rel else 1.0) * want)
