"""Memory and CPU time of one robust-design solve (seed 003), for the resource guard.

Usage: ``python benchmarks/robust_cost.py SCHEME M N K`` (SCHEME main, mrt or ei): one line of
JSON with the reduced dimension d, the peak RSS above the post-import baseline and the CPU
seconds of building and solving the problem once at gamma = 0.5 (random channels, seeded by the
sizes; ei: its whole bisection). The figures behind
``netsim.scenario.checks.robust_design_cost`` came from this (one core, OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import json
import sys
import time
import warnings


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    scheme, m, n, k = sys.argv[1], *map(int, sys.argv[2:5])
    import cvxpy  # noqa: F401 - imported before the baseline
    import numpy as np

    from netsim.comm import robust

    rng = np.random.default_rng([m, n, k])
    h = (rng.standard_normal((k, m * n)) + 1j * rng.standard_normal((k, m * n))) * 1e-5
    eps = np.full((m, k), 1e-7)
    red = robust.reduce_problem(h, eps, 1.0, 1e-12, m, served_basis=scheme == "mrt")
    base = _peak_mb()
    warnings.simplefilter("ignore")
    c0 = time.process_time()
    if scheme == "ei":
        _, x, _ = robust.ei_socp(red.with_eps(np.zeros((m, k))), 0.8, 1e-2)
        build, ok = 0.0, x is not None
    else:
        sdp = robust._RobustSdp(red, mrt=scheme == "mrt", gamma=0.5)
        build = time.process_time() - c0
        ok = sdp.solve(0.5)[0]
    solve = time.process_time() - c0 - build
    print(json.dumps({"scheme": scheme, "M": m, "N": n, "K": k, "d": red.dim, "ok": bool(ok),
                      "build_s": round(build, 2), "solve_s": round(solve, 2),
                      "mem_MB": round(_peak_mb() - base, 1)}))


if __name__ == "__main__":
    main()
