"""Engine benchmark: real-time factor in CPU time and wall time, share of each phase.

Prints tables (no pass/fail):

1. every bundled scenario (``scenarios/*.yaml``) and the campus variants (genie, crb, ml,
   genie + wmmse, ml + music + mrt_plain + wmmse): CPU ms per frame of the run (``ms_cpu/fr``,
   set-up not included), real-time factor on CPU time (simulated seconds per CPU second of
   set-up plus run, the figure the targets of issue 10 use) and on wall time, the set-up cost
   (``setup_cpu_s``: building the simulation; the sync plan is computed in the first frame's
   sync phase, so it is part of the run), and the share of each phase of the frame loop (from
   the frames table's ``wall_*_s`` columns; BLAS is pinned to one thread, so wall ~ CPU per
   phase on an idle core);
2. the 40-frame quickstart as a whole process (``python -m netsim run``): user + sys CPU
   seconds of the child, and the modules it imported (planner, scipy.cluster, networkx,
   cvxpy) -- the start-up target of issue 10;
3. optionally (``--scaling``) the cost per frame versus the number of APs and of users.

BLAS is pinned to one thread before numpy loads and glibc's heap thresholds are raised
(``netsim.cli.tune_allocator``), as ``netsim`` does in its CLI. ``/genie`` cases pin
``sync.method=genie`` and ``sensing.method=genie`` (the issue-10 targets); the plain names run
the bundled files as they are.

The whole-process run is also repeated with netsim byte-compiled beforehand (a copy of the
package after ``python -m compileall``, as the README's install note leaves it; ``--no-bytecode``
skips it): where ``PYTHONDONTWRITEBYTECODE=1`` is set, as here, every process compiles netsim's
modules again.

Usage: python benchmarks/engine.py [--frames-scale X] [--only NAME ...] [--scaling] [--no-bytecode]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from netsim.cli import tune_allocator  # noqa: E402

tune_allocator()  # glibc heap thresholds, as the netsim CLI sets them

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the sync planner is netsim.sync.plan (its public names) and the modules it re-exports
HEAVY = ("netsim.sync.plan", "netsim.sync.plan_clusters", "netsim.sync.plan_pilots",
         "netsim.sync.plan_alloc", "scipy.cluster", "networkx", "cvxpy", "pandas", "numpy.ma")

# name, scenario file, overrides, frames (at --frames-scale 1). The crb and ml cases pin genie
# sensing: their issue-10 targets measure the sync chain (campus now defaults to ml + music).
GENIE = ["sync.method=genie", "sensing.method=genie"]
CASES: list[tuple[str, str, list[str], int]] = [
    ("quickstart/genie", "quickstart.yaml", GENIE, 40),
    ("quickstart", "quickstart.yaml", [], 40),
    ("campus/genie", "campus.yaml", GENIE, 100),
    ("campus", "campus.yaml", [], 100),
    ("campus/crb", "campus.yaml", ["sync.method=crb", "sensing.method=genie"], 100),
    ("campus/ml", "campus.yaml", ["sync.method=ml", "sensing.method=genie"], 30),
    # seed-004 WMMSE on campus (issue 10: <= 10 ms CPU per subframe; the power column's share)
    ("campus/genie+wmmse", "campus.yaml", [*GENIE, "comm.power=wmmse"], 30),
    ("campus/ml+music+wmmse", "campus.yaml",
     ["sync.method=ml", "sensing.method=music", "comm.beamforming=mrt_plain", "comm.power=wmmse"],
     10),
    ("drift_longrun", "drift_longrun.yaml", [], 300),
    ("isac_paper", "isac_paper.yaml", [], 3),
    ("umi_cellfree", "umi_cellfree.yaml", [], 2),
    # the scenario's own 10 frames: the first frame's DSatur+Tabu spread as a run spreads it
    ("umi_cellfree/10fr", "umi_cellfree.yaml", [], 10),
]
PHASES = ("sync", "sense", "comm", "power")


def measure(path: Path, frames: int, overrides: list[str]) -> dict:
    """Run one scenario in this process; CPU and wall time of set-up and of the run."""
    from netsim.scenario import load_scenario
    from netsim.sim.engine import Simulation

    sc = load_scenario(path, [f"run.frames={frames}", "run.duration_s=null", *overrides])
    c0, w0 = time.process_time(), time.perf_counter()
    sim = Simulation(sc)
    c1, w1 = time.process_time(), time.perf_counter()
    summary = sim.run()
    c2, w2 = time.process_time(), time.perf_counter()
    phases = dict(summary.wall_per_phase_s)
    loop = sum(phases.get(k, 0.0) for k in PHASES)
    run_cpu, run_wall = c2 - c1, w2 - w1
    return {
        "frames": summary.frames,
        "sim_s": summary.sim_time_s,
        "build_cpu": c1 - c0,
        "cpu": (c2 - c0),
        "wall": (w2 - w0),
        "ms_cpu": 1e3 * run_cpu / max(summary.frames, 1),
        "rtf_cpu": summary.sim_time_s / (c2 - c0) if c2 > c0 else float("inf"),
        "rtf_wall": summary.sim_time_s / (w2 - w0) if w2 > w0 else float("inf"),
        "share": {k: phases.get(k, 0.0) / run_wall for k in PHASES},
        "other": max(0.0, 1.0 - loop / run_wall) if run_wall > 0 else 0.0,
    }


def whole_process(frames: int = 40, package_root: Path = ROOT) -> dict:
    """``python -m netsim run scenarios/quickstart.yaml`` (genie sync and sensing, the issue-10
    start-up target) as a child: CPU s and heavy imports.

    ``package_root``: the folder holding the ``netsim`` package the child imports (a
    byte-compiled copy, see ``--no-bytecode``); with ``PYTHONDONTWRITEBYTECODE=1``, as in this
    environment, a package without ``__pycache__`` is compiled again in every process."""
    code = (
        "import sys, runpy; sys.argv = ['netsim', 'run', {sc!r}, '--out', {out!r}, '-q',"
        " '--frames', '{f}', '--set', 'sync.method=genie', '--set', 'sensing.method=genie'];\n"
        "try:\n    runpy.run_module('netsim', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = code.format(sc=str(ROOT / "scenarios/quickstart.yaml"), out=str(Path(tmp) / "q"),
                          f=frames, heavy=HEAVY)
        env = dict(os.environ, PYTHONPATH=str(package_root))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                             env=env, cwd=tmp, check=True)
        wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # the bare interpreter, for reference
        b0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env, cwd=tmp)
        b1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    heavy = [ln[6:] for ln in out.stdout.splitlines() if ln.startswith("HEAVY=")]
    return {
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "wall": wall,
        "python_cpu": (b1.ru_utime - b0.ru_utime) + (b1.ru_stime - b0.ru_stime),
        "heavy": heavy[0] if heavy else "?",
    }


def _loadavg() -> str:
    """``/proc/loadavg``'s 1, 5 and 15 minute figures (CPU time is robust to load, wall is not)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames-scale", type=float, default=1.0,
                        help="multiply every case's frame count (at least 1 frame)")
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    parser.add_argument("--scaling", action="store_true", help="also the APs/users scaling tables")
    parser.add_argument("--no-process", action="store_true", help="skip the whole-process run")
    parser.add_argument("--no-bytecode", dest="bytecode", action="store_false",
                        help="skip the whole-process run with netsim byte-compiled beforehand")
    parser.add_argument("--bytecode", action="store_true", default=True, help=argparse.SUPPRESS)
    args = parser.parse_args()

    # warm-up (not timed): the lazy imports of the frame loop (pandas at the first flush, ...)
    # are start-up cost, measured by the whole-process table below, not per frame
    measure(ROOT / "scenarios/quickstart.yaml", 2, GENIE)
    print(f"load average at start: {_loadavg()}")
    print("== Scenarios (CPU time; RTF = simulated s / s; shares of the frame loop's wall time) ==")
    print(f"{'case':<24}{'frames':>7}{'setup_cpu_s':>12}{'cpu_s':>8}{'wall_s':>8}"
          f"{'ms_cpu/fr':>10}{'RTF_cpu':>9}{'RTF_wall':>9}"
          + "".join(f"{k:>7}" for k in PHASES) + f"{'other':>7}")
    for name, file, overrides, frames in CASES:
        if args.only and name not in args.only:
            continue
        n = max(1, round(frames * args.frames_scale))
        r = measure(ROOT / "scenarios" / file, n, overrides)
        print(f"{name:<24}{r['frames']:>7}{r['build_cpu']:>12.2f}{r['cpu']:>8.2f}{r['wall']:>8.2f}"
              f"{r['ms_cpu']:>10.2f}{r['rtf_cpu']:>9.3f}{r['rtf_wall']:>9.3f}"
              + "".join(f"{100 * r['share'][k]:>6.0f}%" for k in PHASES)
              + f"{100 * r['other']:>6.0f}%", flush=True)

    if not args.no_process:
        p = whole_process(40)
        print("\n== 40-frame quickstart as a whole process (python -m netsim run) ==")
        print(f"user+sys CPU {p['cpu']:.2f} s (bare interpreter {p['python_cpu']:.2f} s), "
              f"wall {p['wall']:.2f} s; heavy modules imported: {p['heavy'] or 'none'}"
              + (" (every netsim module compiled: PYTHONDONTWRITEBYTECODE is set)"
                 if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))
        if args.bytecode:
            import shutil

            with tempfile.TemporaryDirectory() as copy:  # a byte-compiled copy of the package
                shutil.copytree(ROOT / "netsim", Path(copy) / "netsim",
                                ignore=shutil.ignore_patterns("__pycache__"))
                subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(copy) / "netsim")],
                               check=True)
                b = whole_process(40, package_root=Path(copy))
            print(f"user+sys CPU {b['cpu']:.2f} s with netsim byte-compiled beforehand "
                  "(python -m compileall, as the README says)")

    print(f"\nload average at end: {_loadavg()}")
    if args.scaling:
        print("\n== Cost per frame vs number of APs (campus, 6 users, 16 antennas) ==")
        print(f"{'APs':>5}{'ms_cpu/fr':>10}{'RTF_cpu':>9}")
        for n_ap in (9, 36, 100, 196):
            r = measure(ROOT / "scenarios/campus.yaml", 20, [*GENIE, f"deployment.aps.count={n_ap}"])
            print(f"{n_ap:5d}{r['ms_cpu']:>10.2f}{r['rtf_cpu']:>9.3f}")
        print("\n== Cost per frame vs number of users (campus, 36 APs) ==")
        print(f"{'users':>5}{'ms_cpu/fr':>10}{'RTF_cpu':>9}")
        for n_user in (2, 6, 16, 32):
            r = measure(ROOT / "scenarios/campus.yaml", 20, [*GENIE, f"users.count={n_user}"])
            print(f"{n_user:5d}{r['ms_cpu']:>10.2f}{r['rtf_cpu']:>9.3f}")


if __name__ == "__main__":
    main()
