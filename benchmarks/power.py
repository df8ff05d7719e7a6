# ruff: noqa: E402
"""Benchmark of the seed-004 numerical baseline kernels (DSatur, tabu, WMMSE).

Usage::

    python benchmarks/power.py [--drops D] [--subframes S] [--quick]

Prints, for K = 35, 42, 49 and N = 4, 16 (M = 7, UMi defaults):
* milliseconds per WMMSE call (bisection and Newton multiplier; median over calls of the
  best of ``--repeat`` runs), sweeps to converge and milliseconds per sweep,
* milliseconds per subframe for estimation + RZF + equivalent channels,
* the cost of one whole frame: DSatur + tabu + 10 x (subframe pipeline + WMMSE),
* the fitted scaling exponent of each cost in K (time ~ K^alpha, log-log least squares).
Numbers only; nothing here passes or fails. Timings are wall-clock on this machine and are
sensitive to other load on it.
"""

from __future__ import annotations

import os

# Single-threaded BLAS: the kernels work on many small matrices, where BLAS threads only
# contend (measured 5-10x slower with 2 threads on a shared 2-core machine). Must precede numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import time

import numpy as np

from netsim.comm.association import associate
from netsim.comm.pilot_assignment import TabuConfig, conflict_graph, dsatur, dsatur_tabu
from netsim.comm.subframe import prepare_subframe
from netsim.comm.wmmse import WMMSEConfig, wmmse_power
from netsim.phy.umi import (
    ChannelConfig,
    channel_from_fading,
    draw_small_scale_fading,
    drop_users,
    hex_ap_positions,
    large_scale_fading,
    noise_power_w,
)
from netsim.rng import RandomStreams

N_APS, TAU_C, N_SUBFRAMES = 7, 200, 10


def best_of(fn, repeat: int):
    """(minimum wall time over ``repeat`` calls [s], last result): robust to other load."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap_ = argparse.ArgumentParser(description=__doc__)
    ap_.add_argument("--drops", type=int, default=2)
    ap_.add_argument("--subframes", type=int, default=5, help="WMMSE calls timed per drop")
    ap_.add_argument("--repeat", type=int, default=3, help="timing repeats (minimum kept)")
    ap_.add_argument("--quick", action="store_true", help="shorter tabu (8 iter, 32 candidates)")
    ap_.add_argument("--gnn", action="store_true",
                     help="only the GNN section (GNN vs Dsatur-tabu+WMMSE on the same drops)")
    args = ap_.parse_args()
    if args.gnn:
        gnn_section(args)
        engine_frame_cost()
        return
    cfg = ChannelConfig.umi()
    sigma2 = noise_power_w(cfg)
    ap = hex_ap_positions(N_APS, cfg.isd_m)
    streams = RandomStreams(1)
    tabu_cfg = TabuConfig(max_iter=8, n_candidates=32, n_exact=None) if args.quick else TabuConfig(n_exact=None)
    rows = []
    for n_ue in (35, 42, 49):
        for n_ant in (4, 16):
            t_bis, t_new, iters, t_sub, t_ds, t_tabu, tau = [], [], [], [], [], [], []
            for d in range(args.drops):
                rng = streams.generator("bench", n_ue, n_ant, d)
                beta = large_scale_fading(ap, drop_users(ap, n_ue, cfg, rng), cfg, rng)
                assoc = associate(beta)
                t0 = time.perf_counter()
                dsatur(conflict_graph(assoc, beta))
                t_ds.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                pa = dsatur_tabu(beta, assoc, n_ant, p_pilot_w=cfg.p_pilot_w,
                                 p_max_w=cfg.p_max_w, noise_w=sigma2, tau_c=TAU_C, rng=rng,
                                 config=tabu_cfg)
                t_tabu.append(time.perf_counter() - t0 - t_ds[-1])
                tau.append(pa.tau_p)
                for _ in range(args.subframes):
                    h = channel_from_fading(beta, draw_small_scale_fading((N_APS, n_ue, n_ant), rng))
                    sub_rng = np.random.default_rng(0)

                    def chain(h=h, pa=pa, beta=beta, assoc=assoc, sub_rng=sub_rng):
                        csi = prepare_subframe(h, beta, assoc, pa.colour, cfg.p_pilot_w, sigma2,
                                               sub_rng)
                        return csi.ghat, csi.err_var

                    t, (ghat, err) = best_of(chain, args.repeat)
                    t_sub.append(t)
                    t, res = best_of(lambda g=ghat, e=err, a=assoc: wmmse_power(
                        g, e, a, sigma2, cfg.p_max_w), args.repeat)
                    t_bis.append(t)
                    iters.append(res.iterations)
                    t, _ = best_of(lambda g=ghat, e=err, a=assoc: wmmse_power(
                        g, e, a, sigma2, cfg.p_max_w, WMMSEConfig(multiplier="newton")),
                        args.repeat)
                    t_new.append(t)
            frame = (np.median(t_ds) + np.median(t_tabu)
                     + N_SUBFRAMES * (np.median(t_sub) + np.median(t_bis)))
            rows.append({
                "K": n_ue, "N": n_ant, "tau_p": np.mean(tau),
                "wmmse_ms": 1e3 * np.median(t_bis), "wmmse_newton_ms": 1e3 * np.median(t_new),
                "iters": np.mean(iters), "iters_max": int(np.max(iters)),
                "ms_per_sweep": 1e3 * np.median(np.array(t_bis) / np.array(iters)),
                "subframe_ms": 1e3 * np.median(t_sub), "dsatur_ms": 1e3 * np.median(t_ds),
                "tabu_s": np.median(t_tabu), "frame_s": frame,
            })
    hdr = (f"{'K':>3} {'N':>3} {'tau_p':>6} {'WMMSE ms':>9} {'Newton ms':>10} {'iters':>6} "
           f"{'max':>4} {'ms/sweep':>9} {'est+RZF ms':>11} {'DSatur ms':>10} {'tabu s':>8} "
           f"{'frame s':>8}")
    print(f"M = {N_APS}, UMi, tabu {tabu_cfg}, {args.drops} drops x {args.subframes} subframes")
    print(hdr)
    for r in rows:
        print(f"{r['K']:>3} {r['N']:>3} {r['tau_p']:>6.1f} {r['wmmse_ms']:>9.1f} "
              f"{r['wmmse_newton_ms']:>10.1f} {r['iters']:>6.1f} {r['iters_max']:>4} "
              f"{r['ms_per_sweep']:>9.2f} {r['subframe_ms']:>11.2f} {r['dsatur_ms']:>10.2f} "
              f"{r['tabu_s']:>8.2f} {r['frame_s']:>8.2f}")
    print("\nscaling exponent alpha in time ~ K^alpha (K = 35..49):")
    for n_ant in (4, 16):
        sel = [r for r in rows if r["N"] == n_ant]
        lk = np.log([r["K"] for r in sel])
        parts = []
        for key in ("wmmse_ms", "ms_per_sweep", "subframe_ms", "dsatur_ms", "tabu_s", "frame_s"):
            alpha = np.polyfit(lk, np.log([r[key] for r in sel]), 1)[0]
            parts.append(f"{key}={alpha:.2f}")
        print(f"  N={n_ant:>2}: " + ", ".join(parts))
    print("\npaper Table VII (Dsatur-Tabu+WMMSE per frame, CPU, unit presumably ms): "
          "K=35: 246381, K=42: 315613, K=49: 376011")


def gnn_section(args) -> None:
    """GNN inference (numpy, shipped weights) next to WMMSE and Dsatur-tabu+WMMSE, same drops.

    For K = 35, 42, 49 (M = 7, N = 16): ms per subframe of the DTS-Power-GNN and of WMMSE run
    to convergence (tol 1e-7), ms per frame of the Pilot-GNN, the STS-GNN and Dsatur+tabu, the
    per-frame decision time of each framework (pilots + 10 power decisions), the ratios, and
    GNN net-SE as a fraction of Dsatur-tabu+WMMSE net-SE. CPU time (process_time) and wall;
    every timed decision of every method is the minimum of ``--repeat`` runs. The DTS columns
    run a frame's 10 Power-GNN decisions as ONE batched pass on their 10 estimates
    (``evaluate_frames(batch_power=True)``); "DTS seq" is the DTS frame with one pass per
    subframe, as the engine runs it (CPU ms), and base/seq its ratio.
    """
    from netsim.learn.data import DropSpec, draw_drops
    from netsim.learn.evaluate import evaluate_frames

    tabu = TabuConfig(max_iter=8, n_candidates=32, n_exact=None) if args.quick else TabuConfig(n_exact=None)
    print(f"GNN section: {args.drops} drops x {N_SUBFRAMES} subframes per K, N = 16, CPU ms "
          "(wall ms in brackets); WMMSE tol 1e-7")
    print(f"{'K':>3} {'DTSpow/sf':>14} {'WMMSE/sf':>16} {'Pilot-GNN':>14} {'STS/frame':>14} "
          f"{'Dsatur+tabu':>16} {'DTS frame':>14} {'base frame':>16} {'base/DTS':>9} "
          f"{'base/STS':>9} {'SE DTS':>7} {'SE STS':>7} {'DTS seq':>9} {'base/seq':>8}")
    for k in (35, 42, 49):
        spec = DropSpec.paper(N_APS, k, 16)
        drops = draw_drops(spec, args.drops, RandomStreams(7).generator("bench-gnn", k))
        res = {m: evaluate_frames(spec, drops, m, seed=11, tabu=tabu, repeats=args.repeat)
               for m in ("dsatur_tabu+wmmse", "dts_gnn", "sts_gnn")}
        # the engine's way: one Power-GNN pass per subframe (the row above batches the T passes)
        seq = evaluate_frames(spec, drops, "dts_gnn", seed=11, repeats=args.repeat, batch_power=False)
        def mean(m, f, res=res):
            return 1e3 * float(np.mean([f(r) for r in res[m]]))
        b, d, st = "dsatur_tabu+wmmse", "dts_gnn", "sts_gnn"
        pw_d = (mean(d, lambda r: r.power_cpu_s) / N_SUBFRAMES, mean(d, lambda r: r.power_wall_s) / N_SUBFRAMES)
        pw_b = (mean(b, lambda r: r.power_cpu_s) / N_SUBFRAMES, mean(b, lambda r: r.power_wall_s) / N_SUBFRAMES)
        pil = (mean(d, lambda r: r.pilot_cpu_s), mean(d, lambda r: r.pilot_wall_s))
        sts = (mean(st, lambda r: r.pilot_cpu_s + r.power_cpu_s), mean(st, lambda r: r.pilot_wall_s + r.power_wall_s))
        tab = (mean(b, lambda r: r.pilot_cpu_s), mean(b, lambda r: r.pilot_wall_s))
        fr_d = (pil[0] + N_SUBFRAMES * pw_d[0], pil[1] + N_SUBFRAMES * pw_d[1])
        fr_s = 1e3 * float(np.mean([r.pilot_cpu_s + r.power_cpu_s for r in seq]))
        fr_b = (tab[0] + N_SUBFRAMES * pw_b[0], tab[1] + N_SUBFRAMES * pw_b[1])
        se = {m: float(np.mean([r.net_se for r in res[m]])) for m in res}
        cell = lambda x: f"{x[0]:8.2f} ({x[1]:.0f})"  # noqa: E731
        print(f"{k:>3} {cell(pw_d):>14} {cell(pw_b):>16} {cell(pil):>14} {cell(sts):>14} "
              f"{cell(tab):>16} {cell(fr_d):>14} {cell(fr_b):>16} {fr_b[0] / fr_d[0]:9.0f} "
              f"{fr_b[0] / sts[0]:9.0f} {se[d] / se[b]:7.3f} {se[st] / se[b]:7.3f} "
              f"{fr_s:9.2f} {fr_b[0] / fr_s:8.0f}")


def engine_frame_cost(frames: int = 3, repeat: int = 2) -> None:
    """CPU time per umi_cellfree frame in the engine: GNN power + GNN pilots vs WMMSE + DSatur+Tabu
    (same scenario, seed and frames; ``repeat`` rounds of one run each, back to back, the
    minimum CPU time per configuration kept). The "equal+dsatur" row (equal power, plain DSatur
    pilots: decisions that cost next to nothing) is the floor of a frame: its channels,
    estimation, RZF and SINR work, which any power / pilot policy pays on top of its decisions.

    Where the frame's time goes (CPU ms per frame, process_time wrappers around the engine's
    calls): ``pilot`` = the pilot policy (DSatur(+Tabu), the Pilot-GNN, or the STS-GNN with its
    frame power), ``power`` = the per-subframe power policy (WMMSE or the DTS-Power-GNN),
    ``estim`` = the per-subframe pilot chain (``prepare_subframe``: uplink pilots, MMSE, RZF,
    equivalent channels), ``rest`` = everything else (true channels, SINR and rates, recording,
    the event loop)."""
    import netsim.comm.pilot_assignment as pa
    import netsim.comm.subframe as subframe_mod
    import netsim.comm.wmmse as wmmse_mod
    from netsim.comm.power import POWER_ALLOCATORS
    from netsim.comm.power import gnn as gnn_mod
    from netsim.scenario import load_scenario
    from netsim.sim.engine import Simulation

    acc: dict[str, float] = {}
    saved = []

    def wrap(owner, name, label):
        f = owner[name] if isinstance(owner, dict) else getattr(owner, name)

        def timed(*a, **k):
            c = time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + time.process_time() - c

        saved.append((owner, name, f))
        if isinstance(owner, dict):
            owner[name] = timed
        else:
            setattr(owner, name, timed)

    for owner, name, label in ((gnn_mod, "gnn_pilot_assignment", "pilot"), (gnn_mod, "sts_power", "pilot"),
                               (pa, "dsatur_tabu", "pilot"), (subframe_mod, "prepare_subframe", "estim"),
                               (wmmse_mod, "wmmse_power", "power"), (POWER_ALLOCATORS, "gnn", "power")):
        wrap(owner, name, label)
    out: dict[str, tuple[float, float, dict]] = {}
    try:
        for _ in range(max(1, repeat)):
            for label, sets in (("wmmse+dsatur_tabu", ["comm.power=wmmse", "comm.pilot_assignment=dsatur_tabu"]),
                                ("gnn+gnn", ["comm.power=gnn", "comm.pilot_assignment=gnn"]),
                                ("sts_gnn+gnn", ["comm.power=sts_gnn", "comm.pilot_assignment=gnn"]),
                                ("equal+dsatur", ["comm.power=equal", "comm.pilot_assignment=dsatur"])):
                sc = load_scenario("scenarios/umi_cellfree.yaml", [*sets, f"run.frames={frames}",
                                                                    "comm.pilot_replan_db=0"])
                sim = Simulation(sc)
                acc.clear()
                c0, w0 = time.process_time(), time.perf_counter()
                sim.run()
                cpu, wall = (time.process_time() - c0) / frames, (time.perf_counter() - w0) / frames
                if label not in out or cpu < out[label][0]:
                    out[label] = (cpu, wall, {k: v / frames for k, v in acc.items()})
    finally:
        for owner, name, f in saved:
            if isinstance(owner, dict):
                owner[name] = f
            else:
                setattr(owner, name, f)
    base = out["wmmse+dsatur_tabu"][0]
    print(f"\nengine umi_cellfree frame ({frames} frames, pilots re-assigned every frame), CPU ms per frame:")
    print(f"  {'':>18} {'total':>8} {'wall':>7} {'% of base':>9} {'pilot':>8} {'power':>8} {'estim':>8} {'rest':>8}")
    for label, (cpu, wall, parts) in out.items():
        rest = cpu - sum(parts.values())
        print(f"  {label:>18} {1e3 * cpu:8.1f} {1e3 * wall:7.0f} {100 * cpu / base:8.2f}% "
              + " ".join(f"{1e3 * parts.get(k, 0.0):8.2f}" for k in ("pilot", "power", "estim")) + f" {1e3 * rest:8.2f}")


if __name__ == "__main__":
    main()
