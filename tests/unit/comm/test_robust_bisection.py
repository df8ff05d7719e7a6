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


def test_known_decisions_keep_the_plain_loop_result_and_save_solves():
    """Decisions known beforehand (consistent with the true threshold, as a relaxation's
    infeasible points and a restriction's feasible point are) change nothing but the cost."""
    rng = np.random.default_rng(11)
    for _ in range(500):
        up0 = rng.uniform(1.0, 20.0)
        thr = rng.uniform(0.0, up0)
        zeta = 10 ** rng.uniform(-3, -1)
        known = {t: False for t in rng.uniform(thr, up0, size=rng.integers(0, 6))}
        if rng.random() < 0.7:
            known[thr - rng.uniform(0, 0.5) * thr] = True  # a lower bound (not a midpoint)
        calls: list[float] = []

        def solve(t: float, thr=thr, calls=calls):  # noqa: ANN001, ANN202
            calls.append(t)
            return t <= thr, t

        lo_p, best_p, n_p = _plain(lambda t, thr=thr: t <= thr, 0.0, up0, zeta)
        lo, sol, n = path_bisection(solve, 0.0, up0, zeta, thr if rng.random() < 0.5 else None, known=dict(known))
        assert lo == lo_p and sol == best_p
        assert all(t not in known for t in calls)  # a known decision is never solved again
        assert n <= n_p + 1


@pytest.fixture(scope="module")
def sdr():
    """The bisection of the shared instance at rho = 0.5 (one solve path for the tests below)."""
    h, eps = _instance()
    red = reduce_problem(h, eps, CFG.comm_power_w, CFG.noise_w, 2)
    return red, bi_rbo(red, 0.5, 0.01)


def test_repower_reuses_the_sdr_decisions(sdr):  # noqa: ANN001
    """The repower bisection seeded with the SDR's infeasible thresholds and the rank-one
    certificate (as design_beamformers does) ends where the plain repower bisection ends."""
    from netsim.comm.robust import _repower, certify, rank_one

    red, res = sdr
    x = rank_one(red, res.w_mats)
    _, rate = certify(red, x, 0.5)
    known = {t: False for t, ok in res.decisions.items() if not ok}
    assert known and rate < min(known)
    known[rate] = True
    x_plain, t_plain, n_plain = _repower(red, x, 0.5, 0.01, None)
    x_seed, t_seed, n_seed = _repower(red, x, 0.5, 0.01, float(res.t), known=known)
    assert t_seed == t_plain
    np.testing.assert_allclose(x_seed, x_plain, rtol=0, atol=1e-5 * np.abs(x_plain).max())
    assert n_seed <= 2 < n_plain


def test_power_scale_problem_decides_like_the_feasibility_sdp(sdr):  # noqa: ANN001
    """s* <= 1 of the budget-factor SDP exactly when the feasibility SDP (14) is feasible, and
    s* grows with the threshold (an independent, value-giving form of the same test)."""
    from netsim.comm.robust import _RobustSdp

    red, res = sdr
    t_star = res.t
    feas, scaled = _RobustSdp(red), _RobustSdp(red, power_scale=True)
    values = []
    for t in (0.5 * t_star, t_star - 0.02, t_star + 0.05, 1.5 * t_star):
        gamma = 2.0 ** (t / 0.5) - 1.0
        s = scaled.solve_scale(gamma)
        assert s is not None
        values.append(s)
        if abs(s - 1.0) > 1e-4:
            assert (s < 1.0) == feas.solve(gamma)[0]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))


def test_a_clarabel_failure_is_retried_before_the_scs_fallback(sdr):  # noqa: ANN001
    from netsim.comm.robust import _RobustSdp

    red, res = sdr
    sdp = _RobustSdp(red)
    gamma = 2.0 ** (0.5 * res.t / 0.5) - 1.0
    ok_ref, w_ref, _ = sdp.solve(gamma)
    real = sdp.prob.solve
    calls: list[str] = []

    def flaky(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        calls.append(kw["solver"])
        if len(calls) == 1:
            raise RuntimeError("numerical failure")  # stands for a Clarabel SolverError / panic
        return real(*a, **kw)

    sdp.prob.solve = flaky
    ok, w, _ = sdp.solve(gamma)
    assert ok_ref and ok and calls == ["CLARABEL", "CLARABEL"]
    np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-4 * np.abs(w_ref).max())


def test_zero_forcing_seed_is_a_feasible_threshold_of_the_sdr(sdr):  # noqa: ANN001
    """The ZF seed of design_beamformers("main") is an independent feasible point: the SDP
    (14) solved there is feasible, and it lies below the bisection's answer plus its tolerance."""
    from netsim.comm.robust import _RobustSdp, _zf_seed

    red, res = sdr
    seed = _zf_seed(red, 0.5)
    assert len(seed) == 1
    (t_zf, ok), = seed.items()
    assert ok and 0.0 < t_zf < res.t + 0.01
    gamma = 2.0 ** (t_zf * (1 - 1e-6) / 0.5) - 1.0
    assert _RobustSdp(red).solve(gamma)[0]
    served = reduce_problem(*_instance(), CFG.comm_power_w, CFG.noise_w, 2, serving=np.ones((2, 2), bool))
    assert _zf_seed(served, 0.5) == {}  # clusters: no seed (ZF ignores them)
