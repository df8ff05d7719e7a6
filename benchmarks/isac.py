"""Benchmark of the seed-003 kernels: MUSIC, localisation accuracy, covariance design, Bi-RBO.

Prints a table; never passes/fails on time. ``--quick`` uses fewer repetitions and skips the
plain full-dimension Bi-RBO at N = 11 (about a minute per solve with cvxpy + Clarabel).
``--targets`` runs only issue 9's sensing cases and prints its target table (target, measured,
met); ``--strangers`` adds the stranger families of ``tests/integration/sensing_family.py``.
Peak memory is the tracemalloc peak of Python-side allocations (numpy arrays and cvxpy's
canonicalisation; the solver's native allocations are included for SCS/Clarabel buffers
returned to Python only), plus the process max RSS delta from ``resource``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from netsim.comm.location_csi import channel_error_radius, location_aware_channels
from netsim.comm.robust import bi_rbo, reduce_problem
from netsim.sensing.config import IsacConfig, dbm_to_w
from netsim.sensing.covariance import design_sensing_covariance
from netsim.sensing.echo import sample_echo_covariance
from netsim.sensing.fim import FimModel, position_crlb
from netsim.sensing.music import MusicGrid, match_estimates, music_localize
from netsim.sim.sensing import ACQUIRE_FRAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from sensing_family import STRANGER_FAMILIES, family_scenario, stranger_scenario, unlogged_misses  # noqa: E402

warnings.filterwarnings("ignore")


def _measure(fn):  # noqa: ANN001, ANN202
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out, dt, peak / 2**20, (rss1 - rss0) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-engine", action="store_true", help="skip the engine real-time factors")
    ap.add_argument("--sensing-timing", action="store_true",
                    help="only the sensing CPU table (campus music/crlb, users 3/6/12)")
    ap.add_argument("--frames", type=int, default=None, help="frames of the --sensing-timing runs")
    ap.add_argument("--users", default="3,6,12", help="user counts of the --sensing-timing runs (e.g. 3,6,12,24)")
    ap.add_argument("--targets", action="store_true",
                    help="only issue 9's sensing cases and their target table (about 10 CPU-min; --quick ~3)")
    ap.add_argument("--family-seeds", type=int, default=None,
                    help="seeds of the random family (and of each stranger family); default 20 (--quick 4)")
    ap.add_argument("--strangers", action="store_true",
                    help="with --targets or the full run: also the stranger families (corridor, few antennas, "
                         "near-AP, close pair; 8 frames per seed)")
    args = ap.parse_args()
    if args.targets:
        bench_sensing(args.quick, args.family_seeds, args.strangers)
        return
    if args.sensing_timing:
        bench_sensing_timing(args.frames or (12 if args.quick else 40), tuple(int(u) for u in args.users.split(",")))
        return
    cfg = IsacConfig()
    g = cfg.geometry()
    p = cfg.user_positions
    print("== sensing (3 APs x 21 antennas, 4 users) ==")
    d, dt, mem, _ = _measure(lambda: design_sensing_covariance(g, p, cfg.sensing_power_w))
    print(f"covariance design (L-BFGS, {d.n_iter} it): {dt:8.2f} s   peak {mem:7.1f} MiB   CRB gain vs iso {d.objective_iso / d.objective:5.2f}x")
    r = d.r * dbm_to_w(50.0) / cfg.sensing_power_w
    grid = MusicGrid.from_config(cfg)
    rng = np.random.default_rng(0)
    n_rep = 2 if args.quick else 5
    t_full, t_track, errs = [], [], []
    for _ in range(n_rep):
        c = sample_echo_covariance(g, p, r, 1000, cfg.noise_w, rng)
        t0 = time.perf_counter()
        res = music_localize(c, g, 4, cfg.noise_w, grid)
        t_full.append(time.perf_counter() - t0)
        perm, err = match_estimates(res.positions_m, p)
        t0 = time.perf_counter()
        tr = music_localize(c, g, 4, cfg.noise_w, grid, predicted_pos=p + 0.1, reference_peaks=res.peak_values[perm])
        t_track.append(time.perf_counter() - t0)
        errs.append(np.linalg.norm(tr.positions_m - p, axis=1))
    crlb = position_crlb(g, p, r, 1000, cfg.noise_w)
    rmse = np.sqrt(np.mean(np.square(errs), axis=0))
    print(f"MUSIC full grid 401x401 (RARE): {1e3 * np.median(t_full):8.1f} ms/frame")
    print(f"MUSIC tracking (+-0.5 m window): {1e3 * np.median(t_track):8.1f} ms/frame")
    print("localisation RMSE / sqrt(CRLB) per user (50 dBm, L=1000, alpha~CN(0,1)): "
          + " ".join(f"{x:6.2f}" for x in rmse / np.sqrt(crlb)) + f"   (grid refine step {grid.refine_step_m * 1e3:.0f} mm)")
    t0 = time.perf_counter()
    for _ in range(3):
        sample_echo_covariance(g, p, r, 1000, cfg.noise_w, rng, fidelity="wishart")
    tw = (time.perf_counter() - t0) / 3
    t0 = time.perf_counter()
    for _ in range(3):
        sample_echo_covariance(g, p, r, 1000, cfg.noise_w, rng, fidelity="snapshots")
    ts = (time.perf_counter() - t0) / 3
    print(f"echo covariance L=1000: wishart {1e3 * tw:7.1f} ms   snapshots {1e3 * ts:7.1f} ms")
    fm = FimModel.build(g, p, 1.0)
    c_unit = fm.per_snapshot_crlb(d.r / cfg.sensing_power_w, cfg.noise_w) / cfg.sensing_power_w
    print()
    print("== Bi-RBO (rho=0.5, zeta=0.05, 4 users, normalised data) ==")
    print(f"{'N':>3} {'MN':>4} {'formulation':>26} {'t':>7} {'solves':>6} {'s/Bi-RBO':>9} {'s/solve':>8} {'peak MiB':>9} {'dRSS MiB':>9}")
    for n in (5, 11, 21):
        gn = cfg.geometry(n_antennas=n)
        h = location_aware_channels(gn, p)
        eps = channel_error_radius(h, 3, c_unit / cfg.n_snapshots(0.5), cfg.delta_per_m)
        for label, reduce, dpp in (("reduced, ZF coords, DPP [ours]", True, True), ("plain cvxpy (MN), rebuilt", False, False)):
            if not reduce and (n == 21 or (args.quick and n == 11)):
                why = "OOM (>23 GB, spec 7.2)" if n == 21 else "skipped in --quick"
                print(f"{n:>3} {3 * n:>4} {label:>26}   skipped: {why}")
                continue
            red = reduce_problem(h, eps, cfg.comm_power_w, cfg.noise_w, 3, reduce=reduce)
            res, dt, mem, drss = _measure(lambda red=red, dpp=dpp: bi_rbo(red, 0.5, 0.05, dpp=dpp))
            print(f"{n:>3} {3 * n:>4} {label:>26} {res.t:7.3f} {res.n_solves:>6} {dt:9.1f} {dt / max(res.n_solves, 1):8.2f} {mem:9.1f} {drss:9.1f}")
    if not args.no_engine:
        bench_sensing(args.quick, args.family_seeds, args.strangers)
        bench_engine(2 if args.quick else 5)


def _sense_run(path: str, overrides: list[str]) -> dict:
    """Run a scenario, timing the sensing model's CPU per frame (process_time)."""
    from netsim.scenario import load_scenario
    from netsim.sim.engine import Simulation

    sc = load_scenario(path, overrides) if isinstance(path, str) else path
    sim = Simulation(sc)
    inner, cpu = sim.sensing, []

    def timed(net, rng):  # noqa: ANN001, ANN202
        t0 = time.process_time()
        out = inner(net, rng)
        cpu.append(time.process_time() - t0)
        return out

    sim.sensing = timed
    tables = sim.run().tables
    u, ev = tables["users"], tables["events"]
    late = u[u.frame >= 1]
    steady = cpu[ACQUIRE_FRAMES:] if len(cpu) > ACQUIRE_FRAMES else cpu[-1:]
    return dict(cpu0=cpu[0], cpu1=cpu[1] if len(cpu) > 1 else np.nan,
                cpu_med=float(np.median(steady)), cpu=float(np.mean(steady)), cpu_all=float(np.mean(cpu)),
                tracked=float(late.tracked.mean()), max_err=float(late.loc_err_m.max()),
                n_late=len(late), n_tracked=int(late.tracked.sum()),
                user_tracked_min=float(u.groupby("user").tracked.mean().min()),
                lost=int((ev.kind == "sensing_lost").sum()), reacq=int((ev.kind == "sensing_reacquired").sum()),
                silent=len(unlogged_misses(u, ev)),
                ratio=u.groupby("user").crlb_ratio.median().to_numpy(), users=u)


def bench_sensing(quick: bool, family_seeds: int | None = None, strangers: bool = False) -> None:
    """Issue 9 targets: error / sqrt(CRLB), tracked fraction, CPU per frame of music vs crlb,
    the random (and stranger) families, the growth of the error without sync; then the target
    table. ``silent``: user-frames off by more than 1 m with no event naming the user."""
    n_paper, n_campus, n_fam, n_seeds = (100, 20, 10, 4) if quick else (100, 200, 10, 20)
    n_seeds = n_seeds if family_seeds is None else family_seeds
    print("\n== sensing (MUSIC acquisition/tracking + ML), CPU = process_time of the sensing model ==")
    print(f"CPU f0/f1: the two acquisition frames; CPU med/mean: frames >= {ACQUIRE_FRAMES} (tracking)")
    print(f"{'case':>34} {'frames':>6} {'CPU f0 ms':>9} {'f1 ms':>8} {'med ms':>7} {'mean ms':>7} {'tracked':>8} "
          f"{'max err m':>9}  median err/sqrt(CRLB) per user")
    cases = [("isac_paper static", "scenarios/isac_paper.yaml", ["users.mobility.model=static"], n_paper),
             ("isac_paper 0.5 m/s", "scenarios/isac_paper.yaml", [], n_paper),
             ("isac_paper crlb", "scenarios/isac_paper.yaml", ["sensing.method=crlb"], n_paper),
             ("campus music", "scenarios/campus.yaml", ["sensing.method=music", "sync.method=genie"], n_campus),
             ("campus crlb", "scenarios/campus.yaml", ["sensing.method=crlb", "sync.method=genie"], n_campus),
             ("quickstart music", "scenarios/quickstart.yaml", ["sensing.method=music", "sync.method=genie"], 40)]
    cases.append(("quickstart defaults (ml sync)", "scenarios/quickstart.yaml", [], 40))
    res = {}
    for label, path, ov, n in cases:
        r = res[label] = _sense_run(path, [f"run.frames={n}", *ov])
        print(f"{label:>34} {n:>6} {_cpu_cols(r)} {r['tracked']:8.3f} "
              f"{r['max_err']:9.3f}  " + " ".join(f"{x:.2f}" for x in r["ratio"]))
    families = [("family", family_scenario, n_fam)]
    if strangers:
        families += [(name, lambda seed, frames, name=name: stranger_scenario(name, seed, frames), 8)
                     for name in STRANGER_FAMILIES]
    fams = {}
    for name, make, frames in families:
        fam = fams[name] = []
        for seed in range(n_seeds):
            r = _sense_run(make(seed, frames), [])
            fam.append(r)
            print(f"{name + ' seed ' + str(seed):>34} {frames:>6} {_cpu_cols(r)} "
                  f"{r['tracked']:8.3f} {r['max_err']:9.3f}  " + " ".join(f"{x:.2f}" for x in r["ratio"]))
    for name, fam in fams.items():
        n_tr, n_all = sum(r["n_tracked"] for r in fam), sum(r["n_late"] for r in fam)
        print(f"{name + ': tracked user-frames':>34} {n_tr}/{n_all} = {n_tr / n_all:.4f} (after the first frame), "
              f"max error {max(r['max_err'] for r in fam):.4f} m, sensing_lost {sum(r['lost'] for r in fam)}, "
              f"sensing_reacquired {sum(r['reacq'] for r in fam)}, silent > 1 m {sum(r['silent'] for r in fam)}")
    drift = _drift_growth()
    _print_targets(res, fams, drift, n_campus)


def _drift_growth() -> dict:
    """Errors without sync against genie sync (isac_paper seed 3, 12 frames of 50 ms, 1 ppm
    oscillators: the setting of test_engine_sensing's drift test): mean error and mean sqrt(CRLB)
    per frame, and over frames 6-11."""
    out = {}
    for method in ("genie", "none"):
        r = _sense_run("scenarios/isac_paper.yaml", ["run.frames=12", "frame.period_s=0.05",
                                                    "oscillators.initial_offset_ppm=1", f"sync.method={method}"])
        u = r["users"]
        late = u[u.frame >= 6]
        out[method] = dict(per_frame=u.groupby("frame")[["loc_err_m", "crlb_m"]].mean(),
                           err_b=late.loc_err_m.mean(), crlb_b=late.crlb_m.mean(), ratio_b=late.crlb_ratio.median())
    print("\n== sync none vs genie (isac_paper, 12 frames x 50 ms, 1 ppm): mean over users, mm ==")
    print(f"{'frame':>5} {'genie err':>9} {'genie sqrt(CRLB)':>16} {'none err':>9} {'none sqrt(CRLB)':>15}")
    g, n = out["genie"]["per_frame"], out["none"]["per_frame"]
    for f in g.index:
        print(f"{f:>5} {1e3 * g.loc_err_m[f]:9.3f} {1e3 * g.crlb_m[f]:16.4f} {1e3 * n.loc_err_m[f]:9.3f} "
              f"{1e3 * n.crlb_m[f]:15.4f}")
    print(f"frames 6-11: genie err {1e3 * out['genie']['err_b']:.3f} mm, median err/sqrt(CRLB) "
          f"{out['genie']['ratio_b']:.2f}; none err {1e3 * out['none']['err_b']:.3f} mm, median "
          f"{out['none']['ratio_b']:.2f}")
    return out


def _print_targets(res: dict, fams: dict, drift: dict, n_campus: int) -> None:
    """Issue 9's target table from the runs above."""
    rows = []
    for label, speed in (("isac_paper static", "static"), ("isac_paper 0.5 m/s", "0.5 m/s")):
        worst = float(np.max(res[label]["ratio"]))
        rows.append((f"isac_paper genie 100 fr, {speed}: median err/sqrt(CRLB) <= 2 per user",
                     " / ".join(f"{x:.2f}" for x in res[label]["ratio"]), worst <= 2.0))
    c = res["campus music"]
    rows.append((f"campus genie {n_campus} fr: >= 99.5 % tracked after frame 0, none > 1 m, none silent",
                 f"{c['n_tracked']}/{c['n_late']} = {c['tracked']:.4f}, max {c['max_err']:.4f} m, silent {c['silent']}",
                 c["tracked"] >= 0.995 and c["max_err"] <= 1.0 and c["silent"] == 0))
    for name, fam in fams.items():
        n_tr, n_all = sum(r["n_tracked"] for r in fam), sum(r["n_late"] for r in fam)
        mx, silent = max(r["max_err"] for r in fam), sum(r["silent"] for r in fam)
        rows.append((f"{name} ({len(fam)} seeds): same", f"{n_tr}/{n_all} = {n_tr / n_all:.4f}, max {mx:.4f} m, "
                     f"silent {silent}", n_tr / n_all >= 0.995 and mx <= 1.0 and silent == 0))
    for label in ("quickstart music", "quickstart defaults (ml sync)"):
        q = res[label]
        rows.append((f"{label}: every user tracked in >= 99 % of frames",
                     f"worst user {q['user_tracked_min']:.3f}, {q['n_tracked']}/{q['n_late']} after frame 0, "
                     f"max {q['max_err']:.3f} m", q["user_tracked_min"] >= 0.99))
    rows.append(("campus music: <= 100 ms CPU per frame",
                 f"all frames {1e3 * c['cpu_all']:.1f}, tracking mean {1e3 * c['cpu']:.1f} / median "
                 f"{1e3 * c['cpu_med']:.1f}, frame 0 {1e3 * c['cpu0']:.0f}, frame 1 {1e3 * c['cpu1']:.0f}",
                 c["cpu_all"] <= 0.1))
    k = res["campus crlb"]
    rows.append(("campus crlb fidelity: <= 5 ms CPU per frame",
                 f"tracking mean {1e3 * k['cpu']:.2f} / median {1e3 * k['cpu_med']:.2f}, all frames "
                 f"{1e3 * k['cpu_all']:.2f}", k["cpu"] <= 0.005))
    g, n = drift["genie"], drift["none"]
    nb = n["per_frame"].crlb_m
    nb_a, nb_b = nb.loc[1:5].mean(), nb.loc[6:].mean()
    rows.append(("sync none: errors grow with the drift (isac_paper, 50 ms frames; frames 6-11 > 3x genie)",
                 f"err {1e3 * n['err_b']:.2f} vs genie {1e3 * g['err_b']:.2f} mm, sqrt(CRLB) {1e3 * n['crlb_b']:.3f} "
                 f"vs {1e3 * g['crlb_b']:.3f} mm; none's sqrt(CRLB) frames 1-5 -> 6-11 {1e3 * nb_a:.3f} -> "
                 f"{1e3 * nb_b:.3f} mm", n["err_b"] > 3 * g["err_b"] and n["crlb_b"] > 3 * g["crlb_b"]
                 and nb_b > nb_a))
    print("\n== issue 9 targets ==")
    w = max(len(r[0]) for r in rows)
    for target, measured, met in rows:
        print(f"{target:<{w}}  {'met' if met else 'NOT met':>7}  {measured}")


def _cpu_cols(r: dict) -> str:
    return f"{1e3 * r['cpu0']:9.1f} {1e3 * r['cpu1']:8.1f} {1e3 * r['cpu_med']:7.1f} {1e3 * r['cpu']:7.1f}"


def bench_sensing_timing(frames: int, user_counts: tuple[int, ...] = (3, 6, 12)) -> None:
    """Issue 9 speed targets: CPU (process_time) of the sensing model per campus frame.

    ``music`` <= 100 ms per tracking frame at 6 users / 36 APs, growing at most linearly with the
    users (the ``ms/user`` column about constant); ``crlb`` <= 5 ms. Pin BLAS to one thread
    (OMP/OPENBLAS/MKL_NUM_THREADS=1) to compare. ``user_counts``: 24 users cost about a minute of
    CPU per acquisition frame.
    """
    import os

    print(f"\n== sensing CPU per campus frame ({frames} frames; process_time, BLAS threads as set) ==")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("ms/user: mean tracking frame per user (rare re-acquisitions included); med/user: median")
    print(f"{'case':>26} {'CPU f0 ms':>9} {'f1 ms':>8} {'med ms':>7} {'mean ms':>7} {'ms/user':>7} {'med/user':>8} "
          f"{'tracked':>8}")
    for method in ("music", "crlb"):
        for users in user_counts:
            r = _sense_run("scenarios/campus.yaml", [f"run.frames={frames}", f"sensing.method={method}",
                                                     f"users.count={users}", "sync.method=genie"])
            print(f"{method + ' ' + str(users) + ' users':>26} {_cpu_cols(r)} {1e3 * r['cpu'] / users:7.1f} "
                  f"{1e3 * r['cpu_med'] / users:8.1f} {r['tracked']:8.3f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def bench_engine(frames: int) -> None:
    """Real-time factor of the engine with MUSIC sensing and each beamforming scheme.

    The seed-003 designs (main, ei, mrt) solve SDPs/SOCPs over the whole network; they run on
    isac_paper.yaml (3 x 21 antennas, every AP serves every user, as in the paper). On
    campus.yaml (36 x 16 antennas, 6 users) they run with user-centric clusters of the 3
    strongest APs per user (comm.serving_aps=3): MRT then works in one coordinate per served pair
    (18), EI is an SOCP; Main would still need six 108 x 108 SDP matrices per solve and is not
    run there.
    """
    from netsim.scenario import load_scenario
    from netsim.sim.engine import Simulation

    print(f"\n== engine with MUSIC sensing ({frames} frames) ==")
    print(f"{'scenario':>12} {'beamforming':>12} {'s/frame':>8} {'sense s/fr':>10} {'comm s/fr':>10} {'RTF':>9}")
    runs = [("isac_paper", b) for b in ("mrt_plain", "ei", "mrt", "main")]
    runs += [("campus", b) for b in ("mrt_plain", "ei", "mrt")]
    for name, bf in runs:
        extra = ["comm.serving_aps=3", "sync.method=genie"] if name == "campus" else []
        sc = load_scenario(f"scenarios/{name}.yaml", [f"run.frames={frames}", "sensing.method=music",
                                                      f"comm.beamforming={bf}", *extra])
        summary = Simulation(sc).run()
        w = summary.wall_per_phase_s
        print(f"{name:>12} {bf:>12} {summary.wall_s / frames:8.2f} {w['sense'] / frames:10.2f} "
              f"{(w['comm'] + w['power']) / frames:10.2f} {summary.real_time_factor:9.5f}")


if __name__ == "__main__":
    main()
