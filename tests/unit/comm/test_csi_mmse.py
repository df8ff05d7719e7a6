"""Tests of netsim.comm.csi_mmse (spec 3.5, eq. (28), acceptance check 3)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.csi_mmse import (
    copilot_matrix,
    estimate_channels,
    mmse_estimate,
    nmse_theory,
    pilot_length,
    pilot_observation,
)
from netsim.phy.umi import channel_from_fading, draw_small_scale_fading

P_U = 0.1995
SIGMA2 = 6.32e-13


def _setup() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    beta = 10 ** rng.uniform(-12.5, -10.5, size=(3, 5))  # [M, K]
    colour = np.array([0, 0, 1, 2, 1])
    assoc = np.ones((3, 5), dtype=bool)
    return beta, colour, assoc


def test_pilot_length_and_copilot() -> None:
    assert pilot_length(np.array([3, 3, 0, 7])) == 3
    assert np.array_equal(pilot_length(np.array([[0, 1, 1], [2, 2, 2]])), [2, 1])
    cp = copilot_matrix(np.array([0, 1, 0]))
    assert np.array_equal(cp, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])


def test_monte_carlo_nmse_matches_eq28() -> None:
    beta, colour, assoc = _setup()
    rng = np.random.default_rng(12)
    n_draw, n_ant = 10000, 2
    g = draw_small_scale_fading((n_draw, 3, 5, n_ant), rng)
    h = channel_from_fading(beta, g)  # [D, M, K, N]
    y = pilot_observation(h, colour, P_U, SIGMA2, rng=rng)
    hhat, err_var = mmse_estimate(y, beta, colour, P_U, SIGMA2, assoc)
    e = h - hhat
    nmse_mc = np.mean(np.abs(e) ** 2, axis=(0, 3)) / beta  # [M, K]
    nmse_th = nmse_theory(beta, colour, P_U, SIGMA2)
    assert np.all(np.abs(nmse_mc / nmse_th - 1) < 0.03)
    assert np.allclose(err_var[0] / beta[0], nmse_th[0])
    # orthogonality principle: E[hhat^H e] = 0 (relative to beta)
    corr = np.abs(np.mean(np.conj(hhat) * e, axis=(0, 3))) / beta
    assert np.all(corr < 0.02)
    # E|hhat|^2 = beta - c = beta (1 - NMSE)
    p_hat = np.mean(np.abs(hhat) ** 2, axis=(0, 3))
    assert np.all(np.abs(p_hat - beta * (1 - nmse_th)) < 0.03 * beta)


def test_nmse_vanishes_without_contamination_at_high_snr() -> None:
    beta = np.full((2, 3), 1e-7)  # tau_p p_u beta / sigma^2 ~ 1e5
    colour = np.arange(3)
    assert np.all(nmse_theory(beta, colour, P_U, SIGMA2) < 1e-4)
    # with full reuse and equal gains the NMSE tends to (K-1)/K
    assert np.allclose(nmse_theory(beta, np.zeros(3, int), P_U, SIGMA2), 2 / 3, atol=1e-4)


def test_co_pilot_ues_see_identical_observation() -> None:
    beta, colour, assoc = _setup()
    rng = np.random.default_rng(13)
    h = channel_from_fading(beta, draw_small_scale_fading((3, 5, 4), rng))
    y = pilot_observation(h, colour, P_U, SIGMA2, rng=rng)
    assert np.array_equal(y[:, 0], y[:, 1])  # UEs 0 and 1 share PS 0
    assert np.array_equal(y[:, 2], y[:, 4])
    assert not np.allclose(y[:, 0], y[:, 2])


def test_unassociated_pairs_are_zero_and_carry_beta() -> None:
    beta, colour, _ = _setup()
    assoc = np.zeros((3, 5), dtype=bool)
    assoc[0] = True
    rng = np.random.default_rng(14)
    h = channel_from_fading(beta, draw_small_scale_fading((3, 5, 4), rng))
    hhat, err_var = estimate_channels(h, beta, assoc, colour, P_U, SIGMA2, rng)
    assert np.all(hhat[1:] == 0)
    assert np.array_equal(err_var[1:], beta[1:])
    assert np.all(err_var[0] < beta[0])


def test_batched_colours_match_single() -> None:
    beta, colour, assoc = _setup()
    rng = np.random.default_rng(15)
    h = channel_from_fading(beta, draw_small_scale_fading((2, 3, 5, 4), rng))  # [S, ...]
    noise = rng.standard_normal((2, 3, 5, 4)) + 1j * rng.standard_normal((2, 3, 5, 4))
    colours = np.array([colour, [0, 1, 2, 3, 4]])  # [B, K]
    yb = pilot_observation(h, colours[:, None], P_U, SIGMA2, noise=noise,
                           tau_p=pilot_length(colours)[:, None])
    for b in range(2):
        ys = pilot_observation(h, colours[b], P_U, SIGMA2, noise=noise)
        assert np.allclose(yb[b], ys)
    with pytest.raises(ValueError):
        pilot_observation(h, colour, P_U, SIGMA2)


def test_noise_per_ue_switch() -> None:
    beta, colour, assoc = _setup()
    rng = np.random.default_rng(16)
    h = channel_from_fading(beta, draw_small_scale_fading((3, 5, 4), rng))
    y = pilot_observation(h, colour, P_U, SIGMA2, rng=rng, noise_per="ue")
    assert not np.allclose(y[:, 0], y[:, 1])  # co-pilot UEs get independent noise now
    with pytest.raises(ValueError):
        pilot_observation(h, colour, P_U, SIGMA2, rng=rng, noise_per="ap")
