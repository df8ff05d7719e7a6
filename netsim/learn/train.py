"""Training of the seed-004 GNNs (spec 5.5): Adam, seeded, validation split, early stopping.

    from netsim.learn.train import TrainConfig, train
    weights, history = train(DropSpec.from_scenario(sc), TrainConfig(framework="dts"))
    save_gnn_weights("dts.npz", weights)

Samples are LSF drops of the given :class:`DropSpec` (the scenario's own deployment, channel
and association kernels); every epoch draws fresh small-scale fading and pilot noise for
them (a sample is one LSF drop plus ``sub_train`` SSF draws per step) and fresh random
features. Validation: the exported float64 numpy model in the HARD test-phase pipeline
(:func:`netsim.learn.evaluate.evaluate_frames`) on a held-out split with fixed fading; the
best validation net-SE is kept and training stops after ``patience`` epochs without a gain.

Runs on a GPU when torch sees one (``device="auto"``), never requires it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from netsim.comm.power.gnn import GNNWeights
from netsim.comm.power.gnn_layers import GNNArch
from netsim.learn.data import Drops, DropSpec, draw_drops, draw_ssf
from netsim.learn.evaluate import evaluate_frames
from netsim.learn.torch_gnn import ChainInputs, TorchGNN, TorchOps, an_index, soft_chain
from netsim.rng import RandomStreams

__all__ = ["TrainConfig", "TrainHistory", "train", "make_nets", "to_weights"]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters ([C] where the paper's values are lost, spec 5.5).

    framework : "dts" (Pilot-GNN + Power-GNN, trained jointly) or "sts";
    samples : LSF drops in total (training + validation); val_fraction : held-out share;
    epochs, batch, lr (Adam), lam : penalty weight of (30), ramped 0 -> lam over the first
    half of the epochs when ``ramp``; sub_train : SSF draws per sample and step; val_sub :
    subframes per validation frame; patience : early-stopping epochs; width, attention,
    random_features, n_ps : architecture (ablations of 5.4); device : "auto", "cpu", "cuda";
    threads : torch CPU threads; time_budget_s : stop after this much wall time (None: off);
    n_ant_mix : antenna counts N drawn per batch (empty: the scenario's N); validation is then
    the geometric mean of the validation net-SE over these N;
    init : weights file (.npz of the same framework) to start from, e.g. pre-trained heads
    (:mod:`netsim.learn.pretrain`); its nets are fine-tuned with eval-mode (frozen) batch norm,
    so that the torch function stays exactly the exported one;
    power_err_var : the DTS-Power-GNN reads the estimation-error variance (``GNNArch.err_var``;
    with ``init`` from a file without it, the input is added at zero weight first).
    """

    framework: str = "dts"
    samples: int = 400
    val_fraction: float = 0.1
    epochs: int = 40
    batch: int = 16
    lr: float = 0.01
    lam: float = 1.0
    ramp: bool = True
    sub_train: int = 2
    val_sub: int = 2
    patience: int = 8
    seed: int = 0
    width: int = 8
    attention: bool = True
    random_features: bool = True
    n_ps: int = 0
    pilot_layers: int = 7
    power_layers: int = 4
    device: str = "auto"
    threads: int = 1
    time_budget_s: float | None = None
    dtype: str = "float32"
    n_ant_mix: tuple[int, ...] = ()
    init: str | None = None
    power_err_var: bool = False


@dataclass
class TrainHistory:
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_net_se: list[float] = field(default_factory=list)
    val_tau_p: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = -np.inf
    stopped: str = ""


def make_nets(cfg: TrainConfig, gen: torch.Generator, dtype) -> dict[str, TorchGNN]:
    """The trainable networks of ``cfg.framework``."""
    lsf = dict(width=cfg.width, att_width=cfg.width, attention=cfg.attention,
               random_features=cfg.random_features, n_ps=cfg.n_ps)
    if cfg.framework == "dts":
        return {"pilot": TorchGNN(GNNArch("pilot", cfg.pilot_layers, **lsf), gen, dtype),
                "power": TorchGNN(GNNArch("power", cfg.power_layers, width=cfg.width,
                                          err_var=cfg.power_err_var), gen, dtype)}
    if cfg.framework == "sts":
        return {"sts": TorchGNN(GNNArch("sts", cfg.pilot_layers, **lsf), gen, dtype)}
    raise ValueError(f"framework {cfg.framework!r}; allowed: 'dts', 'sts'")


def to_weights(cfg: TrainConfig, nets: dict[str, TorchGNN], spec: DropSpec, meta: dict) -> GNNWeights:
    """Export the networks (float64, BN folded) with the feature scaling and provenance."""
    snr_ref = float(spec.channel.p_max_w / spec.noise_w)
    full = {"features": {"snr_ref": snr_ref, "lsf_db_scale": 30.0, "ssf_log_scale": 5.0,
                         "random_feature": "U(0,1)" if cfg.random_features else "none"},
            **meta}
    return GNNWeights(cfg.framework, {k: n.arch for k, n in nets.items()},
                      {k: n.export() for k, n in nets.items()}, full)


def _batch(spec: DropSpec, drops: Drops, idx, n_sub: int, n_ps: int, rng, device, dtype):
    b = len(idx)
    beta = drops.beta[idx] / spec.noise_w  # [B, M, K] noise units
    shape = (b, n_sub, spec.n_ap, spec.n_ue, spec.n_ant)
    g = draw_ssf(shape, rng)
    noise = draw_ssf(shape, rng)
    z = rng.uniform(0.0, 1.0, size=(b, n_ps or spec.n_ue, spec.n_ue))
    cdt = torch.complex64 if dtype == torch.float32 else torch.complex128
    t = lambda a, dt=dtype: torch.as_tensor(a, dtype=dt, device=device)  # noqa: E731
    an_m, an_k, an_mask = an_index(drops.assoc[idx])
    return ChainInputs(t(beta), t(drops.assoc[idx].astype(float)), t(g, cdt), t(noise, cdt), t(z),
                       float(spec.channel.p_pilot_w), t(np.full((b, spec.n_ap), spec.channel.p_max_w)),
                       spec.tau_c, t(an_m, torch.long), t(an_k, torch.long), t(an_mask))


def train(spec: DropSpec, cfg: TrainConfig, *, progress: bool = False, log=None,
          drops: Drops | None = None) -> tuple[GNNWeights, TrainHistory]:
    """Train ``cfg.framework`` on drops of ``spec``; returns the best weights and the history.

    progress : show a tqdm bar (epoch, loss, validation net-SE) on stderr;
    log : optional callable(dict) called after every epoch (e.g. to write a log file);
    drops : use these LSF drops instead of drawing ``cfg.samples`` new ones.
    """
    torch.set_num_threads(max(1, cfg.threads))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    dtype = torch.float32 if cfg.dtype == "float32" else torch.float64
    streams = RandomStreams(cfg.seed)
    gen = torch.Generator().manual_seed(int(streams.generator("init").integers(2**62)))
    nets = make_nets(cfg, gen, dtype)
    frozen = False
    if cfg.init:
        from netsim.comm.power.gnn import load_gnn_weights

        w0 = load_gnn_weights(cfg.init)
        if w0.framework != cfg.framework:
            raise ValueError(f"init {cfg.init}: framework {w0.framework!r}, need {cfg.framework!r}")
        if w0.n_ant_ref is not None:
            raise ValueError(f"init {cfg.init}: features.n_ant_ref = {w0.n_ant_ref:g} (N is an input of this "
                             "STS-GNN); the joint training here does not scale the features by N: fine-tune "
                             "it with analysis/finetune_gnn_mix.py")
        if w0.readout_n_ref is not None:
            raise ValueError(f"init {cfg.init}: features.readout_n_ref = {w0.readout_n_ref:g} (the STS power "
                             "readout has an antenna-count term); the joint training here does not use it: "
                             "fine-tune it with analysis/finetune_gnn_mix.py")
        archs, params = dict(w0.archs), dict(w0.params)
        if cfg.power_err_var and "power" in archs and not archs["power"].err_var:
            from netsim.learn.widen import add_err_var_input

            archs["power"], params["power"] = add_err_var_input(params["power"], archs["power"])
        nets = {k: TorchGNN.from_export(archs[k], params[k], dtype) for k in archs}
        frozen = True
    for n in nets.values():
        n.to(device)
    params = [p for n in nets.values() for p in n.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    if drops is None:
        drops = draw_drops(spec, cfg.samples, streams.generator("train-lsf"))
    n_val = max(4, int(round(cfg.val_fraction * len(drops)))) if len(drops) >= 8 else 1
    val = drops.subset(np.arange(n_val))
    trn = drops.subset(np.arange(n_val, len(drops))) if len(drops) > n_val else drops
    method = "dts_gnn" if cfg.framework == "dts" else "sts_gnn"
    hist = TrainHistory()
    best: GNNWeights | None = None
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    meta = {"training": {"scenario": spec.name, "scenario_hash": spec.source_hash,
                         "M": spec.n_ap, "K": spec.n_ue, "N": spec.n_ant,
                         "samples": len(drops), "train_samples": len(trn), "val_samples": len(val),
                         "config": asdict(cfg), "torch": torch.__version__, "device": device}}
    if cfg.init:
        meta["init_from"] = {"path": str(cfg.init), **{k: w0.meta.get(k) for k in
                                                      ("training", "pretrain_power", "pretrain_pilots",
                                                       "init_from")}}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"train {cfg.framework}", unit="epoch")
    shuffle = streams.generator("shuffle")
    since_best = 0
    for ep in range(cfg.epochs):
        rng = streams.generator("train-ssf", ep)
        lam = cfg.lam * min(1.0, ep / max(1.0, cfg.epochs / 2)) if cfg.ramp else cfg.lam
        order = shuffle.permutation(len(trn))
        ops = {k: TorchOps(n, training=not frozen) for k, n in nets.items()}
        for n in nets.values():
            n.train()
        losses = []
        for s in range(0, len(order), cfg.batch):
            idx = order[s:s + cfg.batch]
            spec_b = spec.with_(n_ant=int(rng.choice(cfg.n_ant_mix))) if cfg.n_ant_mix else spec
            inp = _batch(spec_b, trn, idx, cfg.sub_train, cfg.n_ps, rng, device, dtype)
            se, x, _ = soft_chain(cfg.framework, nets, inp, ops, cfg.random_features)
            loss = -se.mean() + lam * (x * (1 - x)).sum(dim=(1, 2)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        for n in nets.values():
            n.eval()
        w = to_weights(cfg, nets, spec, meta)
        vals, taus = [], []
        for n_ant in (cfg.n_ant_mix or (spec.n_ant,)):
            res = evaluate_frames(spec.with_(n_ant=int(n_ant)), val, method, seed=cfg.seed + 7919,
                                  n_sub=cfg.val_sub,
                                  **({"dts": w} if cfg.framework == "dts" else {"sts": w}))
            vals.append(float(np.mean([r.net_se for r in res])))
            taus.append(float(np.mean([r.tau_p for r in res])))
        v = float(np.exp(np.mean(np.log(np.maximum(vals, 1e-9)))))
        hist.epoch.append(ep)
        hist.loss.append(float(np.mean(losses)))
        hist.val_net_se.append(v)
        hist.val_tau_p.append(float(np.mean(taus)))
        hist.wall_s.append(time.perf_counter() - t_wall)
        hist.cpu_s.append(time.process_time() - t_cpu)
        if v > hist.best_val:
            hist.best_val, hist.best_epoch, best, since_best = v, ep, w, 0
        else:
            since_best += 1
        row = {"epoch": ep, "loss": hist.loss[-1], "val_net_se": v, "val_tau_p": hist.val_tau_p[-1],
               "val_per_n": vals,
               "best": hist.best_val, "wall_s": hist.wall_s[-1], "cpu_s": hist.cpu_s[-1]}
        if log is not None:
            log(row)
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.1f}", val_se=f"{v:.2f}", tau_p=f"{row['val_tau_p']:.1f}")
            bar.update(1)
        if since_best >= cfg.patience:
            hist.stopped = f"early stop after {cfg.patience} epochs without improvement"
            break
        if cfg.time_budget_s is not None and hist.wall_s[-1] > cfg.time_budget_s:
            hist.stopped = f"time budget {cfg.time_budget_s} s reached"
            break
    else:
        hist.stopped = "epoch cap"
    if bar is not None:
        bar.close()
    assert best is not None
    best.meta["training"].update(
        epochs_run=len(hist.epoch), best_epoch=hist.best_epoch, best_val_net_se=hist.best_val,
        wall_s=hist.wall_s[-1], cpu_s=hist.cpu_s[-1], stopped=hist.stopped,
        trainable_params=int(sum(n.n_trainable() for n in nets.values())),
        history={"loss": hist.loss, "val_net_se": hist.val_net_se, "val_tau_p": hist.val_tau_p})
    return best, hist


def variant(cfg: TrainConfig, name: str) -> TrainConfig:
    """Ablation presets of spec 5.4: agnn (default), gnn (no attention), nofe, fix<T>."""
    if name == "agnn":
        return cfg
    if name == "gnn":
        return replace(cfg, attention=False)
    if name == "nofe":
        return replace(cfg, random_features=False)
    if name.startswith("fix"):
        return replace(cfg, n_ps=int(name[3:]))
    raise ValueError(f"variant {name!r}; allowed: agnn, gnn, nofe, fix<tau_p>")
