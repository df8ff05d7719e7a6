"""Reproduce Figs 4-8 of seed 000 (pilot-sharing CFO/TO synchronization) and evaluate every
acceptance check of ``shared/spec/sync.md`` section 7.

Usage::

    python analysis/reproduce_sync.py [--quick] --out DIR [--seed N]

Writes ``fig4_d_diagonal.csv``, ``fig5_contamination_power.csv``, ``fig6_crb_mse.csv``,
``fig7_clustering.csv``, ``fig8_pilot_sharing.csv`` (the plotted numbers), one PNG per figure,
and ``checks.json`` (a list of ``{"name", "value", "target", "pass"}``).

Deviation from spec 6.5 (documented): the Fig 6 taps use the paper's amplitudes with fixed
non-zero phases ``[0, pi/3, -pi/4, 2 pi/3]``. With zero phases (real taps) the Fig 6 profile
has an exact second ML solution at theta1 = 1.594 (same chip floors as 1.8: the two 4-dim
signal subspaces intersect along the true signal), so any exact ML estimator returns it about
half of the time at every SNR; complex taps remove that structural ambiguity.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from netsim.phy.pilots import bpsk_pilots, delayed_pilot  # noqa: E402
from netsim.sync.burst import received_burst  # noqa: E402
from netsim.sync.channel import FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS, PathLossModel  # noqa: E402
from netsim.sync.crb import (  # noqa: E402
    a_matrix,
    a_matrix_closed_form,
    contamination_cov_full,
    contamination_diag,
    contamination_power,
    crb_to_cfo,
)
from netsim.sync.ml import ml_estimate, wrap_cfo  # noqa: E402
from netsim.sync.plan import (  # noqa: E402
    ChannelBank,
    SyncPlanConfig,
    alg1_clusters,
    alg2_pilot_sharing,
    alg3_allocation,
    cluster_distances,
    dsatur_capacity,
    dsatur_min_contamination,
    improving_swaps,
    kmeans,
    max_cluster_distance,
    medoid_masters,
    random_masters,
    received_power_matrix,
    sinr_db,
    ward_clusters,
)

DROPS = 0  # --drops override for Figs 7-8 (0: the defaults)
H6 = FIG6_TAP_GAINS * np.exp(1j * np.array([0.0, np.pi / 3, -np.pi / 4, 2 * np.pi / 3]))


class Checks:
    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, name: str, value, target: str, ok: bool) -> None:
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        self.items.append({"name": name, "value": value, "target": target, "pass": bool(ok)})
        print(f"[{'PASS' if ok else 'FAIL'}] {name}: {value} (target {target})")


# ------------------------------------------------------------------------------------------
def check_a_matrix(ck: Checks) -> None:
    err, tr_err, sup_err = 0.0, 0.0, 0.0
    for eta in (1, 2, 3, 5):
        for vs in np.linspace(0, 2.95, 12):
            a = a_matrix(vs, eta)
            err = max(err, float(np.abs(a - a_matrix_closed_form(vs, eta)).max()))
            tr_err = max(tr_err, abs(np.trace(a) - 2 / 3))
            sup_err = max(sup_err, abs(np.sum(np.diag(a, 1)) - 1 / 6))
    ck.add(
        "1. A matrix: closed form vs piecewise integration (max abs diff)",
        err,
        "<= 1e-9",
        err <= 1e-9,
    )
    ck.add(
        "1. A matrix: |trace - 2/3|, |sum superdiag - 1/6| (max)",
        max(tr_err, sup_err),
        "<= 1e-12",
        max(tr_err, sup_err) <= 1e-12,
    )


def _mc_signal(s, vs, eta, fmax, m, trials, rng):
    th = rng.uniform(0, eta, trials)
    eps = rng.uniform(-fmax, fmax, trials)
    psi = (rng.standard_normal(trials) + 1j * rng.standard_normal(trials)) / np.sqrt(2)
    w = delayed_pilot(s, th + vs, m)  # [T, M]
    return w * (psi[:, None] * np.exp(2j * np.pi * eps[:, None] * np.arange(m)))


def fig4(out: Path, ck: Checks, quick: bool, rng) -> None:
    trials = 40000 if quick else 100000
    vs = 0.45
    rows = []
    worst = 0.0
    off_worst = 0.0
    for n in (16, 32, 64):
        s = bpsk_pilots(1, n, rng)[0]
        for eta in (1, 3):
            m = n + eta + 6
            d = contamination_diag(s, [vs], eta, [1.0], m)
            pick = np.sort(rng.choice(np.arange(2, n), 6, replace=False))
            for fmax in (0.5, 1.0, 3.0):
                mc = np.zeros(m)
                cov = np.zeros((m, m), complex)
                for c0 in range(0, trials, 20000):
                    x = _mc_signal(s, vs, eta, fmax, m, min(20000, trials - c0), rng)
                    mc += np.sum(np.abs(x) ** 2, 0)
                    if n == 16:
                        cov += x.T @ x.conj()
                mc /= trials
                if n == 16:
                    cov /= trials
                    off_worst = max(off_worst, float(np.max(np.abs(cov - np.diag(np.diag(cov))))))
                err = np.abs(mc - d)
                worst = max(
                    worst, float(np.max(np.minimum(err / np.maximum(d, 1e-12) / 0.02, err / 0.01)))
                )
                for k in pick:
                    rows.append(dict(N=n, eta=eta, fmax=fmax, n=int(k), d_eq30=d[k], d_mc=mc[k]))
    df = pd.DataFrame(rows)
    df.to_csv(out / "fig4_d_diagonal.csv", index=False)
    ck.add(
        "2. Fig 4: [D]_nn Monte-Carlo vs eq 30 (max error / allowed; allowed = 2% rel or 0.01 beta abs)",
        worst,
        "<= 1",
        worst <= 1,
    )
    ck.add(
        "2. Fig 4: max |off-diagonal| of MC covariance, 2 fmax integer (N=16, units of beta)",
        off_worst,
        "< 0.02",
        off_worst < 0.02,
    )
    # small fmax: the sinc-weighted full covariance matches
    n, eta, fmax = 16, 3, 0.01
    s = bpsk_pilots(1, n, rng)[0]
    m = n + 9
    x = _mc_signal(s, vs, eta, fmax, m, trials, rng)
    cov = x.T @ x.conj() / trials
    full = contamination_cov_full(s, vs, eta, fmax, 1.0, m)
    e_full = float(np.max(np.abs(cov - full)))
    ck.add(
        "2. Fig 4: small fmax (0.01): max |MC cov - sinc-weighted eq 28| (beta)",
        e_full,
        "< 0.02",
        e_full < 0.02,
    )
    fig, ax = plt.subplots(figsize=(7, 4))
    for (nn, et, fm), g in df.groupby(["N", "eta", "fmax"]):
        lab = f"N={nn}, eta={et}, fmax={fm}"
        ax.plot(np.arange(len(g)), g.d_eq30, "-", lw=0.8)
        ax.plot(np.arange(len(g)), g.d_mc, "o", ms=3, label=lab if fm == 3.0 else None)
    ax.set_xlabel("chosen diagonal element (index)")
    ax.set_ylabel("[D]_nn / (Pt beta)")
    ax.set_title("Fig 4: diagonal of D, eq 30 (lines) vs Monte-Carlo (markers)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "fig4_d_diagonal.png", dpi=120)
    plt.close(fig)


def fig5(out: Path, ck: Checks, quick: bool, rng) -> None:
    pl = PathLossModel()
    trials = 400000 if quick else 1000000
    dist = np.array([2, 5, 8, 10, 15, 20, 30, 50, 70, 100, 150, 200.0])
    rows = []
    mc_err = 0.0
    spread = 0.0
    lin = []
    for n in (16, 64, 256):
        s = bpsk_pilots(1, n, rng)[0]
        closed = float(contamination_power(s, 1.0))
        lin.append(closed / ((2 * n + float(np.sum(s[:-1] * s[1:]))) / 3))
        m = n + 3 + 3 + 20
        for eta, fmax in ((1, 0.5), (3, 3.0)):
            vals = [
                float(contamination_diag(s, [vs], eta, [1.0], m).sum())
                for vs in (0.0, 0.4, 2.7, 13.0)
            ]
            spread = max(spread, (max(vals) - min(vals)) / np.mean(vals))
            # Monte-Carlo of the burst energy (beta = 1): sum_m |x_m|^2 = |psi|^2 ||w(theta1)||^2
            acc = 0.0
            for c0 in range(0, trials, 50000):
                t = min(50000, trials - c0)
                th = rng.uniform(0, eta, t)
                psi2 = rng.exponential(1.0, t)
                w = delayed_pilot(s, th + 0.4, m)
                acc += float(np.sum(psi2 * np.sum(np.abs(w) ** 2, 1)))
            mc = acc / trials
            mc_err = max(mc_err, abs(mc - closed) / closed)
            for d in dist:
                b = float(pl.gain(d))
                rows.append(
                    dict(
                        N=n,
                        eta=eta,
                        fmax=fmax,
                        distance_m=d,
                        trD_closed_w=closed * b,
                        trD_mc_w=mc * b,
                        trD_closed_dbw=10 * np.log10(closed * b),
                    )
                )
    df = pd.DataFrame(rows)
    df.to_csv(out / "fig5_contamination_power.csv", index=False)
    ck.add(
        "3. Fig 5: tr(D) Monte-Carlo vs Pt beta (2N + R_s(1))/3 (max rel err)",
        mc_err,
        "< 0.01",
        mc_err < 0.01,
    )
    ck.add("3. Fig 5: tr(D) spread across eta/fmax/vs (relative)", spread, "< 0.01", spread < 0.01)
    lin_err = float(np.max(np.abs(np.array(lin) - 1)))
    ck.add(
        "3. Fig 5: tr(D) = (2N + R_s(1))/3 for N in {16, 64, 256} (max rel err)",
        lin_err,
        "< 1e-9",
        lin_err < 1e-9,
    )
    g = pl.gain
    s35 = 10 * np.log10(g(100.0) / g(200.0)) / np.log10(2)
    s20 = 10 * np.log10(g(20.0) / g(40.0)) / np.log10(2)
    s0 = 10 * np.log10(g(3.0) / g(8.0))
    ok = abs(s35 - 35) < 1e-9 and abs(s20 - 20) < 1e-9 and abs(s0) < 1e-9
    ck.add(
        "3. Fig 5: distance slope dB/decade (>50 m, 10-50 m, <10 m)",
        [round(float(s35), 6), round(float(s20), 6), round(float(s0), 6)],
        "[35, 20, 0]",
        ok,
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for (n, eta, fmax), gg in df.groupby(["N", "eta", "fmax"]):
        ax.semilogx(
            gg.distance_m,
            10 * np.log10(gg.trD_closed_w),
            "-",
            label=f"N={n}, eta={eta}, fmax={fmax}",
        )
        ax.semilogx(gg.distance_m, 10 * np.log10(gg.trD_mc_w), "x", ms=4)
    ax.set_xlabel("interferer-master distance (m)")
    ax.set_ylabel("tr(D) (dBW)")
    ax.set_title("Fig 5: pilot-contamination power (lines: closed form, x: MC)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "fig5_contamination_power.png", dpi=120)
    plt.close(fig)


def fig6(out: Path, ck: Checks, quick: bool, rng) -> None:
    snrs = np.arange(0, 41, 10 if quick else 5)
    trials = 120 if quick else 300
    rho, vs_int, eta, fmax, th0, e0 = 0.01, 0.4, 3.0, 3.0, 1.8, 0.1
    rows = []
    for n in (64, 256):
        m = n + 9
        s = bpsk_pilots(1, n, rng)[0]
        d_int = contamination_diag(s, [vs_int], eta, [rho], m)
        for snr in snrs:
            sig2 = 10 ** (-snr / 10)
            for contam in (False, True):
                xi = sig2 + (d_int if contam else 0.0)
                crb = crb_to_cfo(s, th0, FIG6_TAP_DELAYS_CHIPS, H6, xi, m)
                n_l = 2 if contam else 1
                to = np.full((trials, n_l), th0)
                ep = np.full((trials, n_l), e0)
                dl = np.broadcast_to(FIG6_TAP_DELAYS_CHIPS, (trials, n_l, 4)).copy()
                hh = np.zeros((trials, n_l, 4), complex)
                hh[:, 0] = H6
                if contam:
                    to[:, 1] = rng.uniform(0, eta, trials)
                    ep[:, 1] = rng.uniform(-fmax, fmax, trials)
                    dl[:, 1] = vs_int
                    hh[:, 1, 0] = np.sqrt(rho / 2) * (
                        rng.standard_normal(trials) + 1j * rng.standard_normal(trials)
                    )
                y = received_burst(
                    np.broadcast_to(s, (trials, n_l, n)), to, ep, dl, hh, m, sig2, rng
                )
                est = ml_estimate(y, s, FIG6_TAP_DELAYS_CHIPS, eta)
                e_to = (est.to_chips - th0) ** 2
                e_cfo = wrap_cfo(est.cfo_norm - e0) ** 2
                rows.append(
                    dict(
                        N=n,
                        snr_db=snr,
                        contamination=contam,
                        crb_to=float(crb.to_chips2),
                        crb_cfo=float(crb.cfo_norm2),
                        mse_to=e_to.mean(),
                        mse_cfo=e_cfo.mean(),
                        median_se_to=np.median(e_to),
                        trials=trials,
                    )
                )
    df = pd.DataFrame(rows)
    df.to_csv(out / "fig6_crb_mse.csv", index=False)

    def row(n, snr, c):
        return df[(df.N == n) & (df.snr_db == snr) & (df.contamination == c)].iloc[0]

    r20, r30 = row(256, 20, False), row(256, 30, False)
    dec = [r20.crb_to / r30.crb_to, r20.crb_cfo / r30.crb_cfo]
    ck.add(
        "5. CRB scaling without contamination: ratio per 10 dB (TO, CFO)",
        [float(x) for x in dec],
        "10 exactly",
        all(abs(x - 10) < 1e-6 for x in dec),
    )
    c20, c40 = row(256, 20, True), row(256, 40, True)
    fl = [c20.crb_to / c40.crb_to, c20.crb_cfo / c40.crb_cfo]
    ck.add(
        "5. CRB with contamination (rho=-20 dB): ratio 20->40 dB (TO, CFO)",
        [float(x) for x in fl],
        "< 4 (floor; 100 without)",
        all(x < 4 for x in fl),
    )
    nc = df[~df.contamination]
    rc = (nc[nc.snr_db >= 10].mse_cfo / nc[nc.snr_db >= 10].crb_cfo).to_numpy()
    ck.add(
        "7. ML no contamination: MSE_CFO/CRB_CFO for SNR >= 10 dB (min, max)",
        [float(rc.min()), float(rc.max())],
        "within [0.7, 1.4]",
        bool(rc.min() >= 0.7 and rc.max() <= 1.4),
    )
    t64 = row(64, 40, False)
    rt = [t64.mse_to / t64.crb_to] + list(
        (
            nc[(nc.N == 256) & (nc.snr_db >= 30)].mse_to
            / nc[(nc.N == 256) & (nc.snr_db >= 30)].crb_to
        ).to_numpy()
    )
    ck.add(
        "7. ML no contamination: MSE_TO/CRB_TO at 40 dB (N=64) and >= 30 dB (N=256)",
        [float(x) for x in rt],
        "within [0.5, 2]",
        bool(min(rt) >= 0.5 and max(rt) <= 2),
    )
    # pooled over N in {64, 256} and SNR >= 35 dB (one point per N in --quick): the per-point
    # ratio with contamination is noisy because the error is heavy-tailed (spec 8.16)
    hi = df[df.snr_db >= 35]
    gap_c = float((hi[hi.contamination].mse_cfo / hi[hi.contamination].crb_cfo).mean())
    gap_n = float((hi[~hi.contamination].mse_cfo / hi[~hi.contamination].crb_cfo).mean())
    ck.add(
        "7. ML with contamination: mean MSE_CFO/CRB_CFO, SNR >= 35 dB, N in {64, 256} (with, without)",
        [gap_c, gap_n],
        "with >= 1 and with > without",
        bool(gap_c >= 1 and gap_c > gap_n),
    )
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    for ax, q in zip(axs, ("to", "cfo"), strict=True):
        for (n, c), g in df.groupby(["N", "contamination"]):
            lab = f"N={n}, {'with' if c else 'no'} contamination"
            line = ax.semilogy(g.snr_db, g[f"crb_{q}"], "-", label="CRB " + lab)[0]
            ax.semilogy(
                g.snr_db, g[f"mse_{q}"], "o--", color=line.get_color(), ms=4, label="ML MSE " + lab
            )
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel("Ts^2" if q == "to" else "(cycles/sample)^2")
        ax.set_title(f"Fig 6: {q.upper()}")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "fig6_crb_mse.png", dpi=120)
    plt.close(fig)


def _sum_crb(loc, slaves, masters_of, pilots, bank, cfg):
    from netsim.sync.plan import evaluate_crb

    cto, ccfo = evaluate_crb(loc, slaves, masters_of, pilots, bank, cfg)
    fin = np.isfinite(cto) & np.isfinite(ccfo)
    return float(np.sum(cto[fin])), float(np.sum(ccfo[fin])), int(np.sum(~fin))


def fig7(out: Path, ck: Checks, quick: bool, rng) -> None:
    ks = [30, 35, 40, 45, 50, 55]
    drops = DROPS or (20 if quick else 100)
    cfg = SyncPlanConfig()
    dmax = max_cluster_distance(cfg)
    cpu = np.array([[0.0, 0.0]])
    rows = []
    for k in ks:
        for dr in range(drops):
            loc = rng.uniform(0, 150, (k, 2))
            nodes = np.vstack([loc, cpu])
            bank = ChannelBank.draw(k + 1, cfg, k + 1, rng)
            kc, lab, mas = alg1_clusters(loc, dmax, rng)
            schemes = {"proposed": (lab, mas)}
            schemes["benchmark2"] = (lab2 := kmeans(loc, kc, rng), random_masters(lab2, kc, rng))
            lab3 = ward_clusters(loc, kc)
            schemes["benchmark3"] = (lab3, medoid_masters(loc, lab3, int(lab3.max()) + 1))
            for name, (lb, ms) in schemes.items():
                sl = np.setdiff1d(np.arange(k), ms)
                to, cf, ns = _sum_crb(nodes, sl, ms[lb[sl]], np.arange(sl.size), bank, cfg)
                rows.append(
                    dict(
                        K=k,
                        drop=dr,
                        scheme=name,
                        K_C=int(ms.size),
                        sum_crb_to=to,
                        sum_crb_cfo=cf,
                        sum_crb=to + cf,
                        n_singular=ns,
                    )
                )
            sl = np.arange(k)
            to, cf, ns = _sum_crb(nodes, sl, np.full(k, k), np.arange(k), bank, cfg)
            rows.append(
                dict(
                    K=k,
                    drop=dr,
                    scheme="benchmark1",
                    K_C=1,
                    sum_crb_to=to,
                    sum_crb_cfo=cf,
                    sum_crb=to + cf,
                    n_singular=ns,
                )
            )
    df = pd.DataFrame(rows)
    df.to_csv(out / "fig7_clustering.csv", index=False)
    mean = df.groupby("scheme")[["sum_crb_to", "sum_crb_cfo"]].mean()
    ok = all(
        mean.loc["proposed", q] < mean.loc[b, q]
        for q in ("sum_crb_to", "sum_crb_cfo")
        for b in ("benchmark2", "benchmark3")
    )
    ok1 = all(mean.loc["benchmark1", q] >= mean[q].max() for q in ("sum_crb_to", "sum_crb_cfo"))
    val = {
        s: [float(mean.loc[s, "sum_crb_to"]), float(mean.loc[s, "sum_crb_cfo"])] for s in mean.index
    }
    ck.add(
        "11. Fig 7: mean sum-CRB [TO, CFO]: proposed < Benchmark 2, 3",
        val,
        "proposed lowest of 1-3",
        ok,
    )
    ck.add(
        "11. Fig 7: Benchmark 1 (CPU master) worst for TO and CFO",
        val["benchmark1"],
        "largest",
        ok1,
    )
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    agg = df.groupby(["scheme", "K"])[["sum_crb_to", "sum_crb_cfo"]].mean().reset_index()
    for ax, q in zip(axs, ("sum_crb_to", "sum_crb_cfo"), strict=True):
        for s, g in agg.groupby("scheme"):
            ax.semilogy(g.K, g[q], "o-", label=s)
        ax.set_xlabel("number of APs K")
        ax.set_ylabel(q)
        ax.legend(fontsize=7)
    fig.suptitle("Fig 7: sum of CRBs, unique pilots")
    fig.tight_layout()
    fig.savefig(out / "fig7_clustering.png", dpi=120)
    plt.close(fig)


def fig8(out: Path, ck: Checks, quick: bool, rng) -> None:
    ks = [30, 35, 40, 45, 50, 55]
    budgets = [25, 28, 31, 34, 37, 40]
    drops = DROPS or (2 if quick else 100)
    rows = []
    cpu = np.array([[0.0, 0.0]])
    alg_checks = {
        "a1_dist": True,
        "a1_medoid": True,
        "a2_rules": True,
        "a2_obj": True,
        "a2_overhead": True,
    }
    for k, ls in zip(ks, budgets, strict=True):
        cfg = SyncPlanConfig(
            overhead_budget_slots=ls, swap_iterations=200 if quick else 1000, selection="crb"
        )
        dmax = max_cluster_distance(cfg)
        noise = cfg.n_samples * cfg.noise_power_w
        for dr in range(drops):
            loc = rng.uniform(0, 150, (k, 2))
            nodes = np.vstack([loc, cpu])
            bank = ChannelBank.draw(k + 1, cfg, max(ls, k + 1), rng)
            res = {}
            best = alg3_allocation(loc, cfg, rng, bank=bank, dis_max=dmax)
            if best is not None:
                sl = best["slaves"]
                res["proposed"] = (
                    best["masters"],
                    best["labels"],
                    sl,
                    best["pilot"],
                    2 * best["kc"] + best["tau"],
                )
                # Alg 1/2 checks on the chosen allocation
                lab, mas = best["labels"], best["masters"]
                if cluster_distances(loc, lab, mas).max() > dmax:
                    alg_checks["a1_dist"] = False
                if not np.array_equal(medoid_masters(loc, lab, mas.size), mas):
                    alg_checks["a1_medoid"] = False
                clu = lab[sl]
                for c in np.unique(clu):
                    if len(set(best["pilot"][clu == c])) != np.sum(clu == c):
                        alg_checks["a2_rules"] = False
                if (
                    best["tau"] > ls - 2 * best["kc"]
                    or np.bincount(best["pilot"]).max() > math.ceil(sl.size / best["tau"]) + 1
                ):
                    alg_checks["a2_rules"] = False
                # Alg 2 from its DSatur start on the same clusters
                pmat = received_power_matrix(loc, sl, mas[clu], cfg)
                a2 = alg2_pilot_sharing(clu, pmat, noise, ls - 2 * best["kc"], cfg, rng)
                if a2 is not None:
                    if a2[1] < a2[4] - 1e-9:
                        alg_checks["a2_obj"] = False
                    if a2[2] < a2[3].max() + 1:
                        alg_checks["a2_overhead"] = False
            # Scheme 1: all APs -> CPU with orthogonal pilots
            res["scheme1"] = (
                np.array([k]),
                np.zeros(k, np.int64),
                np.arange(k),
                np.arange(k),
                k + 2,
            )
            kc, lab, mas = alg1_clusters(loc, dmax, rng)
            # Scheme 3: Alg 1 + DSatur
            sl = np.setdiff1d(np.arange(k), mas)
            tau = int(np.bincount(lab[sl]).max()) if sl.size else 0
            p3 = dsatur_capacity(lab[sl], tau, math.ceil(sl.size / tau)) if sl.size else sl
            res["scheme3"] = (mas, lab, sl, p3, 2 * kc + tau)
            # Scheme 2: K-means, random masters, DSatur
            lab2 = kmeans(loc, kc, rng)
            mas2 = random_masters(lab2, kc, rng)
            sl2 = np.setdiff1d(np.arange(k), mas2)
            tau2 = int(np.bincount(lab2[sl2]).max())
            res["scheme2"] = (
                mas2,
                lab2,
                sl2,
                dsatur_capacity(lab2[sl2], tau2, math.ceil(sl2.size / tau2)),
                2 * kc + tau2,
            )
            # Scheme 4: Ward clusters, medoid masters, improved-DSatur proxy + improving swaps
            lab4 = ward_clusters(loc, kc)
            kc4 = int(lab4.max()) + 1
            mas4 = medoid_masters(loc, lab4, kc4)
            sl4 = np.setdiff1d(np.arange(k), mas4)
            tau4 = int(np.bincount(lab4[sl4]).max())
            pm4 = received_power_matrix(loc, sl4, mas4[lab4[sl4]], cfg)
            p4 = dsatur_min_contamination(lab4[sl4], pm4, tau4, math.ceil(sl4.size / tau4))
            p4 = improving_swaps(p4, lab4[sl4], pm4, noise, tau4, cfg)
            res["scheme4"] = (mas4, lab4, sl4, p4, 2 * kc4 + tau4)
            print(f"  fig8: K={k} drop {dr + 1}/{drops}", flush=True)
            for name, (ms, lb, sl_, pil, ov) in res.items():
                if name == "scheme1":
                    master_nodes = np.full(k, k)
                else:
                    master_nodes = ms[lb[sl_]]
                to, cf, ns = _sum_crb(nodes, sl_, master_nodes, pil, bank, cfg)
                pm = received_power_matrix(nodes, sl_, master_nodes, cfg)
                sn = sinr_db(pm, pil, noise)
                rows.append(
                    dict(
                        K=k,
                        L_S=ls,
                        drop=dr,
                        scheme=name,
                        overhead=ov,
                        sum_crb_to=to,
                        sum_crb_cfo=cf,
                        sum_crb=to + cf,
                        feasible_fraction=float(np.mean(sn >= cfg.sinr_req_db)),
                        n_singular=ns,
                    )
                )
    df = pd.DataFrame(rows)
    df.to_csv(out / "fig8_pilot_sharing.csv", index=False)
    ck.add(
        "9. Alg 1: max master-slave distance <= dis_max and masters are medoids (all drops)",
        [alg_checks["a1_dist"], alg_checks["a1_medoid"]],
        "[true, true]",
        alg_checks["a1_dist"] and alg_checks["a1_medoid"],
    )
    ck.add(
        "10. Alg 2: rule 52, capacity N_max (soft, +1), tau <= L_S - 2K_C (all drops)",
        alg_checks["a2_rules"],
        "true",
        alg_checks["a2_rules"],
    )
    ck.add(
        "10. Alg 2: Obj(best) >= Obj(DSatur start) and overhead >= DSatur overhead",
        [alg_checks["a2_obj"], alg_checks["a2_overhead"]],
        "[true, true]",
        alg_checks["a2_obj"] and alg_checks["a2_overhead"],
    )
    mean = df.groupby("scheme")[["sum_crb", "overhead", "feasible_fraction"]].mean()
    val = {s: float(mean.loc[s, "sum_crb"]) for s in mean.index}
    ok = all(val["proposed"] < val[s] for s in ("scheme2", "scheme3", "scheme4"))
    ck.add("12. Fig 8: mean sum-CRB proposed < Schemes 2, 3, 4", val, "proposed lowest", ok)
    f1 = float(mean.loc["scheme1", "feasible_fraction"])
    ck.add(
        "12. Fig 8: Scheme 1 fraction of slaves >= SINR_min", f1, "< 1 (some slaves fail)", f1 < 1
    )
    ov = {s: float(mean.loc[s, "overhead"]) for s in mean.index}
    within = bool(np.all(df[df.scheme == "proposed"].overhead <= df[df.scheme == "proposed"].L_S))
    ok_ov = ov["scheme3"] <= ov["proposed"] and ov["scheme4"] <= ov["proposed"] and within
    ck.add(
        "12. Fig 8: overhead Scheme 3 <= proposed, Scheme 4 <= proposed <= L_S",
        ov,
        "ordering",
        ok_ov,
    )
    ck.add(
        "12. Fig 8 (soft): Scheme 3 overhead lowest among 2-4 and proposed",
        ov["scheme3"],
        "<= min(others) (soft, reported)",
        True,
    )
    ff = [
        float(mean.loc["proposed", "feasible_fraction"]),
        float(mean.loc["scheme3", "feasible_fraction"]),
    ]
    ck.add(
        "12. Fig 8: feasible fraction proposed >= Scheme 3",
        ff,
        "proposed >= scheme3",
        ff[0] >= ff[1],
    )
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    agg = df.groupby(["scheme", "K"])[["sum_crb", "overhead"]].mean().reset_index()
    for s, g in agg.groupby("scheme"):
        axs[0].semilogy(g.K, g.sum_crb, "o-", label=s)
        axs[1].plot(g.K, g.overhead, "o-", label=s)
    axs[1].plot(ks, budgets, "k--", label="L_S")
    axs[0].set_ylabel("mean sum CRB (TO + CFO)")
    axs[1].set_ylabel("overhead 2 K_C + tau (slots)")
    for ax in axs:
        ax.set_xlabel("number of APs K")
        ax.legend(fontsize=7)
    fig.suptitle("Fig 8: pilot sharing")
    fig.tight_layout()
    fig.savefig(out / "fig8_pilot_sharing.png", dpi=120)
    plt.close(fig)


def other_checks(ck: Checks, rng) -> None:
    n, snr = 64, 100.0
    s = bpsk_pilots(1, n, rng)[0]
    r = crb_to_cfo(s, 1.0001, [0.0], [1.0 + 0j], 1 / snr, n + 10)
    ref = 6 / ((2 * np.pi) ** 2 * snr * n * (n**2 - 1))
    rel = abs(float(r.cfo_norm2) / ref - 1)
    ck.add(
        "4. CRB_CFO single tap vs 6/((2pi)^2 SNR N (N^2-1)) (N=64, 20 dB; rel err)",
        rel,
        "< 0.01",
        rel < 0.01,
    )
    s256 = bpsk_pilots(1, 256, rng)[0]
    r6 = crb_to_cfo(s256, 1.1, FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS + 0j, 1.0, 265)
    ok6 = float(r6.cond) > 1e12 and np.isinf(r6.to_chips2) and np.isinf(r6.cfo_norm2)
    ck.add(
        "6. Singular FIM (Fig 6 profile, theta1 = 1.1): cond, CRB reported",
        [float(r6.cond), str(float(r6.to_chips2))],
        "cond > 1e12 and inf",
        ok6,
    )
    cfg = SyncPlanConfig()
    d = max_cluster_distance(cfg, n_samples=282)
    d1 = max_cluster_distance(SyncPlanConfig(sinr_req_db=14.0), n_samples=282)
    ok8 = abs(d - 94) <= 1 and abs(d1 / d - 10 ** (1 / 35)) < 1e-9
    ck.add(
        "8. dis_max (m) and growth per dB of margin",
        [float(d), float(d1 / d)],
        "94 +- 1 m, 10^(1/35) = 1.0680",
        ok8,
    )
    m = 75
    xi = 1e-3 + contamination_diag(s, [0.7, 2.1], 3, [0.01, 0.02], m)
    a = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, xi, m, cfo_norm=0.0)
    b = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, xi, m, cfo_norm=0.37)
    c = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6 * np.sqrt(5e-10), xi * 5e-10, m)
    dev = max(abs(float(x.to_chips2) / float(a.to_chips2) - 1) for x in (b, c))
    dev = max(dev, max(abs(float(x.cfo_norm2) / float(a.cfo_norm2) - 1) for x in (b, c)))
    dd = max(
        float(
            np.abs(
                np.real(np.diag(contamination_cov_full(s, 0.7, 3, f, 0.01, m)))
                - contamination_diag(s, [0.7], 3, [0.01], m)
            ).max()
        )
        for f in (0.01, 0.5, 3.0)
    )
    ck.add(
        "13. Invariances: CRB vs true CFO and common power scaling (rel dev); diag D vs fmax (abs)",
        [dev, dd],
        "< 1e-6, < 1e-12",
        dev < 1e-6 and dd < 1e-12,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced trial counts (CI)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument(
        "--drops",
        type=int,
        default=0,
        help="network drops per K in Figs 7-8 (default 20/2 quick, 100 full)",
    )
    args = ap.parse_args(argv)
    global DROPS
    DROPS = args.drops
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    ss = np.random.SeedSequence(args.seed)
    g = [np.random.default_rng(s) for s in ss.spawn(6)]
    ck = Checks()
    t0 = time.time()
    check_a_matrix(ck)
    fig4(out, ck, args.quick, g[0])
    fig5(out, ck, args.quick, g[1])
    other_checks(ck, g[2])
    fig6(out, ck, args.quick, g[3])
    fig7(out, ck, args.quick, g[4])
    fig8(out, ck, args.quick, g[5])
    (out / "checks.json").write_text(json.dumps(ck.items, indent=2, default=str))
    n_fail = sum(not c["pass"] for c in ck.items)
    print(f"{len(ck.items)} checks, {n_fail} failed, {time.time() - t0:.1f} s")
    return 1 if n_fail else 0


if __name__ == "__main__":
    raise SystemExit(main())
