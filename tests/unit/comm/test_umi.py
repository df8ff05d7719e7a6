"""Tests of netsim.phy.umi (seed 004 channel model, spec 3.1/3.3, acceptance check 1)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy.umi import (
    ChannelConfig,
    channel_from_fading,
    draw_small_scale_fading,
    drop_users,
    evolve_small_scale_fading,
    hex_ap_positions,
    jakes_correlation,
    large_scale_fading,
    noise_power_w,
    path_loss_db,
)


def test_noise_power_matches_table_i() -> None:
    # -174 dBm/Hz + 10 log10(20e6) + 9 dB = -91.99 dBm (spec Table I)
    p_dbm = 10 * np.log10(noise_power_w()) + 30
    assert abs(p_dbm - (-91.99)) < 0.01


def test_umi_median_gain_at_100m() -> None:
    cfg = ChannelConfig.umi()
    d3 = np.hypot(100.0, cfg.h_ap_m - cfg.h_ue_m)
    # spec 3.1: median -109.6 dB at 100 m (2-D) at 6 GHz
    assert abs(path_loss_db(d3, cfg) - (-109.6)) < 0.1


def test_uma_formula_independent_value() -> None:
    cfg = ChannelConfig.uma()
    # 38.901 UMa NLOS PL' at d = 1000 m, f = 6 GHz: 13.54 + 39.08*3 + 20*log10(6)
    assert path_loss_db(1000.0, cfg) == pytest.approx(-(13.54 + 117.24 + 15.563025), abs=1e-4)
    assert cfg.p_max_w == pytest.approx(10 ** (49 / 10) / 1000)


def test_hex_layout_seven_aps() -> None:
    ap = hex_ap_positions(7, 200.0)
    assert np.allclose(ap[0], 0.0)
    assert np.allclose(np.linalg.norm(ap[1:], axis=1), 200.0)
    d = np.linalg.norm(ap[:, None] - ap[None], axis=-1) + np.eye(7) * 1e9
    assert d.min() == pytest.approx(200.0)
    # 12 lattice points: the next ring starts at sqrt(3)*ISD
    ap12 = hex_ap_positions(12, 200.0)
    assert np.allclose(np.linalg.norm(ap12[7:], axis=1), 200.0 * np.sqrt(3))


def test_drop_users_region_and_uniformity() -> None:
    cfg = ChannelConfig.umi()
    ap = hex_ap_positions(7, cfg.isd_m)
    ue = drop_users(ap, 14000, cfg, np.random.default_rng(3))
    d = np.linalg.norm(ue[:, None] - ap[None], axis=-1)  # [K, M]
    assert d.min() >= cfg.d_min_m
    assert d.min(axis=1).max() <= cfg.isd_m / np.sqrt(3) + 1e-9  # inside some hexagon
    # equal-area cells: about 1/7 of users are closest to each AP (binomial sd ~ 0.003)
    frac = np.bincount(d.argmin(axis=1), minlength=7) / ue.shape[0]
    assert np.all(np.abs(frac - 1 / 7) < 0.015)


def test_shadowing_statistics() -> None:
    cfg = ChannelConfig.umi()
    ap = hex_ap_positions(7, cfg.isd_m)
    rng = np.random.default_rng(5)
    ue = drop_users(ap, 3000, cfg, rng)
    beta = large_scale_fading(ap, ue, cfg, rng)
    d3 = np.hypot(np.linalg.norm(ap[:, None] - ue[None], axis=-1), 8.5)
    z = 10 * np.log10(beta) - path_loss_db(d3, cfg)
    assert abs(z.mean()) < 0.1  # sd of the mean = 7.82/sqrt(21000) = 0.054
    assert abs(z.std() - 7.82) < 0.1


def test_small_scale_fading_moments_and_correlation() -> None:
    rng = np.random.default_rng(7)
    g = draw_small_scale_fading((200000,), rng)
    assert abs(np.mean(np.abs(g) ** 2) - 1) < 0.01
    assert abs(np.mean(g)) < 0.01
    rho = 0.8
    g2 = evolve_small_scale_fading(g, rho, rng)
    assert abs(np.mean(np.abs(g2) ** 2) - 1) < 0.01
    assert abs(np.mean(g2 * np.conj(g)) - rho) < 0.01
    g3 = evolve_small_scale_fading(g, 0.0, rng)  # i.i.d. per subframe
    assert abs(np.mean(g3 * np.conj(g))) < 0.01
    with pytest.raises(ValueError):
        evolve_small_scale_fading(g, 1.5, rng)


def test_jakes_correlation_values() -> None:
    assert jakes_correlation(100.0, 0.0) == pytest.approx(1.0)
    # first zero of J0 at 2.4048: f_d dt = 0.38274
    assert jakes_correlation(1.0, 2.404825557695773 / (2 * np.pi)) == pytest.approx(0.0, abs=1e-9)


def test_channel_from_fading_scales_by_sqrt_beta() -> None:
    rng = np.random.default_rng(8)
    beta = rng.uniform(1e-12, 1e-9, size=(3, 4))
    g = draw_small_scale_fading((3, 4, 5), rng)
    h = channel_from_fading(beta, g)
    assert np.allclose(np.abs(h) ** 2 / beta[..., None], np.abs(g) ** 2)
