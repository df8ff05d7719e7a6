# ruff: noqa: E402
"""Benchmark of the seed-003 robust beamforming designs inside the engine (isac_paper).

Usage::

    python benchmarks/robust.py [--schemes main ei] [--frames 3] [--no-hint] [--solver-check]
                                [--sdr-solver ipm|clarabel] [--cert-solver ipm|clarabel]

For every design the engine asks for (one per frame), prints CPU and wall seconds, the number
of bisection SDP/SOCP solves (design bisection + repower bisection), the status and the
certified worst-case rate. The engine passes the previous frame's design as a ``hint`` (its
thresholds guess this frame's bisections); ``--no-hint`` drops it, which is the plain
bisection of every frame (same rates, more solves): run both for an A/B comparison. ``--solver-check``
also times one Bi-RBO SDP of the first frame at its final threshold with each installed conic
solver (Clarabel, CVXOPT, SCS). Numbers only; nothing passes or fails. CPU time is the
measure (wall time on a shared machine mostly shows the load). ``--sdr-solver`` and
``--cert-solver`` choose who solves the Main bisection SDPs and the certificate SDPs (see
:func:`netsim.comm.robust.design_beamformers`; default ``ipm`` for both, ``clarabel`` is the
cvxpy + Clarabel reference): run both for an A/B comparison.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import time
import warnings

from netsim.comm import robust
from netsim.scenario import load_scenario
from netsim.sim.engine import Simulation

warnings.filterwarnings("ignore")


def run_designs(scheme: str, frames: int, hint: bool = True, solvers: dict | None = None) -> list[dict]:
    rows: list[dict] = []
    real = robust.design_beamformers  # the engine imports it from there at each frame

    def timed(name, h_hat, eps, p_max_w, noise_w, rho, n_aps, **kw):  # noqa: ANN001, ANN202
        if not hint:
            kw = {k: v for k, v in kw.items() if k != "hint"}
        kw = {**kw, **(solvers or {})}
        c0, w0 = time.process_time(), time.perf_counter()
        res = real(name, h_hat, eps, p_max_w, noise_w, rho, n_aps, **kw)
        rows.append({"scheme": name, "cpu_s": time.process_time() - c0,
                     "wall_s": time.perf_counter() - w0,
                     "solves": f"{res.n_solves}+{res.extra.get('n_solves_repower', 0)}",
                     "status": res.status, "rate": res.rate_wc, "t_sdr": res.t_sdr,
                     "inputs": (h_hat, eps, p_max_w, noise_w, rho, n_aps, kw)})
        return res

    robust.design_beamformers = timed
    try:
        sc = load_scenario("scenarios/isac_paper.yaml", [
            f"run.frames={frames}", f"comm.beamforming={scheme}",
            f"run.output_dir=/tmp/netsim_bench_robust_{scheme}"])
        Simulation(sc).run()
    finally:
        robust.design_beamformers = real
    return rows


def solver_check(row: dict) -> None:
    h_hat, eps, p_max_w, noise_w, rho, n_aps, kw = row["inputs"]
    red = robust.reduce_problem(h_hat, eps, p_max_w, noise_w, n_aps, serving=kw.get("serving"))
    sdp = robust._RobustSdp(red, dpp=True)
    import cvxpy as cp

    for t in (row["t_sdr"] - 0.05, row["t_sdr"] + 0.05):
        sdp.gam.value = 2.0 ** (t / rho) - 1.0
        for sv in [s for s in ("CLARABEL", "CVXOPT", "SCS") if s in cp.installed_solvers()]:
            kw_s = robust._CLARABEL_OPTS if sv == "CLARABEL" else (
                {"eps": 1e-6, "max_iters": 20000} if sv == "SCS" else {})
            c0 = time.process_time()
            try:
                sdp.prob.solve(solver=sv, **kw_s)
                status = sdp.prob.status
            except Exception as exc:  # noqa: BLE001 - a benchmark reports the failure
                status = f"error: {type(exc).__name__}"
            print(f"    t = {t:.3f}  {sv:<9} {status:<20} {time.process_time() - c0:7.2f} CPU-s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", nargs="+", default=["main", "ei"])
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--no-hint", action="store_true", help="plain bisection every frame (no warm start)")
    ap.add_argument("--solver-check", action="store_true")
    ap.add_argument("--sdr-solver", choices=["ipm", "clarabel"], default="ipm")
    ap.add_argument("--cert-solver", choices=["ipm", "clarabel"], default="ipm")
    args = ap.parse_args()
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    # once per process, outside the designs: only the EI SOCP and the Clarabel routes import it,
    # so without this the first such design of a run would carry it
    c0 = time.process_time()
    import cvxpy  # noqa: F401
    print(f"cvxpy import: {time.process_time() - c0:.2f} CPU-s (once per process, not in the rows below)")
    print(f"sdr solver {args.sdr_solver}, certificate solver {args.cert_solver}")
    print(f"{'scheme':<6} {'frame':>5} {'CPU s':>8} {'wall s':>8} {'solves':>6} {'status':<8} "
          f"{'t_sdr':>7} {'certified rate':>15}")
    for scheme in args.schemes:
        rows = run_designs(scheme, args.frames, hint=not args.no_hint,
                           solvers={"sdr_solver": args.sdr_solver, "cert_solver": args.cert_solver})
        for i, r in enumerate(rows):
            print(f"{scheme:<6} {i:>5} {r['cpu_s']:8.2f} {r['wall_s']:8.2f} {r['solves']:>6} "
                  f"{r['status']:<8} {r['t_sdr']:7.3f} {r['rate']:15.6f}")
        if args.solver_check and rows and scheme == "main":
            print("  one Bi-RBO SDP of frame 0 near its final threshold:")
            solver_check(rows[0])
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
