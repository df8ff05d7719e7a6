"""Benchmark of the synchronization kernels (seed 000). Prints tables; never pass/fail.

1. Microseconds per ML estimate (batched), for the paper setting (N = 256, eta = 3, full CFO
   range) and the engine setting (eta = 40 chips = +-1 us, |df| <= 100 kHz); then an A/B of
   the ML search on campus-like links (N = 64, eta = 16, random 4-tap channels): the current
   search (profiled TO grid levels + Newton in CFO) against the former grid + compass search
   kept as the test oracle ``tests/unit/sync/ml_reference.py``: CPU per estimate, MSE / CRB
   and the gross-error rate (squared error > 64 CRB).
2. Cost of one sync round versus number of APs (30 to 200), method "ml" and "crb", plus the
   planning time (Algorithm 3) in CPU seconds next to wall seconds.
3. ML RMSE / sqrt(CRB) at 20 and 30 dB (Fig 6 profile, N = 256, no contamination).
5. (--tracking) clock tracking at the CPU: per-round vs Kalman vs adaptive on drift_longrun and
   campus (benchmarks/sync_tracking.py).
6. (--breakdown) where the CPU time of a campus frame goes with ``sync: crb`` (100 frames) and
   ``sync: ml`` (30 frames), sensing genie (the issue-10 cases of benchmarks/engine.py): the
   plan (Algorithm 3: k-means, swap matching, CRB selection), the round (CRB, ML estimator,
   bursts), the tracker update, the acquisition check and the correction delivery, in CPU ms
   per frame (process_time around each function; nested entries are part of their parent).

Usage: python benchmarks/sync.py [--quick] [--tracking [--jobs N] [--only drift|campus]]
       python benchmarks/sync.py --breakdown [--quick]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as the CLI does; before numpy loads

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from netsim.phy.pilots import bpsk_pilots  # noqa: E402
from netsim.sync.burst import received_burst  # noqa: E402
from netsim.sync.channel import FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS, draw_link_taps  # noqa: E402
from netsim.sync.crb import crb_to_cfo  # noqa: E402
from netsim.sync.ml import ml_estimate, wrap_cfo  # noqa: E402
from netsim.sync.plan import SyncPlanConfig, plan_network  # noqa: E402
from netsim.sync.round import SyncRoundConfig, sync_round  # noqa: E402

H6 = FIG6_TAP_GAINS * np.exp(1j * np.array([0.0, np.pi / 3, -np.pi / 4, 2 * np.pi / 3]))


def _fig6_bursts(n, t, snr_db, rng):
    m = n + 9
    s = bpsk_pilots(1, n, rng)[0]
    sig2 = 10 ** (-snr_db / 10)
    y = received_burst(
        np.broadcast_to(s, (t, 1, n)),
        np.full((t, 1), 1.8),
        np.full((t, 1), 0.1),
        np.broadcast_to(FIG6_TAP_DELAYS_CHIPS, (t, 1, 4)),
        np.broadcast_to(H6, (t, 1, 4)),
        m,
        sig2,
        rng,
    )
    return s, y, sig2, m


def bench_ml(rng, t):
    print("\n1. ML estimator cost")
    print(f"{'setting':<44}{'batch':>7}{'cpu_us/estimate':>16}")
    s, y, _, _ = _fig6_bursts(256, t, 20.0, rng)
    t0 = time.process_time()
    ml_estimate(y, s, FIG6_TAP_DELAYS_CHIPS, 3.0)
    dt = time.process_time() - t0
    print(f"{'paper: N=256, eta=3, full CFO range':<44}{t:>7}{dt / t * 1e6:>16.0f}")
    n, eta = 256, 40.0
    taps = draw_link_taps((t,), 4, rng)
    dl = 3.0 + taps.excess_delay_chips
    m = n + int(np.ceil(eta + dl.max())) + 3
    pil = bpsk_pilots(t, n, rng)
    y = received_burst(
        pil[:, None],
        rng.uniform(0, eta, (t, 1)),
        rng.uniform(-5e-3, 5e-3, (t, 1)),
        dl[:, None],
        (taps.amplitude * taps.fading)[:, None],
        m,
        1e-3,
        rng,
    )
    t0 = time.process_time()
    ml_estimate(y, pil, dl, eta, cfo_max_norm=5e-3)
    dt = time.process_time() - t0
    print(f"{'engine: N=256, eta=40 (+-1 us), |df|<=100 kHz':<44}{t:>7}{dt / t * 1e6:>16.0f}")


def bench_search(rng, t):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tests/unit/sync/ml_reference.py"
    spec = importlib.util.spec_from_file_location("ml_reference", path)
    ref = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("ml_reference", ref)
    spec.loader.exec_module(ref)
    print("\n1b. ML search A/B (N=64, eta=16, |eps|<=5e-3, random 4-tap links; CPU time)")
    print(f"{'SNR_dB':>7}{'search':>9}{'cpu_us/est':>12}{'MSE/CRB TO':>12}{'MSE/CRB CFO':>13}"
          f"{'gross':>7}")
    n, eta, cfo = 64, 16.0, 5e-3
    for snr in (5.0, 15.0, 30.0):
        taps = draw_link_taps((t,), 4, rng)
        dl = rng.uniform(0.5, 4.0, (t, 1)) + taps.excess_delay_chips
        m = n + int(np.ceil(eta + dl.max())) + 3
        pil = bpsk_pilots(t, n, rng)
        th, ep = rng.uniform(0, eta, t), rng.uniform(-cfo, cfo, t)
        h = taps.amplitude * taps.fading
        sig2 = 10 ** (-snr / 10)
        y = received_burst(pil[:, None], th[:, None], ep[:, None], dl[:, None], h[:, None], m,
                           sig2, rng)
        crb = crb_to_cfo(pil, th, dl, h, np.full((t, m), sig2), m)
        ok = ~crb.singular
        for name, fn in (("new", ml_estimate), ("former", ref.ml_estimate)):
            kw = {"n_refine": 24} if name == "former" else {}
            c0 = time.process_time()
            est = fn(y, pil, dl, eta, cfo_max_norm=cfo, **kw)
            cpu = time.process_time() - c0
            nt = (est.to_chips - th) ** 2 / crb.to_chips2
            nf = (est.cfo_norm - ep) ** 2 / crb.cfo_norm2
            gross = (nt > 64) | (nf > 64)
            print(f"{snr:>7.0f}{name:>9}{cpu / t * 1e6:>12.0f}{np.mean(nt[ok & ~gross]):>12.2f}"
                  f"{np.mean(nf[ok & ~gross]):>13.2f}{np.mean(gross[ok]):>7.3f}")


def bench_round(rng, sizes, reps):
    print("\n2. Sync round cost vs number of APs (150 m x 150 m, L_S = 40)")
    print(
        f"{'n_ap':>6}{'K_C':>5}{'tau':>5}{'plan_cpu_s':>11}{'plan_s':>9}{'ml_cpu_s':>9}{'crb_cpu_ms':>11}"
        f"{'rms_res_to_ns(ml/crb)':>24}"
    )
    cfg = SyncRoundConfig()
    for n in sizes:
        pos = rng.uniform(0, 150, (n, 2))
        c0, t0 = time.process_time(), time.perf_counter()
        plan = plan_network(
            pos,
            np.ones(n, bool),
            SyncPlanConfig(overhead_budget_slots=40, swap_iterations=300),
            rng,
        )
        t_plan = time.perf_counter() - t0
        c_plan = time.process_time() - c0
        out = {}
        for method in ("ml", "crb"):
            tt, res = 0.0, []
            for _ in range(reps):
                x = rng.uniform(-0.5e-6, 0.5e-6, n)
                f = rng.uniform(-1e4, 1e4, n)
                t0 = time.process_time()
                r = sync_round(plan, pos, x, f, cfg, method, rng)
                tt += time.process_time() - t0
                v = r.valid.copy()
                v[r.reference_ap] = False
                res.append(r.residual_time_offset_s[v])
            out[method] = (tt / reps, float(np.sqrt(np.mean(np.concatenate(res) ** 2))) * 1e9)
        print(
            f"{n:>6}{plan.n_clusters:>5}{plan.n_pilots:>5}{c_plan:>11.2f}{t_plan:>9.2f}{out['ml'][0]:>9.3f}"
            f"{out['crb'][0] * 1e3:>11.2f}{out['ml'][1]:>12.2f}/{out['crb'][1]:<11.2f}"
        )


def bench_efficiency(rng, t):
    print("\n3. ML efficiency (Fig 6 profile with phases, N = 256, theta1 = 1.8, eps = 0.1)")
    print(f"{'SNR_dB':>7}{'RMSE/sqrtCRB TO':>18}{'RMSE/sqrtCRB CFO':>19}{'trials':>8}")
    for snr in (20.0, 30.0):
        s, y, sig2, m = _fig6_bursts(256, t, snr, rng)
        est = ml_estimate(y, s, FIG6_TAP_DELAYS_CHIPS, 3.0)
        crb = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, sig2, m)
        r_to = np.sqrt(np.mean((est.to_chips - 1.8) ** 2) / crb.to_chips2)
        r_cfo = np.sqrt(np.mean(wrap_cfo(est.cfo_norm - 0.1) ** 2) / crb.cfo_norm2)
        print(f"{snr:>7.0f}{r_to:>18.3f}{r_cfo:>19.3f}{t:>8}")


def bench_campus(frames: int) -> None:
    """Real-time factor of campus.yaml with each sync fidelity (the plan is built once per run).

    Sensing is pinned to genie: campus.yaml runs MUSIC by default, whose cost would hide the
    sync methods' difference."""
    from netsim.scenario import load_scenario
    from netsim.sim.engine import Simulation

    print(f"\n4. campus.yaml ({frames} frames, 36 APs, sensing genie), real-time factor per sync method")
    print(f"{'method':>7}{'plan+run cpu_s':>15}{'wall_s':>8}{'ms_cpu/frame':>13}"
          f"{'sync ms/frame(wall)':>20}{'RTF_cpu':>9}")
    for method in ("genie", "crb", "ml"):
        sc = load_scenario("scenarios/campus.yaml", [f"run.frames={frames}", f"sync.method={method}",
                                                     "sensing.method=genie"])
        c0 = time.process_time()
        sim = Simulation(sc)
        summary = sim.run()
        cpu = time.process_time() - c0
        print(f"{method:>7}{cpu:>15.2f}{summary.wall_s:>8.2f}{1e3 * cpu / frames:>13.1f}"
              f"{1e3 * summary.wall_per_phase_s['sync'] / frames:>20.1f}"
              f"{summary.sim_time_s / cpu:>9.4f}")


# (label, module, attribute[, class]); indented labels are part of the entry above them
_BREAKDOWN = [
    ("plan (Algorithm 3)", "netsim.sync.plan_alloc", "plan_network", None),
    ("  k-means (Algorithm 1)", "netsim.sync.plan_clusters", "kmeans", None),
    ("  swap matching (Algorithm 2)", "netsim.sync.plan_pilots", "swap_matching", None),
    ("  CRB selection (batched)", "netsim.sync.plan_alloc", "evaluate_crb_batch", None),
    ("round (sync_round)", "netsim.sync.round", "sync_round", None),
    ("  CRB of every link", "netsim.sync.round", "crb_to_cfo", None),
    ("  contamination diagonal", "netsim.sync.round", "contamination_diag", None),
    ("  ML estimator", "netsim.sync.round", "ml_estimate", None),
    ("  bursts", "netsim.sync.round", "received_burst", None),
    ("tracker: reports -> corrections", "netsim.sim.sync_correction", "on_reports",
     "SyncCorrection"),
    ("  Kalman update", "netsim.sync.tracking", "update", "ClockTracker"),
    ("  correction (predict to apply time)", "netsim.sync.tracking", "correct", "ClockTracker"),
    ("acquisition check", "netsim.sim.sync_correction", "acquisition", "SyncCorrection"),
    ("adaptive/periodic schedule", "netsim.sim.sync_correction", "schedule", "SyncCorrection"),
    ("correction delivery (APs)", "netsim.phy.oscillator", "correct", "OscillatorBank"),
]


def bench_breakdown(quick: bool) -> None:
    """Section 6: CPU ms per frame of each sync component on campus (crb, ml)."""
    import importlib

    from netsim.scenario import load_scenario
    from netsim.sim.engine import Simulation

    acc: dict[str, float] = {}
    patched = []

    def wrap(label: str, owner, attr: str) -> None:
        f = getattr(owner, attr)

        def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
            c = time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + time.process_time() - c

        setattr(owner, attr, timed)
        patched.append((owner, attr, f))

    for label, mod, attr, cls in _BREAKDOWN:
        try:
            owner = importlib.import_module(mod)
        except ImportError:
            continue
        owner = getattr(owner, cls) if cls else owner
        if hasattr(owner, attr):
            wrap(label, owner, attr)
    warm = load_scenario("scenarios/quickstart.yaml", ["run.frames=2", "run.duration_s=null",
                         "sync.method=genie", "sensing.method=genie"])
    Simulation(warm).run()  # lazy imports of the frame loop are start-up, not frame cost
    cases = [("crb", 20 if quick else 100), ("ml", 6 if quick else 30)]
    print("\n6. campus.yaml, sensing genie: CPU ms per frame of the sync components")
    try:
        for method, frames in cases:
            acc.clear()
            sc = load_scenario("scenarios/campus.yaml", [f"run.frames={frames}", "run.duration_s=null",
                               f"sync.method={method}", "sensing.method=genie"])
            c0 = time.process_time()
            summary = Simulation(sc).run()
            cpu = time.process_time() - c0
            print(f"  sync: {method}, {frames} frames incl. the plan: {1e3 * cpu / frames:.2f} CPU ms"
                  f" per frame, RTF_cpu {summary.sim_time_s / cpu:.3f}")
            for label, *_ in _BREAKDOWN:
                if label in acc:
                    print(f"    {label:<38}{1e3 * acc[label] / frames:>8.2f} ms")
    finally:
        for owner, attr, f in reversed(patched):
            setattr(owner, attr, f)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tracking", action="store_true",
                    help="run only section 5, clock tracking (benchmarks/sync_tracking.py; "
                    "--jobs N and --only drift|campus are passed on)")
    ap.add_argument("--breakdown", action="store_true",
                    help="run only section 6, the CPU time per sync component on campus")
    args, rest = ap.parse_known_args()
    if args.breakdown:
        bench_breakdown(args.quick)
        return
    if args.tracking:
        import sync_tracking

        sync_tracking.main(["--quick"] * args.quick + rest)
        return
    rng = np.random.default_rng(1)
    bench_ml(rng, 50 if args.quick else 200)
    bench_search(rng, 60 if args.quick else 300)
    bench_round(rng, [30, 50] if args.quick else [30, 50, 100, 150, 200], 2 if args.quick else 5)
    bench_efficiency(rng, 100 if args.quick else 300)
    bench_campus(10 if args.quick else 50)


if __name__ == "__main__":
    main()
