"""Reproduce Figs. 3-9 of seed 003 (time-division cell-free near-field ISAC) and the spec 8.1 checks.

Usage: ``python analysis/reproduce_isac.py [--quick] --out DIR``

Writes one CSV per figure, PNGs (Fig. 5 as four colour maps) and ``checks.json`` (a list of
``{"name", "value", "target", "pass"}``, one per check of spec/isac.md 8.1). ``--quick`` uses
K = 2 users (users 1 and 4 of the paper geometry) for the communication figures (6-9) and fewer
points/trials; the reduced SDP size is M*K, so the antenna count does not change its cost. The
full run uses the paper size (3 APs x 21 antennas, 4 users). What was used is written to
``setup.json``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from netsim.comm.isac_time import crlb_feasible_rho, td_isac  # noqa: E402
from netsim.comm.location_csi import location_aware_channels, mean_channel_error  # noqa: E402
from netsim.comm.robust import (  # noqa: E402
    bi_rbo,
    design_beamformers,
    ei_socp,
    monte_carlo_min_sinr,
    reduce_problem,
)
from netsim.sensing.config import IsacConfig, dbm_to_w  # noqa: E402
from netsim.sensing.covariance import design_sensing_covariance  # noqa: E402
from netsim.sensing.echo import sample_echo_covariance  # noqa: E402
from netsim.sensing.fim import FimModel, isotropic_covariance, position_crlb  # noqa: E402
from netsim.sensing.music import MusicGrid, match_estimates, music_localize, music_spectrum_map  # noqa: E402
from netsim.sensing.steering import array_response, array_response_grad  # noqa: E402

warnings.filterwarnings("ignore")
CHECKS: list[dict] = []


def check(name: str, value: object, target: str, ok: bool) -> None:
    CHECKS.append({"name": name, "value": value, "target": target, "pass": bool(ok)})


def _f(x: float) -> float:
    return float(np.round(float(x), 6)) if np.isfinite(x) else float(x)


# ------------------------------------------------------------------------------------------
def sensing_checks(cfg: IsacConfig, r_star: np.ndarray, design) -> None:  # noqa: ANN001
    g = cfg.geometry()
    p = cfg.user_positions
    a, da = array_response_grad(g, p)
    h = 1e-6
    rel = 0.0
    for c, e in enumerate(np.eye(2)):
        fd = (array_response(g, p + h * e) - array_response(g, p - h * e)) / (2 * h)
        rel = max(rel, float(np.abs(fd - da[:, c]).max() / np.abs(da[:, c]).max()))
    check("1_steering_unit_modulus_and_fd_gradient", {"max_abs_dev": _f(np.abs(np.abs(a) - 1).max()), "grad_rel_err": rel},
          "| |a|-1 | < 1e-12 and rel err < 1e-5", np.abs(np.abs(a) - 1).max() < 1e-12 and rel < 1e-5)
    d_r = 2 * g.aperture_m**2 / g.wavelength_m
    u = np.array([np.cos(0.7), np.sin(0.7)])
    errs = []
    for r in (100 * d_r, 1e4 * d_r):
        q = g.ap_centers_m[1] + r * u
        errs.append(float(np.abs(np.angle(array_response(g, q)[1] * array_response(g, q, "far")[1].conj())).max()))
    dist = np.linalg.norm(p[:, None] - g.ap_centers_m[None], axis=-1)
    check("2_near_to_far_field_limit", {"phase_err_100dR": errs[0], "phase_err_1e4dR": errs[1], "max_user_dist_m": _f(dist.max()), "d_R_m": _f(d_r)},
          "phase error decreasing to < 1e-3 rad; all users within d_R", errs[1] < 1e-3 and errs[1] < errs[0] and dist.max() < d_r)
    model = FimModel.build(g, p, cfg.sensing_power_w)
    r_iso = isotropic_covariance(g, cfg.sensing_power_w)
    j = model.fim(r_iso)
    s_inv = model.normalized_crb(r_iso)
    c1 = position_crlb(g, p, r_iso, 1000, cfg.noise_w)
    ratios = [float(np.max(np.abs(position_crlb(g, p, r_iso, 1000, 2 * cfg.noise_w) / c1 - 2))),
              float(np.max(np.abs(position_crlb(g, p, r_iso, 2000, cfg.noise_w) / c1 - 0.5))),
              float(np.max(np.abs(position_crlb(g, p, 2 * r_iso, 1000, cfg.noise_w) / c1 - 0.5)))]
    ok = np.allclose(j, j.T) and np.linalg.eigvalsh(j).min() > -1e-9 * np.abs(j).max() and np.linalg.eigvalsh(s_inv).min() > 0 and max(ratios) < 1e-6
    check("3_fim_psd_and_crlb_scaling", {"fim_min_eig_rel": _f(np.linalg.eigvalsh(j).min() / np.abs(j).max()), "scaling_dev": ratios},
          "FIM sym PSD, S PD, CRLB ~ sigma^2, 1/L, 1/P_s (dev < 1e-6)", ok)
    rng = np.random.default_rng(0)
    sc = np.ones(model.n_par)
    sc[2 * 4 :] = 10 ** rng.uniform(-3, 3, model.n_par - 8)
    other = FimModel(gd=model.gd * sc[:, None, None, None], scale=model.scale * sc, n_users=4)
    dev = float(np.max(np.abs(other.normalized_crb(r_iso) / s_inv - 1)))
    check("4_crlb_invariant_to_gain_scaling", dev, "< 1e-6", dev < 1e-6)
    tr = np.trace(r_star, axis1=1, axis2=2).real / cfg.sensing_power_w
    ratio = design.objective_iso / design.objective
    check("5_covariance_design_tight_and_better", {"tr_R_over_Ps": [float(x) for x in tr], "crb_iso_over_opt": _f(ratio),
                                                   "design_s": _f(design_s), "iterations": design.n_iter},
          "tr(R_m)=P_s; tr CRB(R*) <= tr CRB(R_iso) (about 5x)", np.allclose(tr, 1, atol=1e-6) and ratio > 1.0)


# ------------------------------------------------------------------------------------------
def fig3(cfg: IsacConfig, out: Path, quick: bool) -> None:
    rng = np.random.default_rng(3)
    deltas = np.linspace(0, 1e-3, 11)[1:]
    draws = 1000 if quick else 5000
    rows = []
    lam = cfg.wavelength_m
    ap = np.array([0.0, 0.0])
    curves_a = []
    for ang in (30, 60, 90):
        p = ap + 10 * np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang))])
        g = IsacConfig(ap_centers_m=((0.0, 0.0),), ap_axis_rad=(0.0,), n_antennas=21).geometry()
        e = mean_channel_error(g, p, deltas, rng, draws)
        hn = np.linalg.norm(location_aware_channels(g, p[None]))
        curves_a.append(e / hn)
        rows += [{"panel": "a", "angle_deg": ang, "n_antennas": 21, "delta_m": d, "mean_err": v, "rel_err": v / hn} for d, v in zip(deltas, e, strict=True)]
    curves_b = []
    for n in (20, 40, 60):
        g = IsacConfig(ap_centers_m=((0.0, 0.0),), ap_axis_rad=(0.0,), n_antennas=n).geometry()
        p = ap + 10 * np.array([np.cos(np.radians(60)), np.sin(np.radians(60))])
        e = mean_channel_error(g, p, deltas, rng, draws)
        hn = np.linalg.norm(location_aware_channels(g, p[None]))
        curves_b.append((e, hn))
        rows += [{"panel": "b", "angle_deg": 60, "n_antennas": n, "delta_m": d, "mean_err": v, "rel_err": v / hn} for d, v in zip(deltas, e, strict=True)]
    pd.DataFrame(rows).to_csv(out / "fig3_channel_error.csv", index=False)
    small = deltas <= 0.5e-3
    slopes = [float(np.mean(c[small] / deltas[small]) * lam / 4) for c in curves_a]
    spread = float(np.max(np.abs(np.array(curves_a) / curves_a[0] - 1)))
    sq = [float(e[-1] / np.sqrt(n)) for (e, _), n in zip(curves_b, (20, 40, 60), strict=True)]
    sq_dev = float(np.max(np.abs(np.array(sq) / sq[0] - 1)))
    check("13_fig3_slope_4_over_lambda", {"slope_over_4_per_lambda": slopes, "angle_spread": spread, "err_over_sqrtN_dev": sq_dev},
          "slope within 5% of 4/lambda; curves nearly identical across angles; error ~ sqrt(N)",
          all(abs(s - 1) < 0.05 for s in slopes) and spread < 0.05 and sq_dev < 0.1)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for c, ang in zip(curves_a, (30, 60, 90), strict=True):
        ax[0].plot(deltas * 1e3, c, label=f"{ang} deg")
    for (e, _), n in zip(curves_b, (20, 40, 60), strict=True):
        ax[1].plot(deltas * 1e3, e, label=f"N={n}")
    ax[0].set(xlabel="localization error (mm)", ylabel="E||dh||/||h||", title="Fig. 3(a)")
    ax[1].set(xlabel="localization error (mm)", ylabel="E||dh||", title="Fig. 3(b)")
    ax[0].legend()
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / "fig3.png", dpi=100)
    plt.close(fig)


def fig4(cfg: IsacConfig, out: Path, quick: bool) -> None:
    ps_dbm = np.arange(20, 41, 5.0)
    rows = []
    lines = {}
    for m_ap, n_ant, mult in ((1, 63, 3.0), (2, 32, 1.5), (3, 21, 1.0)):
        g = cfg.geometry(n_antennas=n_ant, n_aps=m_ap)
        d = design_sensing_covariance(g, cfg.user_positions, 1.0, max_iter=15 if quick else 150)
        vals = []
        for ps in ps_dbm:
            pw = dbm_to_w(ps) * mult
            crlb = position_crlb(g, cfg.user_positions, d.r * pw, 1000, cfg.noise_w)
            vals.append(float(np.max(crlb)))
            rows.append({"n_aps": m_ap, "n_antennas": n_ant, "ps_dbm": ps, "power_per_ap_w": pw, "max_crlb_m2_L1000": vals[-1], "mean_crlb_m2_L1000": float(np.mean(crlb))})
        lines[m_ap] = np.array(vals)
    pd.DataFrame(rows).to_csv(out / "fig4_crlb_vs_ps.csv", index=False)
    slopes = {m: float(np.polyfit(ps_dbm / 10, np.log10(v), 1)[0]) for m, v in lines.items()}
    gap = float(np.log10(lines[1][0] / max(lines[2][0], lines[3][0])))
    check("14_fig4_multistatic_gain_and_slope", {"slope_decades_per_10dB": slopes, "log10_gap_M1_vs_best": gap},
          "CRLB(M=1) >> CRLB(M=2,3) (gap > 1 decade); slope -1 decade / 10 dB",
          gap > 1 and all(abs(s + 1) < 0.01 for s in slopes.values()))
    fig, ax = plt.subplots(figsize=(5, 4))
    for m, v in lines.items():
        ax.semilogy(ps_dbm, v, "o-", label=f"M={m}")
    ax.set(xlabel="P_s (dBm)", ylabel="max_k CRLB (m^2), L=1000", title="Fig. 4")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fig4.png", dpi=100)
    plt.close(fig)


def _colour_map(img: np.ndarray, truth_vals: np.ndarray) -> np.ndarray:
    db = 10 * np.log10(np.maximum(img / img.max(), 1e-30))
    tau = 10 * np.log10(np.min(truth_vals) / img.max())
    cls = np.zeros(img.shape, dtype=int)  # 0 blue
    cls[db >= tau - 7] = 1  # cyan
    cls[db >= tau - 5] = 2  # green
    cls[db >= tau] = 3  # red
    return cls


def fig5(cfg: IsacConfig, r_star: np.ndarray, out: Path, quick: bool) -> None:
    g = cfg.geometry()
    p = cfg.user_positions
    grid = MusicGrid.from_config(cfg, step_m=0.05)
    r = r_star * dbm_to_w(50.0) / cfg.sensing_power_w
    n_trials = 3 if quick else 10
    nf_ok, ff_ok_all, ff_spurious, red_cells = [], [], [], []
    rows = []
    maps = {}
    for trial in range(n_trials):
        res = {}
        for model in ("near", "far"):
            rng = np.random.default_rng(100 + trial)
            c = sample_echo_covariance(g, p, r, 1000, cfg.noise_w, rng, model=model)
            loc = music_localize(c, g, 4, cfg.noise_w, grid, model=model)
            _, err = match_estimates(loc.positions_m, p)
            res[model] = err
            xs, ys, img = music_spectrum_map(c, g, 4, cfg.noise_w, grid, model=model)
            ix = np.clip(np.round((p[:, 0] - xs[0]) / grid.step_m).astype(int), 0, xs.size - 1)
            iy = np.clip(np.round((p[:, 1] - ys[0]) / grid.step_m).astype(int), 0, ys.size - 1)
            # truth value: best within one cell (the grid may miss the sharp peak)
            tv = np.array([img[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].max() for x, y in zip(ix, iy, strict=True)])
            cls = _colour_map(img, tv)
            red = cls == 3
            near_truth = np.zeros_like(red)
            for x, y in zip(ix, iy, strict=True):
                near_truth[max(0, y - 4) : y + 5, max(0, x - 4) : x + 5] = True
            spurious = int(np.sum(red & ~near_truth))
            if model == "near":
                red_cells.append(int(red.sum()))
            else:
                ff_spurious.append(spurious)
            if trial == 0:
                maps[model] = (xs, ys, img, cls)
            rows += [{"trial": trial, "model": model, "user": k, "err_m": float(err[k]), "spurious_red_cells": spurious} for k in range(4)]
        nf_ok.append(bool(np.all(res["near"] <= grid.step_m * np.sqrt(2))))
        ff_ok_all.append(bool(np.all(res["far"] <= grid.step_m * np.sqrt(2))))
    pd.DataFrame(rows).to_csv(out / "fig5_music.csv", index=False)
    frac_nf = float(np.mean(nf_ok))
    frac_ff_bad = float(np.mean([not o for o in ff_ok_all]))
    frac_ff_spur = float(np.mean([s > 0 for s in ff_spurious]))
    check("12_music_near_vs_far_field", {"near_all_within_cell_frac": frac_nf, "near_red_cells_median": float(np.median(red_cells)),
                                         "far_mislocates_frac": frac_ff_bad, "far_spurious_red_frac": frac_ff_spur,
                                         "setting": "R* at 50 dBm/AP, L=1000, RARE spectrum, alpha~CN(0,1)", "trials": n_trials},
          "near field: all users within one grid cell in >= 2/3 of trials, few red cells; far field: spurious red region and >= 1 mislocated user in most trials",
          frac_nf >= 2 / 3 and frac_ff_bad >= 0.5 and frac_ff_spur >= 0.5)
    fig, ax = plt.subplots(2, 2, figsize=(10, 9))
    cmap = matplotlib.colors.ListedColormap(["blue", "cyan", "green", "red"])
    for col, model in enumerate(("near", "far")):
        xs, ys, img, cls = maps[model]
        ax[0, col].imshow(cls, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), cmap=cmap, vmin=0, vmax=3)
        ax[0, col].plot(p[:, 0], p[:, 1], "kx")
        ax[0, col].set(title=f"{model}-field top view", xlabel="x (m)", ylabel="y (m)")
        db = 10 * np.log10(np.maximum(img / img.max(), 1e-6))
        ax[1, col].plot(xs, db.max(axis=0), "k-", lw=0.8)
        ax[1, col].set(title=f"{model}-field side view (max over y)", xlabel="x (m)", ylabel="P (dB)", ylim=(-60, 1))
    fig.tight_layout()
    fig.savefig(out / "fig5.png", dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------
def _td_isac_point(args: tuple) -> object:
    """One operating point of Figs. 6-9 (top level so that a process pool can run it)."""
    cfgq, h, c_unit, m, (scheme, ps, pc, eth, rho0) = args
    cc = cfgq.with_(sensing_power_dbm=ps, comm_power_dbm=pc, crlb_threshold_m2=eth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cvxpy "solution may be inaccurate": statuses are checked
        return td_isac(scheme, h, c_unit / dbm_to_w(ps), cc, m, rho0=rho0)


def comm_figs(cfg: IsacConfig, c_unit: np.ndarray, out: Path, quick: bool, users: list[int], jobs: int = 1) -> None:
    """Figs. 6-9. c_unit: per-snapshot CRLB at P_s = 1 W (c scales as 1/P_s)."""
    g = cfg.geometry()
    p = cfg.user_positions[users]
    h = location_aware_channels(g, p)
    m = g.n_aps
    zeta = 0.05 if quick else cfg.zeta_bps_hz
    imax = 6 if quick else cfg.max_ao_iter
    cfgq = cfg.with_(zeta_bps_hz=zeta, max_ao_iter=imax)
    cache: dict = {}

    def run(scheme: str, ps: float, pc: float, eth: float, rho0: float = 0.5):  # noqa: ANN202
        key = (scheme, ps, pc, eth, rho0)
        if key not in cache:
            cache[key] = _td_isac_point((cfgq, h, c_unit, m, key))
        return cache[key]

    schemes = ("main", "ei", "mrt")
    ps_list = [20.0, 30.0, 40.0]
    pc_list = [10.0, 20.0, 30.0]
    ps7 = [20.0, 40.0] if quick else [20.0, 30.0, 40.0]
    eth_list = [1e-7, 1e-6, 1e-5]
    # every operating point the figures and checks use; with jobs > 1 they run in a process pool
    keys = {(s, ps, 20.0, cfg.crlb_threshold_m2, 0.5) for s in schemes for ps in ps_list}
    keys |= {(s, 30.0, pc, cfg.crlb_threshold_m2, 0.5) for s in schemes for pc in pc_list}
    keys |= {(s, ps, 20.0, eth, 0.5) for s in schemes for ps in ps7 for eth in eth_list}
    keys |= {("main", 30.0, 20.0, cfg.crlb_threshold_m2, r0) for r0 in cfg.rho_init}
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        order = sorted(keys, key=lambda k: k[0] == "ei")  # slow schemes first
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for key, res in zip(order, pool.map(_td_isac_point, [(cfgq, h, c_unit, m, k) for k in order]), strict=True):
                cache[key] = res
    rows6 = []
    for sch in schemes:
        for ps in ps_list:
            r = run(sch, ps, 20.0, cfg.crlb_threshold_m2)
            rows6.append({"scheme": sch, "sweep": "ps", "ps_dbm": ps, "pc_dbm": 20.0, "rate_wc": r.rate_wc, "t_sdr": r.t_sdr, "rho": r.rho, "rho_bar": r.rho_bar, "status": r.status, "wall_s": r.wall_s})
        for pc in pc_list:
            r = run(sch, 30.0, pc, cfg.crlb_threshold_m2)
            rows6.append({"scheme": sch, "sweep": "pc", "ps_dbm": 30.0, "pc_dbm": pc, "rate_wc": r.rate_wc, "t_sdr": r.t_sdr, "rho": r.rho, "rho_bar": r.rho_bar, "status": r.status, "wall_s": r.wall_s})
    d6 = pd.DataFrame(rows6)
    d6.to_csv(out / "fig6_rate_vs_power.csv", index=False)
    d6.to_csv(out / "fig9_rho_vs_power.csv", index=False, columns=["scheme", "sweep", "ps_dbm", "pc_dbm", "rho", "rho_bar"])
    rows7 = []
    for sch in schemes:
        for ps in ps7:
            for eth in eth_list:
                r = run(sch, ps, 20.0, eth)
                rows7.append({"scheme": sch, "ps_dbm": ps, "eps_th_m2": eth, "rate_wc": r.rate_wc, "rho": r.rho, "rho_bar": r.rho_bar, "status": r.status})
    d7 = pd.DataFrame(rows7)
    d7.to_csv(out / "fig7_rate_vs_eps_th.csv", index=False)
    rows8 = []
    finals = []
    for rho0 in cfg.rho_init:
        r = run("main", 30.0, 20.0, cfg.crlb_threshold_m2, rho0)
        finals.append((r.rho, r.t_sdr, r.rate_wc))
        rows8 += [{"rho0": rho0, "iter": i, "rho": a, "t": b, "stage": st} for i, ((a, b), st) in enumerate(zip(r.history, r.history_stage, strict=True))]
    d8 = pd.DataFrame(rows8)
    d8.to_csv(out / "fig8_convergence.csv", index=False)

    # ---- checks 6-11 -------------------------------------------------------------------
    cc = cfgq.with_(sensing_power_dbm=30.0)
    c30 = c_unit / dbm_to_w(30.0)
    rb = crlb_feasible_rho(c30, cc)
    ok6 = np.max(c30) / cc.n_snapshots(rb) <= cc.crlb_threshold_m2 and np.max(c30) / cc.n_snapshots(rb + cc.delta_rho) > cc.crlb_threshold_m2
    check("6_rho_bar_eq17", {"rho_bar": _f(rb), "max_crlb_at_rho_bar": float(np.max(c30) / cc.n_snapshots(rb)),
                             "max_crlb_at_rho_bar_plus_step": float(np.max(c30) / cc.n_snapshots(rb + cc.delta_rho))},
          "CRLB(rho_bar) <= eps_th < CRLB(rho_bar + delta_rho)", ok6)
    main = run("main", 30.0, 20.0, cfg.crlb_threshold_m2)
    from netsim.comm.isac_time import error_radius_at

    eps = error_radius_at(h, m, c30, main.rho, cc)
    mc = monte_carlo_min_sinr(h, eps, main.w, cc.noise_w, np.random.default_rng(7), 10_000)
    gamma_t = 2 ** (main.t_sdr / main.rho) - 1 if main.rho > 0 else 0.0
    check("7_robust_lmi_soundness_mc", {"gamma_target": _f(gamma_t), "certified_min": _f(np.min(main.gamma_wc)), "mc_min_sinr": _f(np.min(mc)), "draws": 10_001},
          "min SINR over 1e4 boundary + adversarial draws >= certified gamma", bool(np.all(mc >= main.gamma_wc * (1 - 1e-6))) and main.status == "ok")
    red0 = reduce_problem(h, np.zeros((m, len(users))), cc.comm_power_w, cc.noise_w, m)
    t_sdr0 = bi_rbo(red0, main.rho, zeta).t
    t_ei0, _, _ = ei_socp(red0, main.rho, zeta)
    check("8_error_free_sdr_equals_ei", {"t_birbo": _f(t_sdr0), "t_ei": _f(t_ei0), "rho": _f(main.rho)},
          "t_BiRBO >= t_EI - zeta and |diff| <= 2 zeta", t_sdr0 >= t_ei0 - zeta and abs(t_sdr0 - t_ei0) <= 2 * zeta)
    ts = []
    for s in (1.0, 2.0):
        red = reduce_problem(h, s * eps, cc.comm_power_w, cc.noise_w, m)
        ts.append(bi_rbo(red, main.rho, zeta).t)
    feas_lo = design_beamformers("main", h, eps, cc.comm_power_w, cc.noise_w, main.rho, m, zeta=zeta)
    check("9_monotone_in_t_and_radius", {"t_eps": _f(ts[0]), "t_2eps": _f(ts[1]), "t_design": _f(feas_lo.t_sdr)},
          "t*(2 eps) <= t*(eps) (+zeta)", ts[1] <= ts[0] + zeta)
    hist_ok = True
    for rho0 in cfg.rho_init:
        r = run("main", 30.0, 20.0, cfg.crlb_threshold_m2, rho0)
        # t never decreases along the AO, nor from the projection (18) (which may lower it) on
        cut = r.history_stage.index("projection") if "projection" in r.history_stage else len(r.history)
        for seg in (r.history[:cut], r.history[cut:]):
            hist_ok &= all(b[1] >= a[1] - 1e-9 for a, b in zip(seg, seg[1:], strict=False))
        hist_ok &= r.rho <= r.rho_bar + 1e-12
    ei = run("ei", 30.0, 20.0, cfg.crlb_threshold_m2)
    rho_f = [f[0] for f in finals]
    t_f = [f[1] for f in finals]
    same = (max(rho_f) - min(rho_f) <= cfg.delta_rho + 1e-9) and (max(t_f) - min(t_f) <= 2 * zeta)
    check("10_ao_monotone_and_consistent", {"final_rho": rho_f, "final_t": [_f(x) for x in t_f], "rho_bar": _f(ei.rho_bar), "rho_ei": _f(ei.rho),
                                           "iterations": [len(run("main", 30.0, 20.0, cfg.crlb_threshold_m2, r0).history) for r0 in cfg.rho_init]},
          "t^(i) non-decreasing; rho* <= rho_bar; rho_EI = rho_bar; runs from 0.2/0.5/0.8 agree within delta_rho and zeta",
          hist_ok and abs(ei.rho - ei.rho_bar) < 1e-12 and same)
    mrt = run("mrt", 30.0, 20.0, cfg.crlb_threshold_m2)
    def rate(s, ps, pc):  # noqa: ANN001, ANN202
        return run(s, ps, pc, cfg.crlb_threshold_m2).rate_wc
    gain_ps = rate("main", 40.0, 20.0) - rate("main", 20.0, 20.0)
    gain_pc = rate("main", 30.0, 30.0) - rate("main", 30.0, 10.0)
    rho_ps = [run("main", ps, 20.0, cfg.crlb_threshold_m2).rho for ps in ps_list]
    rho_pc = [run("main", 30.0, pc, cfg.crlb_threshold_m2).rho for pc in pc_list]
    ps_lo = min(ps7)
    ei_drop = run("ei", ps_lo, 20.0, 1e-7).rate_wc - run("ei", ps_lo, 20.0, 1e-5).rate_wc
    main_var = abs(run("main", max(ps7), 20.0, 1e-5).rate_wc - run("main", max(ps7), 20.0, 1e-6).rate_wc)
    ei_drop_hi = run("ei", max(ps7), 20.0, 1e-6).rate_wc - run("ei", max(ps7), 20.0, 1e-5).rate_wc
    val = {"main": _f(main.rate_wc), "mrt": _f(mrt.rate_wc), "ei": _f(ei.rate_wc), "rate_gain_ps_20_40": _f(gain_ps), "rate_gain_pc_10_30": _f(gain_pc),
           "rho_vs_ps": [_f(x) for x in rho_ps], "rho_vs_pc": [_f(x) for x in rho_pc], "ei_drop_1e-6_to_1e-5_at_high_ps": _f(ei_drop_hi),
           "main_change_1e-6_to_1e-5_at_high_ps": _f(main_var), "ei_change_1e-7_to_1e-5_low_ps": _f(ei_drop)}
    ok11 = (main.rate_wc >= mrt.rate_wc - zeta and main.rate_wc >= ei.rate_wc - zeta and gain_ps > gain_pc
            and rho_ps[-1] > rho_ps[0] and (max(rho_pc) - min(rho_pc)) <= 0.1 and ei_drop_hi > 0 and main_var < ei_drop_hi + zeta)
    check("11_scheme_ordering_and_trends", val,
          "Main >= MRT, EI (within zeta); rate gain from P_s > from P_c; rho* rises with P_s, flat in P_c; EI falls with looser eps_th while Main stays flat", ok11)

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for sch in schemes:
        d = d6[(d6.scheme == sch) & (d6.sweep == "ps")]
        ax[0].plot(d.ps_dbm, d.rate_wc, "o-", label=sch)
        d = d6[(d6.scheme == sch) & (d6.sweep == "pc")]
        ax[1].plot(d.pc_dbm, d.rate_wc, "o-", label=sch)
    ax[0].set(xlabel="P_s (dBm)", ylabel="worst-case min rate (bit/s/Hz)", title="Fig. 6 (P_c = 20 dBm)")
    ax[1].set(xlabel="P_c (dBm)", title="Fig. 6 (P_s = 30 dBm)")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(out / "fig6.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for sch in schemes:
        for ps in ps7:
            d = d7[(d7.scheme == sch) & (d7.ps_dbm == ps)]
            ax.semilogx(d.eps_th_m2, d.rate_wc, "o-", label=f"{sch} {ps:.0f} dBm")
    ax.set(xlabel="eps_th (m^2)", ylabel="worst-case min rate", title="Fig. 7")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig7.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for rho0 in cfg.rho_init:
        d = d8[d8.rho0 == rho0]
        ax[0].plot(d.iter, d.rho, "o-", label=f"rho0={rho0}")
        ax[1].plot(d.iter, d.t, "o-", label=f"rho0={rho0}")
    ax[0].set(xlabel="iteration", ylabel="rho", title="Fig. 8(a)")
    ax[1].set(xlabel="iteration", ylabel="t (bit/s/Hz)", title="Fig. 8(b)")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(out / "fig8.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for sch in schemes:
        d = d6[(d6.scheme == sch) & (d6.sweep == "ps")]
        ax[0].plot(d.ps_dbm, d.rho, "o-", label=sch)
        d = d6[(d6.scheme == sch) & (d6.sweep == "pc")]
        ax[1].plot(d.pc_dbm, d.rho, "o-", label=sch)
    ax[0].set(xlabel="P_s (dBm)", ylabel="rho*", title="Fig. 9")
    ax[1].set(xlabel="P_c (dBm)", title="Fig. 9")
    ax[0].legend()
    fig.tight_layout()
    fig.savefig(out / "fig9.png", dpi=100)
    plt.close(fig)


design_s = 0.0


def main(argv: list[str] | None = None) -> int:
    global design_s
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--jobs", type=int, default=1, help="processes for the Figs. 6-9 operating points (default 1)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    c0 = time.process_time()
    cpu: dict[str, float] = {}
    cfg = IsacConfig()
    g = cfg.geometry()
    t1 = time.perf_counter()
    design = design_sensing_covariance(g, cfg.user_positions, cfg.sensing_power_w, max_iter=40 if args.quick else 150)
    design_s = time.perf_counter() - t1
    r_star = design.r
    timings = {"design_s": design_s}
    sensing_checks(cfg, r_star, design)
    t1, c1 = time.perf_counter(), time.process_time()
    fig3(cfg, out, args.quick)
    timings["fig3_s"] = time.perf_counter() - t1
    cpu["fig3_s"] = time.process_time() - c1
    t1, c1 = time.perf_counter(), time.process_time()
    fig4(cfg, out, args.quick)
    timings["fig4_s"] = time.perf_counter() - t1
    cpu["fig4_s"] = time.process_time() - c1
    t1, c1 = time.perf_counter(), time.process_time()
    fig5(cfg, r_star, out, args.quick)
    timings["fig5_s"] = time.perf_counter() - t1
    cpu["fig5_s"] = time.process_time() - c1
    users = [0, 3] if args.quick else [0, 1, 2, 3]
    t1, c1 = time.perf_counter(), time.process_time()
    fm = FimModel.build(g, cfg.user_positions, 1.0)
    c_unit_all = fm.per_snapshot_crlb(r_star / cfg.sensing_power_w, cfg.noise_w)
    c_unit = c_unit_all if len(users) == 4 else c_unit_all[users]
    comm_figs(cfg, c_unit, out, args.quick, users, jobs=args.jobs)
    timings["comm_figs_s"] = time.perf_counter() - t1
    cpu["comm_figs_s"] = time.process_time() - c1  # this process only (not --jobs workers)
    setup = {"quick": args.quick, "users_for_comm_figs": users, "n_antennas": cfg.n_antennas, "n_aps": len(cfg.ap_centers_m),
             "c_per_snapshot_m2_at_30dBm": [float(x) for x in c_unit_all / cfg.sensing_power_w],
             "note": "comm figures (6-9) use the per-snapshot CRLB of the listed users from the 4-user R*; quick mode uses 2 users, zeta=0.05, I_max=6",
             "timings_s": timings, "total_s": time.perf_counter() - t0,
             "cpu_s": cpu, "total_cpu_s": time.process_time() - c0}
    (out / "setup.json").write_text(json.dumps(setup, indent=2))
    (out / "checks.json").write_text(json.dumps(CHECKS, indent=2, default=float))
    return 0 if all(c["pass"] for c in CHECKS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
