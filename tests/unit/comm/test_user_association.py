"""Tests of netsim.comm.association (spec 3.2, acceptance check 2)."""

from __future__ import annotations

import numpy as np

from netsim.comm.association import associate
from netsim.phy.umi import ChannelConfig, drop_users, hex_ap_positions, large_scale_fading


def test_threshold_rule_against_loop() -> None:
    rng = np.random.default_rng(0)
    beta = 10 ** rng.uniform(-13, -8, size=(7, 30))
    a = associate(beta, -6.0)
    for k in range(30):
        best = beta[:, k].max()
        for m in range(7):
            assert a[m, k] == (10 * np.log10(beta[m, k] / best) >= -6.0)
    assert np.all(associate(beta, -np.inf))
    assert np.all(associate(beta, 0.0).sum(axis=0) == 1)


def test_defaults_give_spec_cluster_size() -> None:
    cfg = ChannelConfig.umi()
    ap = hex_ap_positions(7, cfg.isd_m)
    rng = np.random.default_rng(1)
    sizes = []
    for _ in range(20):
        ue = drop_users(ap, 42, cfg, rng)
        beta = large_scale_fading(ap, ue, cfg, rng)
        a = associate(beta)
        assert np.all(a.sum(axis=0) >= 1)
        assert np.all(a[beta.argmax(axis=0), np.arange(42)])
        sizes.append(a.sum(axis=0).mean())
    # spec 3.2 / check 2: mean |M_k| about 1.96, in [1.5, 2.5]
    assert 1.5 <= np.mean(sizes) <= 2.5
