"""Tests of the two-state clock model (netsim.phy.oscillator)."""

from __future__ import annotations

import allantools
import numpy as np
import pytest
from scipy import stats

from netsim.phy.oscillator import (
    ClockNoise,
    OscillatorBank,
    allan_deviation_model,
    clock_transition,
)

FC_HZ = 28e9


def test_from_allan_inverts_the_allan_model() -> None:
    noise = ClockNoise.from_allan(2e-11, 3e-13, aging_per_s=1e-16, phase_noise_rad2_per_s=0.1)
    assert noise.white_fm_s2_per_s == pytest.approx(4e-22)
    assert noise.random_walk_fm_per_s == pytest.approx(3 * 9e-26)
    # At tau = 1 s the model adds the two specified variances (and the aging term).
    adev1 = allan_deviation_model(np.array([1.0]), noise)[0]
    assert adev1**2 == pytest.approx(4e-22 + 9e-26 + 0.5e-32)


def test_clock_noise_rejects_negative_diffusion() -> None:
    with pytest.raises(ValueError):
        ClockNoise(-1.0, 0.0)


def test_transition_satisfies_chapman_kolmogorov() -> None:
    """Composing two steps of dt gives exactly the transition of 2 dt (algebraic check)."""
    noise = ClockNoise(1e-22, 3e-26, aging_per_s=2e-15)
    dt = 0.37
    phi1, d1, q1 = clock_transition(dt, noise)
    phi2, d2, q2 = clock_transition(2 * dt, noise)
    np.testing.assert_allclose(phi1 @ phi1, phi2, rtol=1e-14)
    np.testing.assert_allclose(phi1 @ d1 + d1, d2, rtol=1e-12)
    np.testing.assert_allclose(phi1 @ q1 @ phi1.T + q1, q2, rtol=1e-12)


def test_allan_deviation_of_simulated_clock_matches_model() -> None:
    """Overlapping ADEV of simulated phase data vs sigma_y(tau) over 3 decades of tau.

    Noise: white FM 1e-11 at 1 s and random-walk FM with the crossover near tau = 100 s.
    The overlapping AVAR estimate pooled over n_osc independent clocks is approximately
    (avar / edf) chi^2(edf), with edf = n_osc * Greenhall's edf for the dominant noise type
    (taking the smaller of the WFM and RWFM values is conservative near the crossover).
    Each tau gets a two-sided interval with total false-alarm probability 1e-3 (Bonferroni).
    """
    n_osc, n_samples, tau0 = 16, 2**15, 1.0
    q1 = 1e-22
    q2 = 3 * q1 / 100.0**2
    noise = ClockNoise(q1, q2)
    rng = np.random.default_rng(20261122)
    bank = OscillatorBank(np.zeros(n_osc), np.zeros(n_osc), noise, FC_HZ, rng)
    x = np.empty((n_samples + 1, n_osc))  # [T+1, n_osc]
    x[0] = bank.time_offset_s
    for k in range(1, n_samples + 1):
        bank.advance_to(k * tau0)
        x[k] = bank.time_offset_s
    taus = np.array([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], dtype=float)
    avar = np.zeros(taus.size)
    for i in range(n_osc):
        t_out, adev, _, _ = allantools.oadev(x[:, i], rate=1 / tau0, data_type="phase", taus=taus)
        np.testing.assert_allclose(t_out, taus)
        avar += adev**2 / n_osc
    model = allan_deviation_model(taus, noise) ** 2
    alpha = 1e-3 / taus.size
    for tau, est, true in zip(taus, avar, model, strict=True):
        m = int(round(tau / tau0))
        edf_one = min(
            allantools.edf_greenhall(alpha=a, d=2, m=m, N=n_samples + 1, overlapping=True)
            for a in (0, -2)
        )
        edf = n_osc * edf_one
        lo, hi = stats.chi2.ppf([alpha / 2, 1 - alpha / 2], edf) / edf
        assert lo <= est / true <= hi, (tau, est / true, lo, hi)


def test_aging_alone_gives_linear_adev() -> None:
    """With only aging a, x(t) = a t^2 / 2 exactly and ADEV(tau) = a tau / sqrt(2)."""
    a = 1e-12
    noise = ClockNoise(0.0, 0.0, aging_per_s=a)
    bank = OscillatorBank([0.0], [0.0], noise, FC_HZ, np.random.default_rng(1))
    x = [0.0]
    for k in range(1, 2001):
        bank.advance_to(float(k))
        x.append(bank.time_offset_s[0])
    taus = np.array([1.0, 10.0, 100.0, 500.0])
    _, adev, _, _ = allantools.oadev(np.array(x), rate=1.0, data_type="phase", taus=taus)
    np.testing.assert_allclose(adev, a * taus / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(adev, allan_deviation_model(taus, noise), rtol=1e-6)


def _run_banks(n: int, steps: list[float], seed: int) -> np.ndarray:
    noise = ClockNoise(1e-22, 4e-24, aging_per_s=3e-12, phase_noise_rad2_per_s=2.0)
    x0 = np.full(n, 1e-6)
    y0 = np.full(n, 2e-7)
    bank = OscillatorBank(x0, y0, noise, FC_HZ, np.random.default_rng(seed), t0_s=5.0)
    for t in steps:
        bank.advance_to(t)
    return np.stack([bank.time_offset_s, bank.freq_offset, bank.phase_rad], axis=-1)  # [n, 3]


def _closed_form(T: float) -> tuple[np.ndarray, np.ndarray]:
    noise = ClockNoise(1e-22, 4e-24, aging_per_s=3e-12, phase_noise_rad2_per_s=2.0)
    phi, drift, q = clock_transition(T, noise)
    mxy = phi @ np.array([1e-6, 2e-7]) + drift
    w = 2 * np.pi * FC_HZ
    mean = np.array([mxy[0], mxy[1], w * (mxy[0] - 1e-6)])
    cov = np.array(
        [
            [q[0, 0], q[0, 1], w * q[0, 0]],
            [q[0, 1], q[1, 1], w * q[0, 1]],
            [w * q[0, 0], w * q[0, 1], w * w * q[0, 0] + noise.phase_noise_rad2_per_s * T],
        ]
    )
    return mean, cov


def test_one_step_equals_two_steps_in_distribution() -> None:
    """Advancing by 2 dt at once or in two steps of dt gives the closed-form Gaussian law.

    Samples are whitened with the closed-form mean/covariance of (x, y, phase); the result
    must be i.i.d. N(0, 1): sample mean within 5/sqrt(n), sample covariance within
    5 sqrt(2/n) of the identity, and each component passes a KS test (p > 1e-4). The two
    schedules are also compared with a two-sample KS test.
    """
    n, dt = 100_000, 0.5
    T = 2 * dt
    one = _run_banks(n, [5.0 + T], seed=11)
    two = _run_banks(n, [5.0 + dt, 5.0 + T], seed=12)
    mean, cov = _closed_form(T)
    scale = np.sqrt(np.diag(cov))
    corr = cov / np.outer(scale, scale)
    chol = np.linalg.cholesky(corr)
    whitened = []
    for s in (one, two):
        z = np.linalg.solve(chol, ((s - mean) / scale).T).T  # [n, 3]
        assert np.all(np.abs(z.mean(axis=0)) < 5 / np.sqrt(n))
        assert np.all(np.abs(np.cov(z.T) - np.eye(3)) < 5 * np.sqrt(2 / n))
        for c in range(3):
            assert stats.kstest(z[:, c], "norm").pvalue > 1e-4
        whitened.append(z)
    for c in range(3):
        assert stats.ks_2samp(whitened[0][:, c], whitened[1][:, c]).pvalue > 1e-4


def test_noiseless_clock_is_deterministic() -> None:
    """Without noise: x = x0 + y0 T + a T^2/2, y = y0 + a T, phase = 2 pi fc (x - x0)."""
    a, T = 1e-9, 3.0
    bank = OscillatorBank([1e-6, -2e-6], [1e-7, 0.0], ClockNoise(0, 0, a), FC_HZ,
                          np.random.default_rng(0))
    bank.advance_to(1.0)
    bank.advance_to(T)
    x_exp = np.array([1e-6, -2e-6]) + np.array([1e-7, 0.0]) * T + 0.5 * a * T**2
    np.testing.assert_allclose(bank.time_offset_s, x_exp, rtol=1e-12)
    np.testing.assert_allclose(bank.freq_offset, np.array([1e-7, 0.0]) + a * T, rtol=1e-12)
    np.testing.assert_allclose(
        bank.phase_rad, 2 * np.pi * FC_HZ * (np.array([1e-7, 0.0]) * T + 0.5 * a * T**2),
        rtol=1e-9,
    )


def test_time_cannot_go_backwards_and_zero_step_is_noop() -> None:
    bank = OscillatorBank(np.zeros(3), np.zeros(3), ClockNoise(1e-20, 1e-20, 0, 1.0), FC_HZ,
                          np.random.default_rng(3), t0_s=2.0)
    bank.advance_to(3.0)
    before = bank.snapshot()
    bank.advance_to(3.0)
    after = bank.snapshot()
    for key in ("time_offset_s", "freq_offset", "phase_rad"):
        np.testing.assert_array_equal(before[key], after[key])
    with pytest.raises(ValueError):
        bank.advance_to(2.999)
    assert bank.t_s == 3.0


def test_correct_with_exact_offsets_zeroes_them() -> None:
    rng = np.random.default_rng(5)
    n = 6
    bank = OscillatorBank(rng.normal(0, 1e-6, n), rng.normal(0, 1e-6, n),
                          ClockNoise(1e-20, 1e-22, 1e-12, 0.5), FC_HZ, rng)
    bank.advance_to(0.8)
    snap = bank.snapshot()
    idx = np.array([1, 4, 5])
    bank.correct(idx, snap["time_offset_s"][idx], snap["freq_offset"][idx])
    np.testing.assert_array_equal(bank.time_offset_s[idx], 0.0)
    np.testing.assert_array_equal(bank.freq_offset[idx], 0.0)
    np.testing.assert_array_equal(bank.phase_rad[idx], 0.0)
    rest = np.array([0, 2, 3])
    np.testing.assert_array_equal(bank.time_offset_s[rest], snap["time_offset_s"][rest])
    np.testing.assert_array_equal(bank.phase_rad[rest], snap["phase_rad"][rest])
    # The snapshot is a copy: mutating it does not touch the bank.
    snap["time_offset_s"][:] = 1.0
    assert bank.time_offset_s[1] == 0.0
    # After the correction, the phase only accumulates the new drift.
    bank.advance_to(0.8)  # no-op
    with pytest.raises(ValueError):
        bank.correct([1, 1], [0.0, 0.0], [0.0, 0.0])


def test_phase_after_correction_tracks_residual_drift() -> None:
    """After correcting only the time offset, phase grows as 2 pi fc y_res dt (noiseless)."""
    bank = OscillatorBank([3e-6], [5e-8], ClockNoise(0, 0), FC_HZ, np.random.default_rng(0))
    bank.advance_to(1.0)
    bank.correct([0], bank.time_offset_s, [4e-8])  # residual frequency 1e-8
    bank.advance_to(1.5)
    assert bank.phase_rad[0] == pytest.approx(2 * np.pi * FC_HZ * 1e-8 * 0.5, rel=1e-9)
    assert bank.time_offset_s[0] == pytest.approx(1e-8 * 0.5, rel=1e-9)


def test_cfo_and_to_definitions() -> None:
    x = np.array([1e-6, -3e-7, 2e-9, 0.0])
    y = np.array([1e-7, 2e-7, -5e-8, 0.0])
    bank = OscillatorBank(x, y, ClockNoise(0, 0), FC_HZ, np.random.default_rng(0))
    i = np.array([0, 1, 2, 3])
    j = np.array([3, 0, 1, 2])
    np.testing.assert_allclose(bank.cfo_hz(i, j), FC_HZ * (y[i] - y[j]))
    np.testing.assert_allclose(bank.to_s(i, j), x[i] - x[j])
    assert bank.cfo_hz(1, 0) == pytest.approx(FC_HZ * 1e-7)  # 2800 Hz
    np.testing.assert_allclose(bank.cfo_hz(i, j), -bank.cfo_hz(j, i))
    np.testing.assert_allclose(bank.to_s(i, i), 0.0)
    # broadcasting: all pairs against AP 0
    assert bank.cfo_hz(i, 0).shape == (4,)


def test_correct_with_phase_subtracts_the_phase_estimate():
    """A correction with a phase estimate removes exactly that phase (not a reset to 0)."""
    noise = ClockNoise(white_fm_s2_per_s=0.0, random_walk_fm_per_s=0.0)
    bank = OscillatorBank([0.0, 0.0], [1e-6, -2e-6], noise, 1e9, np.random.default_rng(0))
    bank.advance_to(1e-3)
    before = bank.phase_rad  # 2 pi f_c y t
    np.testing.assert_allclose(before, 2 * np.pi * 1e9 * np.array([1e-6, -2e-6]) * 1e-3)
    bank.correct([0, 1], [0.0, 0.0], [0.0, 0.0], phase_rad=[0.5, before[1]])
    np.testing.assert_allclose(bank.phase_rad, [before[0] - 0.5, 0.0], atol=1e-9)
    # the phase keeps evolving with the (uncorrected) frequency offset afterwards
    bank.advance_to(2e-3)
    np.testing.assert_allclose(bank.phase_rad[1], 2 * np.pi * 1e9 * -2e-6 * 1e-3, rtol=1e-9)


@pytest.mark.parametrize("phase_noise", [0.0, 3.0])
def test_advance_through_equals_successive_advance_to(phase_noise) -> None:
    """The batched advance (the engine's subframes) gives the same bits as one advance_to per
    time: same draws in the same order, same arithmetic; repeated times draw nothing."""
    rng_times = np.random.default_rng(5)
    noise = ClockNoise.from_allan(3e-11, 2e-12, aging_per_s=1e-12, phase_noise_rad2_per_s=phase_noise)
    times = list(0.2 + np.cumsum(rng_times.exponential(1e-3, 12)))
    times.insert(4, times[3])  # a zero step
    one = OscillatorBank(np.zeros(7) + 1e-7, np.linspace(-1e-6, 1e-6, 7), noise, 28e9,
                         np.random.default_rng(9))
    two = OscillatorBank(np.zeros(7) + 1e-7, np.linspace(-1e-6, 1e-6, 7), noise, 28e9,
                         np.random.default_rng(9))
    one.advance_to(0.1)
    two.advance_to(0.1)
    one.correct([2], 1e-8, 1e-7, phase_rad=0.3)
    two.correct([2], 1e-8, 1e-7, phase_rad=0.3)
    x_hist, phase_hist = two.advance_through(times)
    for s, t in enumerate(times):
        one.advance_to(t)
        np.testing.assert_array_equal(x_hist[s], one.time_offset_s)
        np.testing.assert_array_equal(phase_hist[s], one.phase_rad)
    assert two.t_s == one.t_s
    np.testing.assert_array_equal(two.freq_offset, one.freq_offset)
    one.advance_to(times[-1] + 1e-3)
    two.advance_to(times[-1] + 1e-3)  # the generators are at the same place
    np.testing.assert_array_equal(two.time_offset_s, one.time_offset_s)
    with pytest.raises(ValueError, match="backwards"):
        two.advance_through([times[0]])


@pytest.mark.parametrize("phase_noise", [0.0, 0.7])
def test_advance_through_with_leading_and_only_zero_steps(phase_noise) -> None:
    """Times equal to the bank's own time draw nothing (the batched steps start later), and a
    batch of such times only repeats the state; random sizes, offsets and step lengths."""
    rng = np.random.default_rng(31)
    noise = ClockNoise.from_allan(1e-10, 5e-12, aging_per_s=3e-12, phase_noise_rad2_per_s=phase_noise)
    n = int(rng.integers(1, 9))
    x0, y0 = rng.normal(0, 1e-7, n), rng.normal(0, 1e-6, n)
    one = OscillatorBank(x0, y0, noise, 3.5e9, np.random.default_rng(4))
    two = OscillatorBank(x0, y0, noise, 3.5e9, np.random.default_rng(4))
    for bank in (one, two):
        bank.advance_to(0.05)
    x_hist, phase_hist = two.advance_through([0.05, 0.05])  # nothing moves
    np.testing.assert_array_equal(x_hist, np.tile(one.time_offset_s, (2, 1)))
    np.testing.assert_array_equal(phase_hist, np.tile(one.phase_rad, (2, 1)))
    times = [0.05, *list(0.05 + np.cumsum(rng.uniform(1e-5, 1e-3, 6)))]
    x_hist, phase_hist = two.advance_through(times)
    for s, t in enumerate(times):
        one.advance_to(t)
        np.testing.assert_array_equal(x_hist[s], one.time_offset_s)
        np.testing.assert_array_equal(phase_hist[s], one.phase_rad)
    np.testing.assert_array_equal(two.freq_offset, one.freq_offset)
    assert two.t_s == one.t_s == times[-1]
