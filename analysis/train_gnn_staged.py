# ruff: noqa: E402
"""Staged training recipe of the shipped DTS-AGNN weights (``netsim/data/dts_gnn.npz``).

Usage (needs torch, ``pip install -e '.[gnn]'``; run it under ``nice`` on a shared machine)::

    git show 2ce17d9:netsim/data/dts_gnn.npz > dts_prev.npz   # the previous release's DTS file
    python analysis/train_gnn_staged.py --pilot-from dts_prev.npz --out DIR [--quick]

Stages (the settings and seeds below are the ones the shipped file was made with):

1. Power-GNN pre-training on FIXED pilots (DSatur colourings and random proper colourings with
   more pilots), hard test-phase net-SE as the loss, on a mix of N in {2, 4, 8, 16}: 400 drops
   x 2 subframes, 25 epochs (:func:`netsim.learn.pretrain.pretrain_power`);
2. the same on fresh data: 6 rounds of 300 new drops x 3 epochs, lr 0.004;
3. the pilot head of ``--pilot-from`` (the DTS file of the previous release, trained by
   ``netsim train-gnn --model dts --samples 240`` at N = 16, 11 epochs, 151 CPU-s) and the
   pre-trained power head are put into one DTS file;
4. joint fine-tuning through the differentiable chain with frozen batch norm on the N mix
   (``netsim train-gnn --model dts --samples 220 --epochs 12 --patience 5 --lr 0.003
   --n-ant-mix 2,4,8,16 --init stage3.npz --seed 21``).

5. the test-phase pilot rounding of the output is set to ``--rounding`` (default ``dsatur``:
   conflict-free in DSatur order, the GNN choosing each UE's pilot; the shipped file was made
   by setting it on the stage-4 output, networks unchanged).

The output's metadata records every stage (``init_from``, ``pretrain_power``), and
``analysis/reproduce_gnn.py`` sums their samples and CPU time in Table VI.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
from pathlib import Path

import torch

from netsim.comm.power.gnn import PILOT_ROUNDINGS, GNNWeights, load_gnn_weights, save_gnn_weights
from netsim.comm.power.gnn_layers import GNNArch
from netsim.learn.data import DropSpec
from netsim.learn.pretrain import PretrainConfig, power_dataset, pretrain_power
from netsim.learn.torch_gnn import TorchGNN
from netsim.learn.train import TrainConfig, train
from netsim.rng import RandomStreams
from netsim.scenario import load_scenario

MIX = (2, 4, 8, 16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--pilot-from", required=True, help="DTS weights whose pilot head is used")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run, not the recipe)")
    ap.add_argument("--rounding", default="dsatur", choices=PILOT_ROUNDINGS,
                    help="test-phase pilot rounding written into the output (default dsatur)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    log_f = open(args.out / "stages.jsonl", "a")  # noqa: SIM115
    log = lambda row: (log_f.write(json.dumps(row) + "\n"), log_f.flush())  # noqa: E731
    q = args.quick
    spec = DropSpec.paper(7, 42, 16)
    # stage 1
    st = RandomStreams(11)
    ps = power_dataset(spec, 16 if q else 400, 2, st.generator("pre-data"), n_ant_mix=MIX)
    gen = torch.Generator().manual_seed(int(st.generator("pre-init").integers(2**62)))
    net = TorchGNN(GNNArch("power", 4, width=8), gen)
    h = pretrain_power(net, ps, spec.tau_c, PretrainConfig(epochs=2 if q else 25, batch=8, patience=8,
                                                           plateau=3), log=log)
    cpu, drops = h.cpu_s[-1], len(ps)
    # stage 2
    st2 = RandomStreams(13)
    for r in range(1 if q else 6):
        ps = power_dataset(spec, 16 if q else 300, 2, st2.generator("pre2-data", r), n_ant_mix=MIX)
        h = pretrain_power(net, ps, spec.tau_c, PretrainConfig(epochs=1 if q else 3, batch=8, lr=0.004,
                                                               patience=3, plateau=10, seed=r), log=log)
        cpu, drops = cpu + h.cpu_s[-1], drops + len(ps)
    # stage 3
    base = load_gnn_weights(args.pilot_from)
    meta = json.loads(json.dumps(base.meta))
    meta["pretrain_power"] = {"drops_seen": drops, "subframes": 2, "n_ant_mix": list(MIX), "cpu_s": cpu}
    stage3 = GNNWeights("dts", {"pilot": base.archs["pilot"], "power": net.arch},
                        {"pilot": base.params["pilot"], "power": net.export()}, meta)
    save_gnn_weights(args.out / "stage3.npz", stage3)
    # stage 4
    sc = load_scenario("scenarios/umi_cellfree.yaml")
    cfg = TrainConfig(framework="dts", samples=24 if q else 220, epochs=1 if q else 12, patience=5,
                      lr=0.003, n_ant_mix=MIX, init=str(args.out / "stage3.npz"), seed=21)
    w, hist = train(DropSpec.from_scenario(sc), cfg, log=log)
    save_gnn_weights(args.out / "dts_gnn.npz", w.with_rounding(args.rounding))
    print(f"stage 4: {hist.stopped}; best validation {hist.best_val:.2f} -> {args.out / 'dts_gnn.npz'}")


if __name__ == "__main__":
    main()
