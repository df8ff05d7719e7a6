"""The STS power readout's antenna-count term on the torch side: numpy (sts_power) and torch
(sts_forward with readout_t) agree to 1e-5 in float64 on 20 random drops and N, the torch
training loss with the term is the numpy policy's net-SE, and ``finetune_gnn_mix.py
--readout-n-ref`` moves only the W_dlog2n arrays."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netsim.comm.net_se import net_sum_se, sinr_from_equivalent  # noqa: E402
from netsim.comm.power.gnn import (  # noqa: E402
    GNNWeights,
    load_gnn_weights,
    sts_power,
)
from netsim.comm.power.gnn_layers import (  # noqa: E402
    lsf_features,
    power_activation,
    readout_n_names,
    sts_forward,
)
from netsim.learn.data import DropSpec  # noqa: E402
from netsim.learn.pretrain import power_dataset, sts_subframe_net_se  # noqa: E402
from netsim.learn.torch_gnn import TorchGNN, TorchOps  # noqa: E402
from netsim.phy import umi  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).parent))
from sts_plain import plain_sts_weights as _plain  # noqa: E402


def _with_term(rng, ref=16.0, t_range=None):
    w = _plain()
    ps = dict(w.params["sts"])
    for n, shape in readout_n_names(w.archs["sts"]).items():
        ps[n] = rng.normal(0.0, 0.3, shape)
    meta = json.loads(json.dumps(w.meta))
    meta["features"]["readout_n_ref"] = ref
    meta["features"].pop("readout_n_range", None)
    if t_range is not None:
        meta["features"]["readout_n_range"] = t_range
    return GNNWeights("sts", w.archs, {"sts": ps}, meta)


def test_numpy_and_torch_readout_term_agree_on_20_random_drops():
    rng = np.random.default_rng(44)
    w = _with_term(rng)
    net = TorchGNN.from_export(w.archs["sts"], w.params["sts"], dtype=torch.float64)
    assert set(net.readout_names) == set(readout_n_names(w.archs["sts"]))
    ops = TorchOps(net, training=False)
    cfg = umi.ChannelConfig.umi()
    s2 = umi.noise_power_w(cfg)
    for _ in range(20):
        m, k = int(rng.integers(2, 9)), int(rng.integers(3, 16))
        n_ant = int(rng.integers(1, 80))
        beta = 10 ** rng.uniform(-13.5, -9.0, (m, k))  # [M, K]
        assoc = rng.random((m, k)) < 0.5
        assoc[np.argmax(beta, axis=0), np.arange(k)] = True
        z = rng.uniform(0.0, 1.0, (k, k))
        p, dec = sts_power(w, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z, n_ant=n_ant)
        a = torch.as_tensor(assoc[None].astype(float))
        d0 = lsf_features(ops, torch.as_tensor(beta[None] / s2), a, cfg.p_pilot_w)
        t = torch.tensor(np.log2(n_ant / 16.0), dtype=torch.float64)
        pl, xl = sts_forward(ops, net.params(), net.arch, d0, torch.as_tensor(z[None, :, :, None]), readout_t=t)
        pt = power_activation(ops, pl, a, torch.full((1, m), cfg.p_max_w, dtype=torch.float64))[0]
        np.testing.assert_allclose(p, pt.detach().numpy(), rtol=1e-5, atol=1e-5 * cfg.p_max_w)
        np.testing.assert_allclose(dec.logits, xl[0].detach().numpy(), rtol=1e-5, atol=1e-8)


def test_torch_loss_with_readout_term_is_the_numpy_policy_net_se():
    rng = np.random.default_rng(9)
    w = _with_term(rng, ref=4.0, t_range=[-1.0, 0.5])  # N = 1 and 11 are clipped
    net = TorchGNN.from_export(w.archs["sts"], w.params["sts"], dtype=torch.float64)
    ap = np.array([[0.0, 0.0], [180.0, 40.0], [60.0, 170.0]])
    spec = DropSpec(ap, 8, 4, umi.ChannelConfig.umi(), tau_c=60, n_sub=2, name="tiny")
    ps = power_dataset(spec, 4, 2, np.random.default_rng(8), n_ant_mix=(1, 4, 11))
    ops = TorchOps(net, training=False)
    got = sts_subframe_net_se(ops, net, ps, np.arange(4), spec.tau_c, readout_n_ref=4.0,
                              readout_n_range=(-1.0, 0.5)).detach().numpy()
    s2, cfg = spec.noise_w, spec.channel
    z = np.zeros((spec.n_ue, spec.n_ue))
    for d in range(4):
        p, _ = sts_power(w, ps.beta[d] * s2, ps.assoc[d], cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z,
                         n_ant=int(ps.n_ant[d]))
        for t in range(2):
            ref = net_sum_se(sinr_from_equivalent(ps.g_true[d, t].astype(complex), p, 1.0), ps.tau_p[d], spec.tau_c)
            assert got[d, t] == pytest.approx(ref, rel=2e-5)  # complex64 channels in the set
    assert len(set(ps.n_ant.tolist()) - {4}) > 0  # some drop has t != 0
    plain = sts_subframe_net_se(ops, net, ps, np.arange(4), spec.tau_c).detach().numpy()
    assert np.abs(plain - got).max() > 1e-6  # and there the term matters


def test_mix_script_readout_n_ref_trains_only_the_antenna_term(tmp_path):
    spec = importlib.util.spec_from_file_location("finetune_gnn_mix", ROOT / "analysis" / "finetune_gnn_mix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "rn.npz"
    base, plain = _plain(tmp_path)
    assert mod.main(["--model", "sts", "--init", str(plain), "--out", str(out), "--sizes", "3:8:4:4,4:9:2:4", "--subframes", "1",
                     "--epochs", "1", "--lr", "0.05", "--readout-n-ref", "16", "--readout-n-range=-3,0",
                     "--seed", "5"]) == 0
    w = load_gnn_weights(out)
    assert w.readout_n_ref == 16.0 and w.n_ant_ref is None and w.readout_n_range == (-3.0, 0.0)
    for k, v in base.params["sts"].items():  # every shipped array bit for bit
        np.testing.assert_array_equal(w.params["sts"][k], v)
    extra = set(w.params["sts"]) - set(base.params["sts"])
    assert extra == set(readout_n_names(base.archs["sts"]))
    assert max(float(np.abs(w.params["sts"][k]).max()) for k in extra) > 0  # it learned something
    assert w.meta["finetune_sts_mix"]["trained"] == "power readout's antenna term only"
    # joint training refuses such a file as init (it would ignore the term)
    from netsim.learn.train import TrainConfig, train
    with pytest.raises(ValueError, match="readout_n_ref"):
        train(DropSpec(np.array([[0.0, 0.0], [150.0, 0.0]]), 5, 2, umi.ChannelConfig.umi(), tau_c=60, n_sub=1,
                       name="tiny"), TrainConfig(framework="sts", samples=4, epochs=1, init=str(out)))
