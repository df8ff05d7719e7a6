"""Engine benchmark: frames per wall second and real-time factor with the reference models.

Prints (no pass/fail):
* quickstart and campus: frames/s, real-time factor (simulated s per wall s), wall time per phase;
* cost per frame versus the number of APs and of users (campus settings, grid layout).

Usage: python benchmarks/engine.py [--frames N]
"""

from __future__ import annotations

import argparse
import time

from netsim.scenario import load_scenario
from netsim.sim.engine import Simulation


def measure(path: str, frames: int, overrides: list[str]) -> dict:
    sc = load_scenario(path, [f"run.frames={frames}", *overrides])
    t0 = time.perf_counter()
    sim = Simulation(sc)
    build = time.perf_counter() - t0
    summary = sim.run()
    return {
        "frames_per_s": summary.frames / summary.wall_s,
        "rtf": summary.real_time_factor,
        "ms_per_frame": 1e3 * summary.wall_s / summary.frames,
        "build_s": build,
        "phases": {k: 1e3 * v / summary.frames for k, v in summary.wall_per_phase_s.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    args = parser.parse_args()

    print("== Reference models (genie sync, genie sensing, MRT, equal power) ==")
    print(f"{'scenario':<12} {'frames/s':>9} {'RTF':>7} {'ms/frame':>9} "
          f"{'sync':>6} {'sense':>6} {'comm':>6} {'power':>6}  (ms per frame)")
    for name in ("quickstart", "campus"):
        r = measure(f"scenarios/{name}.yaml", args.frames, [])
        p = r["phases"]
        print(f"{name:<12} {r['frames_per_s']:9.1f} {r['rtf']:7.3f} {r['ms_per_frame']:9.2f} "
              f"{p['sync']:6.2f} {p['sense']:6.2f} {p['comm']:6.2f} {p['power']:6.2f}")

    print("\n== Cost per frame vs number of APs (campus, 6 users, 16 antennas) ==")
    print(f"{'APs':>5} {'ms/frame':>9} {'RTF':>7}")
    for n_ap in (9, 36, 100, 196):
        r = measure("scenarios/campus.yaml", max(10, args.frames // 5), [f"deployment.aps.count={n_ap}"])
        print(f"{n_ap:5d} {r['ms_per_frame']:9.2f} {r['rtf']:7.3f}")

    print("\n== Cost per frame vs number of users (campus, 36 APs) ==")
    print(f"{'users':>5} {'ms/frame':>9} {'RTF':>7}")
    for n_user in (2, 6, 16, 32):
        r = measure("scenarios/campus.yaml", max(10, args.frames // 5), [f"users.count={n_user}"])
        print(f"{n_user:5d} {r['ms_per_frame']:9.2f} {r['rtf']:7.3f}")


if __name__ == "__main__":
    main()
