"""STS power readout with an antenna-count term (``features.readout_n_ref``): the last layer's
AP-UE weights become W + log2(N / N_ref) W_dlog2n. Checked against a file whose readout weights
are folded by hand at each N, its neutrality at N = N_ref / without N / without the field, the
pilots' independence of N, and the errors of a malformed file."""

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

_READOUT = ("U1", "V1", "V2", "b1")


def _base():
    """The shipped STS networks without any antenna-count term (and without the co-pilot readout, whose
    power branch reads N)."""
    w = load_gnn_weights(default_weights_path("sts")).without_copilot()
    meta = json.loads(json.dumps(w.meta))
    for key in ("n_ant_ref", "readout_n_ref", "readout_n_range"):
        meta["features"].pop(key, None)
    params = {k: v for k, v in w.params["sts"].items() if not k.endswith("_dlog2n")}
    return GNNWeights("sts", w.archs, {"sts": params}, meta, w.path)


def _deltas(w, rng, scale=0.3):
    last = w.archs["sts"].layers - 1
    return {f"sts.{last}.{n}_dlog2n": rng.normal(0.0, scale, w.params["sts"][f"sts.{last}.{n}"].shape)
            for n in _READOUT}


def _write(tmp_path, w, deltas, ref, name="rn.npz", framework="sts", t_range=None):
    meta = json.loads(json.dumps(w.meta))
    if ref is not None:
        meta["features"]["readout_n_ref"] = ref
    if t_range is not None:
        meta["features"]["readout_n_range"] = t_range
    path = tmp_path / name
    save_gnn_weights(path, GNNWeights(framework, w.archs, {"sts": {**w.params["sts"], **deltas}}, meta))
    return path


def _drop(rng, n_ap=6, n_ue=13):
    beta = 10 ** rng.uniform(-13.5, -9.0, (n_ap, n_ue))  # [M, K] off-grid gains
    assoc = rng.random((n_ap, n_ue)) < 0.4
    assoc[np.argmax(beta, axis=0), np.arange(n_ue)] = True
    return beta, assoc


def test_readout_term_is_the_hand_folded_readout_and_never_moves_the_pilots(tmp_path):
    base = _base()
    rng = np.random.default_rng(31)
    deltas = _deltas(base, rng)
    w = load_gnn_weights(_write(tmp_path, base, deltas, 12))
    assert w.readout_n_ref == 12.0 and base.readout_n_ref is None
    cfg = umi.ChannelConfig.umi()
    s2 = umi.noise_power_w(cfg)
    last = base.archs["sts"].layers - 1
    for n_ant in (2, 5, 12, 48):
        t = np.log2(n_ant / 12.0)
        folded = dict(base.params["sts"])  # the readout at this N, by hand, as a plain file
        for n in _READOUT:
            folded[f"sts.{last}.{n}"] = base.params["sts"][f"sts.{last}.{n}"] + t * deltas[f"sts.{last}.{n}_dlog2n"]
        ref_w = GNNWeights("sts", base.archs, {"sts": folded}, base.meta)
        beta, assoc = _drop(rng)
        z = rng.uniform(0.0, 1.0, (beta.shape[1], beta.shape[1]))
        p, d = sts_power(w, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=n_ant)
        p_ref = sts_power(ref_w, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[0]
        d0 = sts_power(base, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[1]
        np.testing.assert_allclose(p, p_ref, rtol=1e-12, atol=1e-30)
        np.testing.assert_array_equal(d.logits, d0.logits)  # pilots: the same at every N
        np.testing.assert_array_equal(d.colour, d0.colour)
        x = gnn_pilot_assignment(w, beta, assoc, cfg.p_pilot_w, s2, None, framework="sts", z=z, n_ant=n_ant)
        np.testing.assert_array_equal(x.colour, d0.colour)
        assert np.all(p[~assoc] == 0) and np.all(p.sum(axis=1) <= cfg.p_max_w)
        if n_ant != 12:  # the term acts (random deltas of size 0.3)
            p0 = sts_power(base, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[0]
            assert np.abs(p - p0).max() > 1e-3 * cfg.p_max_w
    # N = N_ref, no N, or a file without the field: the shipped function bit for bit
    beta, assoc = _drop(rng)
    z = rng.uniform(0.0, 1.0, (beta.shape[1], beta.shape[1]))
    a = sts_power(base, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z)[0]
    for ww, n in ((w, 12), (w, None), (base, 5)):
        np.testing.assert_array_equal(sts_power(ww, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z,
                                                n_ant=n)[0], a)
    with pytest.raises(ValueError, match="antennas"):
        sts_power(w, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=0)


def test_clipped_readout_term_is_constant_outside_its_range(tmp_path):
    """readout_n_range [-2, 0] with N_ref = 16: N >= 16 is the shipped function bit for bit,
    N <= 4 is the N = 4 function, and in between the term acts."""
    base = _base()
    rng = np.random.default_rng(5)
    w = load_gnn_weights(_write(tmp_path, base, _deltas(base, rng), 16, t_range=[-2, 0]))
    assert w.readout_n_range == (-2.0, 0.0)
    cfg = umi.ChannelConfig.umi()
    s2 = umi.noise_power_w(cfg)
    beta, assoc = _drop(rng, 7, 17)
    z = rng.uniform(0.0, 1.0, (17, 17))

    def p(ww, n):
        return sts_power(ww, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=n)[0]

    shipped = p(base, None)
    for n in (16, 17, 64, 1000):
        np.testing.assert_array_equal(p(w, n), shipped)
    at4 = p(w, 4)
    for n in (1, 2, 3):
        np.testing.assert_array_equal(p(w, n), at4)
    assert np.abs(at4 - shipped).max() > 1e-3 * cfg.p_max_w
    assert np.abs(p(w, 8) - at4).max() > 1e-3 * cfg.p_max_w and np.abs(p(w, 8) - shipped).max() > 1e-3 * cfg.p_max_w


@pytest.mark.parametrize("bad", [[0.5, 1.0], [-1.0, -0.5], [-1.0], "(-1, 0)", [-1.0, float("nan")], [True, 0]])
def test_malformed_readout_n_range_names_the_file(tmp_path, bad):
    base = _base()
    path = _write(tmp_path, base, _deltas(base, np.random.default_rng(1)), 16, t_range=bad)
    with pytest.raises(GNNWeightsError, match=f"{path.name}.*readout_n_range"):
        load_gnn_weights(path)


@pytest.mark.parametrize("bad", [0, -4, "sixteen", float("nan"), True])
def test_malformed_readout_n_ref_names_the_file(tmp_path, bad):
    base = _base()
    path = _write(tmp_path, base, _deltas(base, np.random.default_rng(1)), bad)
    with pytest.raises(GNNWeightsError, match=f"{path.name}.*readout_n_ref"):
        load_gnn_weights(path)


def test_malformed_readout_arrays_name_the_file_and_the_fault(tmp_path):
    base = _base()
    rng = np.random.default_rng(2)
    last = base.archs["sts"].layers - 1
    key = f"sts.{last}.V1_dlog2n"
    d = _deltas(base, rng)
    missing = {k: v for k, v in d.items() if k != key}
    with pytest.raises(GNNWeightsError, match=f"{key}.*missing"):
        load_gnn_weights(_write(tmp_path, base, missing, 16, "a.npz"))
    with pytest.raises(GNNWeightsError, match=f"{key}.*shape"):
        load_gnn_weights(_write(tmp_path, base, {**d, key: np.zeros((2, 3))}, 16, "b.npz"))
    bad = d[key].copy()
    bad[0, 0] = np.inf
    with pytest.raises(GNNWeightsError, match=f"{key}.*non-finite"):
        load_gnn_weights(_write(tmp_path, base, {**d, key: bad}, 16, "c.npz"))
    with pytest.raises(GNNWeightsError, match="readout_n_ref missing"):  # arrays without the field
        load_gnn_weights(_write(tmp_path, base, d, None, "d.npz"))
    dts = load_gnn_weights(default_weights_path("dts"))
    meta = json.loads(json.dumps(dts.meta))
    meta["features"]["readout_n_ref"] = 16
    path = tmp_path / "dts.npz"
    save_gnn_weights(path, GNNWeights("dts", dts.archs, dts.params, meta))
    with pytest.raises(GNNWeightsError, match="readout_n_ref is for an STS file"):
        load_gnn_weights(path)


def test_shipped_sts_file_changes_only_below_its_reference():
    """The shipped STS file's readout term (if any) leaves N >= readout_n_ref and every pilot
    decision exactly as the same networks without it (both without the file's co-pilot
    readout, if any: its power branch reads N on purpose; tests/unit/comm/test_gnn_copilot.py)."""
    shipped = load_gnn_weights(default_weights_path("sts")).without_copilot()
    plain = _base()
    hi = (shipped.readout_n_range or (0.0, 0.0))[1]
    rng = np.random.default_rng(8)
    cfg = umi.ChannelConfig.umi()
    s2 = umi.noise_power_w(cfg)
    beta, assoc = _drop(rng, 7, 21)
    z = rng.uniform(0.0, 1.0, (21, 21))
    ref = shipped.readout_n_ref or 16
    for n in (2, 8, int(ref), 64):
        p, d = sts_power(shipped, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=n)
        p0, d0 = sts_power(plain, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=n)
        np.testing.assert_array_equal(d.logits, d0.logits)
        if n >= ref and hi == 0.0:
            np.testing.assert_array_equal(p, p0)
