"""The STS co-pilot power readout (``GNNArch.copilot``) on the torch side: numpy (sts_power) and
torch (sts_forward with the co-pilot matrix) agree to 1e-5 in float64 on 20 random drops, the
soft chain's own soft C matches the numpy reference, the fixed-pilot training loss is the numpy
policy's net-SE, an exported plain file becomes a copilot net computing the same function, and
``finetune_gnn_mix.py --copilot`` moves only the readout and its co-pilot arrays."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netsim.comm.net_se import net_sum_se, sinr_from_equivalent  # noqa: E402
from netsim.comm.power.gnn import GNNWeights, load_gnn_weights, sts_power  # noqa: E402
from netsim.comm.power.gnn_layers import (  # noqa: E402
    GNNArch,
    NumpyOps,
    copilot_from_colour,
    copilot_names,
    lsf_features,
    power_activation,
    sts_forward,
)
from netsim.learn.data import DropSpec  # noqa: E402
from netsim.learn.pretrain import power_dataset, sts_subframe_net_se  # noqa: E402
from netsim.learn.torch_gnn import TorchGNN, TorchOps  # noqa: E402
from netsim.phy import umi  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).parent))
from sts_plain import plain_sts_weights as _plain  # noqa: E402

T64 = torch.float64
CFG = umi.ChannelConfig.umi()
S2 = umi.noise_power_w(CFG)


def _randomised(arch, seed):
    """A torch net with random weights, BN statistics and random (non-zero) V6, V7."""
    gen = torch.Generator().manual_seed(seed)
    net = TorchGNN(arch, gen, T64)
    with torch.no_grad():
        for key in net.bn_keys:
            mean, var = net.running(key)
            mean.copy_(torch.randn(mean.shape, generator=gen, dtype=T64) * 0.3)
            var.copy_(torch.rand(var.shape, generator=gen, dtype=T64) + 0.5)
        for n in copilot_names(arch):  # non-zero branch biases too
            net.params()[n].add_(torch.randn(net.params()[n].shape, generator=gen, dtype=T64) * 0.3)
    net.eval()
    return net


def _drop(rng, m, k):
    beta = 10 ** rng.uniform(-13.5, -9.0, (m, k))
    assoc = rng.random((m, k)) < 0.5
    assoc[np.argmax(beta, axis=0), np.arange(k)] = True
    return beta, assoc


def test_numpy_and_torch_copilot_readout_agree_on_20_random_drops():
    rng = np.random.default_rng(16)
    net = _randomised(GNNArch("sts", 7, width=8, copilot=True, branch=2, branch_width=12), 5)
    assert all(float(net.params()[n].detach().abs().max()) > 0 for n in copilot_names(net.arch))
    w = GNNWeights("sts", {"sts": net.arch}, {"sts": net.export()}, {"features": {"snr_ref": CFG.p_max_w / S2}})
    ops = TorchOps(net, training=False)
    worst = 0.0
    for _ in range(20):
        m, k, n = int(rng.integers(2, 9)), int(rng.integers(3, 30)), int(rng.integers(1, 80))
        beta, assoc = _drop(rng, m, k)
        z = rng.uniform(size=(k, k))
        p, dec = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=n)
        a = torch.as_tensor(assoc[None].astype(float))
        d0 = lsf_features(ops, torch.as_tensor(beta[None] / S2), a, CFG.p_pilot_w)
        cop = torch.as_tensor(copilot_from_colour(dec.colour)[None])
        bt = torch.tensor(np.log2(n / 16.0), dtype=T64)
        pl, xl = sts_forward(ops, net.params(), net.arch, d0, torch.as_tensor(z[None, :, :, None]), copilot=cop,
                             branch_t=bt)
        pt = power_activation(ops, pl, a, torch.full((1, m), CFG.p_max_w, dtype=T64))[0].detach().numpy()
        worst = max(worst, np.abs(p - pt).max() / CFG.p_max_w, np.abs(dec.x_soft - torch.softmax(xl, 1)[0].detach().numpy()).max())
        # the soft chain's own C (copilot=None): the numpy reference computes the same
        pl_s, _ = sts_forward(ops, net.params(), net.arch, d0, torch.as_tensor(z[None, :, :, None]), branch_t=bt)
        ref_s, _ = sts_forward(NumpyOps(), w.params["sts"], net.arch,
                               lsf_features(NumpyOps(), beta[None], assoc[None].astype(float), CFG.p_pilot_w / S2),
                               z[None, :, :, None], branch_t=float(np.log2(n / 16.0)))
        worst = max(worst, np.abs(pl_s.detach().numpy() - ref_s).max() / max(1.0, np.abs(ref_s).max()))
    assert worst < 1e-5, worst


def _spec(n_ap, n_ue, n_ant):
    ap = np.array([[0.0, 0.0], [180.0, 40.0], [60.0, 170.0], [-120.0, 90.0]])[:n_ap]
    return DropSpec(ap, n_ue, n_ant, umi.ChannelConfig.umi(), tau_c=60, n_sub=2, name="tiny")


def _copilot_file(rng):
    w = _plain()
    arch = replace(w.archs["sts"], copilot=True, branch=2, branch_width=6)
    ps = dict(w.params["sts"])
    for n, shape in copilot_names(arch).items():
        ps[n] = rng.normal(0.0, 0.5, shape)
    return GNNWeights("sts", {"sts": arch}, {"sts": ps}, w.meta)


def test_torch_copilot_loss_is_the_numpy_policy_net_se():
    """sts_subframe_net_se of a copilot net (reading the set's fixed pilots) = the net-SE of the
    numpy policy sts_power(pilots=colour) on the same true channels (float64 both)."""
    rng = np.random.default_rng(12)
    w = _copilot_file(rng)
    net = TorchGNN.from_export(w.archs["sts"], w.params["sts"], dtype=T64)
    spec = _spec(4, 10, 4)
    ps = power_dataset(spec, 5, 2, np.random.default_rng(3), random_pilot_share=0.6, n_ant_mix=(2, 4, 11))
    assert ps.colour is not None and ps.colour.shape == (5, 10)
    assert all(ps.tau_p[d] == ps.colour[d].max() + 1 for d in range(5))
    got = sts_subframe_net_se(TorchOps(net, training=False), net, ps, np.arange(5), spec.tau_c).detach().numpy()
    z = np.zeros((10, 10))
    cfg = spec.channel
    for d in range(5):
        p, _ = sts_power(w, ps.beta[d] * S2, ps.assoc[d], cfg.p_pilot_w, S2, cfg.p_max_w, None, z=z,
                         pilots=ps.colour[d], n_ant=int(ps.n_ant[d]))
        for t in range(2):
            ref = net_sum_se(sinr_from_equivalent(ps.g_true[d, t].astype(complex), p, 1.0), ps.tau_p[d], spec.tau_c)
            assert got[d, t] == pytest.approx(ref, rel=2e-5)  # complex64 channels in the set
    # a set without colours is refused by a copilot net
    with pytest.raises(ValueError, match="colour"):
        sts_subframe_net_se(TorchOps(net, training=False), net, replace(ps, colour=None), np.arange(2), spec.tau_c)


def test_plain_export_becomes_a_copilot_net_with_the_same_function():
    rng = np.random.default_rng(13)
    w = _plain()
    arch = replace(w.archs["sts"], copilot=True, branch=2)
    net = TorchGNN.from_export(arch, w.params["sts"], dtype=T64)
    for n in copilot_names(arch):  # the terms start at zero, the branch's hidden maps at random
        zero = float(net.params()[n].detach().abs().max()) == 0.0
        assert zero == (not n.startswith("sts.pb.") or n == "sts.pb.out" or n.endswith(".b"))
    plain = TorchGNN.from_export(w.archs["sts"], w.params["sts"], dtype=T64)
    beta, assoc = _drop(rng, 5, 12)
    ops = TorchOps(None, training=False)
    a = torch.as_tensor(assoc[None].astype(float))
    d0 = lsf_features(ops, torch.as_tensor(beta[None] / S2), a, CFG.p_pilot_w)
    e0 = torch.as_tensor(rng.uniform(size=(1, 12, 12, 1)))
    ops.module = net
    got = sts_forward(ops, net.params(), arch, d0, e0)
    ops.module = plain
    want = sts_forward(ops, plain.params(), plain.arch, d0, e0)
    for g, ww in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.detach().numpy(), ww.detach().numpy())
    # in the soft chain the term gets gradients (from zero) and so can learn
    net.train()
    pl, _ = sts_forward(TorchOps(net, training=False), net.params(), arch, d0, e0, branch_t=0.5)
    pl.sum().backward()
    assert float(net.params()[f"sts.{arch.layers - 1}.V6"].grad.abs().max()) > 0
    assert float(net.params()["sts.pb.out"].grad.abs().max()) > 0


def _script():
    spec = importlib.util.spec_from_file_location("finetune_gnn_mix", ROOT / "analysis" / "finetune_gnn_mix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mix_script_copilot_moves_only_the_readout_and_keeps_the_pilots(tmp_path):
    mod = _script()
    base, plain = _plain(tmp_path)
    out = tmp_path / "cop.npz"
    assert mod.main(["--model", "sts", "--init", str(plain), "--out", str(out), "--sizes", "3:8:4:4,4:9:2:4",
                     "--subframes", "1", "--epochs", "1", "--lr", "0.05", "--copilot", "--branch", "1",
                     "--branch-width", "4", "--seed", "5"]) == 0
    w = load_gnn_weights(out)
    arch = w.archs["sts"]
    assert arch.copilot and arch.branch == 1 and arch.branch_width == 4
    assert w.meta["finetune_sts_mix"]["trained"] == ("power readout and its co-pilot term (GNNArch.copilot) "
                                                     "and a 1-layer power branch")
    last = arch.layers - 1
    readout = {f"sts.{last}.{n}" for n in ("U1", "V1", "V2", "b1")}
    moved = {k for k, v in base.params["sts"].items() if not np.array_equal(w.params["sts"][k], v)}
    assert moved <= readout
    assert max(float(np.abs(w.params["sts"][n]).max()) for n in copilot_names(arch)) > 0
    # the pilots are those of the starting file at any size
    rng = np.random.default_rng(2)
    for m, k in ((5, 12), (7, 42)):
        beta, assoc = _drop(rng, m, k)
        z = rng.uniform(size=(k, k))
        p, dec = sts_power(w, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=8)
        _, dec0 = sts_power(base, beta, assoc, CFG.p_pilot_w, S2, CFG.p_max_w, None, z=z, n_ant=8)
        np.testing.assert_array_equal(dec.colour, dec0.colour)
        assert np.all(p[~assoc] == 0) and np.all(p.sum(axis=1) <= CFG.p_max_w)
    with pytest.raises(SystemExit, match="--copilot"):
        mod.main(["--model", "sts", "--init", str(plain), "--out", str(out), "--sizes", "3:8:4:4",
                  "--copilot", "--readout-only"])
    with pytest.raises(SystemExit, match="--copilot"):
        mod.main(["--model", "sts", "--init", str(plain), "--out", str(out), "--sizes", "3:8:4:4", "--branch", "2"])
