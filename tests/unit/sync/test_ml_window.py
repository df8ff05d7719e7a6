"""The ML's tracker-centred TO search window (issue 10): ``ml_estimate(to_window_chips=)``,
``sync_round(to_prior=)`` and ``SyncCorrection.to_prior``.

The window evaluates the full coarse grid's own points, so its claim is exact: when a burst's
``n_candidates`` best full-grid peaks lie in its window, its estimate is the full search's bit
for bit. That is checked against the full grid on random off-grid links; a window that misses
the true TO must also really restrict the search (else the speed-up would be a no-op).
"""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy.pilots import bpsk_pilots
from netsim.sync.burst import received_burst
from netsim.sync.channel import draw_link_taps
from netsim.sync.ml import _coarse, ml_estimate
from netsim.sync.plan import SyncPlanConfig, plan_network
from netsim.sync.round import SyncRoundConfig, _to_windows, sync_round


def _links(seed: int, t: int, snr_db: float, n: int = 64, eta: float = 16.0, cfo: float = 5e-3):
    """Random 4-tap links (spec 6.2) at off-grid TOs, delays and CFOs (engine-like sizes)."""
    rng = np.random.default_rng(seed)
    taps = draw_link_taps((t,), 4, rng)
    dl = rng.uniform(0.3, 3.7, (t, 1)) + taps.excess_delay_chips  # [T, 4] chips
    m = n + int(np.ceil(eta + dl.max())) + 3
    pil = bpsk_pilots(t, n, rng)
    th = rng.uniform(0.5, eta - 0.5, t)  # [T] chips
    ep = rng.uniform(-cfo, cfo, t)
    y = received_burst(pil[:, None], th[:, None], ep[:, None], dl[:, None],
                       (taps.amplitude * taps.fading)[:, None], m, 10 ** (-snr_db / 10), rng)
    return y, pil, dl, eta, cfo, th, rng


@pytest.mark.parametrize(("seed", "snr_db", "half"), [(3, 20.0, 2.0), (4, 8.0, 3.3), (5, 30.0, 1.2)])
def test_window_holding_the_full_grid_candidates_gives_identical_estimates(seed, snr_db, half):
    y, pil, dl, eta, cfo, th, rng = _links(seed, 60, snr_db)
    centre = th + rng.uniform(-0.5, 0.5, th.size) * half  # a prediction off by up to half/2
    win = np.stack([centre - half, centre + half], -1)  # [T, 2] (may stick out of [0, eta])
    full = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo)
    part = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo, to_window_chips=win)
    # which bursts have both full-grid candidates inside their window (then identity is owed)
    import netsim.sync.ml as ml

    cand = {}

    def spy(*a, **k):
        out = _coarse(*a, **k)
        cand["w" if a[-1] is not None else "f"] = out[0]
        return out

    orig = ml._coarse
    ml._coarse = spy
    try:
        ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo)
        ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo, to_window_chips=win)
    finally:
        ml._coarse = orig
    lo, hi = np.clip(win[:, 0], 0, eta), np.clip(win[:, 1], 0, eta)
    inside = np.all((cand["f"] >= lo[:, None] - 1e-12) & (cand["f"] <= hi[:, None] + 1e-12), 1)
    assert inside.sum() >= 8  # the check is not vacuous
    np.testing.assert_array_equal(cand["w"][inside], cand["f"][inside])
    for a, b in ((part.to_chips, full.to_chips), (part.cfo_norm, full.cfo_norm),
                 (part.taps, full.taps), (part.metric, full.metric)):
        np.testing.assert_array_equal(a[inside], b[inside])
    # every windowed candidate is a full-grid point near its burst's window (a narrow row
    # is evaluated as wide as the widest window of the batch, 2 half + 3 points)
    span = 2 * half + 0.3 + 1e-9
    assert np.all((cand["w"] >= lo[:, None] - span) & (cand["w"] <= hi[:, None] + span))
    assert np.all(np.abs(np.round(cand["w"] / 0.1) * 0.1 - cand["w"]) < 1e-9)


def test_whole_range_window_is_the_full_search_and_a_missed_window_restricts():
    y, pil, dl, eta, cfo, th, rng = _links(7, 24, 25.0)
    full = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo)
    wide = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo, to_window_chips=[0.0, eta])
    np.testing.assert_array_equal(wide.to_chips, full.to_chips)
    np.testing.assert_array_equal(wide.cfo_norm, full.cfo_norm)
    assert np.median(np.abs(full.to_chips - th)) < 0.05  # the full search finds the truth
    # a window 4-6 chips away from the truth: the search stays within reach of it
    side = np.where(th > eta / 2, -1.0, 1.0)
    lo = th + side * rng.uniform(4.0, 6.0, th.size) - 0.5
    win = np.stack([lo, lo + 1.0], -1)
    miss = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo, to_window_chips=win)
    reach = 0.1 * 1.2 + 0.2 + 1e-9  # refinement reach (1.2 coarse steps), grid rounding, row width
    assert np.all(miss.to_chips >= np.clip(win[:, 0], 0, eta) - reach)
    assert np.all(miss.to_chips <= np.clip(win[:, 1], 0, eta) + reach)
    assert np.all(np.abs(miss.to_chips - th) > 2.0)


def test_bad_windows_are_refused():
    y, pil, dl, eta, cfo, _, _ = _links(8, 3, 20.0)
    for bad in ([1.0, 0.5], [np.nan, 2.0], np.zeros((3, 3)), [0.0, np.inf]):
        with pytest.raises(ValueError, match="to_window_chips"):
            ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo, to_window_chips=bad)


def test_round_windows_follow_the_prior():
    cfg = SyncRoundConfig(chip_time_s=50e-9, ml_window_sigmas=8.0, ml_window_min_chips=2.0)
    tx, rx = np.array([1, 2, 3, 0]), np.array([0, 0, 1, 3])
    mean = np.array([0.0, 10e-9, -5e-9, np.nan])  # AP 3: no track
    std = np.array([0.0, 1e-9, 20e-9, np.nan])
    w = _to_windows((mean, std), tx, rx, 8.0, 16.0, cfg)
    # link 1->0: centre 8 - 0.2 chips, half max(2, 8 * 0.02) = 2
    np.testing.assert_allclose(w[0], [5.8, 9.8])
    # link 2->0: centre 8.1, half 8 * 0.4 = 3.2
    np.testing.assert_allclose(w[1], [4.9, 11.3])
    np.testing.assert_array_equal(w[2], [0.0, 16.0])  # an AP without a track: the full window
    np.testing.assert_array_equal(w[3], [0.0, 16.0])
    assert _to_windows(None, tx, rx, 8.0, 16.0, cfg) is None
    off = SyncRoundConfig(ml_window_sigmas=0.0)
    assert _to_windows((mean, std), tx, rx, 8.0, 16.0, off) is None
    assert _to_windows((np.full(4, np.nan), std), tx, rx, 8.0, 16.0, cfg) is None


def test_round_with_a_locked_prior_matches_the_full_round_and_a_wrong_prior_does_not():
    rng = np.random.default_rng(21)
    pos = rng.uniform(0, 60.0, (10, 2))
    plan = plan_network(pos, np.ones(10, bool),
                        SyncPlanConfig(overhead_budget_slots=14, swap_iterations=100), rng)
    x = rng.uniform(-0.2e-6, 0.2e-6, 10)
    f = rng.uniform(-3e3, 3e3, 10)
    cfg = SyncRoundConfig(pilot_length_chips=64, max_to_s=8 * 50e-9 * 2)
    ref = plan.reference_ap
    prior = (x - x[ref] + rng.normal(0, 1e-10, 10), np.full(10, 1e-10))
    prior[0][ref] = 0.0
    a = sync_round(plan, pos, x, f, cfg, "ml", np.random.default_rng(5))
    b = sync_round(plan, pos, x, f, cfg, "ml", np.random.default_rng(5), to_prior=prior)
    np.testing.assert_array_equal(a.links.est_to_s, b.links.est_to_s)
    np.testing.assert_array_equal(a.links.est_cfo_hz, b.links.est_cfo_hz)
    # the crb fidelity ignores the prior (and the prior draws no random numbers)
    c0 = sync_round(plan, pos, x, f, cfg, "crb", np.random.default_rng(6))
    c1 = sync_round(plan, pos, x, f, cfg, "crb", np.random.default_rng(6), to_prior=prior)
    np.testing.assert_array_equal(c0.est_time_offset_s, c1.est_time_offset_s)
    # a prior 6 chips off on one slave: its link is searched where the burst is not
    s = int(plan.slaves()[0])
    wrong = (prior[0].copy(), prior[1])
    wrong[0][s] += 6 * 50e-9
    d = sync_round(plan, pos, x, f, cfg, "ml", np.random.default_rng(5), to_prior=wrong)
    j = int(np.flatnonzero(d.links.tx_ap == s)[0])
    assert abs(d.links.est_to_s[j] - d.links.true_to_s[j]) > 3 * 50e-9
    assert abs(a.links.est_to_s[j] - a.links.true_to_s[j]) < 0.1 * 50e-9


def test_correction_prior_waits_for_corrections_in_flight():
    from netsim.phy.oscillator import ClockNoise
    from netsim.scenario import load_scenario
    from netsim.sim.engine import SyncReport
    from netsim.sim.sync_correction import SyncCorrection

    sc = load_scenario("scenarios/quickstart.yaml", ["sync.method=ml", "sync.tracking=kalman"])
    corr = SyncCorrection(sc, 5, 28e9, ClockNoise.from_allan(1e-11, 1e-12))
    m0, s0 = corr.to_prior(0.0)
    assert np.isnan(s0[1:]).all()  # no track yet: no window for any link but the reference's
    k = 4
    rep = SyncReport(sender=0, t_meas_s=0.0, aps=np.arange(1, 5), to_s=np.full(k, 3e-9),
                     cfo_hz=np.zeros(k), phase_rad=np.zeros(k), crb_to_s2=np.full(k, 1e-20),
                     crb_cfo_hz2=np.ones(k), crb_phase_rad2=np.full(k, 1e-4))
    assert corr.on_report(rep, 0.0, 1e-4, lambda *a: None) is not None
    assert corr.to_prior(0.5e-4) is None  # the correction reaches the APs at 1e-4 s
    mean, std = corr.to_prior(2e-4)
    assert np.all(np.isfinite(std[1:])) and np.all(std[1:] < 1e-9)
    np.testing.assert_allclose(mean[1:], 0.0, atol=1e-12)  # corrected: nothing predicted left
    off = SyncCorrection(load_scenario("scenarios/quickstart.yaml", ["sync.method=ml",
                                                                    "sync.tracking=none"]),
                         5, 28e9, ClockNoise.from_allan(1e-11, 1e-12))
    assert off.to_prior(0.0) is None


@pytest.mark.parametrize("truncated", [False, True])
def test_without_taps_the_same_to_and_cfo(truncated):
    y, pil, dl, eta, cfo, th, _ = _links(9, 16, 15.0)
    if truncated:  # a window shorter than pilot + search range: the non-Toeplitz Gram path
        y = y[:, :70]
    a = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo)
    b = ml_estimate(y, pil, dl, eta, cfo_max_norm=cfo, need_taps=False)
    np.testing.assert_array_equal(a.to_chips, b.to_chips)
    np.testing.assert_array_equal(a.cfo_norm, b.cfo_norm)
    assert np.all(np.isfinite(a.taps)) and np.all(np.isnan(b.taps)) and np.all(np.isnan(b.metric))
    if not truncated:
        assert np.median(np.abs(a.to_chips - th)) < 0.05


def _old_factor_and_whiten(gram, v):
    """The factor and forward substitution as they were before the reciprocal diagonal
    (netsim 6a25364): the real diagonal, and u_i = r / C_ii."""
    n = gram.shape[0]
    load = 1e-12 * sum(np.real(gram[i, i]) for i in range(n)) / n
    c = [[None] * n for _ in range(n)]
    for j in range(n):
        s = np.real(gram[j, j]) + load
        for k in range(j):
            s = s - np.abs(c[j][k]) ** 2
        d = np.sqrt(np.maximum(s, np.finfo(float).tiny))
        c[j][j] = d
        for i in range(j + 1, n):
            s2 = gram[i, j]
            for k in range(j):
                s2 = s2 - c[i][k] * np.conj(c[j][k])
            c[i][j] = s2 / d
    u = []
    for i in range(n):
        r = v[:, i]
        for k in range(i):
            r = r - c[i][k] * u[k]
        u.append(r / c[i][i])
    return u


@pytest.mark.parametrize("complex_gram", [False, True])
def test_reciprocal_diagonal_whitening_is_the_division_bit_for_bit(complex_gram):
    from netsim.sync.ml import _cholesky, _whiten

    rng = np.random.default_rng(31 + complex_gram)
    n_l, shape = 4, (7, 50)
    a = rng.standard_normal((n_l, 6) + shape)
    if complex_gram:
        a = a + 1j * rng.standard_normal(a.shape)
    a[1] *= 1e-4  # a badly scaled tap
    gram = np.einsum("ik...,jk...->ij...", a, np.conj(a))  # [L, L, 7, 50] Hermitian PD
    v = rng.standard_normal((3, n_l) + shape) + 1j * rng.standard_normal((3, n_l) + shape)
    v[0, 0, 0, :3] = [0.0, -0.0, 1e150]  # zeros of both signs, a huge entry
    new = _whiten(_cholesky(gram), v)
    old = _old_factor_and_whiten(gram, v)
    for x, y in zip(new, old, strict=True):
        np.testing.assert_array_equal(x.real, y.real)
        np.testing.assert_array_equal(x.imag, y.imag)
    # and it whitens: ||u||^2 = v^H G^-1 v (a well-conditioned Gram, no extreme entries)
    b = rng.standard_normal((n_l, 6)) + (1j * rng.standard_normal((n_l, 6)) if complex_gram else 0)
    g0 = b @ np.conj(b).T  # [L, L]
    w = v[:, :, 1, 1]  # [3, L]
    u = _whiten(_cholesky(g0[..., None]), w[..., None])
    g = sum(np.abs(x[:, 0]) ** 2 for x in u)
    ref = np.real(np.einsum("ei,ij,ej->e", np.conj(w), np.linalg.inv(g0), w))
    np.testing.assert_allclose(g, ref, rtol=1e-9)
