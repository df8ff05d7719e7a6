"""Fine-tune a shipped GNN at one antenna count N on its own power loss (the per-N files of Table II).

Usage::

    python analysis/finetune_gnn_n.py --model dts|sts --n-ant N --out FILE.npz
        [--init FILE.npz] [--drops 400] [--subframes 2] [--epochs 20] [--lr 0.003]
        [--random-share 0.1] [--seed 4111] [--time-budget S] [--widen W] [--err-var]

Drops of the paper's UMi deployment (M = 7, K = 42, the given N) x ``--subframes`` subframes
with FIXED pilots: the model's own pilot head with its test-phase rounding (a ``--random-share``
of the drops gets a random proper colouring instead), estimation, RZF and the true channels
from the simulator's own numpy chain (:func:`netsim.learn.pretrain.power_dataset`). The loss is
the hard test-phase net-SE of those subframes (:func:`netsim.learn.pretrain.pretrain_power`, Adam,
frozen batch norm so that the exported function is what is trained, the best state of a 10 %
validation split kept). DTS: only the Power-GNN is trained (the pilot head is copied); STS: the
whole STS-GNN (its power head shares the AP-UE layers with the pilot head). The output keeps the
input's metadata and adds a ``finetune_<net>_n<N>`` record (drops, epochs, CPU / wall seconds).
``--widen W`` (DTS only): the Power-GNN is first widened to W hidden channels without changing
its function (:func:`netsim.learn.widen.widen_power_params`), then fine-tuned.
``--err-var`` (DTS only): the Power-GNN gets the estimation-error-variance input edge feature
with zero first-layer weights (:func:`netsim.learn.widen.add_err_var_input`, function-preserving;
a file that has it already keeps it), then is fine-tuned on the subframes' own err_var.
Needs torch (``pip install -e '.[gnn]'``). The shipped ``netsim/data/*_gnn_n*.npz`` were made with
this recipe (docs/reproduction.md gives the runs).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from netsim.comm.power.gnn import (
    GNNWeights,
    default_weights_path,
    gnn_pilot_assignment,
    load_gnn_weights,
    save_gnn_weights,
    sts_power,
)
from netsim.learn.data import DropSpec
from netsim.learn.pretrain import PretrainConfig, power_dataset, pretrain_power
from netsim.learn.torch_gnn import TorchGNN
from netsim.learn.widen import add_err_var_input, widen_power_params
from netsim.rng import RandomStreams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("dts", "sts"), required=True)
    ap.add_argument("--n-ant", type=int, required=True, help="antennas per AP of the target size")
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", help="weights to start from (default: the shipped N = 16 file)")
    ap.add_argument("--drops", type=int, default=400)
    ap.add_argument("--subframes", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--random-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=4111, help="data seed (keep it apart from test seeds)")
    ap.add_argument("--log", help="per-epoch JSON lines")
    ap.add_argument("--widen", type=int, default=None,
                    help="DTS: widen the Power-GNN to this hidden width first (function-preserving)")
    ap.add_argument("--widen-scale", type=float, default=0.25,
                    help="standard deviation of the new channels' rows (their outputs are unread at start)")
    ap.add_argument("--err-var", action="store_true",
                    help="DTS: give the Power-GNN the error-variance input feature first (function-preserving)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="stop after this many wall seconds of training (the best state so far is kept)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    fw, n_ant = args.model, args.n_ant
    if (args.widen is not None or args.err_var) and fw != "dts":
        raise SystemExit("--widen and --err-var are for the DTS Power-GNN only")
    base = load_gnn_weights(args.init or default_weights_path(fw))
    key = "power" if fw == "dts" else "sts"
    if base.readout_n_ref is not None:
        raise SystemExit(f"{base.path}: features.readout_n_ref (a power readout with an antenna term) is not "
                         "fine-tuned per N here; use analysis/finetune_gnn_mix.py")
    archs = dict(base.archs)
    p_init = base.params[key]
    added_err_var = bool(args.err_var and not archs[key].err_var)
    if added_err_var:
        archs[key], p_init = add_err_var_input(p_init, archs[key])
    if args.widen is not None:
        archs[key], p_init = widen_power_params(p_init, archs[key], args.widen,
                                                np.random.default_rng([args.seed, args.widen]),
                                                args.widen_scale)
    net = TorchGNN.from_export(archs[key], p_init)
    spec = DropSpec.paper(7, 42, n_ant)
    cfg = spec.channel

    def pilots(beta, assoc, rng):
        if fw == "dts":
            return gnn_pilot_assignment(base, beta, assoc, cfg.p_pilot_w, spec.noise_w, rng, dtype=np.float32).colour
        return sts_power(base, beta, assoc, cfg.p_pilot_w, spec.noise_w, cfg.p_max_w, rng, dtype=np.float32)[1].colour

    logf = open(args.log, "w") if args.log else None  # noqa: SIM115

    def log(row):
        print(json.dumps(row), file=logf, flush=True) if logf else None

    cpu0, wall0 = time.process_time(), time.perf_counter()
    data = power_dataset(spec, args.drops, args.subframes,
                         RandomStreams(args.seed).generator("ftn-data", 0 if fw == "dts" else 1, n_ant),
                         random_pilot_share=args.random_share, pilot_source=pilots)
    hist = pretrain_power(net, data, spec.tau_c,
                          PretrainConfig(epochs=args.epochs, batch=8, lr=args.lr, patience=6, plateau=3,
                                         seed=n_ant, frozen_bn=True, time_budget_s=args.time_budget), log=log)
    meta = json.loads(json.dumps(base.meta))
    stage = f"finetune_{key}_n{n_ant}"
    while stage in meta:  # a second stage on top of a fine-tuned file
        stage += "+"
    meta[stage] = {"drops": args.drops, "subframes": args.subframes, "n_ant": n_ant,
                   "pilots": f"own pilot head, {base.rounding} rounding ({100 - 100 * args.random_share:.0f} %), "
                             f"random proper colourings ({100 * args.random_share:.0f} %)",
                   "epochs_run": len(hist.loss), "best_epoch": hist.best_epoch,
                   "best_val_net_se": hist.best_val, "lr": args.lr, "data_seed": args.seed,
                   "cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - wall0,
                   "init_from": str(args.init or f"{fw}_gnn.npz"), "stopped": hist.stopped,
                   "widened_to": args.widen, "trainable_params": net.n_trainable(),
                   "err_var_input": bool(archs[key].err_var), "err_var_added": added_err_var}
    params = {"pilot": base.params["pilot"], "power": net.export()} if fw == "dts" else {"sts": net.export()}
    save_gnn_weights(args.out, GNNWeights(fw, archs, params, meta))
    print(f"{args.out}: best validation net-SE {hist.best_val:.2f} at epoch {hist.best_epoch}, "
          f"{meta[stage]['cpu_s']:.0f} CPU-s ({hist.stopped})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
