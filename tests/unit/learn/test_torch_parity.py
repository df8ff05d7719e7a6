"""torch training path vs numpy inference path (spec 5.6 parity test) and the soft training
chain vs the netsim kernels (spec 5.5, binary X limit)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from netsim.comm.association import associate  # noqa: E402
from netsim.comm.csi_mmse import mmse_estimate, pilot_observation  # noqa: E402
from netsim.comm.net_se import equivalent_channel_estimated, net_sum_se, sinr_true  # noqa: E402
from netsim.comm.power.gnn import GNNWeights, gnn_pilot_assignment, gnn_power, sts_power  # noqa: E402
from netsim.comm.power.gnn_layers import (  # noqa: E402
    GNNArch,
    lsf_features,
    power_activation,
    power_forward,
    ssf_features,
    sts_forward,
)
from netsim.comm.rzf import rzf_beamformers, rzf_regularisation  # noqa: E402
from netsim.comm.subframe import prepare_subframe  # noqa: E402
from netsim.learn.torch_gnn import ChainInputs, TorchGNN, TorchOps, _soft_csi, an_index, dts_power  # noqa: E402
from netsim.learn.torch_gnn import net_se as _net_se  # noqa: E402
from netsim.phy import umi  # noqa: E402

CFG = umi.ChannelConfig.umi()
NOISE = umi.noise_power_w(CFG)
P_U, P_MAX = CFG.p_pilot_w, CFG.p_max_w
T64 = torch.float64


def _randomised(arch, seed):
    gen = torch.Generator().manual_seed(seed)
    net = TorchGNN(arch, gen, T64)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for key in net.bn_keys:
            mean, var = net.running(key)
            mean.copy_(torch.randn(mean.shape, generator=gen, dtype=T64) * 0.3)
            var.copy_(torch.rand(var.shape, generator=gen, dtype=T64) + 0.5)
            net.p[key.replace(".", "__") + "__gamma"].add_(torch.randn(var.shape, generator=gen, dtype=T64) * 0.2)
            net.p[key.replace(".", "__") + "__beta"].add_(torch.randn(var.shape, generator=gen, dtype=T64) * 0.2)
    net.eval()
    return net


def _drop(rng, n_ap, n_ue, n_ant):
    ap = rng.uniform(0, 400, (n_ap, 2))
    ue = rng.uniform(0, 400, (n_ue, 2))
    beta = umi.large_scale_fading(ap, ue, CFG, rng)
    assoc = associate(beta, rng.uniform(-15, -3))
    h = umi.channel_from_fading(beta, umi.draw_small_scale_fading((n_ap, n_ue, n_ant), rng))
    return beta, assoc, h


def test_numpy_and_torch_agree_on_20_random_drops():
    rng = np.random.default_rng(20)
    pilot = _randomised(GNNArch("pilot", 7, width=8), 1)
    power = _randomised(GNNArch("power", 4, width=8), 2)
    sts = _randomised(GNNArch("sts", 7, width=8), 3)
    snr = P_MAX / NOISE
    dts_w = GNNWeights("dts", {"pilot": pilot.arch, "power": power.arch},
                       {"pilot": pilot.export(), "power": power.export()}, {"features": {"snr_ref": snr}})
    sts_w = GNNWeights("sts", {"sts": sts.arch}, {"sts": sts.export()}, {"features": {"snr_ref": snr}})
    ops = TorchOps(None, training=False)
    worst = 0.0
    for _ in range(20):
        n_ap, n_ue, n_ant = int(rng.integers(2, 9)), int(rng.integers(3, 30)), int(rng.integers(1, 17))
        beta, assoc, h = _drop(rng, n_ap, n_ue, n_ant)
        z = rng.uniform(size=(n_ue, n_ue))
        # pilot head
        x_np = gnn_pilot_assignment(dts_w, beta, assoc, P_U, NOISE, None, z=z).x_soft
        ops.module = pilot
        d0 = lsf_features(ops, torch.tensor(beta[None]), torch.tensor(assoc[None], dtype=T64), P_U / NOISE)
        _, xl = sts_forward(ops, pilot.params(), pilot.arch, d0, torch.tensor(z[None, :, :, None]))
        x_t = torch.softmax(xl, dim=1)[0].detach().numpy()
        # power GNN on this drop's Ghat
        ghat = prepare_subframe(h, beta, assoc, np.arange(n_ue), P_U, NOISE, rng).ghat
        p_np = gnn_power(dts_w, ghat, assoc, NOISE, P_MAX)
        ops.module = power
        a_t = torch.tensor(assoc[None], dtype=T64)
        m_idx, k_idx = np.nonzero(assoc)
        g_t = torch.tensor(ghat[m_idx, k_idx][None])  # [1, A, K]
        f0 = ssf_features(ops, g_t.real, g_t.imag, torch.tensor(assoc[m_idx][None], dtype=T64), snr)
        oh = torch.tensor(np.eye(n_ue)[k_idx][None])
        lg = power_forward(ops, power.params(), power.arch, f0, oh, torch.ones(1, m_idx.size, dtype=T64))
        dense = torch.zeros(1, n_ap, n_ue, dtype=T64)
        dense[0, m_idx, k_idx] = lg[0]
        p_t = power_activation(ops, dense, a_t, torch.full((1, n_ap), P_MAX, dtype=T64))[0].detach().numpy()
        # STS power head
        ps_np, _ = sts_power(sts_w, beta, assoc, P_U, NOISE, P_MAX, None, z=z)
        ops.module = sts
        pl, _ = sts_forward(ops, sts.params(), sts.arch, d0, torch.tensor(z[None, :, :, None]))
        ps_t = power_activation(ops, pl, a_t, torch.full((1, n_ap), P_MAX, dtype=T64))[0].detach().numpy()
        worst = max(worst, np.max(np.abs(x_np - x_t)), np.max(np.abs(p_np - p_t)) / P_MAX,
                    np.max(np.abs(ps_np - ps_t)) / P_MAX)
    assert worst < 1e-5, worst


def test_soft_chain_equals_netsim_kernels_for_binary_pilots():
    """With a one-hot X the differentiable chain is the hard pipeline (noise per UE)."""
    rng = np.random.default_rng(21)
    for n_ap, n_ue, n_ant in ((3, 8, 4), (5, 12, 2), (2, 5, 6)):
        beta, assoc, h = _drop(rng, n_ap, n_ue, n_ant)
        colour = rng.integers(0, 4, n_ue)
        _, colour = np.unique(colour, return_inverse=True)
        tau_p = int(colour.max()) + 1
        x = np.zeros((n_ue, n_ue))
        x[colour, np.arange(n_ue)] = 1.0
        noise = umi.draw_small_scale_fading((n_ap, n_ue, n_ant), rng)
        # netsim kernels, physical units
        y = pilot_observation(h, colour, P_U, NOISE, noise=noise, noise_per="ue")
        hhat, err = mmse_estimate(y, beta, colour, P_U, NOISE, assoc)
        w = rzf_beamformers(hhat, assoc, rzf_regularisation(err, NOISE, P_U))
        ghat = equivalent_channel_estimated(hhat, w, beta, assoc)
        power = np.where(assoc, rng.uniform(0, 2, assoc.shape), 0.0)
        se = float(net_sum_se(sinr_true(h, w, power, NOISE), tau_p, 200))
        # torch chain, noise units
        g = h / np.sqrt(beta)[:, :, None]
        inp = ChainInputs(torch.tensor(beta[None] / NOISE), torch.tensor(assoc[None], dtype=T64),
                          torch.tensor(g[None, None]), torch.tensor(noise[None, None]),
                          torch.zeros(1, n_ue, n_ue, dtype=T64), P_U,
                          torch.full((1, n_ap), P_MAX, dtype=T64), 200)
        tau, ghat_t, g_true, err_t = _soft_csi(torch.tensor(x[None]), inp, 0)
        assert abs(float(tau[0]) - tau_p) < 1e-12
        # the soft chain's unknown-part variance (the err_var Power-GNN's input) is the engine's
        np.testing.assert_allclose(err_t[0].numpy() * NOISE, err, rtol=1e-10, atol=1e-14 * beta.max())
        np.testing.assert_allclose(ghat_t[0, 0].numpy() * np.sqrt(NOISE), ghat,
                                   rtol=1e-8, atol=1e-10 * np.abs(ghat).max())
        se_t = float(_net_se(g_true, torch.tensor(power[None, None]), tau, 200)[0, 0])
        assert abs(se_t - se) < 1e-8 * se


def test_err_var_power_gnn_numpy_and_torch_agree_on_20_random_drops():
    """The Power-GNN with the error-variance input: numpy fast path (gnn_power) = torch
    (dts_power, the training path) to 1e-5 in float64; err given per drop [B, M, K] and per
    subframe [B, T, M, K] give the same torch output."""
    rng = np.random.default_rng(22)
    power = _randomised(GNNArch("power", 4, width=8, err_var=True), 4)
    with torch.no_grad():  # the fifth input column must matter: make it large
        for name in power.names:
            if name.startswith("pow.0.") and not name.startswith("pow.0.b"):
                power.p[name.replace(".", "__")][:, 4].mul_(5.0)
    pilot = _randomised(GNNArch("pilot", 2, width=4), 5)
    snr = P_MAX / NOISE
    w = GNNWeights("dts", {"pilot": pilot.arch, "power": power.arch},
                   {"pilot": pilot.export(), "power": power.export()}, {"features": {"snr_ref": snr}})
    ops = TorchOps(power, training=False)
    worst, moved = 0.0, 0.0
    for _ in range(20):
        n_ap, n_ue, n_ant = int(rng.integers(2, 9)), int(rng.integers(2, 30)), int(rng.integers(1, 17))
        beta, assoc, h = _drop(rng, n_ap, n_ue, n_ant)
        colour = rng.integers(0, max(1, n_ue // 2), n_ue)  # pilot reuse: contaminated estimates
        csi = prepare_subframe(h, beta, assoc, colour, P_U, NOISE, rng)
        p_np = gnn_power(w, csi.ghat, assoc, NOISE, P_MAX, err_var=csi.err_var)
        an_m, an_k, an_mask = (torch.as_tensor(v) for v in an_index(assoc[None]))
        a_t = torch.tensor(assoc[None], dtype=T64)
        args = (torch.tensor(csi.ghat[None, None] / np.sqrt(NOISE)), a_t, an_m, an_k, an_mask.to(T64),
                torch.full((1, n_ap), P_MAX, dtype=T64))
        p_t = dts_power(ops, power, *args, torch.tensor(csi.err_var[None] / NOISE))[0, 0].detach().numpy()
        p_t2 = dts_power(ops, power, *args, torch.tensor(csi.err_var[None, None] / NOISE))[0, 0].detach().numpy()
        np.testing.assert_array_equal(p_t, p_t2)
        worst = max(worst, np.max(np.abs(p_np - p_t)) / P_MAX)
        p_other = gnn_power(w, csi.ghat, assoc, NOISE, P_MAX, err_var=csi.err_var * 0.01)
        moved = max(moved, np.max(np.abs(p_other - p_np)) / P_MAX)
    assert worst < 1e-5, worst
    assert moved > 1e-4  # the variance reaches the output (the parity is not about a dead input)
