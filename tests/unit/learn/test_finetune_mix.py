"""Multi-size fine-tuning (netsim.learn.pretrain.pretrain_power_mix, analysis/finetune_gnn_mix.py)
and the STS antenna-count input on the torch side (torch)."""

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
    FAST_DTYPE,
    GNNWeights,
    default_weights_path,
    load_gnn_weights,
    sts_power,
)
from netsim.learn.data import DropSpec  # noqa: E402
from netsim.learn.pretrain import (  # noqa: E402
    PretrainConfig,
    power_dataset,
    pretrain_power_mix,
    sts_subframe_net_se,
)
from netsim.learn.torch_gnn import TorchGNN, TorchOps  # noqa: E402
from netsim.phy import umi  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).parent))
from sts_plain import plain_sts_weights as _plain  # noqa: E402


def _spec(n_ap, n_ue, n_ant):
    ap = np.array([[0.0, 0.0], [180.0, 40.0], [60.0, 170.0], [-120.0, 90.0]])[:n_ap]
    return DropSpec(ap, n_ue, n_ant, umi.ChannelConfig.umi(), tau_c=60, n_sub=2, name="tiny")


def test_torch_sts_loss_with_n_ant_ref_is_the_numpy_policy_net_se():
    """The torch STS power head with per-drop N / n_ref scaling gives the net-SE that the numpy
    inference (sts_power with n_ant) gives on the same true channels (float64 both)."""
    w = _plain()
    w = GNNWeights("sts", w.archs, w.params, {**w.meta, "features": {**w.meta["features"], "n_ant_ref": 8}})
    net = TorchGNN.from_export(w.archs["sts"], w.params["sts"], dtype=torch.float64)
    spec = _spec(4, 9, 5)
    ps = power_dataset(spec, 4, 2, np.random.default_rng(8), n_ant_mix=(2, 5, 13))
    s2, cfg = spec.noise_w, spec.channel
    got = sts_subframe_net_se(TorchOps(net, training=False), net, ps, np.arange(4), spec.tau_c, 8).detach().numpy()
    z = np.zeros((spec.n_ue, spec.n_ue))
    for d in range(4):
        p, _ = sts_power(w, ps.beta[d] * s2, ps.assoc[d], cfg.p_pilot_w, s2, cfg.p_max_w, None, z=z,
                         n_ant=int(ps.n_ant[d]))
        for t in range(2):
            ref = net_sum_se(sinr_from_equivalent(ps.g_true[d, t].astype(complex), p, 1.0), ps.tau_p[d], spec.tau_c)
            assert got[d, t] == pytest.approx(ref, rel=2e-5)  # complex64 channels in the set
    # the scaling matters: with another n_ref the loss differs
    other = sts_subframe_net_se(TorchOps(net, training=False), net, ps, np.arange(4), spec.tau_c, 1).detach().numpy()
    assert np.abs(other - got).max() > 1e-6


def test_mix_pretraining_keeps_the_best_relative_state_and_weights_sets():
    """One Adam epoch on two sizes: the kept state's validation score is the weighted mean of the
    per-set net-SE ratios to the start (checked by recomputing it), and >= the start's (1)."""
    w = load_gnn_weights(default_weights_path("sts"))
    net = TorchGNN.from_export(w.archs["sts"], w.params["sts"])
    rng = np.random.default_rng(21)
    sets = [power_dataset(_spec(3, 7, 4), 6, 1, rng), power_dataset(_spec(4, 10, 2), 6, 1, rng)]
    ops = TorchOps(net, training=False)
    vals = [np.arange(2), np.arange(2)]
    with torch.no_grad():
        start = [float(sts_subframe_net_se(ops, net, s, v, 60).mean()) for s, v in zip(sets, vals, strict=True)]
    hist = pretrain_power_mix(net, sets, 60, PretrainConfig(epochs=2, batch=2, lr=0.02, seed=3, frozen_bn=True,
                                                            val_fraction=0.3), weights=[3.0, 1.0])
    with torch.no_grad():
        end = [float(sts_subframe_net_se(TorchOps(net, training=False), net, s, v, 60).mean())
               for s, v in zip(sets, vals, strict=True)]
    score = (3.0 * end[0] / start[0] + end[1] / start[1]) / 4.0  # weighted mean, weights 3 : 1
    assert hist.best_val == pytest.approx(score, rel=1e-5)
    assert len(hist.loss) == 2 and hist.best_epoch in (0, 1)


def _script():
    spec = importlib.util.spec_from_file_location("finetune_gnn_mix", ROOT / "analysis" / "finetune_gnn_mix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mix_script_records_sizes_and_the_antenna_reference(tmp_path):
    mod = _script()
    with pytest.raises(SystemExit, match="M:K:N:drops"):
        mod.parse_sizes("7:42:16")
    with pytest.raises(SystemExit, match="M:K:N:drops"):
        mod.parse_sizes("7:42:16:10:-1")
    assert mod.parse_sizes("3:8:4:5, 4:9:2:3:2.5") == [(3, 8, 4, 5, 1.0), (4, 9, 2, 3, 2.5)]
    out = tmp_path / "mix.npz"
    base, plain = _plain(tmp_path)
    assert mod.main(["--model", "sts", "--init", str(plain), "--out", str(out), "--sizes", "3:8:4:4,4:9:2:4:2", "--subframes", "1",
                     "--epochs", "1", "--lr", "0.05", "--n-ant-ref", "16", "--seed", "5"]) == 0
    w = load_gnn_weights(out)
    assert w.n_ant_ref == 16.0
    rec = w.meta["finetune_sts_mix"]
    assert rec["sizes_mkn_drops"] == [[3, 8, 4, 4, 1.0], [4, 9, 2, 4, 2.0]] and rec["drops"] == 8
    json.dumps(w.meta)  # JSON-clean
    moved = max(float(np.abs(w.params["sts"][k] - v).max()) for k, v in base.params["sts"].items())
    assert moved > 0
    # --readout-only trains the power readout (last layer's AP-UE update) and nothing else
    out_ro = tmp_path / "ro.npz"
    assert mod.main(["--model", "sts", "--init", str(plain), "--out", str(out_ro), "--sizes", "3:8:4:4,4:9:2:4", "--subframes", "1",
                     "--epochs", "1", "--lr", "0.05", "--n-ant-ref", "16", "--readout-only", "--seed", "5"]) == 0
    ro = load_gnn_weights(out_ro)
    last = base.archs["sts"].layers - 1
    moved_ro = {k for k, v in base.params["sts"].items() if not np.array_equal(ro.params["sts"][k], v)}
    assert moved_ro and moved_ro <= {f"sts.{last}.{n}" for n in ("U1", "V1", "V2", "b1")}
    assert ro.meta["finetune_sts_mix"]["trained"] == "power readout only"
    # the fine-tuned file runs in the numpy path at an unseen size
    beta = 10 ** np.random.default_rng(2).uniform(-13, -9, (5, 12))
    assoc = beta >= beta.max(axis=0, keepdims=True) * 0.1
    cfg = umi.ChannelConfig.umi()
    p, dec = sts_power(w, beta, assoc, cfg.p_pilot_w, umi.noise_power_w(cfg), cfg.p_max_w,
                       np.random.default_rng(1), dtype=FAST_DTYPE, n_ant=7)
    assert np.all(p[~assoc] == 0) and np.all(p.sum(axis=1) <= cfg.p_max_w * (1 + 1e-9)) and dec.tau_p >= 1


def test_joint_training_refuses_an_antenna_count_input_file(tmp_path):
    from netsim.comm.power.gnn import save_gnn_weights
    from netsim.learn.train import TrainConfig, train

    w = load_gnn_weights(default_weights_path("sts"))
    path = tmp_path / "ref.npz"
    save_gnn_weights(path, GNNWeights("sts", w.archs, w.params,
                                      {**w.meta, "features": {**w.meta["features"], "n_ant_ref": 16}}))
    with pytest.raises(ValueError, match="n_ant_ref"):
        train(_spec(3, 7, 4), TrainConfig(framework="sts", samples=4, epochs=1, init=str(path)))
