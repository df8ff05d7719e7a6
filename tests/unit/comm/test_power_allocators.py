"""Tests of netsim.comm.power (registry and reference policies)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from netsim.comm.association import associate
from netsim.comm.power import (
    POWER_ALLOCATORS,
    PowerAllocation,
    get_power_allocator,
    maxmin_power,
    register_power_allocator,
)
from netsim.comm.subframe import prepare_subframe
from netsim.comm.wmmse import wmmse_terms
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


def test_registry_shares_one_signature() -> None:
    assert {"equal", "maxmin", "wmmse"} <= set(POWER_ALLOCATORS)
    params = None
    for fn in POWER_ALLOCATORS.values():
        names = list(inspect.signature(fn).parameters)
        params = params or names
        assert names == params == ["ghat", "err_var", "assoc", "noise_w", "p_max_w", "rng", "config"]
    with pytest.raises(KeyError, match="allowed"):
        get_power_allocator("nope")
    with pytest.raises(ValueError):
        register_power_allocator("equal", maxmin_power)


@pytest.mark.parametrize("name", ["equal", "maxmin", "wmmse"])
def test_every_policy_is_feasible(name: str) -> None:
    _, _, ghat, err, assoc = subframe(20)
    p_max = np.linspace(5.0, CFG.p_max_w, assoc.shape[0])  # per-AP limits as an array
    out = get_power_allocator(name)(ghat, err, assoc, SIGMA2, p_max, rng=np.random.default_rng(0))
    assert isinstance(out, PowerAllocation)
    assert out.power_w.shape == assoc.shape
    assert np.all(out.power_w >= 0) and np.all(out.power_w[~assoc] == 0)
    assert np.all(out.power_w.sum(axis=1) <= p_max * (1 + 1e-9))


def test_equal_power_values() -> None:
    _, _, ghat, err, assoc = subframe(21)
    out = POWER_ALLOCATORS["equal"](ghat, err, assoc, SIGMA2, 10.0)
    load = assoc.sum(axis=1)
    for m in range(assoc.shape[0]):
        assert np.allclose(out.power_w[m, assoc[m]], 10.0 / load[m])


def test_maxmin_equalises_surrogate_sinr() -> None:
    _, _, ghat, err, assoc = subframe(22, n_ant=8)
    out = maxmin_power(ghat, err, assoc, SIGMA2, CFG.p_max_w)
    a, d = wmmse_terms(ghat, err, assoc)
    v = np.sqrt(out.power_w)
    s = np.einsum("mji,mj->ji", a, v)
    tt = (np.abs(s) ** 2).sum(axis=0) + np.einsum("mji,mj->i", d, v**2) + SIGMA2
    sig = np.abs(np.diag(s)) ** 2
    sinr = sig / (tt - sig)
    assert np.allclose(sinr, out.info["min_sinr"], rtol=1e-6)
    # at the optimum some AP is at its limit
    assert np.max(out.power_w.sum(axis=1)) == pytest.approx(CFG.p_max_w, rel=1e-6)
    assert np.all(np.diff(out.objective) >= 0)


@pytest.mark.parametrize("name", ["equal", "maxmin", "wmmse"])
def test_switched_off_ap(name: str) -> None:
    # the engine passes P_max = 0 for an AP in outage; its pairs must get exactly zero power
    _, _, ghat, err, assoc = subframe(23)
    p_max = np.full(assoc.shape[0], CFG.p_max_w)
    p_max[0] = 0.0
    out = get_power_allocator(name)(ghat, err, assoc, SIGMA2, p_max)
    assert np.all(out.power_w[0] == 0)
    assert np.all(np.isfinite(out.power_w))
    assert np.all(out.power_w.sum(axis=1) <= p_max * (1 + 1e-9))
    assert out.power_w[1:].sum() > 0
