"""Warm-started bisection (netsim.comm.robust.path_bisection) and the design hint.

The reference is the plain bisection loop of Algorithm 1 (``t = (lo + up)/2`` from (lo0, up0)
until ``up - lo <= zeta``): with any guess the search must end on the same midpoint with the
solution solved there, and with a good guess it must need fewer solves.
"""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.isac_time import error_radius_at
from netsim.comm.location_csi import location_aware_channels
from netsim.comm.robust import bi_rbo, design_beamformers, path_bisection, reduce_problem
from netsim.sensing.config import IsacConfig


def _plain(feasible, lo: float, up: float, zeta: float) -> tuple[float, float | None, int]:
    """The textbook loop (independent of path_bisection): final lo, last feasible t, solves."""
    n, best = 0, None
    while up - lo > zeta:
        t = 0.5 * (lo + up)
        n += 1
        if feasible(t):
            lo, best = t, t
        else:
            up = t
    return lo, best, n


def test_same_midpoint_as_the_plain_loop_for_any_guess():
    rng = np.random.default_rng(7)
    cost_good, cost_plain = [], []
    for i in range(3000):
        up0 = rng.uniform(0.5, 30.0)
        thr = rng.uniform(-0.5, up0 + 0.5)  # includes "nothing feasible" and "everything feasible"
        zeta = 10 ** rng.uniform(-3.5, -0.5)
        err = 10 ** rng.uniform(-5, 1) * rng.choice([-1, 1])
        guess = None if i % 7 == 0 else thr + err
        calls: list[float] = []

        def solve(t: float, thr=thr, calls=calls):  # noqa: ANN001, ANN202
            calls.append(t)
            return t <= thr, ("sol", t)

        lo_p, best_p, n_p = _plain(lambda t, thr=thr: t <= thr, 0.0, up0, zeta)
        lo, sol, n = path_bisection(solve, 0.0, up0, zeta, guess)
        assert lo == lo_p
        if best_p is None:
            assert sol is None
        else:
            assert sol == ("sol", best_p)  # solved at that very midpoint
        assert n == len(calls) == len(set(calls))  # no point solved twice
        if guess is None:
            assert n == n_p
        elif abs(err) < 0.1 * zeta and 0 < thr < up0:
            cost_good.append(n)
            cost_plain.append(n_p)
    assert max(cost_good) <= 4 and np.mean(cost_good) <= 2.5
    assert np.mean(cost_plain) >= 4 * np.mean(cost_good)


def test_a_solver_that_contradicts_itself_still_ends_on_a_solved_feasible_point():
    """Feasibility flips near the threshold (as an interior-point solver may at the boundary):
    the result is still a point that was solved and found feasible."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        thr = rng.uniform(1, 9)

        def solve(t: float, thr=thr):  # noqa: ANN001, ANN202
            noisy = t <= thr + 0.02 * np.sin(1e4 * t)
            return bool(noisy), t

        lo, sol, _ = path_bisection(solve, 0.0, 10.0, 1e-3, thr + rng.normal() * 0.05)
        assert sol == lo and solve(lo)[0]


CFG = IsacConfig(
    ap_centers_m=((0.0, 10.0), (10.0, 0.0)),
    ap_axis_rad=(np.pi / 2, 0.0),
    user_positions_m=((5.0, 5.0), (14.0, 6.0)),
    n_antennas=4,
)


def _instance(shift_m: float = 0.0):
    g = CFG.geometry()
    pos = CFG.user_positions + shift_m
    h = location_aware_channels(g, pos)
    eps = error_radius_at(h, 2, np.array([6e-4, 8e-4]), 0.5, CFG)
    return h, eps


def test_bi_rbo_guess_gives_the_same_sdp_solution_with_fewer_solves():
    h, eps = _instance()
    red = reduce_problem(h, eps, CFG.comm_power_w, CFG.noise_w, 2)
    plain = bi_rbo(red, 0.5, 0.01)
    warm = bi_rbo(red, 0.5, 0.01, guess=plain.t + 1e-4)
    assert plain.feasible and warm.feasible
    assert warm.t == plain.t
    np.testing.assert_allclose(warm.w_mats, plain.w_mats, rtol=0, atol=1e-6 * np.abs(plain.w_mats).max())
    assert warm.n_solves <= 3 < plain.n_solves
    off = bi_rbo(red, 0.5, 0.01, guess=plain.t + 0.5)  # poor guess: same answer, just dearer
    assert off.t == plain.t


@pytest.mark.parametrize("scheme", ["main"])
def test_design_hint_from_the_previous_frame_keeps_the_certified_rate(scheme: str):
    """Frame 2 moves the users 3 mm: designing it with frame 1's result as the hint gives the
    same beamformers and certificate as designing it cold, with fewer bisection solves."""
    h1, eps1 = _instance()
    h2, eps2 = _instance(0.003)
    args = (CFG.comm_power_w, CFG.noise_w, 0.5, 2)
    prev = design_beamformers(scheme, h1, eps1, *args)
    cold = design_beamformers(scheme, h2, eps2, *args)
    warm = design_beamformers(scheme, h2, eps2, *args, hint=prev)
    assert prev.status == cold.status == warm.status == "ok"
    assert warm.t_sdr == cold.t_sdr
    assert abs(warm.rate_wc - cold.rate_wc) <= 1e-6
    np.testing.assert_allclose(warm.w, cold.w, rtol=0, atol=1e-5 * np.abs(cold.w).max())
    n_cold = cold.n_solves + cold.extra.get("n_solves_repower", 0)
    n_warm = warm.n_solves + warm.extra.get("n_solves_repower", 0)
    assert n_warm < n_cold
    # a hint from another scheme is ignored (its thresholds mean something else)
    other = design_beamformers("ei" if scheme == "main" else "main", h1, eps1, *args)
    mixed = design_beamformers(scheme, h2, eps2, *args, hint=other)
    assert mixed.n_solves == cold.n_solves and mixed.t_sdr == cold.t_sdr
