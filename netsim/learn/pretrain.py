"""Pre-training of the DTS-Power-GNN on fixed (hard) pilots, optionally over a mix of N.

The power head of DTS is trained alone, before the joint DTS training of
:mod:`netsim.learn.train`: the pilots are fixed per drop (DSatur colourings and random proper
colourings with more pilots, so that the head sees the contamination levels a learned pilot
policy produces), and the estimated and true equivalent channels of every subframe are computed
ONCE with the simulator's own numpy chain (:func:`netsim.comm.subframe.prepare_subframe`, the
test-phase pipeline). The loss is then exactly the hard test-phase net-SE (4) of those
subframes, and a training step is one Power-GNN pass instead of the full soft chain.

The equivalent channels ``[M, K, K]`` do not depend on N, so drops of different antenna counts
share one batch: training on a mix of N is how one Power-GNN serves every N of Table II.

    from netsim.learn.pretrain import PowerSet, power_dataset, pretrain_power
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from netsim.comm.pilot_assignment import conflict_graph, dsatur, relabel
from netsim.comm.subframe import prepare_subframe
from netsim.learn.data import Drops, DropSpec, draw_drops, draw_ssf
from netsim.learn.torch_gnn import TorchGNN, TorchOps, an_index, dts_power, net_se
from netsim.phy.umi import channel_from_fading

__all__ = ["PowerSet", "random_colouring", "power_dataset", "PretrainConfig", "pretrain_power", "pretrain_power_mix",
           "subframe_net_se", "sts_subframe_net_se", "colouring_weights", "ColouringConfig", "pretrain_pilots"]


@dataclass
class PowerSet:
    """Subframes with fixed pilots, in noise units (sigma^2 = 1).

    ghat, g_true : [D, T, M, K, K] complex64, estimated (11) and true (10) equivalent channels
    (entry [m, k, i] = (.)_i^H w_k); assoc : [D, M, K] bool; tau_p : [D] int; n_ant : [D] int;
    p_max : float (W); beta : [D, M, K] LSF gains / sigma^2 (the STS power head's input);
    p_pilot : p_u (W, = p_u / sigma^2 in noise units); err_var : [D, T, M, K] float32
    unknown-part variances / sigma^2 of each subframe's estimate (c_mk where a_mk = 1, beta_mk
    elsewhere: the input of a Power-GNN with ``GNNArch.err_var``; None in older sets);
    colour : [D, K] int, the fixed pilots of each drop (read by a ``GNNArch.copilot`` STS
    power readout; None in older sets).
    """

    ghat: np.ndarray
    g_true: np.ndarray
    assoc: np.ndarray
    tau_p: np.ndarray
    n_ant: np.ndarray
    p_max: float
    beta: np.ndarray | None = None
    p_pilot: float = 0.0
    err_var: np.ndarray | None = None
    colour: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ghat.shape[0])


def random_colouring(assoc: np.ndarray, n_colours: int, rng: np.random.Generator) -> np.ndarray:
    """A random proper pilot colouring (no two UEs sharing an AP share a pilot).

    UEs in random order take a random colour among the ``n_colours`` ones not used by a
    conflicting UE; a UE with none free opens a new colour. Returns colour [K] relabelled to
    0..tau_p-1.
    """
    a = assoc.astype(float)  # [M, K]
    share = (a.T @ a) > 0  # [K, K]
    np.fill_diagonal(share, False)
    k = assoc.shape[1]
    colour = -np.ones(k, dtype=np.int64)
    top = n_colours
    for u in rng.permutation(k):
        used = set(colour[share[u] & (colour >= 0)].tolist())
        free = [c for c in range(top) if c not in used]
        if not free:
            free = [top]
            top += 1
        colour[u] = free[int(rng.integers(len(free)))]
    return relabel(colour)


def power_dataset(spec: DropSpec, n_drops: int, n_sub: int, rng: np.random.Generator, *,
                  n_ant_mix: tuple[int, ...] = (), random_pilot_share: float = 0.5,
                  drops: Drops | None = None, pilot_source=None) -> PowerSet:
    """Draw ``n_drops`` drops x ``n_sub`` subframes with fixed pilots (module docstring).

    n_ant_mix : antenna counts drawn uniformly per drop (empty: spec.n_ant);
    random_pilot_share : share of drops with a random proper colouring of tau in
    [tau_DSatur, K] instead of the main pilot source;
    pilot_source : callable(beta [M, K], assoc [M, K], rng) -> colour [K] giving the main
    pilots (e.g. the Pilot-GNN with its test-phase rounding); None = DSatur.
    """
    cfg = spec.channel
    s2 = spec.noise_w
    if drops is None:
        drops = draw_drops(spec, n_drops, rng)
    n_drops = len(drops)
    m, k = spec.n_ap, spec.n_ue
    ghat = np.zeros((n_drops, n_sub, m, k, k), np.complex64)
    g_true = np.zeros_like(ghat)
    err_var = np.zeros((n_drops, n_sub, m, k), np.float32)
    tau = np.zeros(n_drops, np.int64)
    n_ant = np.zeros(n_drops, np.int64)
    colours = np.zeros((n_drops, k), np.int64)
    mix = tuple(n_ant_mix) or (spec.n_ant,)
    for d in range(n_drops):
        beta, assoc = drops.beta[d], drops.assoc[d]
        n = int(mix[int(rng.integers(len(mix)))])
        colour = dsatur(conflict_graph(assoc, beta))
        if pilot_source is not None:
            t_ds = int(colour.max()) + 1
            colour = relabel(np.asarray(pilot_source(beta, assoc, rng)))
        else:
            t_ds = int(colour.max()) + 1
        if rng.random() < random_pilot_share:
            colour = random_colouring(assoc, int(rng.integers(t_ds, k + 1)), rng)
        tau[d], n_ant[d] = int(colour.max()) + 1, n
        colours[d] = colour
        for t in range(n_sub):
            h = channel_from_fading(beta, draw_ssf((m, k, n), rng))  # [M, K, N]
            csi = prepare_subframe(h, beta, assoc, colour, cfg.p_pilot_w, s2, rng)
            ghat[d, t] = csi.ghat / np.sqrt(s2)
            err_var[d, t] = csi.err_var / s2
            g_true[d, t] = (csi.w @ np.conj(np.swapaxes(h, -1, -2))) / np.sqrt(s2)  # [M, K, K]
    return PowerSet(ghat, g_true, drops.assoc.copy(), tau, n_ant, float(cfg.p_max_w),
                    drops.beta / s2, float(cfg.p_pilot_w), err_var, colours)


@dataclass(frozen=True)
class PretrainConfig:
    """epochs, batch (drops per step; all their subframes are used), lr (Adam, halved on a
    validation plateau of ``plateau`` epochs), val_fraction, patience (early stop), seed,
    time_budget_s (wall), threads (torch CPU threads), frozen_bn (fine-tune with eval-mode
    batch norm, e.g. a net loaded with :meth:`TorchGNN.from_export`)."""

    epochs: int = 60
    batch: int = 16
    lr: float = 0.01
    val_fraction: float = 0.1
    patience: int = 10
    plateau: int = 4
    seed: int = 0
    time_budget_s: float | None = None
    threads: int = 1
    frozen_bn: bool = False


@dataclass
class PretrainHistory:
    loss: list[float] = field(default_factory=list)
    val_net_se: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = -np.inf
    stopped: str = ""


class _EpochBook:
    """The epoch bookkeeping both pre-training stages share: history rows, the best validation
    state, Adam's learning rate halved after ``plateau`` epochs without a new best, and the
    stopping rule (``patience`` epochs without a new best, or the wall-time budget)."""

    def __init__(self, hist: PretrainHistory, cfg):
        self.hist, self.cfg = hist, cfg
        self.best_state = None
        self.since = self.since_lr = 0
        self.t_wall, self.t_cpu = time.perf_counter(), time.process_time()

    def end_epoch(self, ep: int, losses: list[float], v: float, net: TorchGNN, opt) -> None:
        hist = self.hist
        hist.loss.append(float(np.mean(losses)))
        hist.val_net_se.append(v)
        hist.lr.append(opt.param_groups[0]["lr"])
        hist.wall_s.append(time.perf_counter() - self.t_wall)
        hist.cpu_s.append(time.process_time() - self.t_cpu)
        if v > hist.best_val:
            hist.best_val, hist.best_epoch, self.since, self.since_lr = v, ep, 0, 0
            self.best_state = {k: t.detach().clone() for k, t in net.state_dict().items()}
        else:
            self.since += 1
            self.since_lr += 1
            if self.since_lr >= self.cfg.plateau:
                for g in opt.param_groups:
                    g["lr"] *= 0.5
                self.since_lr = 0

    def should_stop(self) -> bool:
        cfg, hist = self.cfg, self.hist
        if self.since >= cfg.patience:
            hist.stopped = f"early stop after {cfg.patience} epochs without improvement"
            return True
        if cfg.time_budget_s is not None and hist.wall_s[-1] > cfg.time_budget_s:
            hist.stopped = f"time budget {cfg.time_budget_s} s reached"
            return True
        return False

    def finish(self, net: TorchGNN) -> PretrainHistory:
        if self.best_state is not None:
            net.load_state_dict(self.best_state)
        return self.hist


def _tensors(ps: PowerSet, idx, tau_c: int, dtype=torch.float32):
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    a = ps.assoc[idx]
    an_m, an_k, an_mask = an_index(a)
    return (torch.as_tensor(ps.ghat[idx], dtype=cdt), torch.as_tensor(ps.g_true[idx], dtype=cdt),
            torch.as_tensor(a, dtype=dtype), torch.as_tensor(an_m), torch.as_tensor(an_k),
            torch.as_tensor(an_mask, dtype=dtype), torch.as_tensor(ps.tau_p[idx], dtype=dtype),
            torch.full((len(idx), a.shape[1]), ps.p_max, dtype=dtype))


def subframe_net_se(ops, net: TorchGNN, ps: PowerSet, idx, tau_c: int):
    """Hard net-SE (4) [B, T] of the Power-GNN on subframes ``idx`` of ``ps`` (torch); a net
    with the err_var input reads ``ps.err_var``."""
    dt = next(net.parameters()).dtype
    g, gt, a, am, ak, mask, tau, pm = _tensors(ps, idx, tau_c, dt)
    err = None
    if net.arch.err_var:
        if ps.err_var is None:
            raise ValueError("this Power-GNN reads err_var, but the PowerSet has none")
        err = torch.as_tensor(ps.err_var[idx], dtype=dt)  # [B, T, M, K]
    power = dts_power(ops, net, g, a, am, ak, mask, pm, err)  # [B, T, M, K]
    return net_se(gt, power, tau, tau_c)


def sts_subframe_net_se(ops, net: TorchGNN, ps: PowerSet, idx, tau_c: int, n_ant_ref: float | None = None,
                        readout_n_ref: float | None = None, readout_n_range=None):
    """Hard net-SE (4) [B, T] of the STS power head (one power matrix per frame, from the LSF
    features only, eq. (14)) on the fixed-pilot subframes ``idx`` of ``ps`` (torch).
    ``n_ant_ref`` : the features use beta p_u N / (sigma^2 n_ant_ref) with each drop's N
    (``features.n_ant_ref`` of the weights file; None: beta p_u / sigma^2). ``readout_n_ref`` :
    the power readout's antenna term at t = log2(N / readout_n_ref) per drop (``net`` built with
    ``readout_n``; None: no term), t clipped to ``readout_n_range`` (t_lo, t_hi) when given.
    A ``copilot`` net's readout reads the co-pilot matrix of ``ps.colour`` (the hard pilots
    the subframes were computed with, as in the test phase)."""
    from netsim.comm.power.gnn_layers import (
        branch_t,
        copilot_from_colour,
        lsf_features,
        power_activation,
        readout_n_t,
        sts_forward,
    )

    dt = next(net.parameters()).dtype
    cdt = torch.complex64 if dt == torch.float32 else torch.complex128
    scale = np.ones(len(idx)) if n_ant_ref is None else ps.n_ant[idx] / float(n_ant_ref)  # [B]
    beta = torch.as_tensor(ps.beta[idx] * scale[:, None, None], dtype=dt)  # [B, M, K]
    a = torch.as_tensor(ps.assoc[idx], dtype=dt)
    d0 = lsf_features(ops, beta, a, ps.p_pilot)
    n_ps = net.arch.n_ps or beta.shape[2]
    e0 = torch.zeros((len(idx), n_ps, beta.shape[2], 1), dtype=dt)  # the power head never reads E
    t = None
    if readout_n_ref is not None:
        t = readout_n_t(ps.n_ant[idx], readout_n_ref, readout_n_range)  # [B]
        t = torch.as_tensor(t, dtype=dt)[:, None, None, None]  # [B, 1, 1, 1]
    cop = None
    if net.arch.copilot:
        if ps.colour is None:
            raise ValueError("this STS-GNN's power readout reads the pilots, but the PowerSet has no colour")
        cop = torch.as_tensor(copilot_from_colour(ps.colour[idx]), dtype=dt)  # [B, K, K]
    bt = 0.0
    if net.arch.branch:  # the power branch reads each drop's N
        bt = torch.as_tensor(branch_t(net.arch, ps.n_ant[idx]), dtype=dt)[:, None, None, None]  # [B, 1, 1, 1]
    p_logit, _ = sts_forward(ops, net.params(), net.arch, d0, e0, readout_t=t, copilot=cop, branch_t=bt)
    p = power_activation(ops, p_logit, a, torch.full(beta.shape[:2], ps.p_max, dtype=dt))  # [B, M, K]
    gt = torch.as_tensor(ps.g_true[idx], dtype=cdt)
    power = p[:, None].expand(gt.shape[:4])  # [B, T, M, K]
    return net_se(gt, power, torch.as_tensor(ps.tau_p[idx], dtype=dt), tau_c)


def pretrain_power(net: TorchGNN, ps: PowerSet, tau_c: int, cfg: PretrainConfig, *,
                   log=None) -> PretrainHistory:
    """Train ``net`` (a "power" TorchGNN, or the power head of an "sts" one; updated in place,
    the best validation state is restored at the end) to maximise the mean hard net-SE of ``ps``."""
    se_fn = sts_subframe_net_se if net.arch.kind == "sts" else subframe_net_se
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    n_val = max(2, int(round(cfg.val_fraction * len(ps))))
    val = np.arange(n_val)
    trn = np.arange(n_val, len(ps))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    hist = PretrainHistory()
    book = _EpochBook(hist, cfg)
    for ep in range(cfg.epochs):
        net.train()
        # frozen_bn: eval-mode batch norm, so that a net from TorchGNN.from_export keeps
        # computing exactly the exported function while it is fine-tuned
        ops = TorchOps(net, training=not cfg.frozen_bn)
        losses = []
        order = rng.permutation(trn)
        for s in range(0, len(order), cfg.batch):
            idx = order[s:s + cfg.batch]
            loss = -se_fn(ops, net, ps, idx, tau_c).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        net.eval()
        with torch.no_grad():
            v = float(se_fn(TorchOps(net, training=False), net, ps, val, tau_c).mean())
        book.end_epoch(ep, losses, v, net, opt)
        if log is not None:
            log({"stage": "pretrain_power", "epoch": ep, "loss": hist.loss[-1], "val_net_se": v,
                 "best": hist.best_val, "lr": hist.lr[-1], "wall_s": hist.wall_s[-1],
                 "cpu_s": hist.cpu_s[-1]})
        if book.should_stop():
            break
    else:
        hist.stopped = "epoch cap"
    return book.finish(net)


def pretrain_power_mix(net: TorchGNN, sets: list[PowerSet], tau_c: int, cfg: PretrainConfig, *,
                       weights: list[float] | None = None, n_ant_ref: float | None = None,
                       readout_n_ref: float | None = None, readout_n_range=None,
                       log=None) -> PretrainHistory:
    """:func:`pretrain_power` over several deployment sizes at once (one PowerSet per size).

    A batch holds drops of ONE set (the arrays of a set share M and K); an epoch visits every
    training batch of every set in a random order. Each set's net-SE is measured relative to the
    initial network's validation net-SE on that set, r_j = SE_j / SE_j(start), so that large
    deployments (whose net-SE is larger) do not outweigh small ones: the loss of a batch of set
    j is -w_j r_j, and the validation score (what selects the kept state) is the weighted mean of
    the r_j. ``weights`` : w_j (default 1 each; normalised to mean 1). ``n_ant_ref`` : the STS
    features' antenna reference, ``readout_n_ref`` / ``readout_n_range`` : those of the power
    readout's antenna term (:func:`sts_subframe_net_se`; STS only).
    """
    if net.arch.kind == "sts":
        def se_fn(ops, net, ps, idx, tau_c):
            return sts_subframe_net_se(ops, net, ps, idx, tau_c, n_ant_ref, readout_n_ref, readout_n_range)
    else:
        se_fn = subframe_net_se
    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    w = np.ones(len(sets)) if weights is None else np.asarray(weights, float)
    w = w / w.mean()
    vals, trns = [], []
    for ps in sets:
        n_val = max(2, int(round(cfg.val_fraction * len(ps))))
        vals.append(np.arange(n_val))
        trns.append(np.arange(n_val, len(ps)))

    def val_se() -> np.ndarray:
        net.eval()
        with torch.no_grad():
            ops = TorchOps(net, training=False)
            return np.array([float(se_fn(ops, net, ps, v, tau_c).mean()) for ps, v in zip(sets, vals, strict=True)])

    ref = val_se()  # [J] the starting network's validation net-SE per set
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    hist = PretrainHistory()
    book = _EpochBook(hist, cfg)
    for ep in range(cfg.epochs):
        net.train()
        ops = TorchOps(net, training=not cfg.frozen_bn)
        batches = []
        for j, trn in enumerate(trns):
            order = rng.permutation(trn)
            batches += [(j, order[s:s + cfg.batch]) for s in range(0, len(order), cfg.batch)]
        losses = []
        for b in rng.permutation(len(batches)):
            j, idx = batches[b]
            loss = -w[j] * se_fn(ops, net, sets[j], idx, tau_c).mean() / ref[j]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        r = val_se() / ref  # [J]
        v = float(np.mean(w * r))
        book.end_epoch(ep, losses, v, net, opt)
        if log is not None:
            log({"stage": "pretrain_power_mix", "epoch": ep, "loss": hist.loss[-1], "val_rel": v,
                 "val_rel_per_set": [round(float(x), 5) for x in r], "best": hist.best_val,
                 "lr": hist.lr[-1], "wall_s": hist.wall_s[-1], "cpu_s": hist.cpu_s[-1]})
        if book.should_stop():
            break
    else:
        hist.stopped = "epoch cap"
    return book.finish(net)


# ----------------------------------------------------------------------------- pilot head
def colouring_weights(beta: np.ndarray, assoc: np.ndarray, gamma: float = 0.2) -> np.ndarray:
    """Pair weights W [D, K, K] of the colouring pre-training loss (zero diagonal).

    W_ki = 1 for UEs sharing an AP (a pilot conflict: spec 4.1's conflict graph) plus
    gamma * min(w_ki, 1), w_ki = sum_m a_mk beta_mi / beta_mk + a_mi beta_mk / beta_mi the
    contamination weight of spec 4.1, so that the head also prefers weakly coupled co-pilot pairs.
    beta : [D, M, K] linear; assoc : [D, M, K] bool.
    """
    a = assoc.astype(float)
    share = np.einsum("dmk,dmi->dki", a, a) > 0  # [D, K, K]
    ratio = beta[:, :, None, :] / np.maximum(beta[:, :, :, None], 1e-300)  # [D, M, K, K] b_mi/b_mk
    w = np.einsum("dmk,dmki->dki", a, ratio)
    w = w + np.swapaxes(w, 1, 2)
    out = share.astype(float) + gamma * np.minimum(w, 1.0)
    k = beta.shape[2]
    out[:, np.arange(k), np.arange(k)] = 0.0
    return out


@dataclass(frozen=True)
class ColouringConfig:
    """Pilot-head pre-training: loss = sum_{k<i} W_ki (X^T X)_ki + mu tau_soft (soft graph
    colouring with a pilot-length price mu; W from :func:`colouring_weights`). epochs, batch,
    lr (Adam, halved on plateaus), val_fraction, patience, seed, time_budget_s, threads."""

    epochs: int = 40
    batch: int = 16
    lr: float = 0.01
    mu: float = 0.1
    gamma: float = 0.2
    val_fraction: float = 0.1
    patience: int = 10
    plateau: int = 4
    seed: int = 0
    time_budget_s: float | None = None
    threads: int = 1


def _hard_colouring_cost(x_logit: np.ndarray, share: np.ndarray, mu: float):
    """(conflicting pairs, tau_p) per graph after test-phase rounding; x_logit [B, S, K]."""
    col = np.argmax(x_logit, axis=1)  # [B, K]
    same = col[:, :, None] == col[:, None, :]
    k = col.shape[1]
    same[:, np.arange(k), np.arange(k)] = False
    conf = (same & share).sum(axis=(1, 2)) / 2
    tau = np.array([np.unique(c).size for c in col])
    return conf, tau


def pretrain_pilots(net: TorchGNN, spec: DropSpec, drops: Drops, cfg: ColouringConfig, *,
                    log=None) -> PretrainHistory:
    """Train the pilot head of ``net`` (a "pilot" or "sts" TorchGNN, in place; best validation
    state restored) as a soft graph colouring of the drops (see :class:`ColouringConfig`)."""
    from netsim.comm.power.gnn_layers import lsf_features, sts_forward

    torch.set_num_threads(max(1, cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    n_val = max(2, int(round(cfg.val_fraction * len(drops))))
    beta_n = drops.beta / spec.noise_w  # noise units
    wts = colouring_weights(drops.beta, drops.assoc, cfg.gamma)  # [D, K, K]
    share = wts >= 1.0
    n_ps = net.arch.n_ps or spec.n_ue
    val, trn = np.arange(n_val), np.arange(n_val, len(drops))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    hist = PretrainHistory()
    book = _EpochBook(hist, cfg)
    z_val = rng.uniform(0.0, 1.0, (n_val, n_ps, spec.n_ue))

    def forward(ops, idx, z):
        b = torch.as_tensor(beta_n[idx], dtype=torch.float32)
        a = torch.as_tensor(drops.assoc[idx], dtype=torch.float32)
        d0 = lsf_features(ops, b, a, float(spec.channel.p_pilot_w))
        e0 = torch.as_tensor(z, dtype=torch.float32)[..., None]
        if not net.arch.random_features:
            e0 = torch.zeros_like(e0)
        return sts_forward(ops, net.params(), net.arch, d0, e0)[1]  # [B, S, K]

    for ep in range(cfg.epochs):
        net.train()
        ops = TorchOps(net, training=True)
        order = rng.permutation(trn)
        losses = []
        for s in range(0, len(order), cfg.batch):
            idx = order[s:s + cfg.batch]
            x = torch.softmax(forward(ops, idx, rng.uniform(0.0, 1.0, (len(idx), n_ps, spec.n_ue))), 1)
            cp = torch.einsum("bsk,bsi->bki", x, x)  # [B, K, K] soft co-pilot matrix
            conflict = 0.5 * (torch.as_tensor(wts[idx], dtype=torch.float32) * cp).sum(dim=(1, 2))
            tau = (1.0 - torch.prod(1.0 - x, dim=2)).sum(dim=1)
            loss = (conflict + cfg.mu * tau).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        net.eval()
        with torch.no_grad():
            logit = forward(TorchOps(net, training=False), val, z_val).numpy()
        conf, tau = _hard_colouring_cost(logit, share[val], cfg.mu)
        v = -float(np.mean(conf + cfg.mu * tau))  # higher is better
        book.end_epoch(ep, losses, v, net, opt)
        if log is not None:
            log({"stage": "pretrain_pilots", "epoch": ep, "loss": hist.loss[-1], "val_cost": -v,
                 "val_conflicts": float(np.mean(conf)), "val_tau_p": float(np.mean(tau)),
                 "lr": hist.lr[-1], "wall_s": hist.wall_s[-1], "cpu_s": hist.cpu_s[-1]})
        if book.should_stop():
            break
    else:
        hist.stopped = "epoch cap"
    return book.finish(net)
