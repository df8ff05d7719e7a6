"""Tests of netsim.comm.wmmse (spec 4.3, acceptance check 9)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netsim.comm.association import associate
from netsim.comm.net_se import (
    equivalent_channel_true,
    sinr_from_equivalent,
)
from netsim.comm.subframe import prepare_subframe
from netsim.comm.wmmse import (
    WMMSE_SPEC_RULE,
    WMMSEConfig,
    surrogate_rate,
    wmmse_power,
)
from netsim.phy.umi import (
    ChannelConfig,
    channel_from_fading,
    draw_small_scale_fading,
    drop_users,
    hex_ap_positions,
    large_scale_fading,
    noise_power_w,
)

CFG = ChannelConfig.umi()
SIGMA2 = noise_power_w(CFG)
# The hardest subframes met in the seed-004 Table II pipeline (analysis/reproduce_power.py:
# M = 7, K = 42, N = 2, DSatur-tabu pilots): seed 2025 drop 19 subframe 4 (the only one of the
# 800 calls of the full run that the linear extrapolation alone left at the 100-sweep cap) and
# the same for seeds 2027 (drop 14, subframe 2) and 2028 (drop 0, subframe 2). Ghat is stored
# only where both pairs are associated, the only entries the variance surrogate reads.
# test_hard_fixture_provenance regenerates them from the seeds.
HARD = Path(__file__).parent / "data" / "wmmse_hard_n2.npz"
HARD_NAMES = ("s2025_d19_t4", "s2027_d14_t2", "s2028_d00_t2")
HARD_SEEDS = {"s2025_d19_t4": (2025, 19, 4), "s2027_d14_t2": (2027, 14, 2),
              "s2028_d00_t2": (2028, 0, 2)}


def hard_instance(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    with np.load(HARD) as z:
        return (z[f"{name}_ghat"], z[f"{name}_err_var"], z[f"{name}_assoc"],
                float(z[f"{name}_sigma2"]), float(z[f"{name}_p_max"]))


def subframe(seed: int, n_ue: int = 21, n_ant: int = 4, reuse: int = 8):
    """One subframe of the seed-004 pipeline at reduced size (M = 7)."""
    rng = np.random.default_rng(seed)
    ap = hex_ap_positions(7, CFG.isd_m)
    ue = drop_users(ap, n_ue, CFG, rng)
    beta = large_scale_fading(ap, ue, CFG, rng)
    assoc = associate(beta)
    colour = np.arange(n_ue) % reuse
    h = channel_from_fading(beta, draw_small_scale_fading((7, n_ue, n_ant), rng))
    csi = prepare_subframe(h, beta, assoc, colour, CFG.p_pilot_w, SIGMA2, rng)
    return h, csi.w, csi.ghat, csi.err_var, assoc


@pytest.mark.parametrize(("seed", "update", "memory"), [
    (0, "per_sweep", 6), (1, "per_sweep", 6), (2, "per_ap", 6), (0, "per_sweep", 0),
    (2, "per_ap", 0),
])
def test_monotone_feasible_converged(seed: int, update: str, memory: int) -> None:
    _, _, ghat, err, assoc = subframe(seed)
    res = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w,
                      WMMSEConfig(weight_update=update, anderson_memory=memory))
    obj = res.objective
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[:-1]))
    assert res.converged and res.info["sweeps"] <= 100
    assert res.iterations == res.info["sweeps"] + res.info["refine_iterations"]
    assert obj.size == res.iterations + 1
    assert np.all(res.power_w >= 0)
    assert np.all(res.power_w[~assoc] == 0)
    assert np.all(res.power_w.sum(axis=1) <= CFG.p_max_w * (1 + 1e-9))
    assert obj[-1] == pytest.approx(surrogate_rate(ghat, err, assoc, res.power_w, SIGMA2))


def test_perfect_csi_surrogate_equals_true_rate() -> None:
    h, w, _, _, assoc = subframe(3)
    full = np.ones_like(assoc)
    g = equivalent_channel_true(h, w)
    rng = np.random.default_rng(4)
    p = rng.uniform(0, 1, size=assoc.shape) * assoc
    true = np.log2(1 + sinr_from_equivalent(g, p, SIGMA2)).sum()
    assert surrogate_rate(g, np.zeros(assoc.shape), full, p, SIGMA2) == pytest.approx(true)


def test_water_filling_single_ap() -> None:
    # one AP, orthogonal (interference-free) users, perfect CSI: the optimum is water-filling
    gains = np.array([4.0, 1.0, 0.25, 0.05])  # |G_kk|^2 / sigma^2 with sigma^2 = 1
    k = gains.size
    ghat = np.zeros((1, k, k), dtype=complex)
    ghat[0, np.arange(k), np.arange(k)] = np.sqrt(gains)
    assoc = np.ones((1, k), dtype=bool)
    p_max = 3.0
    res = wmmse_power(ghat, np.zeros((1, k)), assoc, 1.0, p_max,
                      WMMSEConfig(max_iter=2000, tol=1e-12))
    # closed-form water level: p_k = max(0, mu - 1/g_k), sum p_k = P_max
    inv = np.sort(1 / gains)
    for n_act in range(k, 0, -1):
        mu = (p_max + inv[:n_act].sum()) / n_act
        if mu > inv[n_act - 1]:
            break
    p_wf = np.maximum(0, mu - 1 / gains)
    assert np.allclose(res.power_w[0], p_wf, atol=2e-3)


def test_bisection_and_newton_agree() -> None:
    _, _, ghat, err, assoc = subframe(5, n_ant=2)
    # on the sweeps alone (spec rule): the refinement would amplify 1e-7 differences
    a = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w,
                    replace(WMMSE_SPEC_RULE, multiplier="bisection"))
    b = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w,
                    replace(WMMSE_SPEC_RULE, multiplier="newton"))
    assert a.iterations == b.iterations
    assert np.allclose(a.power_w, b.power_w, rtol=1e-6, atol=1e-9 * CFG.p_max_w)
    assert np.all(b.power_w.sum(axis=1) <= CFG.p_max_w * (1 + 1e-9))


def test_wmmse_beats_equal_power_on_true_channel() -> None:
    gains = []
    for seed in range(4):
        h, w, ghat, err, assoc = subframe(10 + seed, n_ant=2)
        res = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w)
        load = assoc.sum(axis=1, keepdims=True)
        p_eq = np.where(assoc, CFG.p_max_w / np.maximum(load, 1), 0.0)
        g = equivalent_channel_true(h, w)
        r_w = np.log2(1 + sinr_from_equivalent(g, res.power_w, SIGMA2)).sum()
        r_e = np.log2(1 + sinr_from_equivalent(g, p_eq, SIGMA2)).sum()
        gains.append(r_w / r_e)
    # calibration (spec 4.4): about 3x at N = 2; require a clear gain on average
    assert np.mean(gains) > 1.3


def test_csi_error_ignored_variant_is_feasible_and_optimistic() -> None:
    _, _, ghat, err, assoc = subframe(6)
    naive = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w, WMMSEConfig(csi_error="ignore"))
    robust = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w)
    assert np.all(naive.power_w.sum(axis=1) <= CFG.p_max_w * (1 + 1e-9))
    assert np.all(naive.power_w[~assoc] == 0)
    assert np.all(np.diff(naive.objective) >= -1e-9 * np.abs(naive.objective[:-1]))
    # without the error variance the surrogate is larger for the same powers
    assert naive.objective[-1] > robust.objective[-1]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_ap=st.integers(1, 4), n_ue=st.integers(1, 7),
       p_max=st.floats(0.01, 100.0))
def test_property_feasible_and_monotone_on_random_inputs(
    seed: int, n_ap: int, n_ue: int, p_max: float
) -> None:
    rng = np.random.default_rng(seed)
    assoc = rng.random((n_ap, n_ue)) < 0.6
    assoc[rng.integers(0, n_ap, size=n_ue), np.arange(n_ue)] = True
    scale = 10 ** rng.uniform(-12, -9, size=(n_ap, n_ue))
    ghat = (rng.standard_normal((n_ap, n_ue, n_ue)) + 1j * rng.standard_normal((n_ap, n_ue, n_ue)))
    ghat *= np.sqrt(scale)[:, None, :]
    err = scale * rng.uniform(0.01, 1.0, size=(n_ap, n_ue))
    res = wmmse_power(ghat, err, assoc, 1e-13, p_max)
    assert np.all(res.power_w >= 0) and np.all(res.power_w[~assoc] == 0)
    assert np.all(res.power_w.sum(axis=1) <= p_max * (1 + 1e-9))
    obj = res.objective
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[:-1]))


@pytest.mark.parametrize("name", HARD_NAMES)
def test_hard_subframe_converges_within_cap(name: str) -> None:
    # spec check 9 on the slow subframes: monotone Rsur (relative slack 1e-9), exact per-AP
    # feasibility, p >= 0, no power off the association, convergence within 100 sweeps
    ghat, err, assoc, sigma2, p_max = hard_instance(name)
    linear = wmmse_power(ghat, err, assoc, sigma2, p_max,
                         replace(WMMSE_SPEC_RULE, anderson_memory=0))
    assert not linear.converged and linear.iterations == 100  # the instance is a hard one
    res = wmmse_power(ghat, err, assoc, sigma2, p_max, WMMSE_SPEC_RULE)
    assert res.converged and res.iterations <= 100
    assert res.info["anderson_accepted"] > 0
    obj = res.objective
    assert obj.size == res.iterations + 1
    assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[:-1]))
    assert np.all(res.power_w >= 0) and np.all(res.power_w[~assoc] == 0)
    assert np.all(res.power_w.sum(axis=1) <= p_max)
    assert obj[-1] == pytest.approx(surrogate_rate(ghat, err, assoc, res.power_w, sigma2))
    # same quality as the linear extrapolation that ran into the cap (measured: -2.3 %, -0.2 %,
    # +0.8 % for the three subframes; their long-run optima differ by a few % between methods,
    # the surrogate being non-concave with many near-flat directions)
    assert obj[-1] >= 0.97 * linear.objective[-1]


def test_acceleration_variants_agree_with_plain_sweeps() -> None:
    # with anderson_memory = 0 and no extrapolation the algorithm is spec 4.3 verbatim: plain
    # block-coordinate sweeps; all three variants must end feasible and monotone, and the
    # accelerated ones must not end below the plain one on this (well-behaved) subframe
    _, _, ghat, err, assoc = subframe(7, n_ant=4)
    plain = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w,
                        replace(WMMSE_SPEC_RULE, anderson_memory=0, extrapolation=False,
                                max_iter=1000))
    for cfg in (replace(WMMSE_SPEC_RULE, anderson_memory=0), WMMSE_SPEC_RULE, WMMSEConfig()):
        res = wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w, cfg)
        assert res.converged
        assert np.all(np.diff(res.objective) >= -1e-9 * np.abs(res.objective[:-1]))
        assert np.all(res.power_w.sum(axis=1) <= CFG.p_max_w)
        assert res.objective[-1] >= plain.objective[-1] * (1 - 1e-3)
    assert plain.info["anderson_accepted"] == 0


def test_negative_anderson_memory_is_rejected() -> None:
    _, _, ghat, err, assoc = subframe(0)
    with pytest.raises(ValueError, match="anderson_memory"):
        wmmse_power(ghat, err, assoc, SIGMA2, CFG.p_max_w, WMMSEConfig(anderson_memory=-1))


@pytest.mark.slow
@pytest.mark.parametrize("name", HARD_NAMES)
def test_hard_fixture_provenance(name: str) -> None:
    # the script behind data/wmmse_hard_n2.npz: the loop of run_frames in
    # analysis/reproduce_power.py (same streams, full TabuConfig) up to the stored subframe
    from netsim.comm.pilot_assignment import TabuConfig, dsatur_tabu
    from netsim.rng import RandomStreams

    seed, drop, sub = HARD_SEEDS[name]
    streams = RandomStreams(seed)
    ap = hex_ap_positions(7, CFG.isd_m)
    rng_lsf = streams.generator("lsf", drop)
    ue = drop_users(ap, 42, CFG, rng_lsf)
    beta = large_scale_fading(ap, ue, CFG, rng_lsf)
    assoc = associate(beta)
    pa = dsatur_tabu(beta, assoc, 2, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                     noise_w=SIGMA2, tau_c=200, rng=streams.generator("tabu", drop, 2),
                     config=TabuConfig(n_exact=None))  # the search the fixture was made with
    rng = streams.generator("ssf", drop, 2)
    for _ in range(sub + 1):
        h = channel_from_fading(beta, draw_small_scale_fading((7, 42, 2), rng))
        csi = prepare_subframe(h, beta, assoc, pa.colour, CFG.p_pilot_w, SIGMA2, rng)
    ghat, err, assoc_f, sigma2, p_max = hard_instance(name)
    both = assoc[:, :, None] & assoc[:, None, :]
    assert np.array_equal(assoc, assoc_f) and sigma2 == SIGMA2 and p_max == CFG.p_max_w
    assert np.allclose(np.where(both, csi.ghat, 0.0), ghat, rtol=1e-12, atol=0.0)
    # err_var = beta - (estimated gain) cancels: its last digits depend on the BLAS build
    # (5.6e-12 relative on s2027_d14_t2 with numpy 2.4), so 1e-9 rather than 1e-12
    assert np.allclose(csi.err_var, err, rtol=1e-9, atol=0.0)


def test_no_associated_pair_returns_at_once_converged():
    """With nothing associated Rsur is 0 and the relative rule cannot fire: the kernel returns
    the (all-zero) start as converged after 0 sweeps instead of running to the cap."""
    m, k = 3, 4
    ghat = np.ones((m, k, k), dtype=complex)
    res = wmmse_power(ghat, np.zeros((m, k)), np.zeros((m, k), dtype=bool), 1e-9, 1.0)
    assert res.converged and res.iterations == 0
    assert np.all(res.power_w == 0.0)
