"""Fine-tune a shipped GNN over a MIX of deployment sizes (size generalisation, spec check 15).

Usage::

    python analysis/finetune_gnn_mix.py --model sts|dts --out FILE.npz
        [--init FILE.npz] [--sizes 7:42:16:240,7:42:12:80,...] [--subframes 2] [--epochs 16]
        [--lr 0.002] [--random-share 0.1] [--seed 4121] [--n-ant-ref 16] [--log FILE.jsonl]

``--sizes`` lists ``M:K:N:drops[:weight]`` of the paper's UMi deployment (hex AP lattice, K UEs, N
antennas per AP). The default mix keeps the training size (M = 7, K = 42, N = 16) as the anchor
and adds sizes that lie BETWEEN and AROUND those of spec check 15 but never on them
(K in {38, 46, 52}, N in {6, 12, 24, 48}, M = 11 with K = 66), so that Tables III-V still test
sizes the network has not seen. Per size: drops x ``--subframes`` subframes with FIXED pilots
(the model's own pilot head and test-phase rounding; a ``--random-share`` of the drops gets a
random proper colouring), estimation, RZF and the true channels from the simulator's numpy chain
(:func:`netsim.learn.pretrain.power_dataset`); the loss is the hard test-phase net-SE relative
to the starting network's, averaged over the sizes
(:func:`netsim.learn.pretrain.pretrain_power_mix`, Adam, frozen batch norm, the best state on
the 10 % validation split of every size kept). ``--n-ant-ref`` makes the antenna count an input
of the STS-GNN (the AP-UE feature becomes the array-gain-scaled pilot SNR, unchanged at
N = n_ant_ref; ``features.n_ant_ref`` of the output). STS: the whole STS-GNN is trained (its power head
shares the AP-UE layers with the pilot head); DTS: the Power-GNN only. The output keeps the
input's metadata and adds a ``finetune_<net>_mix`` record (sizes, drops, epochs, CPU / wall s).
Needs torch (``pip install -e '.[gnn]'``); run it under ``nice -n 19`` on a shared machine.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from netsim.comm.power.gnn import (  # noqa: E402
    GNNWeights,
    default_weights_path,
    gnn_pilot_assignment,
    load_gnn_weights,
    save_gnn_weights,
    sts_power,
)
from netsim.comm.power.gnn_layers import copilot_names  # noqa: E402
from netsim.learn.data import DropSpec  # noqa: E402
from netsim.learn.pretrain import PretrainConfig, power_dataset, pretrain_power_mix  # noqa: E402
from netsim.learn.torch_gnn import TorchGNN  # noqa: E402
from netsim.rng import RandomStreams  # noqa: E402

DEFAULT_SIZES = ("7:42:16:240,7:42:12:100,7:42:6:80,7:42:24:80,7:42:48:60,"
                 "7:38:16:80,7:46:16:80,7:52:16:80,11:66:16:60")


def parse_sizes(text: str) -> list[tuple[int, int, int, int, float]]:
    """"M:K:N:drops[:weight],..." -> [(M, K, N, drops, weight), ...] (weight default 1; a clear
    error on a malformed entry)."""
    out = []
    for part in text.split(","):
        bits = part.strip().split(":")
        ok = len(bits) in (4, 5) and all(b.isdigit() and int(b) > 0 for b in bits[:4])
        try:
            wt = float(bits[4]) if len(bits) == 5 else 1.0
        except ValueError:
            ok = False
        if not ok or not wt > 0:
            raise SystemExit(f"--sizes: {part!r} is not M:K:N:drops[:weight] with positive numbers")
        out.append((int(bits[0]), int(bits[1]), int(bits[2]), int(bits[3]), wt))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("dts", "sts"), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", help="weights to start from (default: the shipped file)")
    ap.add_argument("--sizes", default=DEFAULT_SIZES)
    ap.add_argument("--subframes", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--random-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=4121, help="data seed (keep it apart from test seeds)")
    ap.add_argument("--n-ant-ref", type=float, default=None,
                    help="STS: make N an input, features beta p_u N / (sigma^2 N_REF) (written to the "
                         "output's features.n_ant_ref; default: keep the input file's setting)")
    ap.add_argument("--readout-only", action="store_true",
                    help="STS: train only the power readout (the last layer's AP-UE update U1, V1, V2, b1); "
                         "the trunk and so the pilot head stay bit for bit")
    ap.add_argument("--readout-n-ref", type=float, default=None,
                    help="STS: give the power readout an antenna-count term, weights W + log2(N / REF) W_dlog2n, "
                         "and train ONLY W_dlog2n (from zero): every other array stays bit for bit, so the "
                         "model is unchanged at N = REF and the pilots at every N (features.readout_n_ref)")
    ap.add_argument("--readout-n-range", default=None,
                    help="with --readout-n-ref: LO,HI clip of t = log2(N / REF), LO <= 0 <= HI "
                         "(write --readout-n-range=-3,0: only N < REF moves; features.readout_n_range)")
    ap.add_argument("--copilot", action="store_true",
                    help="STS: give the power readout the co-pilot term (GNNArch.copilot, this project's variant "
                         "of spec 5.3: V6, V7 read the pilots' co-pilot matrix; start at zero) and train only the "
                         "readout (U1, V1, V2, b1 of the last layer, any antenna term) and V6, V7: the trunk and so "
                         "the pilot head stay bit for bit")
    ap.add_argument("--branch", type=int, default=0,
                    help="with --copilot: hidden layers of the power branch (GNNArch.branch; its output map starts "
                         "at zero, so the start is the input file's function)")
    ap.add_argument("--branch-width", type=int, default=16, help="width of the power branch's layers")
    ap.add_argument("--log", help="per-epoch JSON lines")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    fw = args.model
    sizes = parse_sizes(args.sizes)
    base = load_gnn_weights(args.init or default_weights_path(fw))
    key = "power" if fw == "dts" else "sts"
    r_ref = args.readout_n_ref if args.readout_n_ref is not None else base.readout_n_ref
    if r_ref is not None and fw != "sts":
        raise SystemExit("--readout-n-ref applies to the STS-GNN only")
    r_rng = base.readout_n_range
    if args.readout_n_range is not None:
        try:
            lo, hi = (float(x) for x in args.readout_n_range.split(","))
        except ValueError:
            raise SystemExit(f"--readout-n-range: {args.readout_n_range!r} is not LO,HI") from None
        if not (lo <= 0 <= hi) or r_ref is None:
            raise SystemExit("--readout-n-range needs LO <= 0 <= HI and --readout-n-ref")
        r_rng = (lo, hi)
    archs = dict(base.archs)
    if args.copilot:
        if fw != "sts":
            raise SystemExit("--copilot applies to the STS-GNN only")
        if args.readout_n_ref is not None or args.readout_only:
            raise SystemExit("--copilot trains the readout and its co-pilot term: drop --readout-n-ref / --readout-only")
        archs[key] = replace(archs[key], copilot=True, branch=args.branch, branch_width=args.branch_width)
    elif args.branch:
        raise SystemExit("--branch needs --copilot")
    net = TorchGNN.from_export(archs[key], base.params[key], readout_n=r_ref is not None)
    keep = set()
    if args.copilot:  # the readout (with any antenna term) and the co-pilot arrays learn
        last = archs[key].layers - 1
        keep = {f"sts.{last}.{n}" for n in ("U1", "V1", "V2", "b1")} | set(net.readout_names) \
            | set(copilot_names(archs[key]))
        for name, p in net.params().items():
            p.requires_grad_(name in keep)
    elif args.readout_n_ref is not None:  # only the antenna term learns
        keep = set(net.readout_names)
        for name, p in net.params().items():
            p.requires_grad_(name in keep)
    elif args.readout_only:
        if fw != "sts":
            raise SystemExit("--readout-only applies to the STS-GNN only")
        last = base.archs[key].layers - 1
        keep = {f"sts.{last}.{n}" for n in ("U1", "V1", "V2", "b1")}
        for name, p in net.params().items():
            p.requires_grad_(name in keep)
    logf = open(args.log, "w") if args.log else None  # noqa: SIM115

    def log(row):
        print(json.dumps(row), file=logf, flush=True) if logf else None

    cpu0, wall0 = time.process_time(), time.perf_counter()
    streams = RandomStreams(args.seed)
    sets, tau_c = [], None
    for m, k, n, drops, _ in sizes:
        spec = DropSpec.paper(m, k, n)
        cfg, s2 = spec.channel, spec.noise_w
        tau_c = spec.tau_c

        def pilots(beta, assoc, rng, cfg=cfg, s2=s2, n=n):
            if fw == "dts":
                return gnn_pilot_assignment(base, beta, assoc, cfg.p_pilot_w, s2, rng, dtype=np.float32).colour
            return sts_power(base, beta, assoc, cfg.p_pilot_w, s2, cfg.p_max_w, rng, dtype=np.float32,
                             n_ant=n)[1].colour

        sets.append(power_dataset(spec, drops, args.subframes, streams.generator("mix-data", 0 if fw == "dts" else 1, m, k, n),
                                  random_pilot_share=args.random_share, pilot_source=pilots))
    data_cpu = time.process_time() - cpu0
    n_ref = args.n_ant_ref if args.n_ant_ref is not None else base.n_ant_ref
    if n_ref is not None and fw != "sts":
        raise SystemExit("--n-ant-ref applies to the STS-GNN only")
    hist = pretrain_power_mix(net, sets, tau_c,
                              PretrainConfig(epochs=args.epochs, batch=8, lr=args.lr, patience=5, plateau=3,
                                             seed=args.seed, frozen_bn=True), weights=[s[4] for s in sizes],
                              n_ant_ref=n_ref, readout_n_ref=r_ref, readout_n_range=r_rng, log=log)
    meta = json.loads(json.dumps(base.meta))
    if n_ref is not None:
        meta["features"]["n_ant_ref"] = n_ref
    if r_ref is not None:
        meta["features"]["readout_n_ref"] = r_ref
    if r_rng is not None:
        meta["features"]["readout_n_range"] = list(r_rng)
    stage = f"finetune_{key}_mix"
    while stage in meta:
        stage += "+"
    meta[stage] = {"drops": int(sum(s[3] for s in sizes)), "sizes_mkn_drops": [list(s) for s in sizes],
                   "subframes": args.subframes,
                   "pilots": f"own pilot head, {base.rounding} rounding ({100 - 100 * args.random_share:.0f} %), "
                             f"random proper colourings ({100 * args.random_share:.0f} %)",
                   "epochs_run": len(hist.loss), "best_epoch": hist.best_epoch,
                   "best_val_rel_net_se": hist.best_val, "lr": args.lr, "data_seed": args.seed,
                   "data_cpu_s": data_cpu, "cpu_s": time.process_time() - cpu0,
                   "wall_s": time.perf_counter() - wall0,
                   "init_from": str(args.init or f"{fw}_gnn.npz"), "stopped": hist.stopped,
                   "trained": ("power readout and its co-pilot term (GNNArch.copilot)"
                               + (f" and a {args.branch}-layer power branch" if args.branch else "") if args.copilot
                               else "power readout's antenna term only" if args.readout_n_ref is not None
                               else "power readout only" if args.readout_only else "all parameters"),
                   "readout_n_ref": r_ref, "readout_n_range": None if r_rng is None else list(r_rng),
                   "n_ant_ref": n_ref}
    exported = net.export()
    if args.readout_only or args.readout_n_ref is not None or args.copilot:  # frozen arrays exactly as they were (no float32 round trip)
        exported = {**{k: (exported[k] if k in keep else v) for k, v in base.params[key].items()},
                    **{k: exported[k] for k in keep}}
    params = {"pilot": base.params["pilot"], "power": exported} if fw == "dts" else {"sts": exported}
    save_gnn_weights(args.out, GNNWeights(fw, archs, params, meta))
    print(f"{args.out}: best validation relative net-SE {hist.best_val:.4f} at epoch {hist.best_epoch}, "
          f"{meta[stage]['cpu_s']:.0f} CPU-s ({hist.stopped})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
