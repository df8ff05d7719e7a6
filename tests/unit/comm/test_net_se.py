"""Tests of netsim.comm.net_se (spec 3.7-3.8, acceptance check 6)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.net_se import (
    equivalent_channel_estimated,
    equivalent_channel_true,
    net_sum_se,
    pilot_overhead,
    sinr_from_equivalent,
    sinr_true,
)
from netsim.comm.rzf import rzf_beamformers


def _rand(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m, k, n = 3, 5, 4
    assoc = rng.random((m, k)) < 0.6
    assoc[rng.integers(0, m, size=k), np.arange(k)] = True
    h = _rand(rng, (m, k, n))
    w = rzf_beamformers(h * assoc[..., None], assoc, 0.5)
    p = rng.uniform(0.1, 1.0, size=(m, k)) * assoc
    return h, w, p, assoc


def test_sinr_true_matches_loop_oracle() -> None:
    h, w, p, _ = _case()
    sigma2 = 0.3
    sinr = sinr_true(h, w, p, sigma2)
    m_, k_, _ = h.shape
    for k in range(k_):
        amp = np.zeros(k_, dtype=complex)  # amplitude of stream i at UE k
        for i in range(k_):
            for m in range(m_):
                amp[i] += np.vdot(h[m, k], w[m, i]) * np.sqrt(p[m, i])
        ref = abs(amp[k]) ** 2 / (np.sum(np.abs(amp) ** 2) - abs(amp[k]) ** 2 + sigma2)
        assert sinr[k] == pytest.approx(ref, rel=1e-12)
    g = equivalent_channel_true(h, w)
    assert np.allclose(sinr_from_equivalent(g, p, sigma2), sinr)
    assert g[0, 1, 2] == pytest.approx(np.vdot(h[0, 2], w[0, 1]))


def test_phase_offsets_common_vs_per_ap() -> None:
    h, w, p, assoc = _case(1)
    base = sinr_true(h, w, p, 0.1)
    common = sinr_true(h * np.exp(1j * 0.7), w, p, 0.1)
    assert np.allclose(base, common)  # a common phase is invisible
    phi = np.array([0.0, 2.0, -2.5])[:, None, None]
    per_ap = sinr_true(h * np.exp(1j * phi), w, p, 0.1)
    multi = assoc.sum(axis=0) > 1  # coherent joint transmission suffers
    assert not np.allclose(base[multi], per_ap[multi])


def test_estimated_equivalent_channel() -> None:
    h, w, _, assoc = _case(2)
    beta = np.full(assoc.shape, 2.0)
    ghat = equivalent_channel_estimated(h * assoc[..., None], w, beta, assoc)
    g = equivalent_channel_true(h, w)
    known = np.broadcast_to(assoc[:, None, :], g.shape)
    assert np.allclose(ghat[known], g[known])
    wn = np.linalg.norm(w, axis=-1)
    stat = wn[:, :, None] * np.sqrt(2.0)
    assert np.allclose(ghat[~known], np.broadcast_to(stat, g.shape)[~known])
    zero = equivalent_channel_estimated(h, w, beta, assoc, unknown="zero")
    assert np.all(zero[~known] == 0)
    all_assoc = np.ones_like(assoc)
    assert np.allclose(equivalent_channel_estimated(h, w, beta, all_assoc), g)


def test_pilot_overhead_42_of_200() -> None:
    # spec check 6: tau_p = K = 42 costs 21 % of tau_c = 200
    assert pilot_overhead(42, 200) == pytest.approx(0.21)
    sinr = np.array([1.0, 3.0, 7.0])
    assert net_sum_se(sinr, 42, 200) == pytest.approx(0.79 * (1 + 2 + 3))
    assert np.allclose(net_sum_se(np.stack([sinr, sinr]), np.array([0, 100]), 200), [6, 3])


def test_subframe_helpers_chain_the_kernels() -> None:
    from netsim.comm.csi_mmse import estimate_channels
    from netsim.comm.subframe import evaluate_subframe, prepare_subframe

    rng = np.random.default_rng(9)
    beta = 10 ** rng.uniform(-11, -9, size=(3, 6))
    assoc = beta >= 0.1 * beta.max(axis=0)
    colour = np.array([0, 1, 2, 0, 1, 2])
    h = np.sqrt(beta)[..., None] * _rand(rng, (3, 6, 4))
    csi = prepare_subframe(h, beta, assoc, colour, 0.2, 1e-13, np.random.default_rng(1))
    hhat, err = estimate_channels(h, beta, assoc, colour, 0.2, 1e-13, np.random.default_rng(1))
    assert np.allclose(csi.hhat, hhat) and np.allclose(csi.err_var, err)
    p = np.where(assoc, 1.0, 0.0)
    out = evaluate_subframe(h, csi.w, p, 1e-13, 3, 200)
    assert out.net_se == pytest.approx(out.rate_bps_hz.sum())
    assert np.allclose(out.sinr, sinr_true(h, csi.w, p, 1e-13))


def test_antenna_node_view() -> None:
    from netsim.comm.net_se import antenna_node_view

    rng = np.random.default_rng(3)
    assoc = rng.random((3, 4)) < 0.5
    ghat = _rand(rng, (3, 4, 4))
    an, g_an = antenna_node_view(ghat, assoc)
    assert an.shape == (assoc.sum(), 2) and g_an.shape == (assoc.sum(), 4)
    for n, (m, k) in enumerate(an):
        assert assoc[m, k] and np.array_equal(g_an[n], ghat[m, k])
