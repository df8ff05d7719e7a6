"""Pre-training stages (netsim.learn.pretrain) and fine-tuning from exported weights:
the fixed-pilot dataset's torch net-SE equals the netsim kernels' net-SE, the colouring weights
mark exactly the AP-sharing pairs, an exported net re-imported for frozen-BN fine-tuning is the
same function, and the stages run end to end on a tiny deployment."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netsim.comm.net_se import net_sum_se, sinr_from_equivalent  # noqa: E402
from netsim.comm.pilot_assignment import is_proper_colouring  # noqa: E402
from netsim.comm.power.gnn import gnn_power, load_gnn_weights, save_gnn_weights  # noqa: E402
from netsim.comm.power.gnn_layers import GNNArch  # noqa: E402
from netsim.learn.data import DropSpec, draw_drops  # noqa: E402
from netsim.learn.pretrain import (  # noqa: E402
    ColouringConfig,
    PretrainConfig,
    colouring_weights,
    power_dataset,
    pretrain_pilots,
    pretrain_power,
    random_colouring,
    subframe_net_se,
)
from netsim.learn.torch_gnn import TorchGNN, TorchOps, net_se  # noqa: E402
from netsim.learn.train import TrainConfig, to_weights, train  # noqa: E402
from netsim.phy import umi  # noqa: E402


def _spec(n_ap=3, n_ue=8, n_ant=4):
    ap = np.array([[0.0, 0.0], [180.0, 40.0], [60.0, 170.0]])[:n_ap]
    return DropSpec(ap, n_ue, n_ant, umi.ChannelConfig.umi(), tau_c=60, n_sub=2, name="tiny")


def test_random_colourings_are_proper():
    rng = np.random.default_rng(3)
    spec = _spec()
    d = draw_drops(spec, 6, rng)
    for a in d.assoc:
        for n in (1, 3, 8):
            c = random_colouring(a, n, rng)
            assert is_proper_colouring(c, a) and c.min() == 0 and c.max() + 1 == np.unique(c).size


def test_power_dataset_net_se_matches_netsim_kernels():
    rng = np.random.default_rng(4)
    spec = _spec()
    ps = power_dataset(spec, 5, 2, rng, n_ant_mix=(1, 3, 6))
    p = np.where(ps.assoc, rng.uniform(0.1, 1.0, ps.assoc.shape), 0.0)
    p = p / np.maximum(p.sum(axis=2, keepdims=True), 1.0) * ps.p_max  # [D, M, K]
    ref = np.array([[net_sum_se(sinr_from_equivalent(ps.g_true[d, t].astype(complex), p[d], 1.0),
                                ps.tau_p[d], spec.tau_c) for t in range(2)] for d in range(5)])
    got = net_se(torch.as_tensor(ps.g_true).to(torch.complex128),
                 torch.as_tensor(p)[:, None].expand(5, 2, *p.shape[1:]),
                 torch.as_tensor(ps.tau_p, dtype=torch.float64), spec.tau_c).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert set(ps.n_ant.tolist()) <= {1, 3, 6}


def test_colouring_weights_mark_the_conflict_graph():
    rng = np.random.default_rng(5)
    spec = _spec()
    d = draw_drops(spec, 4, rng)
    w = colouring_weights(d.beta, d.assoc, gamma=0.2)
    a = d.assoc.astype(float)
    share = np.einsum("dmk,dmi->dki", a, a) > 0
    k = spec.n_ue
    share[:, np.arange(k), np.arange(k)] = False
    assert np.array_equal(w >= 1.0, share)
    assert np.allclose(w, np.swapaxes(w, 1, 2)) and np.all(w[:, np.arange(k), np.arange(k)] == 0)
    assert np.all(w[~share] <= 0.2 + 1e-12)


def test_export_reimport_is_the_same_function():
    rng = np.random.default_rng(6)
    gen = torch.Generator().manual_seed(1)
    net = TorchGNN(GNNArch("power", 3, width=5), gen, torch.float64)
    with torch.no_grad():
        for key in net.bn_keys:
            mean, var = net.running(key)
            mean.normal_(0, 0.3, generator=gen)
            var.uniform_(0.5, 1.5, generator=gen)
    exp = net.export()
    back = TorchGNN.from_export(net.arch, exp, torch.float64).export()
    for k, v in exp.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-12, atol=1e-14)
    spec = _spec()
    ps = power_dataset(spec, 3, 1, rng)
    a = subframe_net_se(TorchOps(net, training=False), net, ps, np.arange(3), spec.tau_c)
    re = TorchGNN.from_export(net.arch, exp, torch.float64)
    b = subframe_net_se(TorchOps(re, training=False), re, ps, np.arange(3), spec.tau_c)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5)


def test_stages_run_end_to_end(tmp_path):
    rng = np.random.default_rng(7)
    spec = _spec()
    gen = torch.Generator().manual_seed(2)
    ps = power_dataset(spec, 8, 1, rng, n_ant_mix=(2, 4))
    pw = TorchGNN(GNNArch("power", 2, width=4), gen)
    h = pretrain_power(pw, ps, spec.tau_c, PretrainConfig(epochs=2, batch=4))
    assert len(h.val_net_se) == 2 and h.best_val == max(h.val_net_se)
    pil = TorchGNN(GNNArch("pilot", 2, width=4, att_width=4), gen)
    hp = pretrain_pilots(pil, spec, draw_drops(spec, 8, rng), ColouringConfig(epochs=2, batch=4))
    assert hp.best_val == max(hp.val_net_se)
    cfg = TrainConfig(framework="dts", samples=8, epochs=1, batch=4, n_ant_mix=(2, 4), val_sub=1,
                      pilot_layers=2, power_layers=2, width=4)
    w0 = to_weights(cfg, {"pilot": pil, "power": pw}, spec, {"training": {}})
    save_gnn_weights(tmp_path / "init.npz", w0)
    w, hist = train(spec, TrainConfig(**{**cfg.__dict__, "init": str(tmp_path / "init.npz")}))
    assert hist.epoch == [0] and w.meta["init_from"]["path"] == str(tmp_path / "init.npz")
    assert w.archs["power"] == pw.arch
    save_gnn_weights(tmp_path / "out.npz", w)
    ghat = ps.ghat[0, 0].astype(complex) * np.sqrt(spec.noise_w)
    p = gnn_power(load_gnn_weights(tmp_path / "out.npz"), ghat, ps.assoc[0], spec.noise_w,
                  spec.channel.p_max_w)
    assert np.all(p.sum(axis=1) <= spec.channel.p_max_w) and np.all(p[~ps.assoc[0]] == 0)


def test_cli_fine_tunes_the_shipped_weights_on_a_mix_of_n(tmp_path):
    from netsim.cli import main
    from netsim.comm.power.gnn import default_weights_path

    out = tmp_path / "ft.npz"
    rc = main(["train-gnn", "--scenario", "scenarios/umi_cellfree.yaml", "--model", "dts",
               "--samples", "8", "--epochs", "1", "--batch", "4", "--n-ant-mix", "2,4",
               "--init", str(default_weights_path("dts")), "--lr", "0.001",
               "--set", "users.count=10", "-q", "--out", str(out)])
    assert rc == 0
    w = load_gnn_weights(out)
    cfg = w.meta["training"]["config"]
    assert cfg["n_ant_mix"] == [2, 4] and cfg["init"] == str(default_weights_path("dts"))
    # the provenance chain of the shipped file survives: fine-tune <- fine-tune <- pre-training
    assert w.meta["init_from"]["init_from"]["pretrain_power"]["drops_seen"] > 0


def test_err_var_training_loss_is_the_numpy_policy_net_se():
    """The fixed-pilot training loss of an err_var Power-GNN (torch, PowerSet.err_var) is the
    hard net-SE of the numpy policy gnn_power(..., err_var=) on the same subframes."""
    from netsim.comm.power.gnn import GNNWeights
    from netsim.learn.pretrain import subframe_net_se

    rng = np.random.default_rng(9)
    spec = _spec()
    ps = power_dataset(spec, 4, 2, rng, n_ant_mix=(2, 5))
    net = TorchGNN(GNNArch("power", 3, width=6, err_var=True), torch.Generator().manual_seed(3), torch.float64)
    net.eval()
    got = subframe_net_se(TorchOps(net, training=False), net, ps, np.arange(4), spec.tau_c).detach().numpy()
    pa = GNNArch("pilot", 2, width=4)
    w = GNNWeights("dts", {"pilot": pa, "power": net.arch},
                   {"pilot": TorchGNN(pa, torch.Generator().manual_seed(4), torch.float64).export(),
                    "power": net.export()}, {"features": {"snr_ref": ps.p_max}})
    ref = np.zeros((4, 2))
    for d in range(4):
        for t in range(2):
            p = gnn_power(w, ps.ghat[d, t].astype(complex), ps.assoc[d], 1.0, ps.p_max,
                          err_var=ps.err_var[d, t].astype(float))
            ref[d, t] = net_sum_se(sinr_from_equivalent(ps.g_true[d, t].astype(complex), p, 1.0),
                                   ps.tau_p[d], spec.tau_c)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert ps.err_var.shape == ps.assoc.shape[:1] + (2,) + ps.assoc.shape[1:]
    with pytest.raises(ValueError, match="err_var"):
        subframe_net_se(TorchOps(net, training=False), net, replace(ps, err_var=None), np.arange(2), spec.tau_c)


def test_cli_joint_training_with_err_var(tmp_path):
    from netsim.cli import main
    from netsim.comm.power.gnn import default_weights_path

    out = tmp_path / "ev.npz"
    rc = main(["train-gnn", "--scenario", "scenarios/umi_cellfree.yaml", "--model", "dts",
               "--samples", "8", "--epochs", "1", "--batch", "4", "--err-var",
               "--init", str(default_weights_path("dts")), "--lr", "0.001",
               "--set", "users.count=10", "-q", "--out", str(out)])
    assert rc == 0
    w = load_gnn_weights(out)
    assert w.power_err_var and w.meta["training"]["config"]["power_err_var"]
