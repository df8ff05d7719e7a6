"""Seed-004 GNNs, numpy path: loop oracle, equivariance (check 11), feasibility (check 12),
no-FE collapse (check 13, Prop. 2), weights-file errors. No torch needed."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest

from netsim.comm.association import associate
from netsim.comm.power import POWER_ALLOCATORS
from netsim.comm.power.gnn import (
    FAST_DTYPE,
    GNNWeights,
    GNNWeightsError,
    default_weights_path,
    expected_params,
    gnn_pilot_assignment,
    gnn_power,
    load_gnn_weights,
    power_graph,
    save_gnn_weights,
    sts_power,
)
from netsim.comm.power.gnn_layers import (
    LEAKY_SLOPE,
    GNNArch,
    NumpyOps,
    power_forward,
    sts_forward,
)
from netsim.phy import umi

OPS = NumpyOps()
NOISE = umi.noise_power_w(umi.ChannelConfig.umi())
P_U = umi.ChannelConfig.umi().p_pilot_w
P_MAX = umi.ChannelConfig.umi().p_max_w


def random_params(arch: GNNArch, rng, scale=0.6):
    return {n: scale * rng.standard_normal(s) + (1.0 if n.endswith(".scale") else 0.0)
            for n, s in expected_params(arch).items()}


def random_weights(rng, *, attention=True, fe=True, n_ps=0, layers=3):
    pa = GNNArch("pilot", layers, width=5, att_width=3, attention=attention,
                 random_features=fe, n_ps=n_ps)
    pw = GNNArch("power", 2, width=5)
    dts = GNNWeights("dts", {"pilot": pa, "power": pw},
                     {"pilot": random_params(pa, rng), "power": random_params(pw, rng)},
                     {"features": {"snr_ref": P_MAX / NOISE}})
    sa = GNNArch("sts", layers, width=5, att_width=3, attention=attention, random_features=fe,
                 n_ps=n_ps)
    sts = GNNWeights("sts", {"sts": sa}, {"sts": random_params(sa, rng)},
                     {"features": {"snr_ref": P_MAX / NOISE}})
    return dts, sts


def random_drop(rng, n_ap=4, n_ue=7, n_ant=3):
    """Off-grid random geometry (not the bundled hexagon)."""
    ap = rng.uniform(0, 300, (n_ap, 2))
    ue = rng.uniform(0, 300, (n_ue, 2))
    cfg = umi.ChannelConfig.umi()
    beta = umi.large_scale_fading(ap, ue, cfg, rng)
    assoc = associate(beta, -10.0)
    h = umi.channel_from_fading(beta, umi.draw_small_scale_fading((n_ap, n_ue, n_ant), rng))
    return beta, assoc, h


def ghat_of(rng, beta, assoc, h):
    from netsim.comm.subframe import prepare_subframe

    colour = np.arange(beta.shape[1])
    return prepare_subframe(h, beta, assoc, colour, P_U, NOISE, rng).ghat


# ------------------------------------------------------------------ loop oracle
def _act(x):
    return np.where(x >= 0, x, LEAKY_SLOPE * x)


def _mean(vals, width):
    return np.mean(vals, axis=0) if len(vals) else np.zeros(width)


def power_layer_oracle(p, f, a, last):
    """Eq. (24) and the INF update with explicit neighbour sets (spec 5.1), one layer."""
    n_ap, n_ue = a.shape
    ans = [(m, k) for m in range(n_ap) for k in range(n_ue) if a[m, k]]
    fo = p["Us"].shape[0]
    out = np.zeros(f.shape[:3] + (fo,))
    for (m, k), i in product(ans, range(n_ue)):
        if i == k:
            v1 = _mean([f[m, k, j] for j in range(n_ue) if j != k], f.shape[-1])
            v2 = _mean([f[m2, k, k] for (m2, k2) in ans if k2 == k and m2 != m], f.shape[-1])
            v3 = _mean([f[m2, k2, k] for (m2, k2) in ans if k2 != k], f.shape[-1])
            z = p["Us"] @ f[m, k, k] + p["V1"] @ v1 + p["V2"] @ v2 + p["V3"] @ v3 + p["bs"]
            bn = "bn_sig"
        else:
            v5 = _mean([f[m, k, j] for j in range(n_ue) if j not in (k, i)], f.shape[-1])
            v6 = _mean([f[m2, i, i] for (m2, k2) in ans if k2 == i], f.shape[-1])
            v7 = _mean([f[m2, k2, i] for (m2, k2) in ans if (m2, k2) != (m, k) and k2 != i],
                       f.shape[-1])
            z = p["Uf"] @ f[m, k, i] + p["V4"] @ f[m, k, k] + p["V5"] @ v5 + p["V6"] @ v6 \
                + p["V7"] @ v7 + p["bf"]
            bn = "bn_inf"
        if not last:
            z = _act(z * p[bn + ".scale"] + p[bn + ".shift"])
        out[m, k, i] = z
    return out


def test_power_layer_matches_loop_oracle():
    rng = np.random.default_rng(11)
    beta, assoc, h = random_drop(rng, 3, 5, 2)
    assoc[:, 0] = True  # one UE served by all APs, others by few
    arch = GNNArch("power", 2, width=4)
    params = random_params(arch, rng)
    f0, an_k, m_idx, k_idx = power_graph(ghat_of(rng, beta, assoc, h), assoc, P_MAX / NOISE)
    f = np.zeros(assoc.shape + (assoc.shape[1], 4))  # dense [M, K, K, 4] for the oracle
    f[m_idx, k_idx] = f0[0]
    for l in range(2):
        p = {n.split(".", 2)[2]: v for n, v in params.items() if n.startswith(f"pow.{l}.")}
        f = power_layer_oracle(p, f * assoc[:, :, None, None], assoc, last=(l == 1))
    want = f[m_idx, k_idx, k_idx, 0]
    got = power_forward(OPS, params, arch, f0, an_k, np.ones((1, m_idx.size)))[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def sts_layer_oracle(p, d, e, attention, last):
    """Eqs. (25)-(27) with explicit loops, one layer."""
    n_ap, n_ue, _ = d.shape
    n_ps = e.shape[0]
    dn = np.zeros((n_ap, n_ue, p["U1"].shape[0]))
    en = np.zeros((n_ps, n_ue, p["U2"].shape[0]))
    for m, k in product(range(n_ap), range(n_ue)):
        v1 = _mean([d[m2, k] for m2 in range(n_ap) if m2 != m], d.shape[-1])
        v2 = _mean([d[m, k2] for k2 in range(n_ue) if k2 != k], d.shape[-1])
        dn[m, k] = p["U1"] @ d[m, k] + p["V1"] @ v1 + p["V2"] @ v2 + p["b1"]
    for s, k in product(range(n_ps), range(n_ue)):
        att = np.zeros(e.shape[-1])
        for i in range(n_ue):
            if i == k:
                continue
            if attention:
                sc = np.mean([(p["Wq"] @ d[m, k]) @ (p["Wk"] @ d[m, i]) for m in range(n_ap)])
                alpha = 1 / (1 + np.exp(-sc))
            else:
                alpha = 1.0
            att += alpha * e[s, i] / (n_ue - 1)
        v4 = _mean([e[s2, k] for s2 in range(n_ps) if s2 != s], e.shape[-1])
        en[s, k] = p["U2"] @ e[s, k] + p["V3"] @ d[:, k].mean(0) + p["V4"] @ v4 + p["V5"] @ att \
            + p["b2"]
    if not last:
        dn = _act(dn * p["bn_d.scale"] + p["bn_d.shift"])
        en = _act(en * p["bn_e.scale"] + p["bn_e.shift"])
    return dn, en


@pytest.mark.parametrize("attention", [True, False])
def test_sts_layers_match_loop_oracle(attention):
    rng = np.random.default_rng(12)
    arch = GNNArch("sts", 3, width=4, att_width=3, attention=attention)
    params = random_params(arch, rng)
    d0 = rng.standard_normal((1, 3, 5, 2))
    e0 = rng.uniform(size=(1, 6, 5, 1))
    d, e = d0[0], e0[0]
    for l in range(3):
        p = {n.split(".", 2)[2]: v for n, v in params.items() if n.startswith(f"sts.{l}.")}
        d, e = sts_layer_oracle(p, d, e, attention, last=(l == 2))
    pd_, pe = sts_forward(OPS, params, arch, d0, e0)
    np.testing.assert_allclose(pd_[0], d[..., 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(pe[0], e[..., 0], rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ check 11: equivariance
def test_pilot_and_sts_equivariance():
    rng = np.random.default_rng(13)
    dts, sts = random_weights(rng)
    beta, assoc, _ = random_drop(rng, 4, 7)
    z = rng.uniform(size=(7, 7))
    pm, pk, ps = rng.permutation(4), rng.permutation(7), rng.permutation(7)
    x0 = gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, None, z=z).x_soft
    x1 = gnn_pilot_assignment(dts, beta[pm][:, pk], assoc[pm][:, pk], P_U, NOISE, None,
                              z=z[ps][:, pk]).x_soft
    np.testing.assert_allclose(x1, x0[ps][:, pk], atol=1e-10)
    p0, _ = sts_power(sts, beta, assoc, P_U, NOISE, P_MAX, None, z=z)
    p1, _ = sts_power(sts, beta[pm][:, pk], assoc[pm][:, pk], P_U, NOISE, P_MAX, None,
                      z=z[ps][:, pk])
    np.testing.assert_allclose(p1, p0[pm][:, pk], rtol=1e-10, atol=1e-14)


def test_power_gnn_equivariance_nested():
    rng = np.random.default_rng(14)
    dts, _ = random_weights(rng)
    beta, assoc, h = random_drop(rng, 4, 6)
    ghat = ghat_of(rng, beta, assoc, h)
    pm, pk = rng.permutation(4), rng.permutation(6)
    p0 = gnn_power(dts, ghat, assoc, NOISE, P_MAX)
    p1 = gnn_power(dts, ghat[pm][:, pk][:, :, pk], assoc[pm][:, pk], NOISE, P_MAX)
    np.testing.assert_allclose(p1, p0[pm][:, pk], rtol=1e-10, atol=1e-14)
    assert np.ptp(p0[assoc]) > 1e-6 * P_MAX  # not a constant output (test could fail)


# ------------------------------------------------------------------ check 12: feasibility
@pytest.mark.parametrize("seed", range(4))
def test_outputs_feasible_for_hostile_inputs(seed):
    rng = np.random.default_rng(100 + seed)
    dts, sts = random_weights(rng)
    for name in ("pilot", "power"):  # huge weights -> saturated logits
        for k in dts.params[name]:
            dts.params[name][k] = dts.params[name][k] * 50
    n_ap, n_ue = 3 + seed, 4 + 3 * seed
    beta, assoc, h = random_drop(rng, n_ap, n_ue, 1 + seed)
    ghat = ghat_of(rng, beta, assoc, h) * 10.0 ** rng.uniform(-6, 6)
    p_max = rng.uniform(0, 50, n_ap)
    p_max[0] = 0.0  # an AP switched off
    for p in (gnn_power(dts, ghat, assoc, NOISE, p_max),
              sts_power(sts, beta, assoc, P_U, NOISE, p_max, rng)[0]):
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        assert np.all(p[~assoc] == 0)
        assert np.all(p.sum(axis=1) <= p_max)  # exact, no tolerance
    dec = gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, rng)
    np.testing.assert_allclose(dec.x_soft.sum(axis=0), 1.0, rtol=1e-12)
    assert dec.tau_p == np.unique(dec.colour).size and dec.colour.max() == dec.tau_p - 1


# ------------------------------------------------------------------ check 13: no-FE collapse
def test_without_random_features_the_pilot_gnn_collapses():
    rng = np.random.default_rng(15)
    beta, assoc, _ = random_drop(rng, 4, 9)
    dts_nofe, _ = random_weights(rng, fe=False)
    x = gnn_pilot_assignment(dts_nofe, beta, assoc, P_U, NOISE, rng).x_soft
    assert np.max(np.abs(x - 1.0 / 9)) < 1e-3  # Prop. 2 (23a)
    dts_fe, _ = random_weights(np.random.default_rng(15), fe=True)
    x = gnn_pilot_assignment(dts_fe, beta, assoc, P_U, NOISE, rng).x_soft
    assert np.max(np.abs(x - 1.0 / 9)) > 1e-3


def test_fixed_tau_ablation_uses_the_graph_size():
    rng = np.random.default_rng(16)
    dts, _ = random_weights(rng, n_ps=3)
    beta, assoc, _ = random_drop(rng, 3, 8)
    dec = gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, rng)
    assert dec.x_soft.shape == (3, 8) and dec.tau_p == 3 and dec.colour.max() <= 2


# ------------------------------------------------------------------ weights files
def test_weights_roundtrip_and_registry(tmp_path):
    rng = np.random.default_rng(17)
    dts, _ = random_weights(rng)
    path = tmp_path / "w.npz"
    save_gnn_weights(path, dts)
    back = load_gnn_weights(path)
    beta, assoc, h = random_drop(rng)
    ghat = ghat_of(rng, beta, assoc, h)
    p = POWER_ALLOCATORS["gnn"](ghat, None, assoc, NOISE, P_MAX, config=str(path)).power_w
    # the registry entry runs in FAST_DTYPE (float32)
    np.testing.assert_array_equal(p, gnn_power(dts, ghat, assoc, NOISE, P_MAX, dtype=FAST_DTYPE))
    assert np.max(np.abs(p - gnn_power(dts, ghat, assoc, NOISE, P_MAX))) < 1e-3 * P_MAX
    assert back.describe()["path"] == str(path)


def _corrupt(tmp_path, name, mutate):
    rng = np.random.default_rng(18)
    dts, _ = random_weights(rng)
    path = tmp_path / "ok.npz"
    save_gnn_weights(path, dts)
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    mutate(data)
    bad = tmp_path / name
    np.savez(bad, **data)
    return bad


@pytest.mark.parametrize("case, pattern", [
    ("missing_array", "missing"),
    ("bad_shape", "shape"),
    ("nan", "non-finite"),
    ("no_meta", "__meta__"),
    ("bad_format", "format"),
])
def test_malformed_weights_get_clear_errors(tmp_path, case, pattern):
    def mutate(d):
        if case == "missing_array":
            d.pop("power/pow.0.Us")
        elif case == "bad_shape":
            d["power/pow.0.Us"] = np.zeros((2, 2))
        elif case == "nan":
            d["pilot/sts.0.U1"] = d["pilot/sts.0.U1"] * np.nan
        elif case == "no_meta":
            d.pop("__meta__")
        elif case == "bad_format":
            meta = json.loads(str(d["__meta__"]))
            meta["format"] = "other"
            d["__meta__"] = np.array(json.dumps(meta))
    bad = _corrupt(tmp_path, f"{case}.npz", mutate)
    with pytest.raises(GNNWeightsError, match=pattern) as info:
        load_gnn_weights(bad)
    assert str(bad) in str(info.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(GNNWeightsError, match="not found"):
        load_gnn_weights(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(GNNWeightsError, match="not a readable"):
        load_gnn_weights(junk)


def test_shipped_weights_load_and_run_on_other_sizes():
    rng = np.random.default_rng(19)
    for fw in ("dts", "sts"):
        w = load_gnn_weights(default_weights_path(fw))
        assert w.meta["training"]["scenario"] == "umi_cellfree"
    beta, assoc, h = random_drop(rng, 5, 11, 4)  # not the training size
    p = gnn_power(None, ghat_of(rng, beta, assoc, h), assoc, NOISE, P_MAX)
    assert np.all(p.sum(axis=1) <= P_MAX) and p[assoc].max() > 0
    dec = gnn_pilot_assignment(None, beta, assoc, P_U, NOISE, rng)
    assert 1 <= dec.tau_p <= 11
