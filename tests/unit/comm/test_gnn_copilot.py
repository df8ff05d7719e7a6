"""The co-pilot power readout of the STS-GNN (``GNNArch.copilot``, this project's variant of spec
5.3): the fast numpy path against the reference layer arithmetic, files without it unchanged,
the pilots unchanged by it, equivariance (check 11) and feasibility (check 12) with it, and the
weights-file round trip and its errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from netsim.comm.power.gnn import (
    FAST_DTYPE,
    GNNWeights,
    GNNWeightsError,
    default_weights_path,
    load_gnn_weights,
    save_gnn_weights,
    sts_power,
)
from netsim.comm.power.gnn_fast import copilot_term_fast
from netsim.comm.power.gnn_layers import (
    GNNArch,
    NumpyOps,
    branch_t,
    copilot_from_colour,
    copilot_names,
    copilot_soft,
    copilot_term,
    lsf_features,
    power_activation,
    readout_n_params,
    sts_forward,
)
from netsim.phy import umi

CFG = umi.ChannelConfig.umi()
S2 = umi.noise_power_w(CFG)
OPS = NumpyOps()


def _copilot_weights(rng, scale=0.5, base=None, branch=0):
    """The shipped STS networks with the co-pilot readout switched on and random V6, V7 (and a
    random power branch of ``branch`` layers)."""
    w = base or load_gnn_weights(default_weights_path("sts")).without_copilot()
    arch = replace(w.archs["sts"], copilot=True, branch=branch, branch_width=12)
    ps = dict(w.params["sts"])
    for n, shape in copilot_names(arch).items():
        ps[n] = rng.normal(0.0, scale, shape)
    return GNNWeights("sts", {"sts": arch}, {"sts": ps}, json.loads(json.dumps(w.meta)))


def _drop(rng, m, k):
    beta = 10 ** rng.uniform(-13.5, -9.0, (m, k))  # [M, K]
    assoc = rng.random((m, k)) < 0.5
    assoc[np.argmax(beta, axis=0), np.arange(k)] = True
    return beta, assoc


def _reference(w, beta, assoc, z, colour, n_ant, p_max=None):
    """Power of the reference layers (gnn_layers.sts_forward with the one-hot C of ``colour``)."""
    arch = w.archs["sts"]
    m = beta.shape[0]
    params = readout_n_params(w.params["sts"], arch, w.readout_t(n_ant))
    d0 = lsf_features(OPS, beta[None], assoc[None].astype(float), CFG.p_pilot_w / S2)
    cop = copilot_from_colour(colour)[None] if arch.copilot else None
    pl, xl = sts_forward(OPS, params, arch, d0, z[None, :, :, None], copilot=cop, branch_t=branch_t(arch, n_ant))
    pm = np.full((1, m), CFG.p_max_w) if p_max is None else np.asarray(p_max, float)[None]
    return power_activation(OPS, pl, assoc[None].astype(float), pm)[0], xl[0]


def test_fast_copilot_readout_equals_the_reference_layers():
    """sts_power (fast path + copilot_term_fast) = the reference arithmetic to 1e-10 in float64,
    on random sizes and on awkward pilot patterns (K = 1, all UEs on one pilot, all apart)."""
    rng = np.random.default_rng(15)
    cases = [(int(rng.integers(2, 9)), int(rng.integers(3, 45)), int(rng.integers(1, 65))) for _ in range(12)]
    cases += [(3, 1, 16), (2, 2, 8), (4, 6, None)]
    for j, (m, k, n) in enumerate(cases):
        w = _copilot_weights(rng, branch=j % 3)
        beta, assoc = _drop(rng, m, k)
        z = rng.uniform(size=(k, k))
        p, dec = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n)
        ref, xl = _reference(w, beta, assoc, z, dec.colour, n)
        np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-12 * CFG.p_max_w)
        np.testing.assert_allclose(dec.logits, xl, rtol=1e-10, atol=1e-10)
        for colour in (np.zeros(k, np.int64), np.arange(k)):  # one pilot for all; all apart
            p2, _ = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n, pilots=colour)
            ref2, _ = _reference(w, beta, assoc, z, colour, n)
            np.testing.assert_allclose(p2, ref2, rtol=1e-10, atol=1e-12 * CFG.p_max_w)


def test_copilot_term_fast_is_the_group_sum_loop():
    """copilot_term_fast against a per-(k, m) loop over the other UEs on k's pilot."""
    rng = np.random.default_rng(3)
    k, m, d = 9, 4, 8
    d_in = rng.normal(size=(k, m, d))
    v6, v7 = rng.normal(size=(1, d)), rng.normal(size=(1, d))
    colour = rng.integers(0, 3, k)
    got = copilot_term_fast(v6, v7, d_in, colour)
    want = np.zeros((k, m))
    for kk in range(k):
        for mm in range(m):
            for i in range(k):
                if i != kk and colour[i] == colour[kk]:
                    want[kk, mm] += v6[0] @ d_in[i, mm] + v7[0] @ d_in[i].mean(axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # the reference term (UE axis last) gives the same
    ref = copilot_term(OPS, {"sts.0.V6": v6, "sts.0.V7": v7}, GNNArch("sts", 1, copilot=True),
                       np.transpose(d_in, (1, 0, 2))[None], copilot_from_colour(colour)[None])
    np.testing.assert_allclose(ref[0, :, :, 0].T, want, rtol=1e-12, atol=1e-12)


def test_soft_copilot_of_one_hot_pilots_is_the_hard_matrix():
    rng = np.random.default_rng(4)
    colour = rng.integers(0, 5, 11)
    x = np.zeros((1, 11, 11))
    x[0, colour, np.arange(11)] = 1.0
    np.testing.assert_array_equal(copilot_soft(OPS, x)[0], copilot_from_colour(colour))
    c = copilot_from_colour(colour)
    assert np.all(np.diag(c) == 0) and np.array_equal(c, c.T)


def test_files_without_the_term_are_unchanged_and_zero_term_is_the_plain_model():
    """The shipped file computes what the reference (no co-pilot term) computes, and the same
    networks with the term switched on at V6 = V7 = 0 give the same powers and pilots."""
    rng = np.random.default_rng(5)
    w = load_gnn_weights(default_weights_path("sts")).without_copilot()
    assert not w.archs["sts"].copilot and "copilot" not in w.archs["sts"].to_dict()
    w0 = _copilot_weights(rng, scale=0.0)
    for m, k, n in ((7, 42, 16), (4, 13, 8), (9, 54, 64)):
        beta, assoc = _drop(rng, m, k)
        z = rng.uniform(size=(k, k))
        p, dec = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n)
        ref, xl = _reference(w, beta, assoc, z, dec.colour, n)
        np.testing.assert_allclose(p, ref, rtol=1e-10, atol=1e-12 * CFG.p_max_w)
        p0, dec0 = sts_power(w0, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n)
        np.testing.assert_array_equal(p0, p)
        np.testing.assert_array_equal(dec0.colour, dec.colour)
        # a file without the term ignores ``pilots``
        p1, _ = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n,
                          pilots=np.zeros(k, np.int64))
        np.testing.assert_array_equal(p1, p)


def test_copilot_readout_leaves_the_pilots_and_reads_them():
    rng = np.random.default_rng(6)
    w = load_gnn_weights(default_weights_path("sts")).without_copilot()
    wc = _copilot_weights(rng)
    beta, assoc = _drop(rng, 7, 42)
    z = rng.uniform(size=(42, 42))
    for dtype in (np.float64, FAST_DTYPE):
        p, dec = sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, dtype=dtype, n_ant=16)
        p0, dec0 = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, dtype=dtype, n_ant=16)
        np.testing.assert_array_equal(dec.colour, dec0.colour)
        np.testing.assert_array_equal(dec.logits, dec0.logits)
        assert dec.tau_p < 42  # some UEs share pilots, so the term acts
        assert np.abs(p - p0).max() > 1e-3 * CFG.p_max_w
        # giving the decision's own pilots is the default; other pilots move the power
        same, _ = sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, dtype=dtype, n_ant=16,
                            pilots=dec.colour)
        np.testing.assert_array_equal(same, p)
        other, _ = sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, dtype=dtype,
                             n_ant=16, pilots=np.arange(42))
        assert np.abs(other - p).max() > 1e-3 * CFG.p_max_w
    with pytest.raises(ValueError, match="pilots"):
        sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, pilots=np.arange(41))


def test_power_branch_fast_equals_a_loop_oracle():
    """power_branch_fast against per-edge loops of the branch's five input blocks."""
    from netsim.comm.power.gnn_fast import power_branch_fast

    rng = np.random.default_rng(10)
    k, m, d, wd = 7, 3, 4, 5
    arch = GNNArch("sts", 2, width=d, copilot=True, branch=1, branch_width=wd)
    ps = {"sts.pb.0.W": rng.normal(size=(wd, 5 * (d + 1))), "sts.pb.0.b": rng.normal(size=wd),
          "sts.pb.out": rng.normal(size=(1, wd))}
    d_in = rng.normal(size=(k, m, d))
    colour = rng.integers(0, 3, k)
    t = -0.7
    got = power_branch_fast(ps, arch, d_in, colour, t)
    h = np.concatenate([d_in, np.full((k, m, 1), t)], -1)  # [K, M, c]
    want = np.zeros((k, m))
    for kk in range(k):
        for mm in range(m):
            cop = [i for i in range(k) if i != kk and colour[i] == colour[kk]]
            blocks = [h[kk, mm],
                      np.mean([h[kk, j] for j in range(m) if j != mm], axis=0),
                      np.mean([h[i, mm] for i in range(k) if i != kk], axis=0),
                      sum((h[i, mm] for i in cop), np.zeros(d + 1)),
                      np.mean([sum((h[i, j] for i in cop), np.zeros(d + 1)) for j in range(m)], axis=0)]
            z = ps["sts.pb.0.W"] @ np.concatenate(blocks) + ps["sts.pb.0.b"]
            want[kk, mm] = ps["sts.pb.out"][0] @ np.maximum(z, 0.01 * z)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_copilot_readout_is_equivariant():
    """Check 11 with the term: permuting APs, UEs and PSs permutes the powers the same way, for
    the same (permuted) pilots. The test-phase rounding is left out on purpose: it breaks exact
    ties of its visiting keys (confidences max_s x that round to 1.0) by UE index, so the rounded
    pilots themselves can differ under a UE permutation; the network given the pilots cannot."""
    rng = np.random.default_rng(7)
    wc = _copilot_weights(rng, branch=2)
    worst = 0.0
    for m, k in ((7, 42), (5, 20), (9, 54)):
        beta, assoc = _drop(rng, m, k)
        z = rng.uniform(size=(k, k))
        pm, pk, ps = rng.permutation(m), rng.permutation(k), rng.permutation(k)
        p0, d0 = sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=8)
        p1, d1 = sts_power(wc, beta[pm][:, pk], assoc[pm][:, pk], CFG.p_pilot_w, S2, CFG.p_max_w, None,
                           z=z[ps][:, pk], n_ant=8, pilots=d0.colour[pk])
        assert np.abs(d1.x_soft - d0.x_soft[ps][:, pk]).max() < 1e-9  # the pilot head, for the record
        worst = max(worst, np.abs(p1 - p0[pm][:, pk]).max() / CFG.p_max_w)
        # and the pilots matter: a different assignment moves the power
        p2, _ = sts_power(wc, beta[pm][:, pk], assoc[pm][:, pk], CFG.p_pilot_w, S2, CFG.p_max_w, None,
                          z=z[ps][:, pk], n_ant=8, pilots=d0.colour)
        assert np.abs(p2 - p0[pm][:, pk]).max() > 1e-6 * CFG.p_max_w
    assert worst < 1e-9


def test_copilot_readout_is_feasible_for_any_weights_and_p_max():
    """Check 12 with the term: load <= P_max exactly, p >= 0, zero off the association, also
    with large V6, V7 and random per-AP P_max (some zero)."""
    rng = np.random.default_rng(8)
    wc = _copilot_weights(rng, scale=20.0, branch=2)
    for m, k in ((7, 42), (12, 72), (3, 50)):
        beta, assoc = _drop(rng, m, k)
        p_max = rng.uniform(0, 2 * CFG.p_max_w, m)
        p_max[0] = 0.0
        for dtype in (np.float64, FAST_DTYPE):
            p, _ = sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, p_max, rng, dtype=dtype, n_ant=16)
            assert np.all(p.sum(axis=1) <= p_max) and p.min() >= 0 and np.all(p[~assoc] == 0)
            assert np.all(np.isfinite(p))


def test_copilot_file_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(9)
    wc = _copilot_weights(rng, branch=2)
    path = tmp_path / "cop.npz"
    save_gnn_weights(path, wc)
    back = load_gnn_weights(path)
    assert back.archs["sts"] == wc.archs["sts"] and back.archs["sts"].to_dict()["copilot"] is True
    assert back.archs["sts"].to_dict()["branch"] == 2
    last = wc.archs["sts"].layers - 1
    for n in ("V6", "V7"):
        np.testing.assert_array_equal(back.params["sts"][f"sts.{last}.{n}"], wc.params["sts"][f"sts.{last}.{n}"])
    beta, assoc = _drop(rng, 6, 30)
    z = rng.uniform(size=(30, 30))
    a = sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=16)[0]
    b = sts_power(back, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=16)[0]
    np.testing.assert_array_equal(a, b)
    # a copilot arch without its arrays: a clear error naming the array
    ps = {k: v for k, v in wc.params["sts"].items() if not k.endswith(".V6")}
    save_gnn_weights(tmp_path / "bad.npz", GNNWeights("sts", wc.archs, {"sts": ps}, wc.meta))
    with pytest.raises(GNNWeightsError, match=rf"bad\.npz.*sts/sts\.{last}\.V6.*missing"):
        load_gnn_weights(tmp_path / "bad.npz")
    # the term is for the STS-GNN only; the branch needs the term; N must be > 0
    with pytest.raises(ValueError, match="co-pilot"):
        GNNArch("pilot", 7, copilot=True)
    with pytest.raises(ValueError, match="copilot"):
        GNNArch("sts", 7, branch=2)
    with pytest.raises(ValueError, match="antennas"):
        sts_power(wc, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=0)
    assert "branch" not in _copilot_weights(rng).archs["sts"].to_dict()
    dts = load_gnn_weights(default_weights_path("dts"))
    meta = json.loads(json.dumps(dts.meta))
    save_gnn_weights(tmp_path / "dts.npz", dts)
    with np.load(tmp_path / "dts.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["__meta__"]))
    meta["models"]["pilot"]["copilot"] = True
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "dts_bad.npz", **arrays)
    with pytest.raises(GNNWeightsError, match="dts_bad.npz.*'pilot'.*co-pilot"):
        load_gnn_weights(tmp_path / "dts_bad.npz")


def test_shipped_sts_file_pilots_are_those_without_its_copilot_readout():
    """Whatever the shipped STS file's power readout holds, its pilots at every size are those
    of the same networks without the co-pilot readout (the pilot head never reads it), and its
    powers stay feasible."""
    w = load_gnn_weights(default_weights_path("sts"))
    plain = w.without_copilot()
    rng = np.random.default_rng(11)
    for m, k, n in ((7, 42, 16), (12, 72, 8), (8, 48, 64)):
        beta, assoc = _drop(rng, m, k)
        z = rng.uniform(size=(k, k))
        p, dec = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n, dtype=FAST_DTYPE)
        _, dec0 = sts_power(plain, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n,
                            dtype=FAST_DTYPE)
        np.testing.assert_array_equal(dec.colour, dec0.colour)
        assert np.all(p.sum(axis=1) <= CFG.p_max_w) and p.min() >= 0 and np.all(p[~assoc] == 0)
