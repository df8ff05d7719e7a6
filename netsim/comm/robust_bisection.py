"""Bisection on the rate threshold (seed 003 Alg. 1, Bi-RBO; Bi-RPO-MRT) and the plain-path
search that reproduces it with fewer solves (:func:`path_bisection`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from netsim.comm.robust_dir_ipm import DirStructure, decide_dir, dir_structure, min_power_dir
from netsim.comm.robust_ipm import Decision, SdrStructure, decide, sdr_structure, solve_min_power
from netsim.comm.robust_model import ReducedProblem, mrt_bases, rate_upper_bound, zf_coordinates
from netsim.comm.robust_sdp import _RobustSdp, verified_point


@dataclass
class BiRboResult:
    """Output of :func:`bi_rbo` (normalised reduced units).

    Attributes
    ----------
    t : float
        Largest certified-feasible rate threshold [bit/s/Hz] (0 if none).
    w_mats : ndarray (K, d, d) complex or None
        SDR solution W~_k (normalised, reduced).
    lam : ndarray (M, K) or None
    feasible : bool
    n_solves : int
    solve_s : float
    """

    t: float
    w_mats: NDArray[np.complex128] | None
    lam: NDArray[np.float64] | None
    feasible: bool
    n_solves: int = 0
    solve_s: float = 0.0
    p_mats: list[NDArray[np.complex128]] | None = None  # MRT/direction models: P_k (r_k, r_k) per user
    decisions: dict[float, bool] | None = None  # every threshold decided by the search: t -> feasible


def path_bisection(
    solve_at: Callable[[float], tuple[bool, object]],
    lo0: float,
    up0: float,
    zeta: float,
    guess: float | None = None,
    max_gallop: int = 4,
    known: dict[float, bool] | None = None,
) -> tuple[float, object | None, int]:
    """Bisection on a monotone feasibility test, reproducing the plain loop's decisions.

    The plain loop is ``while up - lo > zeta: t = (lo + up)/2; lo or up = t`` from
    ``(lo0, up0)``, solving at every midpoint. Its result (the last feasible midpoint and the
    solution there) depends only on which midpoints are feasible, and feasibility is monotone in
    t (a larger rate threshold only shrinks the feasible set of (14)/(26)). So every midpoint of
    the plain path that lies below a solved feasible point, or above a solved infeasible one, is
    decided without a solve. With a ``guess`` of the answer (the previous frame's threshold), the
    two ends of the final plain-path interval that contains the guess are solved first; when the
    guess is off, the search gallops away from it (steps doubling) until it brackets the answer,
    then finishes with the plain midpoints. The returned point is always a midpoint of the plain
    path that was itself solved feasible, so a good guess gives the plain loop's result with about
    two solves instead of ``log2((up0 - lo0)/zeta)``; a poor one costs a few extra solves.
    Without a guess this is the plain loop, solve for solve.

    Parameters
    ----------
    solve_at : callable t -> (feasible, solution)
    lo0, up0 : float
        Start bracket (lo0 is taken as feasible, up0 as infeasible, neither is solved).
    zeta : float
        Tolerance of the plain loop.
    guess : float or None
        Expected answer.
    max_gallop : int
        Most galloping probes before falling back to the plain midpoints.
    known : dict or None
        Decisions known beforehand, ``t -> feasible`` (e.g. from a cheaper problem whose
        feasibility is equivalent, or implied by a relaxation: a threshold infeasible for the
        SDR is infeasible for any restriction of it). They decide midpoints exactly as solved
        ones do, but carry no solution: the returned point is still solved here. The dict is
        updated in place with every decision taken (the caller may reuse them).

    Returns
    -------
    (t, solution, n_solves): ``t = lo0`` and ``solution = None`` when no midpoint is feasible.
    """
    known = {} if known is None else known
    sols: dict[float, object] = {}
    n = 0

    def probe(t: float) -> bool:
        nonlocal n
        ok, sol = solve_at(t)
        n += 1
        known[t] = bool(ok)
        if ok:
            sols[t] = sol
        return bool(ok)

    def walk(assume: float | None) -> tuple[float | None, float, float]:
        """Follow the plain path; returns (first undecided midpoint or None, final lo, final up)."""
        a = max((t for t, ok in known.items() if ok), default=-np.inf)
        b = min((t for t, ok in known.items() if not ok), default=np.inf)
        lo, up = lo0, up0
        while up - lo > zeta:
            t = 0.5 * (lo + up)
            if t in known:
                ok = known[t]
            elif t <= a:
                ok = True
            elif t >= b:
                ok = False
            elif assume is not None:
                ok = t <= assume
            else:
                return t, lo, up
            lo, up = (t, up) if ok else (lo, t)
        return None, lo, up

    if guess is not None and np.isfinite(guess) and lo0 < guess < up0:
        g = float(guess)
        _, plo, pup = walk(g)
        step = max(pup - plo, 0.5 * zeta)
        going = 0  # -1 down, +1 up, 0 not yet known
        for _ in range(max_gallop):
            _, plo, pup = walk(g)
            if going <= 0 and plo > lo0 and plo not in known:
                if not probe(plo):
                    going, g = -1, max(plo - step, 0.5 * (lo0 + plo))
                    step *= 2.0
                    continue
                if going < 0:
                    break  # bracketed from above
            if going >= 0 and pup < up0 and pup not in known:
                if probe(pup):
                    going, g = 1, min(pup + step, 0.5 * (pup + up0))
                    step *= 2.0
                    continue
            break
    limit = 4 * int(np.ceil(np.log2(max((up0 - lo0) / zeta, 2.0)))) + 2 * max_gallop + 8
    while n < limit:
        t, lo, _ = walk(None)
        if t is not None:
            probe(t)
            continue
        if lo <= lo0:
            return lo0, None, n
        if lo in sols:
            return lo, sols[lo], n
        probe(lo)  # decided feasible by monotonicity but not solved itself: solve it for its W
    _, lo, _ = walk(None)
    best = max((t for t in sols if t <= lo), default=None)
    return (best, sols[best], n) if best is not None else (lo0, None, n)


def bi_rbo(
    red: ReducedProblem,
    rho: float,
    zeta: float = 1e-2,
    t_lo: float = 0.0,
    t_up: float | None = None,
    init: BiRboResult | None = None,
    mrt: bool = False,
    dpp: bool = True,
    directions: list[NDArray[np.complex128]] | None = None,
    guess: float | None = None,
    known: dict[float, bool] | None = None,
    solver: str = "clarabel",
) -> BiRboResult:
    """Algorithm 1 (Bi-RBO), or Bi-RPO-MRT with ``mrt=True``: bisection on t with the SDR (14)/(26).

    Parameters
    ----------
    red : ReducedProblem
    rho : float
        Communication fraction (gamma = 2^{t/rho} - 1).
    zeta : float
        Bisection tolerance [bit/s/Hz].
    t_lo, init :
        Known feasible threshold and its solution (warm start); ``init=None`` means none.
    t_up : float or None
        Upper end (default :func:`rate_upper_bound`).
    mrt : bool
    dpp : bool
        Re-use one compiled parametrised problem (True) or rebuild per step (plain).
    directions : list of (d, r_k) arrays or None
        Restrict ``W_k = B_k P_k B_k^H`` to given bases (as the MRT model (26) does with the
        MRT bases); used to re-optimise the powers of extracted rank-one directions.
    guess : float or None
        Expected threshold (e.g. the previous frame's): same result as without it, usually with
        far fewer SDP solves (see :func:`path_bisection`).
    known : dict or None
        Decisions ``t -> feasible`` known beforehand (see :func:`path_bisection`); the result's
        ``decisions`` holds them plus every decision of this search.
    solver : {"clarabel", "ipm"}
        "ipm": the SDR (14) (not with serving clusters) is decided at each step by the
        structured interior-point method of :mod:`netsim.comm.robust_ipm` (phase 1, ~0.3 CPU-s
        instead of Clarabel's 4-6 at the paper's size), the MRT and direction models (26) by
        :mod:`netsim.comm.robust_dir_ipm` (milliseconds, where cvxpy compiles each new model
        for seconds); only the final threshold is solved for the minimum-power point (same
        methods; Clarabel where they do not apply or converge). Every accepted point passes
        the same numerical check of (13) as Clarabel's.
    """
    t0 = time.perf_counter()
    if t_up is None:
        t_up = rate_upper_bound(red, rho)
    best = init if (init is not None and init.feasible) else BiRboResult(t_lo, None, None, False)
    lo, up = (t_lo if best.feasible else 0.0), max(t_up, t_lo)
    oracle = SdrOracle(red, rho, mrt=mrt, dpp=dpp, directions=directions, solver=solver)
    decisions = {} if known is None else dict(known)
    t_found, found, n_solves = path_bisection(oracle.solve_at, lo, up, zeta, guess, known=decisions)
    if found is not None:
        best = oracle.point(float(t_found), found)
    best.decisions = decisions
    best.n_solves = n_solves
    best.solve_s = time.perf_counter() - t0
    return best


class SdrOracle:
    """Feasibility of the SDR (14) / the MRT or direction model (26) at a rate threshold t.

    ``solve_at(t) -> (feasible, solution)`` is the test :func:`path_bisection` walks; the
    solution is a :class:`BiRboResult` (Clarabel: the minimum-power point) or, with the
    interior-point method, a :class:`Decision` (a verified feasible point, not power-minimal)
    that :meth:`point` turns into the minimum-power point at that threshold. See :func:`bi_rbo`
    for the parameters.
    """

    def __init__(self, red: ReducedProblem, rho: float, mrt: bool = False, dpp: bool = True,
                 directions: list[NDArray[np.complex128]] | None = None, solver: str = "clarabel") -> None:
        if solver not in ("clarabel", "ipm"):
            raise ValueError(f"unknown SDR solver {solver!r}")
        self.red, self.rho, self.mrt, self.dpp, self.directions = red, rho, mrt, dpp, directions
        self.data: SdrStructure | None = None
        self.dir_data: DirStructure | None = None
        if solver == "ipm" and (mrt or directions is not None):
            bases = mrt_bases(red) if directions is None else list(directions)
            self.dir_data = dir_structure(bases, red.g, red.indicator, red.eps2, red.pbar)
        elif solver == "ipm" and red.serving is None:
            self.data = sdr_structure(red.g, red.eps2, red.indicator, red.pbar, zf_coordinates(red.g))
        self._built: list[_RobustSdp] = []

    def clarabel_sdp(self) -> _RobustSdp:
        """The cvxpy model, compiled on first use only (the ipm path rarely needs it)."""
        if not self._built:
            self._built.append(_RobustSdp(self.red, mrt=self.mrt, dpp=True, directions=self.directions))
        return self._built[0]

    def solve_at(self, t: float) -> tuple[bool, BiRboResult | Decision | None]:
        red, mrt = self.red, self.mrt
        gamma = 2.0 ** (t / self.rho) - 1.0
        if self.data is not None or self.dir_data is not None:
            def verify(w: NDArray[np.complex128], lam: NDArray[np.float64]) -> bool:
                return verified_point(red, w, lam, gamma)

            dec = decide(self.data, gamma, verify) if self.data is not None else decide_dir(self.dir_data, gamma, verify)
            if dec.feasible is not None:
                return dec.feasible, (dec if dec.feasible else None)
        directions = self.directions
        solver_ = self.clarabel_sdp() if self.dpp else _RobustSdp(red, mrt=mrt, dpp=False, gamma=gamma, directions=directions)
        ok, w, lam = solver_.solve(gamma)
        if not ok:
            return False, None
        p = [np.asarray(pk.value) for pk in solver_.p] if solver_.mrt else None
        return True, BiRboResult(t, w, lam, True, p_mats=p)

    def point(self, t: float, sol: BiRboResult | Decision) -> BiRboResult:
        """The minimum-power solution at t from what :meth:`solve_at` returned there."""
        if isinstance(sol, Decision):
            if self.dir_data is not None:
                return _min_power_point_dir(self.red, self.dir_data, t, self.rho, sol, self.clarabel_sdp)
            return _min_power_point(self.red, self.data, t, self.rho, sol, self.clarabel_sdp)
        return sol


def _min_power_point(red: ReducedProblem, data: SdrStructure, t: float, rho: float, dec: Decision,
                     clarabel_sdp: Callable[[], _RobustSdp]) -> BiRboResult:
    """Minimum-power solution of (14) at a threshold decided feasible by :func:`robust_ipm.decide`.

    The interior-point method from an interior phase-1 point first; Clarabel where that does not
    converge; the decision's own (verified, not power-minimal) point as the last resort.
    """
    gamma = 2.0 ** (t / rho) - 1.0

    def verify(w: NDArray[np.complex128], lam: NDArray[np.float64]) -> bool:
        return verified_point(red, w, lam, gamma)

    start = decide(data, gamma, verify, interior=True)
    if start.x is not None:
        got = solve_min_power(data, gamma, start.x, verify)
        if got is not None:
            return BiRboResult(t, got[0], got[1], True)
    ok, w, lam = clarabel_sdp().solve(gamma)
    if ok:
        return BiRboResult(t, w, lam, True)
    return BiRboResult(t, dec.w, dec.lam, True)


def _min_power_point_dir(red: ReducedProblem, data: DirStructure, t: float, rho: float, dec: Decision,
                         clarabel_sdp: Callable[[], _RobustSdp]) -> BiRboResult:
    """:func:`_min_power_point` for the fixed-basis model (26) (:mod:`netsim.comm.robust_dir_ipm`);
    the result carries the P_k (``p_mats``) as Clarabel's does."""
    gamma = 2.0 ** (t / rho) - 1.0

    def verify(w: NDArray[np.complex128], lam: NDArray[np.float64]) -> bool:
        return verified_point(red, w, lam, gamma)

    start = decide_dir(data, gamma, verify, interior=True)
    if start.x is not None:
        got = min_power_dir(data, gamma, start.x, verify)
        if got is not None:
            return BiRboResult(t, got[0], got[1], True, p_mats=got[2])
    sdp = clarabel_sdp()
    ok, w, lam = sdp.solve(gamma)
    if ok:
        return BiRboResult(t, w, lam, True, p_mats=[np.asarray(pk.value) for pk in sdp.p])
    pinv = [np.linalg.pinv(b) for b in data.bases]  # the decision's own point: P_k = B_k^+ W_k B_k^+H
    return BiRboResult(t, dec.w, dec.lam, True, p_mats=[pi @ wk @ pi.conj().T for pi, wk in zip(pinv, dec.w, strict=True)])
