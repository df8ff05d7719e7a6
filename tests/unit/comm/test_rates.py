"""Downlink SINR under residual sync offsets, against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.beamforming import apply_power, mrt_directions
from netsim.comm.rates import (
    downlink_sinr,
    isi_amplitude_factor,
    rates_bps_hz,
    subcarrier_frequencies,
)


def cn(rng, *shape):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def test_single_user_mrt_snr_is_the_coherent_sum():
    """K = 1, MRT with equal power: SNR = (sum_m sqrt(P_m) ||h_m||)^2 / sigma^2."""
    rng = np.random.default_rng(0)
    h = cn(rng, 1, 3, 4)  # [K, M, N]
    p = np.array([1.0, 0.5, 2.0])
    w = apply_power(mrt_directions(h), p[:, None])
    sinr = downlink_sinr(h, w, noise_w=0.1)
    expected = (np.sqrt(p) * np.linalg.norm(h[0], axis=1)).sum() ** 2 / 0.1
    assert sinr.shape == (1, 1)
    assert sinr[0, 0] == pytest.approx(expected)


def test_common_phase_and_small_timing_offset_leave_the_sinr_alone():
    rng = np.random.default_rng(1)
    h = cn(rng, 3, 4, 2)
    w = apply_power(mrt_directions(h), np.full((4, 3), 1 / 3))
    ref = downlink_sinr(h, w, 1e-2)
    same_phase = downlink_sinr(h, w, 1e-2, phase_rad=np.full(4, 1.3))
    np.testing.assert_allclose(same_phase, ref)
    # a common timing offset is a common phase per subcarrier: still no change
    f = subcarrier_frequencies(20e6, 8)
    common_to = downlink_sinr(h, w, 1e-2, to_s=np.full(4, 30e-9), subcarrier_hz=f,
                              cyclic_prefix_s=1e-6, symbol_duration_s=4e-6)
    np.testing.assert_allclose(common_to, np.repeat(ref, 8, axis=0))


def test_random_phases_destroy_the_coherent_gain_on_average():
    """With i.i.d. uniform AP phases, E|sum_m a_m e^{j phi_m}|^2 = sum_m |a_m|^2 (Monte Carlo)."""
    rng = np.random.default_rng(2)
    h = cn(rng, 1, 8, 4)
    w = apply_power(mrt_directions(h), np.ones((8, 1)))
    a = np.linalg.norm(h[0], axis=1)  # per-AP amplitude with MRT and unit power
    phases = rng.uniform(-np.pi, np.pi, (4000, 8))
    snr = np.array([downlink_sinr(h, w, 1.0, phase_rad=ph)[0, 0] for ph in phases])
    assert snr.mean() == pytest.approx((a**2).sum(), rel=0.05)
    assert downlink_sinr(h, w, 1.0)[0, 0] == pytest.approx(a.sum() ** 2)


def test_isi_factor_and_energy_bookkeeping():
    g = isi_amplitude_factor(np.array([0.0, 1e-6, 2e-6, 10e-6]), 1e-6, 4e-6)
    np.testing.assert_allclose(g, [1.0, 1.0, 0.75, 0.0])
    # one AP, one user, TO beyond CP: desired scales by g^2, the rest is interference
    h = np.ones((1, 1, 1), complex)
    w = np.ones((1, 1, 1), complex)
    sinr = downlink_sinr(h, w, 0.5, to_s=np.array([2e-6]), cyclic_prefix_s=1e-6,
                         symbol_duration_s=4e-6)
    assert sinr[0, 0] == pytest.approx(0.75**2 / ((1 - 0.75**2) + 0.5))


def test_rates_average_over_subcarriers():
    sinr = np.array([[1.0, 3.0], [3.0, 7.0]])  # [F, K]
    np.testing.assert_allclose(rates_bps_hz(sinr), [1.5, 2.5])


def test_mrt_directions_have_unit_norm_per_ap_and_respect_inactive_aps():
    rng = np.random.default_rng(3)
    h = cn(rng, 2, 3, 5)
    u = mrt_directions(h, np.array([True, False, True]))
    norms = np.linalg.norm(u, axis=2)
    np.testing.assert_allclose(norms[:, [0, 2]], 1.0)
    np.testing.assert_allclose(norms[:, 1], 0.0)
    w = apply_power(u, np.full((3, 2), 0.5))
    np.testing.assert_allclose((np.abs(w) ** 2).sum(axis=(0, 2)), [1.0, 0.0, 1.0])


def test_batched_sinr_equals_one_call_per_subframe() -> None:
    """downlink_sinr_batch (the engine's per-frame call, batched matrix products) gives the
    SINR of one downlink_sinr call per subframe to rounding, with subframes inside and outside
    the cyclic prefix; rates_bps_hz_batch is rates_bps_hz per subframe."""
    from netsim.comm.rates import downlink_sinr_batch, rates_bps_hz_batch

    rng = np.random.default_rng(21)
    n_sub, k, m, n = 5, 3, 4, 6
    h = rng.standard_normal((n_sub, k, m, n)) + 1j * rng.standard_normal((n_sub, k, m, n))
    w = rng.standard_normal((n_sub, k, m, n)) + 1j * rng.standard_normal((n_sub, k, m, n))
    phase = rng.uniform(-np.pi, np.pi, (n_sub, m))
    to = rng.normal(0, 2e-7, (n_sub, m))
    to[1] = 1e-9  # inside the prefix
    to[3, 2] = 3e-6  # far outside: g = 0.7 on one AP
    freqs = subcarrier_frequencies(20e6, 8)
    for tos in (to, np.full_like(to, 1e-9)):
        got = downlink_sinr_batch(h, w, 1e-3, phase, tos, freqs, 8e-7, 1e-5)
        want = np.stack([downlink_sinr(h[s], w[s], 1e-3, phase[s], tos[s], freqs, 8e-7, 1e-5)
                         for s in range(n_sub)])
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_array_equal(rates_bps_hz_batch(want),
                                      np.stack([rates_bps_hz(x) for x in want]))
    assert isi_amplitude_factor(to[3], 8e-7, 1e-5).min() < 1.0  # the ISI branch was taken
