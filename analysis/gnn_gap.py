# ruff: noqa: E402
"""Where the DTS-AGNN / Dsatur-tabu+WMMSE gap of Table II comes from (issue 11), and how much
room there is at all.

Usage::

    python analysis/gnn_gap.py --out DIR [--n 16 4] [--drops 100] [--subframes 10]
                               [--starts 4] [--saa-drops 20] [--saa-subframes 3] [--saa-samples 64]
                               [--seed 4004] [--m 7] [--k 42] [--dts FILE]

On the Table II test drops of ``analysis/reproduce_gnn.py`` (same LSF stream of ``--seed``, same
common random numbers of ``seed + 1`` as :func:`netsim.learn.evaluate.evaluate_frames`, so rows
(a) and (d) are Table II's baseline and DTS-AGNN numbers on the same drops), per N:

pilots (frame start) x power (every subframe):

* (a) ``base + wmmse``    DSatur + tabu (spec 4.2, every candidate exact) + converged WMMSE
  (:data:`netsim.learn.evaluate.BASELINE_WMMSE`): the baseline;
* (b) ``gnn + wmmse``     the DTS Pilot-GNN's pilots (Table II's per-N file) + the same WMMSE;
* (b') ``gnnref + wmmse`` the same pilots after the opt-in J~ refinement (reproduce_gnn's REFINE);
* (c) ``base + gnn``      baseline pilots + the DTS Power-GNN;
* (d) ``gnn + gnn``       DTS-AGNN;
* (e) power on the baseline's (and the GNN's) pilots from more than one WMMSE start:
  ``ms_rsur`` per subframe the start (equal power, the Power-GNN's output, ``--starts`` random
  feasible points with some users switched off) whose WMMSE point has the largest surrogate
  Rsur (an honest multi-start baseline: it uses only the estimates); ``ms_true`` the start with
  the largest TRUE sum-SE (a genie choice: what better local optima of WMMSE could give at most);
* (f) ``saa``  the Bayes-optimal power given the estimates, which is what the Power-GNN is
  trained for: maximise E[sum_k log2(1 + SINR_k) | hhat] over the per-AP budgets. Given the
  MMSE estimates the true channel is h = hhat + e, e ~ CN(0, c I) independent of hhat
  (associated pairs; Gaussian MMSE, spec 3.5), and h ~ CN(0, beta I) where the AP has no
  estimate, so the expectation is sampled (``--saa-samples`` posterior draws) and maximised by
  the same monotone spectral projected gradient as WMMSE's refinement
  (:func:`netsim.comm.spg.spg_refine`) from the WMMSE and the Power-GNN points; the result is
  scored on the true channel, which the draws do not see (an unbiased score). WMMSE maximises
  the surrogate Rsur instead (error variance counted as noise), so (f) - (a) is the room any
  estimate-based power policy has over WMMSE on fixed pilots. ``genie`` runs the solver on the
  true channel itself (h known): a loose bound for every policy. Both on the first
  ``--saa-drops`` drops x ``--saa-subframes`` subframes, compared with (a) on the same subframes.

Writes ``gap_rows.csv`` (one row per N, drop, subframe, pilots, power: true net-SE, Rsur, tau_p)
and ``gap_table.csv`` / prints: mean net-SE, ratio to (a) on the same subframes, a 95 %
interval of the paired per-drop ratio's mean, mean tau_p.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from netsim.comm.net_se import equivalent_channel_true, net_sum_se, sinr_true
from netsim.comm.pilot_assignment import TabuConfig, dsatur_tabu
from netsim.comm.power.gnn import (
    FAST_DTYPE,
    default_weights_path,
    gnn_pilot_assignment,
    gnn_power,
    load_gnn_weights,
)
from netsim.comm.power.gnn_refine import PilotRefineConfig, refine_decision
from netsim.comm.spg import spg_refine
from netsim.comm.subframe import prepare_subframe
from netsim.comm.surrogate import surrogate_rate
from netsim.comm.wmmse import wmmse_power
from netsim.learn.data import DropSpec, draw_drops, draw_ssf
from netsim.learn.evaluate import BASELINE_WMMSE
from netsim.phy.umi import channel_from_fading
from netsim.rng import RandomStreams

#: reproduce_gnn's opt-in J~ refinement of the GNN pilots (the "+ J~ refinement" rows)
REFINE = PilotRefineConfig(max_moves=30, new_pilots=True, min_n=4, new_pilots_min_n=16)
#: WMMSE from a given start with the cold baseline's iterations (5 sweeps, then the refinement
#: with the 10-iteration window), not the shortened warm-start settings of the engine
MS_WMMSE = replace(BASELINE_WMMSE, init="given", sweeps_when_warm=BASELINE_WMMSE.sweeps_before_refine,
                   window_when_warm=BASELINE_WMMSE.window)
#: stopping rule of the SAA / genie solver (tighter than WMMSE's 1e-5 window: a bound)
SAA_WINDOW, SAA_TOL, SAA_MAX_ITER = 10, 1e-6, 3000
PILOTS = ("base", "gnn", "gnnref")
OFF_SHARES = (0.0, 0.15, 0.3)  # share of users switched off in the random WMMSE starts, cycled
_LN2 = math.log(2.0)


class SampleRateModel:
    """Mean TRUE sum rate over S channel samples, in the model interface of
    :func:`netsim.comm.spg.spg_refine` (``evaluate_full``, ``gradient``).

    g : [S, M, K(j), K(i)] complex equivalent channels G_s[m, j, i] = h_s[m, i]^H w[m, j];
    noise_w : sigma^2 [W]. With amplitudes v [M, K] (sqrt(W)):
    A_s[j, i] = sum_m g_s[m, j, i] v[m, j], T_si = sum_j |A_s[j, i]|^2 + sigma^2,
    I_si = T_si - |A_s[i, i]|^2 and f(v) = (1/S) sum_s sum_i log2(T_si / I_si) [bit/s/Hz]
    (eq. (3)-(4) without the pilot overhead). With S = 1 and a zero variance part this is
    :class:`netsim.comm.surrogate.SurrogateModel`.
    """

    def __init__(self, g: np.ndarray, noise_w: float) -> None:
        self.g_t = np.ascontiguousarray(g.transpose(0, 2, 1, 3))  # [S, K(j), M, K(i)]
        self.g_diag = np.ascontiguousarray(np.einsum("smjj->smj", g))  # [S, M, K]
        self.noise_w = float(noise_w)
        self.n = int(g.shape[0])

    def evaluate_full(self, v: np.ndarray):
        """(f, A [S, K, K], T [S, K], I [S, K]) at v [M, K]."""
        amp = np.matmul(v.T[None, :, None, :], self.g_t)[:, :, 0, :]  # [S, K(j), K(i)]
        p = amp.real**2 + amp.imag**2
        tt = p.sum(axis=1) + self.noise_w  # [S, K]
        inter = tt - np.diagonal(p, axis1=1, axis2=2)  # [S, K]
        return float(np.log2(tt / inter).sum() / self.n), amp, tt, inter

    def gradient(self, v: np.ndarray, amp: np.ndarray, tt: np.ndarray, inter: np.ndarray) -> np.ndarray:
        """df/dv [M, K] at v (with A, T, I of :meth:`evaluate_full` at the same v)."""
        c = 1.0 / tt - 1.0 / inter  # [S, K(i)]
        wgt = np.conj(amp) * c[:, None, :]  # [S, K(j), K(i)]
        coh = np.matmul(self.g_t, wgt[..., None])[..., 0].real.sum(axis=0)  # [K(j), M]
        own = (self.g_diag * (np.conj(np.diagonal(amp, axis1=1, axis2=2)) / inter)[:, None, :]).real
        return (2.0 / _LN2 / self.n) * (coh.T + own.sum(axis=0))


def posterior_channels(hhat: np.ndarray, err_var: np.ndarray, assoc: np.ndarray, n_samples: int,
                       rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` draws of h | hhat [S, M, K, N]: hhat + CN(0, err_var I) on associated pairs
    (MMSE error, independent of hhat), CN(0, beta I) elsewhere (err_var = beta there, hhat = 0).

    hhat : [M, K, N] complex; err_var : [M, K] (W-normalised gains); assoc : [M, K] bool.
    """
    m, k, n = hhat.shape
    e = rng.standard_normal((n_samples, m, k, n, 2)) @ np.array([1.0, 1j]) / math.sqrt(2.0)  # CN(0, 1)
    return np.where(assoc[None, :, :, None], hhat[None], 0.0) + np.sqrt(err_var)[None, :, :, None] * e


def random_start(assoc: np.ndarray, p_max: np.ndarray, rng: np.random.Generator, off_share: float) -> np.ndarray:
    """Random feasible amplitudes [M, K] (sqrt(W)): U(0, 1) power shares on the associated pairs,
    ``off_share`` of the users switched off at every AP (WMMSE keeps a silent user silent, so
    this explores other on/off patterns), each AP at a random 50-100 % of its budget."""
    m, k = assoc.shape
    on = rng.random(k) >= off_share  # [K]
    u = rng.random((m, k)) * (assoc & on[None, :])  # [M, K]
    tot = u.sum(axis=1, keepdims=True)
    frac = 0.5 + 0.5 * rng.random((m, 1))
    p = np.divide(u, tot, out=np.zeros_like(u), where=tot > 0) * p_max[:, None] * frac
    return np.sqrt(p)


def dts_weights(n_ant: int, path: str | None = None):
    """Table II's DTS file at N = n_ant (``dts_gnn_n{N}.npz`` where shipped, else ``dts_gnn.npz``)."""
    if path:
        return load_gnn_weights(path)
    f = default_weights_path("dts").parent / f"dts_gnn_n{n_ant}.npz"
    return load_gnn_weights(f if f.is_file() else default_weights_path("dts"))


def _pilots(spec: DropSpec, beta, assoc, d: int, streams: RandomStreams, dts, tabu: TabuConfig) -> dict:
    """{name: (colour [K], tau_p)} of the pilot policies, from the streams evaluate_frames uses."""
    cfg, s2 = spec.channel, spec.noise_w
    pa = dsatur_tabu(beta, assoc, spec.n_ant, p_pilot_w=cfg.p_pilot_w, p_max_w=cfg.p_max_w, noise_w=s2,
                     tau_c=spec.tau_c, config=tabu, rng=streams.generator("tabu", d))
    dec = gnn_pilot_assignment(dts, beta, assoc, cfg.p_pilot_w, s2, streams.generator("z", d), dtype=FAST_DTYPE)
    ref = refine_decision(dec, beta, assoc, spec.n_ant, p_pilot_w=cfg.p_pilot_w, p_max_w=cfg.p_max_w,
                          noise_w=s2, tau_c=spec.tau_c, config=REFINE)
    out = {"base": (pa.colour, int(pa.tau_p)), "gnn": (dec.colour, int(dec.tau_p))}
    if ref is not dec:  # below REFINE.min_n the refinement is off: no row of its own
        out["gnnref"] = (ref.colour, int(ref.tau_p))
    return out


def _bayes_powers(csi, assoc, p_max, noise_w, starts: dict, h, n_samples, rng) -> dict:
    """(f) the SAA Bayes power (best SAA objective over the given starts) and the genie power."""
    model = SampleRateModel(equivalent_channel_true(posterior_channels(csi.hhat, csi.err_var, assoc,
                                                                       n_samples, rng), csi.w), noise_w)
    best = None
    for p in starts.values():
        r = spg_refine(model, np.sqrt(p), assoc, p_max, window=SAA_WINDOW, window_tol=SAA_TOL,
                       max_iter=SAA_MAX_ITER)
        if best is None or r.objective[-1] > best.objective[-1]:
            best = r
    genie = SampleRateModel(equivalent_channel_true(h, csi.w)[None], noise_w)
    g = spg_refine(genie, np.sqrt(starts["wmmse"]), assoc, p_max, window=SAA_WINDOW, window_tol=SAA_TOL,
                   max_iter=SAA_MAX_ITER)
    return {"saa": best.v**2, "genie": g.v**2}


def gap_rows(spec: DropSpec, n_drops: int, *, seed: int = 4004, dts=None, n_sub: int = 10, n_starts: int = 4,
             saa_drops: int = 20, saa_sub: int = 3, saa_samples: int = 64, tabu: TabuConfig | None = None,
             ms_pilots=("base", "gnn"), log=None) -> pd.DataFrame:
    """One row per (drop, subframe, pilots, power) on the first ``n_drops`` test drops (module doc)."""
    cfg, s2 = spec.channel, spec.noise_w
    dts = dts if dts is not None else dts_weights(spec.n_ant)
    tabu = tabu or TabuConfig(n_exact=None)
    p_max = np.full(spec.n_ap, cfg.p_max_w)
    drops = draw_drops(spec, n_drops, RandomStreams(seed).generator(
        "test-lsf", spec.n_ap, spec.n_ue, 0 if cfg.scenario == "umi" else 1))
    streams = RandomStreams(seed + 1)
    rows = []
    for d in range(n_drops):
        beta, assoc = drops.beta[d], drops.assoc[d]
        pil = _pilots(spec, beta, assoc, d, streams, dts, tabu)
        for pname, (colour, tau_p) in pil.items():
            rng = streams.generator("ssf", d)  # as evaluate_frames: the same fading for every method
            subs = []
            for _ in range(n_sub):
                h = channel_from_fading(beta, draw_ssf((spec.n_ap, spec.n_ue, spec.n_ant), rng))
                subs.append((h, prepare_subframe(h, beta, assoc, colour, cfg.p_pilot_w, s2, rng)))
            p_gnn = gnn_power(dts, np.stack([c.ghat for _, c in subs]), assoc, s2, cfg.p_max_w,
                              err_var=np.stack([c.err_var for _, c in subs]), dtype=FAST_DTYPE)  # [T, M, K]
            srng = streams.generator("gap-starts", d, PILOTS.index(pname))
            brng = streams.generator("gap-saa", d, PILOTS.index(pname))
            for t, (h, csi) in enumerate(subs):
                pw = {"wmmse": wmmse_power(csi.ghat, csi.err_var, assoc, s2, cfg.p_max_w, BASELINE_WMMSE).power_w,
                      "gnn": p_gnn[t]}
                starts = {}
                if pname in ms_pilots:
                    starts = {"wmmse": pw["wmmse"], "gnnwarm": wmmse_power(
                        csi.ghat, csi.err_var, assoc, s2, cfg.p_max_w, MS_WMMSE, v0=np.sqrt(p_gnn[t])).power_w}
                    for r in range(n_starts):
                        v0 = random_start(assoc, p_max, srng, OFF_SHARES[r % len(OFF_SHARES)])
                        starts[f"rnd{r}"] = wmmse_power(csi.ghat, csi.err_var, assoc, s2, cfg.p_max_w, MS_WMMSE,
                                                        v0=v0).power_w
                    pw.update({k: v for k, v in starts.items() if k != "wmmse"})
                    if d < saa_drops and t < saa_sub:
                        pw.update(_bayes_powers(csi, assoc, p_max, s2, {"wmmse": pw["wmmse"], "gnn": p_gnn[t]},
                                                h, saa_samples, brng))
                val = {k: (float(net_sum_se(sinr_true(h, csi.w, p, s2), tau_p, spec.tau_c)),
                           float(surrogate_rate(csi.ghat, csi.err_var, assoc, p, s2))) for k, p in pw.items()}
                if starts:
                    val["ms_rsur"] = val[max(starts, key=lambda k: val[k][1])]
                    val["ms_true"] = val[max(starts, key=lambda k: val[k][0])]
                for k, (se, rs) in val.items():
                    rows.append({"N": spec.n_ant, "drop": d, "sub": t, "pilots": pname, "power": k,
                                 "tau_p": tau_p, "net_se": se, "rsur": rs})
        if log:
            log(f"N = {spec.n_ant}: drop {d + 1}/{n_drops}, CPU {time.process_time():.0f} s")
    return pd.DataFrame(rows)


#: rows of the printed table: (label, pilots, power)
TABLE = (("(a) baseline: DSatur-tabu + WMMSE", "base", "wmmse"),
         ("(b) GNN pilots + WMMSE", "gnn", "wmmse"),
         ("(b') GNN pilots + J~ refinement + WMMSE", "gnnref", "wmmse"),
         ("(c) baseline pilots + DTS Power-GNN", "base", "gnn"),
         ("(d) DTS-AGNN", "gnn", "gnn"),
         ("(d') DTS-AGNN + J~ refinement", "gnnref", "gnn"),
         ("(e) baseline pilots + multi-start WMMSE (best Rsur)", "base", "ms_rsur"),
         ("(e) baseline pilots + multi-start WMMSE (best true SE, genie choice)", "base", "ms_true"),
         ("(e) baseline pilots + WMMSE from the GNN's powers", "base", "gnnwarm"),
         ("(e) GNN pilots + multi-start WMMSE (best Rsur)", "gnn", "ms_rsur"),
         ("(f) baseline pilots + Bayes power (SAA)", "base", "saa"),
         ("(f) baseline pilots + genie power (true G known)", "base", "genie"),
         ("(f) GNN pilots + Bayes power (SAA)", "gnn", "saa"))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per N and table row: net-SE, ratio to (a) on the same subframes, 95 % interval of the
    mean paired per-drop ratio, tau_p."""
    out = []
    key = ["N", "drop", "sub"]
    for n, g in rows.groupby("N"):
        base = g[(g.pilots == "base") & (g.power == "wmmse")].set_index(key).net_se
        for label, p, w in TABLE:
            r = g[(g.pilots == p) & (g.power == w)].set_index(key).net_se
            r = r.loc[r.index.intersection(base.index)]
            if r.empty:
                continue
            b = base.loc[r.index]
            per_drop = r.groupby("drop").mean() / b.groupby("drop").mean()
            half = 1.96 * per_drop.std(ddof=1) / math.sqrt(per_drop.size) if per_drop.size > 1 else float("nan")
            out.append({"N": n, "row": label, "pilots": p, "power": w, "net_se": r.mean(),
                        "ratio": r.mean() / b.mean(), "ratio_ci95": half,
                        "tau_p": g[(g.pilots == p) & (g.power == w)].set_index(key).tau_p.loc[r.index].mean(),
                        "drops": per_drop.size, "subframes": r.size})
    return pd.DataFrame(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, nargs="+", default=[16, 4], help="antennas per AP (Table II: 2 4 8 16)")
    ap.add_argument("--drops", type=int, default=100)
    ap.add_argument("--subframes", type=int, default=10)
    ap.add_argument("--starts", type=int, default=4, help="random WMMSE starts per subframe")
    ap.add_argument("--saa-drops", type=int, default=20)
    ap.add_argument("--saa-subframes", type=int, default=3)
    ap.add_argument("--saa-samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=4004, help="test seed (reproduce_gnn's default)")
    ap.add_argument("--m", type=int, default=7)
    ap.add_argument("--k", type=int, default=42)
    ap.add_argument("--dts", help="DTS weights (default: Table II's per-N shipped file)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    c0 = time.process_time()
    frames = []
    for n in a.n:
        spec = DropSpec.paper(a.m, a.k, n)
        frames.append(gap_rows(spec, a.drops, seed=a.seed, dts=dts_weights(n, a.dts), n_sub=a.subframes,
                               n_starts=a.starts, saa_drops=a.saa_drops, saa_sub=a.saa_subframes,
                               saa_samples=a.saa_samples, log=None if a.quiet else print))
        rows = pd.concat(frames, ignore_index=True)
        rows.to_csv(a.out / "gap_rows.csv", index=False)
    table = summarise(rows)
    table.to_csv(a.out / "gap_table.csv", index=False)
    print(table.drop(columns=["pilots", "power"]).to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"CPU {time.process_time() - c0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
