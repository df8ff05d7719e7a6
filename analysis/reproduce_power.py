# ruff: noqa: E402
"""Reproduce the numerical baseline row of Table II of seed 004 (Dsatur-tabu+WMMSE net-SE vs N).

Usage::

    python analysis/reproduce_power.py [--quick] --out DIR [--drops D] [--seed S]

Pipeline per drop (M = 7 hexagonal APs, K = 42 UEs, UMi, Table I; spec power.md 3-4):
LSF drop -> association (eta = -10 dB) -> DSatur colouring -> tabu reassignment (tau_p fixed)
-> T = 10 subframes of {i.i.d. Rayleigh draw -> pilots + MMSE estimation -> distributed RZF ->
estimated equivalent channels -> WMMSE (and equal / max-min references) -> SINR on the true
channel -> net-SE (4)}; the frame's net-SE is the mean over its subframes (5), and the table
entry is the mean over drops. The same LSF drops are used for every N.

Writes to DIR: ``table2_baseline.csv`` (one row per N), ``frames.csv`` (one row per drop and N),
``table2_baseline.png`` and ``checks.json`` (acceptance checks 1-10 of the spec).
"""

from __future__ import annotations

import os

# Single-threaded BLAS: the kernels work on many small matrices, where BLAS threads only
# contend (measured 5-10x slower with 2 threads on a shared 2-core machine). Must precede numpy.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from netsim.comm.association import associate  # noqa: E402
from netsim.comm.csi_mmse import (  # noqa: E402
    estimate_channels,
    mmse_estimate,
    nmse_theory,
    pilot_observation,
)
from netsim.comm.net_se import (  # noqa: E402
    net_sum_se,
    sinr_true,
)
from netsim.comm.pilot_assignment import (  # noqa: E402
    TabuConfig,
    colour_to_matrix,
    conflict_graph,
    dsatur,
    dsatur_tabu,
    is_proper_colouring,
    phi_matrix,
)
from netsim.comm.power import POWER_ALLOCATORS  # noqa: E402
from netsim.comm.rzf import rzf_beamformers, rzf_regularisation  # noqa: E402
from netsim.comm.subframe import prepare_subframe  # noqa: E402
from netsim.comm.wmmse import WMMSE_SPEC_RULE, WMMSEConfig  # noqa: E402
from netsim.phy.umi import (  # noqa: E402
    ChannelConfig,
    channel_from_fading,
    draw_small_scale_fading,
    drop_users,
    hex_ap_positions,
    large_scale_fading,
    noise_power_w,
    path_loss_db,
)
from netsim.rng import RandomStreams  # noqa: E402

PAPER_TABLE2 = {2: 62.87, 4: 93.46, 8: 142.50, 16: 203.95}  # Dsatur-tabu+WMMSE, Table II
N_APS, N_UES, TAU_C, N_SUBFRAMES = 7, 42, 200, 10


def run_frames(
    n_drops: int, antennas: list[int], tabu_cfg: TabuConfig, seed: int
) -> tuple[pd.DataFrame, dict]:
    """Simulate ``n_drops`` frames per N; returns per-frame rows and raw diagnostics."""
    cfg = ChannelConfig.umi()
    sigma2 = noise_power_w(cfg)
    streams = RandomStreams(seed)
    ap = hex_ap_positions(N_APS, cfg.isd_m)
    wcfg = WMMSEConfig()
    rows = []
    diag: dict = {
        "assoc": [], "mono_slack": [], "load_ratio": [], "min_power": [], "iters": [],
        "converged": [], "proper": [], "tau_ds_ge_load": [], "deterministic": [],
        "jbest_mono": [], "tau_le_ds": [], "evals_ok": [], "onehot": [], "example": None,
        "cap_gap": [], "long_iters": [], "spec_iters": [], "spec_converged": [],
        "spec_mono": [], "rsur_default": [], "rsur_spec": [], "default_converged": [],
    }
    for d in range(n_drops):
        rng_lsf = streams.generator("lsf", d)
        ue = drop_users(ap, N_UES, cfg, rng_lsf)
        beta = large_scale_fading(ap, ue, cfg, rng_lsf)
        assoc = associate(beta)
        diag["assoc"].append((beta, assoc))
        ds = dsatur(conflict_graph(assoc, beta))
        diag["proper"].append(is_proper_colouring(ds, assoc))
        diag["tau_ds_ge_load"].append(ds.max() + 1 >= assoc.sum(axis=1).max())
        diag["deterministic"].append(np.array_equal(ds, dsatur(conflict_graph(assoc, beta))))
        for n_ant in antennas:
            t0 = time.perf_counter()
            pa = dsatur_tabu(
                beta, assoc, n_ant, p_pilot_w=cfg.p_pilot_w, p_max_w=cfg.p_max_w,
                noise_w=sigma2, tau_c=TAU_C, rng=streams.generator("tabu", d, n_ant),
                config=tabu_cfg,
            )
            t_pilot = time.perf_counter() - t0
            diag["jbest_mono"].append(bool(np.all(np.diff(pa.j_best_trace) >= 0)))
            diag["tau_le_ds"].append(pa.tau_p <= pa.info["tau_p_initial"])
            cap = tabu_cfg.max_iter * (tabu_cfg.n_candidates or N_UES * N_UES)
            diag["evals_ok"].append(pa.n_evaluations <= cap)
            x = colour_to_matrix(pa.colour)
            diag["onehot"].append(
                bool(np.all(x.sum(axis=0) == 1)) and phi_matrix(x).shape[0] == pa.tau_p
            )
            rng_ssf = streams.generator("ssf", d, n_ant)
            se = {name: [] for name in POWER_ALLOCATORS}
            t_wmmse = 0.0
            for _ in range(N_SUBFRAMES):
                g = draw_small_scale_fading((N_APS, N_UES, n_ant), rng_ssf)
                h = channel_from_fading(beta, g)  # [M, K, N]
                csi = prepare_subframe(h, beta, assoc, pa.colour, cfg.p_pilot_w, sigma2, rng_ssf)
                w, ghat, err = csi.w, csi.ghat, csi.err_var
                for name, alloc in POWER_ALLOCATORS.items():
                    t1 = time.perf_counter()
                    out = alloc(ghat, err, assoc, sigma2, cfg.p_max_w,
                                config=wcfg if name == "wmmse" else None)
                    if name == "wmmse":
                        t_wmmse += time.perf_counter() - t1
                        obj = out.objective
                        diag["mono_slack"].append(
                            float(np.min(np.diff(obj) / np.abs(obj[:-1]))) if obj.size > 1 else 0.0
                        )
                        diag["default_converged"].append(out.converged)
                        diag["rsur_default"].append(float(obj[-1]))
                        # check 9b as the paper defines it: the spec's one-sweep stopping rule
                        spec = alloc(ghat, err, assoc, sigma2, cfg.p_max_w, config=WMMSE_SPEC_RULE)
                        sobj = spec.objective
                        diag["spec_mono"].append(
                            float(np.min(np.diff(sobj) / np.abs(sobj[:-1]))) if sobj.size > 1 else 0.0
                        )
                        diag["rsur_spec"].append(float(sobj[-1]))
                        diag["iters"].append(spec.iterations)
                        diag["converged"].append(spec.converged)
                        if not spec.converged:
                            long = POWER_ALLOCATORS["wmmse"](
                                ghat, err, assoc, sigma2, cfg.p_max_w,
                                config=WMMSEConfig(stop="spec", refine="none", max_iter=2000))
                            diag["cap_gap"].append(1 - sobj[-1] / long.objective[-1])
                            diag["long_iters"].append(long.iterations)
                        diag["load_ratio"].append(float(np.max(out.power_w.sum(axis=1)) / cfg.p_max_w))
                        diag["min_power"].append(float(out.power_w.min()))
                    se[name].append(float(net_sum_se(sinr_true(h, w, out.power_w, sigma2),
                                                     pa.tau_p, TAU_C)))
            if diag["example"] is None and n_ant == max(antennas):
                diag["example"] = (beta, assoc, pa.colour, ds)
            rows.append({
                "drop": d, "n_ant": n_ant, "tau_p": pa.tau_p,
                "tau_p_dsatur": pa.info["tau_p_initial"],
                "j_dsatur": float(pa.j_best_trace[0]), "j_tabu": float(pa.j_best_trace[-1]),
                "net_se_wmmse": np.mean(se["wmmse"]), "net_se_equal": np.mean(se["equal"]),
                "net_se_maxmin": np.mean(se["maxmin"]),
                "mean_cluster_size": float(assoc.sum(axis=0).mean()),
                "pilot_policy_s": t_pilot, "wmmse_s_per_call": t_wmmse / N_SUBFRAMES,
            })
    return pd.DataFrame(rows), diag


def physics_checks(diag: dict, seed: int) -> list[dict]:
    """Checks 1-6 (unit/physics)."""
    cfg = ChannelConfig.umi()
    sigma2 = noise_power_w(cfg)
    checks = []
    s_dbm = 10 * np.log10(sigma2) + 30
    pl100 = float(path_loss_db(np.hypot(100.0, cfg.h_ap_m - cfg.h_ue_m), cfg))
    checks.append({
        "name": "1 noise power [dBm] and UMi median gain at 100 m [dB]",
        "value": [round(s_dbm, 4), round(pl100, 3)], "target": "-91.99+/-0.01, -109.6+/-0.1",
        "pass": bool(abs(s_dbm + 91.99) <= 0.01 and abs(pl100 + 109.6) <= 0.1),
    })
    ok_assoc, sizes = True, []
    for beta, assoc in diag["assoc"]:
        ok_assoc &= bool(np.all(assoc.sum(axis=0) >= 1))
        ok_assoc &= bool(np.all(assoc[beta.argmax(axis=0), np.arange(beta.shape[1])]))
        sizes.append(assoc.sum(axis=0).mean())
    mk = float(np.mean(sizes))
    checks.append({
        "name": "2 association: >=1 AP, best AP included, mean |M_k|",
        "value": round(mk, 3), "target": "all UEs served; mean |M_k| in [1.5, 2.5]",
        "pass": bool(ok_assoc and 1.5 <= mk <= 2.5),
    })
    # 3: Monte Carlo NMSE of the MMSE estimator with the frame's pilot assignment
    beta, assoc, colour, colour_ds = diag["example"]
    rng = RandomStreams(seed).generator("check3")
    n_draw, n_ant = 10000, 4
    err2 = np.zeros(beta.shape)
    corr = np.zeros(beta.shape, dtype=complex)
    for _chunk in range(10):  # chunks of 1000 draws
        h = channel_from_fading(beta, draw_small_scale_fading((n_draw // 10, *beta.shape, n_ant), rng))
        y = pilot_observation(h, colour, cfg.p_pilot_w, sigma2, rng=rng)
        hhat, _ = mmse_estimate(y, beta, colour, cfg.p_pilot_w, sigma2, np.ones_like(assoc))
        e = h - hhat
        err2 += np.mean(np.abs(e) ** 2, axis=(0, 3)) / 10
        corr += np.mean(np.conj(hhat) * e, axis=(0, 3)) / 10
    nmse_mc = err2 / beta
    nmse_th = nmse_theory(beta, colour, cfg.p_pilot_w, sigma2)
    dev = float(np.max(np.abs(nmse_mc[assoc] / nmse_th[assoc] - 1)))
    orth = float(np.max(np.abs(corr) / beta))
    nmse_clean = float(nmse_theory(np.full((1, 2), 1e-7), np.arange(2), cfg.p_pilot_w, sigma2).max())
    checks.append({
        "name": "3 MMSE: max rel. dev. MC NMSE vs (28) on served pairs; max |E[hhat^H e]|/beta; "
                "NMSE with orthogonal pilots at high SNR",
        "value": [round(dev, 4), round(orth, 4), nmse_clean],
        "target": "< 0.03; ~0 (< 0.02); -> 0 (< 1e-3)",
        "pass": bool(dev < 0.03 and orth < 0.02 and nmse_clean < 1e-3),
    })
    # 4: RZF unit norm and zero forcing in the a_m -> 0 limit (AP with n_m <= N). The DSatur
    # colouring is proper, so UEs of one AP have distinct pilots and independent estimates.
    h = channel_from_fading(beta, draw_small_scale_fading((*beta.shape, 16), rng))
    hhat, err = estimate_channels(h, beta, assoc, colour_ds, cfg.p_pilot_w, sigma2, rng)
    w = rzf_beamformers(hhat, assoc, rzf_regularisation(err, sigma2, cfg.p_pilot_w))
    norm_dev = float(np.max(np.abs(np.linalg.norm(w, axis=-1)[assoc] - 1)))
    en = np.where(assoc, np.linalg.norm(hhat, axis=-1) ** 2, np.inf)  # [M, K]
    small = 1e-10 * en.min(axis=1)  # [M]: a_m far below every served UE's channel energy
    w0 = rzf_beamformers(hhat, assoc, small)
    leak = 0.0
    for m in range(beta.shape[0]):
        idx = np.flatnonzero(assoc[m])
        if 0 < idx.size <= 16:
            cross = np.conj(hhat[m, idx]) @ w0[m, idx].T  # [i, k]
            cross /= np.linalg.norm(hhat[m, idx], axis=-1)[:, None]
            leak = max(leak, float(np.max(np.abs(cross - np.diag(np.diag(cross))))))
    checks.append({
        "name": "4 RZF: max | ||w|| - 1 |; max normalised intra-AP leakage with a_m -> 0",
        "value": [norm_dev, leak], "target": "< 1e-12; < 1e-6",
        "pass": bool(norm_dev < 1e-12 and leak < 1e-6),
    })
    checks.append({
        "name": "5 X~ columns one-hot and tau_p = non-empty rows = Phi.shape[0] (every frame)",
        "value": int(np.sum(diag["onehot"])), "target": f"all {len(diag['onehot'])} frames",
        "pass": bool(all(diag["onehot"])),
    })
    ratio = float(net_sum_se(np.array([1.0]), 42, TAU_C) / net_sum_se(np.array([1.0]), 0, TAU_C))
    checks.append({
        "name": "6 pilot overhead: net-SE factor for tau_p = K = 42, tau_c = 200",
        "value": round(1 - ratio, 6), "target": "0.21", "pass": bool(abs(1 - ratio - 0.21) < 1e-12),
    })
    return checks


def baseline_checks(frames: pd.DataFrame, diag: dict, table: pd.DataFrame) -> list[dict]:
    """Checks 7-10 (numerical baseline)."""
    checks = [{
        "name": "7 DSatur: proper colouring, tau_p >= max_m |K_m|, deterministic (every drop)",
        "value": [int(np.sum(diag["proper"])), int(np.sum(diag["tau_ds_ge_load"])),
                  int(np.sum(diag["deterministic"]))],
        "target": f"all {len(diag['proper'])} drops",
        "pass": bool(all(diag["proper"]) and all(diag["tau_ds_ge_load"])
                     and all(diag["deterministic"])),
    }, {
        "name": "8 Tabu: J_best non-decreasing, tau_p <= DSatur tau_p, evaluations <= I_max*N_cand",
        "value": [int(np.sum(diag["jbest_mono"])), int(np.sum(diag["tau_le_ds"])),
                  int(np.sum(diag["evals_ok"]))],
        "target": f"all {len(diag['jbest_mono'])} frames",
        "pass": bool(all(diag["jbest_mono"]) and all(diag["tau_le_ds"]) and all(diag["evals_ok"])),
    }]
    gain = (frames.groupby("n_ant")["net_se_wmmse"].mean()
            / frames.groupby("n_ant")["net_se_equal"].mean())
    mono = float(min(np.min(diag["mono_slack"]), np.min(diag["spec_mono"])))
    ok9 = (mono >= -1e-9 and max(diag["load_ratio"]) <= 1 + 1e-9 and min(diag["min_power"]) >= 0
           and bool(np.all(gain >= 1.0)))
    checks.append({
        "name": "9 WMMSE: min relative Rsur step over all iterations of all calls; max load/P_max; "
                "min p; WMMSE/equal true net-SE per N",
        "value": [mono, max(diag["load_ratio"]), min(diag["min_power"]),
                  {int(k): round(float(v), 3) for k, v in gain.items()}],
        "target": ">= -1e-9; <= 1+1e-9; >= 0; >= 1 (calibration: +14 % at N=16, ~3x at N=2)",
        "pass": bool(ok9),
    })
    conv = float(np.mean(diag["converged"]))
    checks.append({
        "name": "9b WMMSE convergence at tol 1e-4 (safeguarded Anderson/linear extrapolation on, see "
                "WMMSEConfig.anderson_memory and .extrapolation): max iterations, fraction converged within the cap of 100",
        "value": [int(max(diag["iters"])), round(conv, 4)],
        "target": "spec check 9: every call converges in <= 100 iterations",
        "pass": bool(conv == 1.0 and max(diag["iters"]) <= 100),
    })
    rs_d, rs_s = np.asarray(diag["rsur_default"]), np.asarray(diag["rsur_spec"])
    checks.append({
        "name": "9c WMMSE netsim default (sweeps + SPG refinement, windowed rule 1e-5 over 10 "
                "iterations; the net-SE table uses it): fraction converged; mean Rsur gain over the "
                "spec rule; fraction of calls ending >= 0.5 % below the spec rule",
        "value": [round(float(np.mean(diag["default_converged"])), 4),
                  round(float(np.mean(rs_d / rs_s) - 1), 5),
                  round(float(np.mean(rs_d < 0.995 * rs_s)), 4)],
        "target": ">= 0.98 converged within the 2000-iteration refinement cap (measured, quick run: "
                  "1 of 120 calls capped, 0.6 % below the tight sweeps); gain >= 0; last value "
                  "reported, not checked (both are local optima of a non-concave surrogate)",
        "pass": bool(np.mean(diag["default_converged"]) >= 0.98 and np.mean(rs_d / rs_s) >= 1.0),
    })
    rel = table["net_se_wmmse"] / table["paper"] - 1
    incr = bool(np.all(np.diff(table["net_se_wmmse"].to_numpy()) > 0))
    checks.append({
        "name": "10 Dsatur-tabu+WMMSE net-SE vs Table II (relative deviation per N) and trend in N",
        "value": {int(n): round(float(r), 4) for n, r in zip(table["n_ant"], rel, strict=True)},
        "target": "each in [-0.30, +0.10]; increasing in N",
        "pass": bool(np.all((rel >= -0.30) & (rel <= 0.10)) and incr),
    })
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few drops, shorter tabu search")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--drops", type=int, default=None, help="LSF drops (default 20, quick 3)")
    ap.add_argument("--seed", type=int, default=2025)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    antennas = [2, 4, 8, 16]
    # the seed-004 reproduction runs the tabu search as spec 4.2 states it (every candidate
    # evaluated exactly, n_exact=None), not the engine's pre-screened default
    if args.quick:
        n_drops = args.drops or 3
        tabu_cfg = TabuConfig(max_iter=8, n_candidates=32, n_exact=None)
    else:
        n_drops = args.drops or 20
        tabu_cfg = TabuConfig(n_exact=None)
    t0 = time.perf_counter()
    frames, diag = run_frames(n_drops, antennas, tabu_cfg, args.seed)
    g = frames.groupby("n_ant")
    table = pd.DataFrame({
        "n_ant": antennas,
        "net_se_wmmse": g["net_se_wmmse"].mean().to_numpy(),
        "net_se_wmmse_std": g["net_se_wmmse"].std(ddof=1).to_numpy(),
        "net_se_equal": g["net_se_equal"].mean().to_numpy(),
        "net_se_maxmin": g["net_se_maxmin"].mean().to_numpy(),
        "tau_p_mean": g["tau_p"].mean().to_numpy(),
        "tau_p_dsatur_mean": g["tau_p_dsatur"].mean().to_numpy(),
        "paper": [PAPER_TABLE2[n] for n in antennas],
        "n_drops": n_drops,
    })
    table["ratio_to_paper"] = table["net_se_wmmse"] / table["paper"]
    frames.to_csv(args.out / "frames.csv", index=False)
    table.to_csv(args.out / "table2_baseline.csv", index=False)

    checks = physics_checks(diag, args.seed) + baseline_checks(frames, diag, table)
    with open(args.out / "checks.json", "w") as f:
        json.dump(checks, f, indent=2, default=float)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(antennas, table["paper"], "ks--", label="paper Table II (Dsatur-tabu+WMMSE)")
    ax.fill_between(antennas, 0.7 * table["paper"], 1.1 * table["paper"], color="0.85",
                    label="acceptance band -30 %/+10 %")
    ax.errorbar(antennas, table["net_se_wmmse"],
                yerr=table["net_se_wmmse_std"] / np.sqrt(n_drops), fmt="o-",
                label="netsim Dsatur-tabu+WMMSE")
    ax.plot(antennas, table["net_se_equal"], "v-", label="netsim Dsatur-tabu+equal power")
    ax.plot(antennas, table["net_se_maxmin"], "^-", label="netsim Dsatur-tabu+max-min")
    ax.set_xscale("log", base=2)
    ax.set_xticks(antennas, [str(n) for n in antennas])
    ax.set_xlabel("antennas per AP N")
    ax.set_ylabel("net-SE [bit/s/Hz]")
    ax.set_title(f"M={N_APS}, K={N_UES}, UMi, {n_drops} drops x {N_SUBFRAMES} subframes")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "table2_baseline.png", dpi=120)
    plt.close(fig)

    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    for c in checks:
        print(f"[{'PASS' if c['pass'] else 'FAIL'}] {c['name']}: {c['value']}")
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
