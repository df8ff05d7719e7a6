"""The DTS-Power-GNN's estimation-error-variance input (GNNArch.err_var): a fifth edge feature
log10(1 + err_var[m(a), i] P / sigma^2) / 5, the fast path against the reference layer
arithmetic, function-preserving warm start, old files unchanged, and the file-format rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from netsim.comm.power import POWER_ALLOCATORS
from netsim.comm.power.gnn import (
    FORMAT,
    FORMAT_ERR_VAR,
    GNNWeights,
    GNNWeightsError,
    default_weights_path,
    gnn_power,
    load_gnn_weights,
    power_graph,
    save_gnn_weights,
)
from netsim.comm.power.gnn_layers import GNNArch, NumpyOps, power_activation, power_forward
from netsim.comm.subframe import prepare_subframe
from netsim.learn.widen import add_err_var_input

from .test_gnn import NOISE, P_MAX, P_U, random_drop, random_params

OPS = NumpyOps()


def _weights(rng, err_var=True, width=5, layers=3):
    pa = GNNArch("pilot", 2, width=4, att_width=3)
    pw = GNNArch("power", layers, width=width, err_var=err_var)
    return GNNWeights("dts", {"pilot": pa, "power": pw},
                      {"pilot": random_params(pa, rng), "power": random_params(pw, rng)},
                      {"features": {"snr_ref": P_MAX / NOISE}})


def _csi(rng, beta, assoc, h, colour=None):
    """One subframe's (ghat, err_var) from the simulator's own chain (pilot reuse: colours)."""
    n_ue = beta.shape[1]
    colour = np.arange(n_ue) % max(1, n_ue // 2) if colour is None else colour
    csi = prepare_subframe(h, beta, assoc, colour, P_U, NOISE, rng)
    return csi.ghat, csi.err_var


def _reference(w, ghat, err_var, assoc, p_max):
    """Reference layer arithmetic (gnn_layers) with the fifth feature."""
    snr = float(np.max(p_max)) / NOISE
    f0, an_k, m_idx, k_idx = power_graph(ghat, assoc, snr, err_var)
    assert f0.shape[-1] == 5
    logit = power_forward(OPS, w.params["power"], w.archs["power"], f0, an_k, np.ones((1, m_idx.size)))[0]
    dense = np.zeros((1,) + assoc.shape)
    dense[0, m_idx, k_idx] = logit
    return power_activation(OPS, dense, assoc[None].astype(float), p_max[None])[0]


def test_feature_is_the_variance_on_the_gain_scale():
    rng = np.random.default_rng(3)
    beta, assoc, h = random_drop(rng, 4, 6, 3)
    ghat, err = _csi(rng, beta, assoc, h)
    snr = P_MAX / NOISE
    f0, _, m_idx, k_idx = power_graph(ghat, assoc, snr, err)
    np.testing.assert_allclose(f0[0, :, :, 4], np.log10(1.0 + err[m_idx, :] * snr) / 5.0, rtol=1e-14)
    f4, *_ = power_graph(ghat, assoc, snr)
    np.testing.assert_array_equal(f0[..., :4], f4)  # the first four are unchanged
    # where AP m does not know UE i, Ghat is the statistical sqrt(beta) and err_var = beta:
    # the two channels carry the same number
    unknown = ~assoc[m_idx, :]
    np.testing.assert_allclose(f0[0, :, :, 4][unknown], f0[0, :, :, 0][unknown], rtol=1e-10)


@pytest.mark.parametrize("seed,n_ap,n_ue,n_t", [(41, 4, 7, 1), (42, 7, 20, 3), (43, 2, 1, 2), (44, 3, 2, 2)])
def test_fast_path_matches_reference_with_err_var(seed, n_ap, n_ue, n_t):
    """float64 fast path = reference to 1e-10 on awkward graphs (a UE served by every AP, an AP
    serving nobody, K = 1, 2), single subframes and T-subframe batches with per-subframe err_var."""
    rng = np.random.default_rng(seed)
    w = _weights(rng)
    beta, assoc, _ = random_drop(rng, n_ap, n_ue, 2)
    assoc = assoc.copy()
    assoc[:, 0] = True
    if n_ap > 2:
        assoc[-1, :] = False
    subs = [_csi(rng, beta, assoc, random_drop(rng, n_ap, n_ue, 2)[2]) for _ in range(n_t)]
    p_max = rng.uniform(1.0, 30.0, n_ap)
    for g, e in subs:
        got = gnn_power(w, g, assoc, NOISE, p_max, err_var=e)
        assert np.max(np.abs(got - _reference(w, g, e, assoc, p_max))) <= 1e-10 * P_MAX
    stack = np.stack([g for g, _ in subs])
    errs = np.stack([e * rng.uniform(0.5, 2.0) for _, e in subs])  # a different err_var per subframe
    batched = gnn_power(w, stack, assoc, NOISE, p_max, err_var=errs)
    for t in range(n_t):
        ref = _reference(w, stack[t], errs[t], assoc, p_max)
        assert np.max(np.abs(batched[t] - ref)) <= 1e-10 * P_MAX
    f32 = gnn_power(w, stack, assoc, NOISE, p_max, err_var=errs, dtype=np.float32)
    assert np.max(np.abs(f32 - batched)) <= 1e-3 * P_MAX
    assert np.all(f32.sum(axis=2) <= p_max) and np.all(f32[:, ~assoc] == 0)


def test_err_var_moves_the_output_and_is_required():
    rng = np.random.default_rng(45)
    w = _weights(rng)
    beta, assoc, h = random_drop(rng, 5, 9, 4)
    ghat, err = _csi(rng, beta, assoc, h)
    p1 = gnn_power(w, ghat, assoc, NOISE, P_MAX, err_var=err)
    p2 = gnn_power(w, ghat, assoc, NOISE, P_MAX, err_var=err * 10.0)
    assert np.max(np.abs(p1 - p2)) > 1e-6 * P_MAX  # the feature reaches the output
    with pytest.raises(ValueError, match="estimation-error variance"):
        gnn_power(w, ghat, assoc, NOISE, P_MAX)
    with pytest.raises(ValueError, match="err_var shape"):
        gnn_power(w, ghat, assoc, NOISE, P_MAX, err_var=err[:, :-1])
    # the registry entry passes the engine's err_var through
    alloc = POWER_ALLOCATORS["gnn"](ghat, err, assoc, NOISE, P_MAX, config=w)
    np.testing.assert_array_equal(alloc.power_w, gnn_power(w, ghat, assoc, NOISE, P_MAX, err_var=err,
                                                           dtype=np.float32))


def test_equivariance_with_err_var():
    rng = np.random.default_rng(46)
    w = _weights(rng)
    beta, assoc, h = random_drop(rng, 4, 6, 3)
    ghat, err = _csi(rng, beta, assoc, h)
    pm, pk = rng.permutation(4), rng.permutation(6)
    p0 = gnn_power(w, ghat, assoc, NOISE, P_MAX, err_var=err)
    p1 = gnn_power(w, ghat[pm][:, pk][:, :, pk], assoc[pm][:, pk], NOISE, P_MAX, err_var=err[pm][:, pk])
    np.testing.assert_allclose(p1, p0[pm][:, pk], rtol=1e-10, atol=1e-14)
    assert np.ptp(p0[assoc]) > 1e-6 * P_MAX


def test_warm_start_is_function_preserving_on_the_shipped_files():
    """add_err_var_input (zero first-layer columns) computes the old function whatever err_var."""
    rng = np.random.default_rng(47)
    for name in ("dts_gnn.npz", "dts_gnn_n4.npz"):
        old = load_gnn_weights(default_weights_path("dts").parent / name)
        if old.power_err_var:  # a shipped file that has the feature already: nothing to add
            continue
        arch, ps = add_err_var_input(old.params["power"], old.archs["power"])
        new = GNNWeights("dts", {**old.archs, "power": arch}, {**old.params, "power": ps}, old.meta)
        for n_ap, n_ue, n_ant in ((7, 42, 4), (3, 11, 2)):
            beta, assoc, h = random_drop(rng, n_ap, n_ue, n_ant)
            ghat, err = _csi(rng, beta, assoc, h)
            want = gnn_power(old, ghat, assoc, NOISE, P_MAX)
            got = gnn_power(new, ghat, assoc, NOISE, P_MAX, err_var=err * rng.uniform(0.1, 10.0))
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * P_MAX)
    with pytest.raises(ValueError, match="already"):
        add_err_var_input(ps, arch)
    with pytest.raises(ValueError, match="DTS-Power-GNN"):
        add_err_var_input(old.params["pilot"], old.archs["pilot"])


def test_files_without_the_feature_read_and_run_as_before(tmp_path):
    """A file without err_var keeps format 1 and no err_var key; err_var given is not read."""
    rng = np.random.default_rng(48)
    w = _weights(rng, err_var=False)
    path = tmp_path / "old.npz"
    save_gnn_weights(path, w)
    with np.load(path) as z:
        meta = json.loads(str(z["__meta__"]))
    assert meta["format"] == FORMAT and "err_var" not in meta["models"]["power"]
    back = load_gnn_weights(path)
    assert not back.power_err_var
    beta, assoc, h = random_drop(rng, 4, 7, 3)
    ghat, err = _csi(rng, beta, assoc, h)
    np.testing.assert_array_equal(gnn_power(back, ghat, assoc, NOISE, P_MAX, err_var=err),
                                  gnn_power(back, ghat, assoc, NOISE, P_MAX))


def _saved(tmp_path, rng, mutate=None, err_var=True):
    path = tmp_path / "w.npz"
    save_gnn_weights(path, _weights(rng, err_var=err_var))
    if mutate is None:
        return path
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["__meta__"]))
    mutate(data, meta)
    data["__meta__"] = np.array(json.dumps(meta))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    return bad


def test_format_rules_name_the_file(tmp_path):
    rng = np.random.default_rng(49)
    path = _saved(tmp_path, rng)
    back = load_gnn_weights(path)
    assert back.meta["format"] == FORMAT_ERR_VAR and back.power_err_var
    assert back.archs["power"].n_edge_in == 5

    def old_format(d, meta):  # an err_var model in a format-1 file (what an old writer cannot make)
        meta["format"] = FORMAT

    def new_format_no_feature(d, meta):
        meta["models"]["power"].pop("err_var")
        for k in list(d):
            if k.startswith("power/pow.0.") and d[k].ndim == 2:
                d[k] = d[k][:, :4]

    def four_columns(d, meta):  # the arch says err_var, the arrays are the 4-feature ones
        d["power/pow.0.Us"] = d["power/pow.0.Us"][:, :4]

    def on_pilot(d, meta):
        meta["models"]["pilot"]["err_var"] = True

    for mutate, pattern in ((old_format, "has the err_var input but the file's format"),
                            (new_format_no_feature, "but no model has the err_var input"),
                            (four_columns, "pow.0.Us' has shape"),
                            (on_pilot, "bad architecture")):
        bad = _saved(tmp_path, rng, mutate)
        with pytest.raises(GNNWeightsError, match=pattern) as info:
            load_gnn_weights(bad)
        assert str(bad) in str(info.value)
    with pytest.raises(ValueError, match="DTS-Power-GNN"):
        GNNArch("sts", 3, err_var=True)


@pytest.mark.parametrize("seed", range(3))
def test_outputs_feasible_for_hostile_err_var(seed):
    """Saturating weights, err_var of 0, 1e-30 and 1e6 x beta, an AP switched off: the powers
    stay finite, zero off the association and within every AP's budget (exactly)."""
    rng = np.random.default_rng(200 + seed)
    w = _weights(rng)
    for k in w.params["power"]:
        w.params["power"][k] = w.params["power"][k] * 50
    n_ap, n_ue = 3 + seed, 4 + 3 * seed
    beta, assoc, h = random_drop(rng, n_ap, n_ue, 1 + seed)
    ghat, err = _csi(rng, beta, assoc, h)
    p_max = rng.uniform(0, 50, n_ap)
    p_max[0] = 0.0
    for e in (err, np.zeros_like(err), err * 1e-30, err * 1e6, np.where(rng.random(err.shape) < 0.5, 0.0, err)):
        p = gnn_power(w, ghat, assoc, NOISE, p_max, err_var=e)
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        assert np.all(p[~assoc] == 0)
        assert np.all(p.sum(axis=1) <= p_max)
    for bad in (err * np.nan, -err - 1e-12):
        with pytest.raises(ValueError, match="err_var must be"):
            gnn_power(w, ghat, assoc, NOISE, p_max, err_var=bad)
