"""Synchronization planning, pilot sharing (seed 000 Algorithm 2; spec ``sync.md`` 5.2, 5.5-5.7).

Average-power SINR of each slave on its pilot (spec 5.2), the eq-56 objective, DSatur starts
(capacity-limited and the Scheme-4 minimum-contamination proxy), simulated-annealing swap
matching (Definitions 1-2, eq 52-55) and Algorithm 2 itself (one more pilot at a time, eq
58-59).

Speed (issue 10). Swap matching makes ``N_2^max`` proposals per pilot count, and Algorithm 3
runs it for every pilot count of every candidate ``K_C``: a plan makes ~10^5 proposals, each
touching two pilot groups of a few slaves. On such tiny arrays numpy's per-call overhead is
everything, so the proposal loop runs on Python floats and lists (:class:`_SwapLists`), with
the same arithmetic in the same order as the vectorised bookkeeping it replaced (which
``tests/unit/sync/plan_reference.py`` keeps as the test oracle):

* interference updates ``I_v - P[v, i] + P[v, j]`` element by element, as numpy does;
* sums (fresh interference of a moved slave, eq-56 deltas) by :func:`_pairwise_sum`, which
  reproduces numpy's pairwise summation order (8 accumulators, blocks of 128), so every float
  is bit-identical;
* the random proposals and acceptance draws by :class:`_Draws`, which replays
  ``Generator.integers(S)`` (Lemire's bounded draw on buffered 32-bit halves) and
  ``Generator.random()`` (53 high bits) from blocks of raw 64-bit words of the PCG64 bit
  generator and leaves the generator in exactly the state the scalar calls would have.

Hence the same generator gives the same plans as before, bit for bit (checked by
``tests/unit/sync/test_plan_speed.py`` on many random deployments), at ~1/20 of the cost.
Other bit generators fall back to the scalar calls (same results, slower).
"""

from __future__ import annotations

import bisect
import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from netsim.sync.plan_config import SyncPlanConfig, rx_energy_factor

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

__all__ = [
    "received_power_matrix",
    "sinr_db",
    "objective",
    "dsatur_capacity",
    "dsatur_min_contamination",
    "swap_matching",
    "improving_swaps",
    "alg2_pilot_sharing",
]


def received_power_matrix(
    node_loc: NDArray, slave_nodes: NDArray, master_of_slave: NDArray, cfg: SyncPlanConfig
) -> NDArray[np.float64]:
    """``Pmat[i, i'] = P_rx(i' -> master(i)) = Pt beta(d) 2N/3`` (spec 5.2), shape (S, S), W."""
    d = np.linalg.norm(
        node_loc[master_of_slave][:, None, :] - node_loc[slave_nodes][None, :, :], axis=-1
    )
    return cfg.tx_power_w * cfg.path_loss.gain(d) * rx_energy_factor(cfg.pilot_length_chips)


def sinr_db(pmat: NDArray, pilot: NDArray, noise_w: float) -> NDArray[np.float64]:
    """Average-power SINR of each slave (spec 5.2), shape (S,), dB.

    ``SINR_i = Pmat[i,i] / (sum_{i' != i, same pilot} Pmat[i,i'] + M sigma^2)``; ``noise_w``
    is ``M sigma^2``.
    """
    same = pilot[:, None] == pilot[None, :]
    np.fill_diagonal(same, False)
    interf = np.sum(np.where(same, pmat, 0.0), 1)
    return 10 * np.log10(np.diag(pmat) / (interf + noise_w))


def objective(sinr: NDArray, req_db: float, mode: str = "per_slave") -> float:
    """eq 56: ``sum_i SINR_i 1{SINR_i >= req}`` (dB); ``all_or_nothing`` gives 0 if any fails."""
    ok = sinr >= req_db
    if mode == "all_or_nothing":
        return float(np.sum(sinr)) if np.all(ok) else 0.0
    return float(np.sum(np.where(ok, sinr, 0.0)))


def dsatur_capacity(cluster_of_slave: NDArray, tau: int, nmax: int) -> NDArray[np.int64]:
    """DSatur colouring of the same-cluster conflict graph with ``tau`` colours and at most
    ``nmax`` slaves per colour (spec 5.5); round-robin fallback if it gets stuck.

    Returns pilots (S,) int in ``0..tau-1``.
    """
    s = cluster_of_slave.size
    pilot = np.full(s, -1, dtype=np.int64)
    if s == 0:
        return pilot
    clu = cluster_of_slave.tolist()
    size_of: dict[int, int] = {}
    for c in clu:
        size_of[c] = size_of.get(c, 0) + 1
    degree = [size_of[c] - 1 for c in clu]
    count = [0] * tau
    used: dict[int, set[int]] = {c: set() for c in size_of}
    unc = list(range(s))  # uncoloured slaves, ascending
    out = [-1] * s
    for _ in range(s):
        # highest saturation, then highest degree, then lowest index (the lexsort order)
        v = min(unc, key=lambda x: (-len(used[clu[x]]), -degree[x], x))
        c = clu[v]
        allowed = [p for p in range(tau) if p not in used[c] and count[p] < nmax]
        if not allowed:
            return _round_robin(cluster_of_slave, tau)
        p = min(allowed, key=lambda q: (count[q], q))
        out[v] = p
        count[p] += 1
        used[c].add(p)
        unc.remove(v)
    pilot[:] = out
    return pilot


def _round_robin(cluster_of_slave: NDArray, tau: int) -> NDArray[np.int64]:
    pilot = np.empty(cluster_of_slave.size, dtype=np.int64)
    nxt = 0
    for c in np.unique(cluster_of_slave):
        for v in np.flatnonzero(cluster_of_slave == c):
            pilot[v] = nxt % tau
            nxt += 1
    return pilot


def dsatur_min_contamination(
    cluster_of_slave: NDArray, pmat: NDArray, tau: int, nmax: int
) -> NDArray[np.int64]:
    """Scheme 4 proxy of the "improved DSatur" [ASSUMED, spec 6.7]: DSatur order, but each
    slave takes the allowed colour that adds the least contamination power to the masters
    concerned (its own master from the group, and the group's masters from it)."""
    s = cluster_of_slave.size
    pilot = np.full(s, -1, dtype=np.int64)
    count = np.zeros(tau, dtype=np.int64)
    used: dict[int, set[int]] = {int(c): set() for c in np.unique(cluster_of_slave)}
    csize = {c: int(np.sum(cluster_of_slave == c)) for c in used}
    for _ in range(s):
        unc = np.flatnonzero(pilot < 0)
        sat = np.array([len(used[int(cluster_of_slave[v])]) for v in unc])
        deg = np.array([csize[int(cluster_of_slave[v])] for v in unc])
        v = int(unc[np.lexsort((unc, -deg, -sat))[0]])
        c = int(cluster_of_slave[v])
        allowed = [p for p in range(tau) if p not in used[c] and count[p] < nmax]
        if not allowed:
            return _round_robin(cluster_of_slave, tau)

        def cost(p: int, v: int = v) -> tuple[float, int]:
            grp = np.flatnonzero(pilot == p)
            return (
                float(pmat[v, grp].sum() / pmat[v, v] + np.sum(pmat[grp, v] / pmat[grp, grp])),
                p,
            )

        p = min(allowed, key=cost)
        pilot[v] = p
        count[p] += 1
        used[c].add(p)
    return pilot



# --------------------------------------------------------------------------------------------
# Swap matching on Python scalars (bit-identical to the former numpy bookkeeping)
# --------------------------------------------------------------------------------------------


def _pairwise_sum(a: Sequence[float], lo: int = 0, n: int | None = None) -> float:
    """Sum of ``a[lo:lo+n]`` in numpy's pairwise order (``np.add.reduce`` on float64).

    numpy adds fewer than 8 numbers left to right from 0.0; up to 128 it keeps 8 running
    sums (``r[k] += a[i + k]`` over blocks of 8), combines them as
    ``((r0+r1)+(r2+r3)) + ((r4+r5)+(r6+r7))`` and adds the tail left to right; longer
    arrays are split in two halves (the first a multiple of 8 long) recursively.
    """
    if n is None:
        n = len(a) - lo
    if n < 8:
        res = 0.0
        for k in range(lo, lo + n):
            res += a[k]
        return res
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo : lo + 8]
        i = 8
        lim = n - n % 8
        while i < lim:
            b = lo + i
            r0 += a[b]
            r1 += a[b + 1]
            r2 += a[b + 2]
            r3 += a[b + 3]
            r4 += a[b + 4]
            r5 += a[b + 5]
            r6 += a[b + 6]
            r7 += a[b + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for k in range(lo + lim, lo + n):
            res += a[k]
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


def _db(ratio: float) -> float:
    """``10 log10(ratio)`` with numpy's conventions at 0 (-inf) and below (nan)."""
    if ratio > 0.0:
        return 10 * math.log10(ratio)
    return -math.inf if ratio == 0.0 else math.nan


_PCG_TYPES = (np.random.PCG64, np.random.PCG64DXSM)
_U32 = 0xFFFFFFFF


class _Draws:
    """``rng.integers(n)`` and ``rng.random()`` scalar draws, replayed from raw words.

    For the PCG64 family (numpy's default) a block of raw 64-bit outputs is taken at once and
    the two draws are reproduced exactly as numpy makes them:

    * ``integers(n)`` (int64, ``n < 2^32``): Lemire's method on a 32-bit value ``u``:
      ``m = u n``, accept when ``m mod 2^32 >= 2^32 mod n``, return ``m >> 32``; the 32-bit
      values are the low then the high half of one 64-bit output (the bit generator keeps the
      spare half in ``has_uint32`` / ``uinteger``);
    * ``random()``: ``(w >> 11) 2^-53`` of a whole 64-bit output ``w`` (the spare half stays).

    :meth:`close` rewinds the generator and advances it by the number of words used, and
    restores the spare half, so later draws continue exactly as after the scalar calls. Other
    bit generators use the scalar calls themselves.
    """

    def __init__(self, rng: np.random.Generator, n_words: int) -> None:
        self.rng = rng
        bg = rng.bit_generator
        self.fast = type(bg) in _PCG_TYPES
        if self.fast:
            self.state0 = bg.state
            self.words: list[int] = bg.random_raw(max(n_words, 8)).tolist()
            self.drawn = len(self.words)
            self.pos = 0
            self.has = int(self.state0["has_uint32"])
            self.buf = int(self.state0["uinteger"])

    def _word(self) -> int:
        if self.pos >= len(self.words):  # rare: more Lemire rejections than budgeted
            self.words.extend(self.rng.bit_generator.random_raw(256).tolist())
            self.drawn = len(self.words)
        w = self.words[self.pos]
        self.pos += 1
        return w

    def integer(self, n: int) -> int:
        """Same value as ``int(rng.integers(n))``, ``2 <= n < 2^32``."""
        if not self.fast:
            return int(self.rng.integers(n))
        thr = (1 << 32) % n
        while True:
            if self.has:
                u = self.buf
                self.has = 0
            else:
                w = self._word()
                u = w & _U32
                self.buf = w >> 32
                self.has = 1
            m = u * n
            if (m & _U32) >= thr:
                return m >> 32

    def uniform(self) -> float:
        """Same value as ``rng.random()``."""
        if not self.fast:
            return float(self.rng.random())
        return (self._word() >> 11) * (1.0 / 9007199254740992.0)

    def close(self) -> None:
        """Leave the generator exactly where the scalar calls would have left it."""
        if not self.fast:
            return
        bg = self.rng.bit_generator
        bg.state = self.state0
        if self.pos:
            bg.random_raw(self.pos)
        st = bg.state
        st["has_uint32"] = self.has
        st["uinteger"] = self.buf
        bg.state = st


class _SwapLists:
    """Pilot groups, per-cluster pilot occupancy and every slave's interference and SINR, as
    Python lists, updated incrementally by each accepted swap.

    Parameters
    ----------
    pilot : ndarray, shape (S,), int
        Pilot of each slave, ``0..tau-1``.
    cluster : ndarray, shape (S,), int
        Cluster of each slave.
    pmat : ndarray, shape (S, S), W
        :func:`received_power_matrix`.
    noise_w : float
        ``M sigma^2``.
    tau : int
    rows : list of list of float, optional
        ``pmat.tolist()`` if the caller has it already.
    """

    def __init__(
        self,
        pilot: NDArray,
        cluster: NDArray,
        pmat: NDArray,
        noise_w: float,
        tau: int,
        rows: list[list[float]] | None = None,
    ) -> None:
        s = pilot.size
        # the starting interference and SINR exactly as the vectorised bookkeeping computes them
        same = (pilot[:, None] == pilot[None, :]) & ~np.eye(s, dtype=bool)  # [S, S]
        interf = np.sum(np.where(same, pmat, 0.0), 1)  # [S] W
        sig = np.diag(pmat).copy()  # [S] W
        self.sinr: list[float] = (10 * np.log10(sig / (interf + noise_w))).tolist()
        self.interf: list[float] = interf.tolist()
        self.sig: list[float] = sig.tolist()
        self.pm: list[list[float]] = pmat.tolist() if rows is None else rows
        self.noise = float(noise_w)
        self.pilot: list[int] = pilot.tolist()
        self.cluster: list[int] = cluster.tolist()
        nclu = max(self.cluster) + 1 if s else 0
        self.occ = [[0] * max(tau, 1) for _ in range(nclu)]
        self.groups: list[list[int]] = [[] for _ in range(max(tau, 1))]
        for v, (c, p) in enumerate(zip(self.cluster, self.pilot, strict=True)):
            self.occ[c][p] += 1
            self.groups[p].append(v)  # ascending slave index, as np.flatnonzero

    def blocked(self, i: int, j: int) -> bool:
        """Rule 52: the swap would put two slaves of one cluster on one pilot."""
        a, b = self.cluster[i], self.cluster[j]
        same = 1 if a == b else 0
        return self.occ[a][self.pilot[j]] - same > 0 or self.occ[b][self.pilot[i]] - same > 0

    def try_swap(self, i: int, j: int) -> tuple[list[int], list[float], list[float]]:
        """Slaves whose SINR changes if ``i`` and ``j`` swap pilots, their new interference
        (W) and new SINR (dB); order: rest of i's group, rest of j's group, i, j."""
        pm, interf = self.pm, self.interf
        rest_n = [v for v in self.groups[self.pilot[i]] if v != i]
        rest_m = [v for v in self.groups[self.pilot[j]] if v != j]
        new_i = [interf[v] - pm[v][i] + pm[v][j] for v in rest_n]
        new_i += [interf[v] - pm[v][j] + pm[v][i] for v in rest_m]
        pmi, pmj = pm[i], pm[j]
        new_i.append(_pairwise_sum([pmi[v] for v in rest_m]))
        new_i.append(_pairwise_sum([pmj[v] for v in rest_n]))
        who = rest_n + rest_m
        who.append(i)
        who.append(j)
        sig, noise = self.sig, self.noise
        try:
            new_s = [10 * math.log10(sig[v] / (x + noise)) for v, x in zip(who, new_i, strict=True)]
        except ValueError:  # a zero signal power (only at absurd distances)
            new_s = [_db(sig[v] / (x + noise)) for v, x in zip(who, new_i, strict=True)]
        return who, new_i, new_s

    def delta(self, who: list[int], new_s: list[float], req: float) -> float:
        """Change of the per-slave eq-56 objective if the swap is applied."""
        sinr = self.sinr
        gain = _pairwise_sum([x if x >= req else 0.0 for x in new_s])
        loss = _pairwise_sum([x if x >= req else 0.0 for x in (sinr[v] for v in who)])
        return gain - loss

    def objective_after(self, who: list[int], new_s: list[float], req: float, mode: str) -> float:
        """eq-56 objective of the whole allocation if the swap is applied (any ``mode``)."""
        tmp = list(self.sinr)
        for v, x in zip(who, new_s, strict=True):
            tmp[v] = x
        if mode == "all_or_nothing":
            return _pairwise_sum(tmp) if all(x >= req for x in tmp) else 0.0
        return _pairwise_sum([x if x >= req else 0.0 for x in tmp])

    def apply(self, i: int, j: int, who: list[int], new_i: list[float], new_s: list[float]) -> None:
        """Swap the pilots of ``i`` and ``j`` and store the new interference and SINRs."""
        a, b = self.cluster[i], self.cluster[j]
        n, m = self.pilot[i], self.pilot[j]
        self.occ[a][n] -= 1
        self.occ[b][m] -= 1
        self.occ[a][m] += 1
        self.occ[b][n] += 1
        self.pilot[i], self.pilot[j] = m, n
        gn, gm = self.groups[n], self.groups[m]
        gn.remove(i)
        gm.remove(j)
        bisect.insort(gm, i)
        bisect.insort(gn, j)
        interf, sinr = self.interf, self.sinr
        for v, x, y in zip(who, new_i, new_s, strict=True):
            interf[v] = x
            sinr[v] = y


def swap_matching(
    pilot: NDArray,
    cluster_of_slave: NDArray,
    pmat: NDArray,
    noise_w: float,
    tau: int,
    cfg: SyncPlanConfig,
    rng: np.random.Generator,
    *,
    rows: list[list[float]] | None = None,
) -> tuple[NDArray[np.int64], float]:
    """Simulated-annealing swap matching (Definitions 1-2, eq 55).

    ``N_2^max`` random swap proposals ``(i, j) ~ U{0..S-1}^2``; a proposal with equal pilots
    or blocked by rule 52 (two slaves of one cluster on one pilot) is skipped, otherwise it is
    accepted with probability ``1 / (1 + exp(-T dObj))`` (``T = cfg.sa_temperature`` in 1/dB,
    ``dObj`` the change of eq 56 in dB).

    Parameters
    ----------
    pilot : ndarray, shape (S,), int
        Starting pilots, ``0..tau-1``.
    cluster_of_slave : ndarray, shape (S,), int
    pmat : ndarray, shape (S, S), W
        :func:`received_power_matrix`.
    noise_w : float
        ``M sigma^2`` (W).
    tau : int
    cfg : SyncPlanConfig
        ``swap_iterations``, ``sa_temperature``, ``sinr_req_db``, ``objective``.
    rng : numpy.random.Generator
        Two ``integers(S)`` per proposal and one ``random()`` per evaluated proposal, in that
        order (the generator ends where those scalar calls leave it).
    rows : list of list of float, optional
        ``pmat.tolist()``, when the caller calls this repeatedly with one ``pmat``.

    Returns
    -------
    (pilot [S] int, objective float): the best allocation seen and its eq-56 objective (dB).
    """
    st = _SwapLists(pilot, cluster_of_slave, pmat, noise_w, tau, rows)
    req = cfg.sinr_req_db
    cur = objective(np.asarray(st.sinr, dtype=float), req, cfg.objective)
    best_p, best_o = list(st.pilot), cur
    s = pilot.size
    if s < 2 or tau < 2:
        return np.asarray(best_p, dtype=np.int64), best_o
    per_slave = cfg.objective != "all_or_nothing"
    draws = _Draws(rng, 2 * cfg.swap_iterations + 16)
    try:
        if draws.fast:
            best_p, best_o = _anneal_replayed(st, draws, cfg, cur, best_p, best_o, per_slave)
        else:
            best_p, best_o = _anneal_scalar(st, draws, cfg, cur, best_p, best_o, per_slave)
    finally:
        draws.close()
    return np.asarray(best_p, dtype=np.int64), best_o


def _anneal_scalar(
    st: _SwapLists, draws: _Draws, cfg: SyncPlanConfig, cur: float, best_p: list[int],
    best_o: float, per_slave: bool,
) -> tuple[list[int], float]:
    """The annealing loop of :func:`swap_matching` through :class:`_SwapLists`' methods and
    scalar draws (any bit generator)."""
    req, temp, s = cfg.sinr_req_db, cfg.sa_temperature, len(st.pilot)
    spilot = st.pilot
    for _ in range(cfg.swap_iterations):
        i = draws.integer(s)
        j = draws.integer(s)
        if spilot[i] == spilot[j] or st.blocked(i, j):
            continue
        who, new_i, new_s = st.try_swap(i, j)
        if per_slave:
            cand = cur + st.delta(who, new_s, req)
        else:
            cand = st.objective_after(who, new_s, req, cfg.objective)
        x = -temp * (cand - cur)
        pa = 1.0 / (1.0 + math.exp(x)) if x < 700.0 else 0.0
        if draws.uniform() < pa:
            st.apply(i, j, who, new_i, new_s)
            cur = cand
            if cur > best_o + 1e-12:
                best_p, best_o = list(spilot), cur
    return best_p, best_o


def _anneal_replayed(
    st: _SwapLists, draws: _Draws, cfg: SyncPlanConfig, cur: float, best_p: list[int],
    best_o: float, per_slave: bool,
) -> tuple[list[int], float]:
    """The same loop as :func:`_anneal_scalar` with the draws, the blocking rule, the swap
    evaluation and its application written out on local variables (the plan's hot loop: a
    method call costs as much as the arithmetic of a proposal). Sums of fewer than 8 terms
    are left-to-right from 0.0, which is numpy's order for them; longer ones use
    :func:`_pairwise_sum`."""
    req, temp, s = cfg.sinr_req_db, cfg.sa_temperature, len(st.pilot)
    mode = cfg.objective
    spilot, cluster, occ, groups = st.pilot, st.cluster, st.occ, st.groups
    pm, interf, sinr, sig, noise = st.pm, st.interf, st.sinr, st.sig, st.noise
    words, pos, has, buf = draws.words, draws.pos, draws.has, draws.buf
    thr = (1 << 32) % s
    log10, exp, insort = math.log10, math.exp, bisect.insort
    for _ in range(cfg.swap_iterations):
        # i, j = rng.integers(s), rng.integers(s)  (Lemire on buffered 32-bit halves)
        while True:
            if has:
                u, has = buf, 0
            else:
                if pos >= len(words):
                    words.extend(draws.rng.bit_generator.random_raw(256).tolist())
                w = words[pos]
                pos += 1
                u, buf, has = w & _U32, w >> 32, 1
            m = u * s
            if (m & _U32) >= thr:
                break
        i = m >> 32
        while True:
            if has:
                u, has = buf, 0
            else:
                if pos >= len(words):
                    words.extend(draws.rng.bit_generator.random_raw(256).tolist())
                w = words[pos]
                pos += 1
                u, buf, has = w & _U32, w >> 32, 1
            m = u * s
            if (m & _U32) >= thr:
                break
        j = m >> 32
        pn, pj = spilot[i], spilot[j]
        if pn == pj:
            continue
        a, b = cluster[i], cluster[j]
        same = 1 if a == b else 0
        if occ[a][pj] - same > 0 or occ[b][pn] - same > 0:  # rule 52
            continue
        gn, gm = groups[pn], groups[pj]
        if per_slave and len(gn) + len(gm) < 8:
            # small groups (the usual case): every sum has < 8 terms, so one pass in `who`
            # order (rest of i's group, rest of j's group, i, j) gives numpy's sums exactly.
            # Only the objective change is formed here; the new interference and SINRs are
            # recomputed (same expressions, same values) for an accepted swap only.
            who = None
            gain = loss = fi = fj = 0.0
            pmi, pmj = pm[i], pm[j]
            for v in gn:
                if v != i:
                    row = pm[v]
                    fj += pmj[v]
                    ratio = sig[v] / (interf[v] - row[i] + row[j] + noise)
                    y = 10 * log10(ratio) if ratio > 0.0 else _db(ratio)
                    if y >= req:
                        gain += y
                    y = sinr[v]
                    if y >= req:
                        loss += y
            for v in gm:
                if v != j:
                    row = pm[v]
                    fi += pmi[v]
                    ratio = sig[v] / (interf[v] - row[j] + row[i] + noise)
                    y = 10 * log10(ratio) if ratio > 0.0 else _db(ratio)
                    if y >= req:
                        gain += y
                    y = sinr[v]
                    if y >= req:
                        loss += y
            # the pair itself, i then j (written out: no tuple loop)
            ratio = sig[i] / (fi + noise)
            yi = 10 * log10(ratio) if ratio > 0.0 else _db(ratio)
            if yi >= req:
                gain += yi
            ratio = sig[j] / (fj + noise)
            yj = 10 * log10(ratio) if ratio > 0.0 else _db(ratio)
            if yj >= req:
                gain += yj
            y = sinr[i]
            if y >= req:
                loss += y
            y = sinr[j]
            if y >= req:
                loss += y
            cand = cur + (gain - loss)
        else:
            rn = [v for v in gn if v != i]
            rm = [v for v in gm if v != j]
            new_i = [interf[v] - pm[v][i] + pm[v][j] for v in rn]
            new_i += [interf[v] - pm[v][j] + pm[v][i] for v in rm]
            pmi, pmj = pm[i], pm[j]
            new_i.append(_pairwise_sum([pmi[v] for v in rm]))
            new_i.append(_pairwise_sum([pmj[v] for v in rn]))
            who = rn + rm
            who.append(i)
            who.append(j)
            new_s = [10 * log10(r) if (r := sig[v] / (x + noise)) > 0.0 else _db(r)
                     for v, x in zip(who, new_i, strict=False)]
            if per_slave:
                gain = _pairwise_sum([x if x >= req else 0.0 for x in new_s])
                loss = _pairwise_sum([x if x >= req else 0.0 for x in (sinr[v] for v in who)])
                cand = cur + (gain - loss)
            else:
                cand = st.objective_after(who, new_s, req, mode)
        x = -temp * (cand - cur)
        pa = 1.0 / (1.0 + exp(x)) if x < 700.0 else 0.0
        # rng.random()
        if pos >= len(words):
            words.extend(draws.rng.bit_generator.random_raw(256).tolist())
        w = words[pos]
        pos += 1
        if (w >> 11) * (1.0 / 9007199254740992.0) < pa:
            if who is None:  # small groups: the values the evaluation pass formed
                for v in gn:
                    if v != i:
                        row = pm[v]
                        x = interf[v] - row[i] + row[j]
                        ratio = sig[v] / (x + noise)
                        interf[v] = x
                        sinr[v] = 10 * log10(ratio) if ratio > 0.0 else _db(ratio)
                for v in gm:
                    if v != j:
                        row = pm[v]
                        x = interf[v] - row[j] + row[i]
                        ratio = sig[v] / (x + noise)
                        interf[v] = x
                        sinr[v] = 10 * log10(ratio) if ratio > 0.0 else _db(ratio)
                interf[i], sinr[i] = fi, yi
                interf[j], sinr[j] = fj, yj
            else:
                for v, x, y in zip(who, new_i, new_s, strict=False):
                    interf[v] = x
                    sinr[v] = y
            occ[a][pn] -= 1
            occ[b][pj] -= 1
            occ[a][pj] += 1
            occ[b][pn] += 1
            spilot[i], spilot[j] = pj, pn
            gn.remove(i)
            gm.remove(j)
            insort(gm, i)
            insort(gn, j)
            cur = cand
            if cur > best_o + 1e-12:
                best_p, best_o = list(spilot), cur
    draws.pos, draws.has, draws.buf = pos, has, buf
    return best_p, best_o


def improving_swaps(
    pilot: NDArray,
    cluster_of_slave: NDArray,
    pmat: NDArray,
    noise_w: float,
    tau: int,
    cfg: SyncPlanConfig,
) -> NDArray[np.int64]:
    """Only-improving swaps until no swap improves Obj (exchange-stable; Scheme 4 proxy).

    Sweeps the pairs ``i < j`` in order, applies every swap that raises the per-slave eq 56
    (whatever ``cfg.objective``; the start value uses ``cfg.objective``) by more than
    1e-9 dB, and repeats (at most 50 sweeps) until a sweep changes nothing. Returns pilots (S,).
    """
    st = _SwapLists(pilot, cluster_of_slave, pmat, noise_w, tau)
    req = cfg.sinr_req_db
    cur = objective(np.asarray(st.sinr, dtype=float), req, cfg.objective)
    s = pilot.size
    spilot = st.pilot
    improved = True
    rounds = 0
    while improved and rounds < 50:
        improved = False
        rounds += 1
        for i in range(s):
            for j in range(i + 1, s):
                if spilot[i] == spilot[j] or st.blocked(i, j):
                    continue
                who, new_i, new_s = st.try_swap(i, j)
                cand = cur + st.delta(who, new_s, req)  # per-slave delta in either mode
                if cand > cur + 1e-9:
                    st.apply(i, j, who, new_i, new_s)
                    cur = cand
                    improved = True
    return np.asarray(spilot, dtype=np.int64)


def alg2_pilot_sharing(
    cluster_of_slave: NDArray,
    pmat: NDArray,
    noise_w: float,
    budget_pilots: int,
    cfg: SyncPlanConfig,
    rng: np.random.Generator,
) -> tuple[NDArray[np.int64], float, int, NDArray[np.int64], float] | None:
    """Algorithm 2 (spec 5.7): DSatur start at ``tau = max |S_k|``, swap matching, then one more
    pilot at a time (moving low-SINR slaves to it, eq 58-59) until ``tau = budget_pilots``.

    Parameters
    ----------
    cluster_of_slave : ndarray, shape (S,), int
    pmat : ndarray, shape (S, S)
        :func:`received_power_matrix`.
    noise_w : float
        ``M sigma^2``.
    budget_pilots : int
        ``L_S - 2 K_C``.

    Returns
    -------
    ``(pilot [S], obj, tau, dsatur_pilot [S], dsatur_obj)`` or None if ``max|S_k| > budget``.
    """
    s = cluster_of_slave.size
    if s == 0:
        return np.zeros(0, np.int64), 0.0, 0, np.zeros(0, np.int64), 0.0
    tau = int(np.bincount(cluster_of_slave).max())
    if tau > budget_pilots:
        return None
    nmax = math.ceil(s / tau)
    p0 = dsatur_capacity(cluster_of_slave, tau, nmax)
    o0 = objective(sinr_db(pmat, p0, noise_w), cfg.sinr_req_db, cfg.objective)
    best = (p0.copy(), o0, tau)
    cur = p0
    rows = pmat.tolist()
    while True:
        stage_p, stage_o = swap_matching(
            cur, cluster_of_slave, pmat, noise_w, tau, cfg, rng, rows=rows
        )
        if stage_o > best[1] + 1e-12:
            best = (stage_p.copy(), stage_o, tau)
        tau += 1
        if tau > budget_pilots:
            break
        nmax = math.ceil(s / tau)
        cur = stage_p.copy()
        sinr = sinr_db(pmat, cur, noise_w)
        gsize = np.bincount(cur, minlength=tau)
        order = np.lexsort((sinr, ~(gsize[cur] > nmax)))  # oversize groups first, then low SINR
        chosen: list[int] = []
        used_c: set[int] = set()
        used_p: set[int] = set()
        for v in order.tolist():
            if len(chosen) >= max(1, nmax - 1):
                break
            c, p = int(cluster_of_slave[v]), int(cur[v])
            if c in used_c or p in used_p:
                continue
            chosen.append(v)
            used_c.add(c)
            used_p.add(p)
        cur[chosen] = tau - 1
    return best[0], best[1], best[2], p0, o0

