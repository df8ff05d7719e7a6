"""netsim/learn/widen.py: the widened Power-GNN computes the narrow one's function (numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.power.gnn import GNNWeights, default_weights_path, gnn_power, load_gnn_weights
from netsim.comm.power.gnn_layers import power_layer_names
from netsim.learn.widen import widen_power_params


def _stranger_subframes(rng, n_ap, n_ue, n_sub):
    """Random complex Ghat [T, M, K, K] at a ~1e-7 scale and a random association with every UE
    served (own sizes, not the training deployment's)."""
    g = (rng.standard_normal((n_sub, n_ap, n_ue, n_ue)) + 1j * rng.standard_normal((n_sub, n_ap, n_ue, n_ue)))
    g *= 10 ** rng.uniform(-8, -6, (1, n_ap, 1, n_ue))
    assoc = rng.random((n_ap, n_ue)) < 0.4
    assoc[rng.integers(n_ap, size=n_ue), np.arange(n_ue)] = True
    return g, assoc


@pytest.mark.parametrize("width,seed", [(12, 0), (16, 1)])
def test_widened_power_gnn_is_the_same_function(width, seed):
    base = load_gnn_weights(default_weights_path("dts"))
    rng = np.random.default_rng(seed)
    arch, params = widen_power_params(base.params["power"], base.archs["power"], width, rng, 0.3)
    assert arch.width == width
    assert {k: v.shape for k, v in params.items() if k in power_layer_names(arch)} == power_layer_names(arch)
    wide = GNNWeights("dts", {**base.archs, "power": arch}, {**base.params, "power": params}, dict(base.meta))
    # the new channels are alive (a non-zero row), yet the output does not read them
    assert np.abs(params["pow.1.Us"][base.archs["power"].width:]).max() > 0
    for n_ap, n_ue in ((4, 9), (6, 17)):
        g, assoc = _stranger_subframes(rng, n_ap, n_ue, 3)
        p0 = gnn_power(base, g, assoc, 1e-13, 0.2)
        p1 = gnn_power(wide, g, assoc, 1e-13, 0.2)
        assert np.abs(p0).max() > 0
        np.testing.assert_allclose(p1, p0, rtol=1e-12, atol=1e-15)
        p1s = gnn_power(wide, g[0], assoc, 1e-13, 0.2)  # the engine's one-subframe path
        np.testing.assert_allclose(p1s, p0[0], rtol=1e-12, atol=1e-15)


def test_widen_rejects_bad_requests():
    base = load_gnn_weights(default_weights_path("dts"))
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="< current width"):
        widen_power_params(base.params["power"], base.archs["power"], 4, rng)
    with pytest.raises(ValueError, match="Power-GNN only"):
        widen_power_params(base.params["pilot"], base.archs["pilot"], 16, rng)
    bad = dict(base.params["power"])
    bad["pow.0.Us"] = bad["pow.0.Us"][:, :3]
    with pytest.raises(ValueError, match="pow.0.Us"):
        widen_power_params(bad, base.archs["power"], 16, rng)
