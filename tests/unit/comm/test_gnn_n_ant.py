"""STS-GNN antenna-count input (``features.n_ant_ref``): the power head's pilot SNR feature
becomes beta p_u N / (sigma^2 n_ant_ref), the pilot head keeps beta p_u / sigma^2. Checked by
its defining identity (N / n_ref scales beta in the power pass only), its neutrality at
N = n_ref and without the field, and a malformed field's error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from netsim.comm.power.gnn import (
    GNNWeights,
    GNNWeightsError,
    default_weights_path,
    gnn_pilot_assignment,
    load_gnn_weights,
    save_gnn_weights,
    sts_power,
)
from netsim.phy import umi


def _with_ref(tmp_path, ref):
    """(the shipped STS networks WITHOUT an antenna input, the path of a copy with n_ant_ref = ref)."""
    w = load_gnn_weights(default_weights_path("sts")).without_copilot()
    meta = json.loads(json.dumps(w.meta))
    for key in ("n_ant_ref", "readout_n_ref", "readout_n_range"):  # no antenna dependence at all
        meta["features"].pop(key, None)
    params = {"sts": {k: v for k, v in w.params["sts"].items() if not k.endswith("_dlog2n")}}
    base = GNNWeights("sts", w.archs, params, json.loads(json.dumps(meta)), w.path)
    meta["features"]["n_ant_ref"] = ref
    path = tmp_path / "sts_ref.npz"
    save_gnn_weights(path, GNNWeights("sts", w.archs, params, meta))
    return base, path


def _drop(rng, n_ap=5, n_ue=11):
    beta = 10 ** rng.uniform(-13.5, -9.0, (n_ap, n_ue))  # [M, K] off-grid gains
    assoc = rng.random((n_ap, n_ue)) < 0.4
    assoc[np.argmax(beta, axis=0), np.arange(n_ue)] = True
    return beta, assoc


def test_n_ant_scales_the_pilot_snr_feature_exactly(tmp_path):
    base, path = _with_ref(tmp_path, 12)
    w = load_gnn_weights(path)
    assert w.n_ant_ref == 12.0 and base.n_ant_ref is None
    cfg = umi.ChannelConfig.umi()
    s2 = umi.noise_power_w(cfg)
    rng = np.random.default_rng(17)
    for n_ant in (3, 12, 40):
        beta, assoc = _drop(rng)
        z = rng.uniform(0.0, 1.0, (beta.shape[1], beta.shape[1]))
        p_ref = sts_power(base, beta * n_ant / 12.0, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[0]
        d_ref = sts_power(base, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[1]
        p, d = sts_power(w, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=n_ant)
        np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=0.0)  # power: scaled features
        np.testing.assert_array_equal(d.colour, d_ref.colour)  # pilots: never moved by N
        np.testing.assert_array_equal(d.logits, d_ref.logits)
        x = gnn_pilot_assignment(w, beta, assoc, cfg.p_pilot_w, s2, None, framework="sts", z=z, n_ant=n_ant)
        np.testing.assert_array_equal(x.colour, d.colour)
    # without N (or at N = n_ref) the file is the original function; a file without the
    # field ignores N
    beta, assoc = _drop(rng)
    z = rng.uniform(0.0, 1.0, (beta.shape[1], beta.shape[1]))
    a = sts_power(base, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[0]
    for ww, n in ((w, None), (w, 12), (base, 5)):
        np.testing.assert_array_equal(sts_power(ww, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z,
                                                n_ant=n)[0], a)


@pytest.mark.parametrize("bad", [0, -4, "sixteen", float("nan")])
def test_malformed_n_ant_ref_names_the_file(tmp_path, bad):
    _, path = _with_ref(tmp_path, bad)
    with pytest.raises(GNNWeightsError, match="n_ant_ref"):
        load_gnn_weights(path)
