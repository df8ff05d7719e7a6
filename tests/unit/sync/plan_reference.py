"""Test oracle: the former implementations of K-means, swap matching and the master tree.

Kept verbatim from ``netsim/sync/plan.py`` before the issue-10 rewrite (vectorised bookkeeping
on tiny arrays; networkx Dijkstra), so that the fast versions in
:mod:`netsim.sync.plan_pilots` and :mod:`netsim.sync.plan_alloc` can be checked to give the
same plans bit for bit. Not used by the library.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from numpy.typing import NDArray

from netsim.sync.plan_config import SyncPlanConfig
from netsim.sync.plan_pilots import objective


class _SwapState:
    """Incremental SINR bookkeeping for swap matching (interference per slave kept up to date)."""

    def __init__(self, pilot: NDArray, cluster: NDArray, pmat: NDArray, noise_w: float, tau: int):
        self.pilot = pilot.copy()
        self.cluster = cluster
        self.pmat = pmat
        self.noise = noise_w
        self.sig = np.diag(pmat).copy()
        nclu = int(cluster.max()) + 1 if cluster.size else 0
        self.occ = np.zeros((nclu, max(tau, 1)), dtype=np.int64)
        np.add.at(self.occ, (cluster, pilot), 1)
        same = (pilot[:, None] == pilot[None, :]) & ~np.eye(pilot.size, dtype=bool)
        self.interf = np.sum(np.where(same, pmat, 0.0), 1)
        self.sinr = 10 * np.log10(self.sig / (self.interf + noise_w))

    def blocked(self, i: int, j: int) -> bool:
        a, b = self.cluster[i], self.cluster[j]
        n, m = self.pilot[i], self.pilot[j]
        return bool(self.occ[a, m] - (a == b) > 0 or self.occ[b, n] - (a == b) > 0)

    def try_swap(self, i: int, j: int) -> tuple[NDArray, NDArray, NDArray]:
        """Slaves whose SINR changes, their new interference and new SINR (dB)."""
        pm = self.pmat
        rest_n = np.flatnonzero(self.pilot == self.pilot[i])
        rest_n = rest_n[rest_n != i]
        rest_m = np.flatnonzero(self.pilot == self.pilot[j])
        rest_m = rest_m[rest_m != j]
        who = np.concatenate([rest_n, rest_m, [i, j]])
        new_i = np.concatenate(
            [
                self.interf[rest_n] - pm[rest_n, i] + pm[rest_n, j],
                self.interf[rest_m] - pm[rest_m, j] + pm[rest_m, i],
                [pm[i, rest_m].sum(), pm[j, rest_n].sum()],
            ]
        )
        return who, new_i, 10 * np.log10(self.sig[who] / (new_i + self.noise))

    def apply(self, i: int, j: int, who: NDArray, new_i: NDArray, new_s: NDArray) -> None:
        a, b = self.cluster[i], self.cluster[j]
        n, m = self.pilot[i], self.pilot[j]
        self.occ[a, n] -= 1
        self.occ[b, m] -= 1
        self.occ[a, m] += 1
        self.occ[b, n] += 1
        self.pilot[i], self.pilot[j] = m, n
        self.interf[who] = new_i
        self.sinr[who] = new_s


def _delta(st: _SwapState, who: NDArray, new_s: NDArray, req: float) -> float:
    old = st.sinr[who]
    return float(np.sum(new_s * (new_s >= req)) - np.sum(old * (old >= req)))


def swap_matching(
    pilot: NDArray,
    cluster_of_slave: NDArray,
    pmat: NDArray,
    noise_w: float,
    tau: int,
    cfg: SyncPlanConfig,
    rng: np.random.Generator,
) -> tuple[NDArray[np.int64], float]:
    """Simulated-annealing swap matching (Definitions 1-2, eq 55): ``N_2^max`` random swap
    proposals, blocked swaps (rule 52) skipped, accepted with probability
    ``1 / (1 + exp(-T dObj))``; returns the best allocation seen and its objective."""
    st = _SwapState(pilot, cluster_of_slave, pmat, noise_w, tau)
    req = cfg.sinr_req_db
    cur = objective(st.sinr, req, cfg.objective)
    best_p, best_o = st.pilot.copy(), cur
    s = pilot.size
    if s < 2 or tau < 2:
        return best_p, best_o
    for _ in range(cfg.swap_iterations):
        i = int(rng.integers(s))
        j = int(rng.integers(s))
        if st.pilot[i] == st.pilot[j] or st.blocked(i, j):
            continue
        who, new_i, new_s = st.try_swap(i, j)
        if cfg.objective == "all_or_nothing":
            tmp = st.sinr.copy()
            tmp[who] = new_s
            cand = objective(tmp, req, cfg.objective)
        else:
            cand = cur + _delta(st, who, new_s, req)
        pa = 1.0 / (1.0 + math.exp(-cfg.sa_temperature * (cand - cur)))
        if rng.random() < pa:
            st.apply(i, j, who, new_i, new_s)
            cur = cand
            if cur > best_o + 1e-12:
                best_p, best_o = st.pilot.copy(), cur
    return best_p, best_o


def improving_swaps(
    pilot: NDArray,
    cluster_of_slave: NDArray,
    pmat: NDArray,
    noise_w: float,
    tau: int,
    cfg: SyncPlanConfig,
) -> NDArray[np.int64]:
    """Only-improving swaps until no swap improves Obj (exchange-stable; Scheme 4 proxy)."""
    st = _SwapState(pilot, cluster_of_slave, pmat, noise_w, tau)
    req = cfg.sinr_req_db
    cur = objective(st.sinr, req, cfg.objective)
    s = pilot.size
    improved = True
    rounds = 0
    while improved and rounds < 50:
        improved = False
        rounds += 1
        for i in range(s):
            for j in range(i + 1, s):
                if st.pilot[i] == st.pilot[j] or st.blocked(i, j):
                    continue
                who, new_i, new_s = st.try_swap(i, j)
                cand = cur + _delta(st, who, new_s, req)
                if cand > cur + 1e-9:
                    st.apply(i, j, who, new_i, new_s)
                    cur = cand
                    improved = True
    return st.pilot.copy()



def master_tree(master_loc: NDArray, cfg: SyncPlanConfig) -> tuple[int, NDArray[np.int64]]:
    """Reference cluster and parent of each master.

    The reference is the medoid of the masters; parents come from the shortest-path tree
    (networkx Dijkstra) with edge weight ``1 / beta(d)`` (proportional to the error variance
    of a master-master link), so each master's composite error variance is minimised.

    Returns
    -------
    (reference cluster index, parent [K_C] int with -1 at the reference)
    """
    k = master_loc.shape[0]
    if k == 0:
        return -1, np.zeros(0, dtype=np.int64)
    d = np.linalg.norm(master_loc[:, None] - master_loc[None], axis=-1)
    ref = int(np.argmin(d.sum(1)))
    w = 1.0 / cfg.path_loss.gain(d)
    g = nx.Graph()
    g.add_nodes_from(range(k))
    for a in range(k):
        for b in range(a + 1, k):
            g.add_edge(a, b, weight=float(w[a, b] * 1e-9))
    pred, _ = nx.dijkstra_predecessor_and_distance(g, ref)
    parent = np.full(k, -1, dtype=np.int64)
    for v in range(k):
        if v != ref and pred.get(v):
            parent[v] = int(min(pred[v]))
    return ref, parent


def kmeans(
    loc: NDArray, k: int, rng: np.random.Generator, restarts: int = 5, max_iter: int = 100
) -> NDArray[np.int64]:
    """Lloyd's K-means with k-means++ seeding; best of ``restarts`` (lowest inertia).

    Empty clusters are re-seeded with the point farthest from its centroid, so exactly ``k``
    non-empty clusters come back (``k <= n``).

    Parameters
    ----------
    loc : ndarray, shape (n, 2), metres
    k : int

    Returns
    -------
    ndarray, shape (n,), int: labels in ``0..k-1``.
    """
    n = loc.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    best, best_inertia = None, np.inf
    for _ in range(max(1, restarts)):
        c = np.empty((k, 2))
        c[0] = loc[rng.integers(n)]
        d2 = np.sum((loc - c[0]) ** 2, 1)
        for j in range(1, k):
            p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            c[j] = loc[rng.choice(n, p=p)]
            d2 = np.minimum(d2, np.sum((loc - c[j]) ** 2, 1))
        lab = np.zeros(n, dtype=np.int64)
        for it in range(max_iter):
            dist = np.sum((loc[:, None, :] - c[None]) ** 2, -1)  # [n, k]
            new = np.argmin(dist, 1)
            counts = np.bincount(new, minlength=k)
            for j in np.flatnonzero(counts == 0):  # re-seed empty clusters
                far = int(np.argmax(dist[np.arange(n), new]))
                new[far] = j
                dist[far] = 0.0
                counts = np.bincount(new, minlength=k)
            if it > 0 and np.array_equal(new, lab):
                break
            lab = new
            for j in range(k):
                c[j] = loc[lab == j].mean(0)
        inertia = float(np.sum((loc - c[lab]) ** 2))
        if inertia < best_inertia:
            best, best_inertia = lab.copy(), inertia
    return best


# ---- Algorithm 3 with one CRB evaluation per candidate (before the batched evaluation) ----
# (the former netsim/sync/plan_alloc.py code; test_plan_speed checks the batched one against it)
from netsim.sync.channel import SPEED_OF_LIGHT_M_S  # noqa: E402
from netsim.sync.crb import contamination_diag, crb_to_cfo  # noqa: E402
from netsim.sync.plan_alloc import ChannelBank, untrusted_aps  # noqa: E402
from netsim.sync.plan_alloc import master_tree as _master_tree  # noqa: E402
from netsim.sync.plan_clusters import alg1_clusters  # noqa: E402
from netsim.sync.plan_config import max_cluster_distance  # noqa: E402
from netsim.sync.plan_pilots import alg2_pilot_sharing, received_power_matrix, sinr_db  # noqa: E402


def _finite_sum(x: NDArray) -> float:
    return float(np.sum(x[np.isfinite(x)]))


def evaluate_crb(
    node_loc: NDArray,
    slave_nodes: NDArray,
    master_of_slave: NDArray,
    pilot_of_slave: NDArray,
    bank: ChannelBank,
    cfg: SyncPlanConfig,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Full CRB (spec 3, with contamination from co-pilot slaves) of every slave.

    Parameters
    ----------
    node_loc : ndarray, shape (n_node, 2), m
    slave_nodes, master_of_slave, pilot_of_slave : ndarray, shape (S,), int
        Node index of each slave, of its master, and its pilot index. Slaves with a unique
        pilot index see no contamination.
    bank : ChannelBank
    cfg : SyncPlanConfig

    Returns
    -------
    crb_to : ndarray (S,), Ts^2;  crb_cfo : ndarray (S,), (cycles/sample)^2 (inf if singular).
    """
    s = slave_nodes.size
    if s == 0:
        return np.zeros(0), np.zeros(0)
    c_ts = SPEED_OF_LIGHT_M_S * cfg.chip_time_s
    d_des = np.linalg.norm(node_loc[slave_nodes] - node_loc[master_of_slave], axis=1)  # [S]
    exc = bank.taps.excess_delay_chips[slave_nodes, master_of_slave]  # [S, L]
    delays = d_des[:, None] / c_ts + exc  # [S, L]
    n = cfg.pilot_length_chips
    m = max(cfg.n_samples, n + int(np.ceil(cfg.to_range_chips + delays.max())) + 3)
    beta = cfg.path_loss.gain(d_des)
    h = (
        bank.taps.amplitude[slave_nodes, master_of_slave]
        * np.sqrt(cfg.tx_power_w * beta)[:, None]
        * bank.taps.fading[slave_nodes, master_of_slave]
    )  # [S, L]
    same = (pilot_of_slave[:, None] == pilot_of_slave[None, :]) & ~np.eye(s, dtype=bool)  # [S, S]
    n_int = int(same.sum(1).max())
    vs = np.zeros((s, max(n_int, 1)))
    pw = np.zeros((s, max(n_int, 1)))
    if n_int > 0:
        d_int = np.linalg.norm(
            node_loc[master_of_slave][:, None] - node_loc[slave_nodes][None], axis=-1
        )
        # each slave's co-pilot slaves in ascending order, packed to the left
        order = np.argsort(~same, axis=1, kind="stable")[:, :n_int]  # [S, I]
        on = np.take_along_axis(same, order, 1)  # [S, I]
        d_on = np.take_along_axis(d_int, order, 1)  # [S, I] m
        vs = np.where(on, d_on / c_ts, 0.0)
        pw = np.where(on, cfg.tx_power_w * cfg.path_loss.gain(d_on), 0.0)
    pil = bank.pilots[pilot_of_slave % bank.pilots.shape[0]]  # [S, N]
    xi = contamination_diag(pil, vs, cfg.to_range_chips, pw, m) + cfg.noise_power_w  # [S, M]
    res = crb_to_cfo(pil, bank.to_chips[slave_nodes, master_of_slave], delays, h, xi, m)
    return res.to_chips2, res.cfo_norm2


def alg3_allocation(
    loc: NDArray,
    cfg: SyncPlanConfig,
    rng: np.random.Generator,
    bank: ChannelBank | None = None,
    dis_max: float | None = None,
) -> dict | None:
    """Former Algorithm 3 (spec 5.8): for increasing ``K_C`` run Algorithm 1 and, when
    ``2 K_C + max|S_k| <= L_S``, Algorithm 2; keep the allocation with the smallest sum of CRBs
    (``cfg.selection == "crb"``) or the largest eq-56 objective (``"sinr"``).

    Returns
    -------
    dict with ``kc, labels [n], masters [kc], slaves [S], pilot [S], tau, obj, sum_crb,
    crb_to [S], crb_cfo [S], sinr_db [S], dsatur_overhead, untrusted`` (APs behind a link
    below ``cfg.trust_sinr_db``, :func:`untrusted_aps`; candidates with fewer win first); or
    None if no ``K_C`` fits ``L_S``.
    """
    n = loc.shape[0]
    ls = cfg.overhead_budget_slots
    dmax = max_cluster_distance(cfg) if dis_max is None else dis_max
    noise = cfg.n_samples * cfg.noise_power_w
    kc = max(1, cfg.kc_start)
    best = None
    best_key = (n + 1, np.inf)  # (untrusted APs, selection key): trusted chains first
    while 2 * kc < ls and kc <= n:
        kc1, lab, mas = alg1_clusters(loc, dmax, rng, kc, cfg.kmeans_restarts)
        sizes = np.bincount(lab, minlength=kc1) - 1
        if 2 * kc1 + sizes.max() > ls:
            kc = kc1 + 1
            continue
        slaves = np.setdiff1d(np.arange(n), mas)
        clu = lab[slaves]
        pmat = received_power_matrix(loc, slaves, mas[clu], cfg)
        out = alg2_pilot_sharing(clu, pmat, noise, ls - 2 * kc1, cfg, rng)
        assert out is not None
        pil, obj, tau, p0, _ = out
        sinr = sinr_db(pmat, pil, noise) if slaves.size else np.zeros(0)
        if cfg.selection in ("crb", "composite") and (slaves.size or cfg.selection == "composite"):
            if bank is None:
                bank = ChannelBank.draw(n, cfg, ls, rng)
            cto, ccfo = evaluate_crb(loc, slaves, mas[clu], pil, bank, cfg)
            key = _finite_sum(cto) + _finite_sum(ccfo)
            if cfg.selection == "composite":
                key += _master_chain_sum(loc, mas, clu, bank, cfg)
        else:
            cto = ccfo = np.full(slaves.size, np.nan)
            key = -obj
        n_bad = int(untrusted_aps(loc, mas, clu, slaves, pil, cfg).sum())
        if (n_bad, key) < best_key or best is None:
            best_key = (n_bad, key)
            best = dict(
                kc=kc1,
                labels=lab,
                masters=mas,
                slaves=slaves,
                pilot=pil,
                tau=tau,
                obj=obj,
                sum_crb=float(key) if cfg.selection != "sinr" else float("nan"),
                crb_to=cto,
                crb_cfo=ccfo,
                sinr_db=sinr,
                dsatur_overhead=2 * kc1 + int(p0.max()) + 1 if p0.size else 2 * kc1,
                untrusted=n_bad,
            )
        kc = kc1 + 1
    return best


def _master_chain_sum(
    loc: NDArray, mas: NDArray, clu_of_slave: NDArray, bank: ChannelBank, cfg: SyncPlanConfig
) -> float:
    """Sum over all APs of the master-chain part of their composite CRB (TO + CFO)."""
    kc = mas.size
    if kc < 2:
        return 0.0
    ref, parent = _master_tree(loc[mas], cfg)
    child = np.flatnonzero(parent >= 0)
    cto, ccfo = evaluate_crb(loc, mas[child], mas[parent[child]], np.arange(child.size), bank, cfg)
    link = np.zeros(kc)
    link[child] = 0.5 * (cto + ccfo)  # two-way exchange: (v_fwd + v_bwd) / 4 ~ v / 2
    comp = np.zeros(kc)
    for k in range(kc):
        v = k
        while parent[v] >= 0:
            comp[k] += link[v]
            v = parent[v]
    n_members = np.bincount(clu_of_slave, minlength=kc) + 1
    return float(np.sum(np.where(np.isfinite(comp), comp, 0.0) * n_members))


# ---- DSatur with numpy bookkeeping (before the plain-Python version) ----
def dsatur_capacity(cluster_of_slave: NDArray, tau: int, nmax: int) -> NDArray[np.int64]:
    """DSatur colouring of the same-cluster conflict graph with ``tau`` colours and at most
    ``nmax`` slaves per colour (spec 5.5); round-robin fallback if it gets stuck.

    Returns pilots (S,) int in ``0..tau-1``.
    """
    s = cluster_of_slave.size
    pilot = np.full(s, -1, dtype=np.int64)
    if s == 0:
        return pilot
    clusters, csize = np.unique(cluster_of_slave, return_counts=True)
    size_of = dict(zip(clusters.tolist(), csize.tolist(), strict=True))
    degree = np.array([size_of[c] - 1 for c in cluster_of_slave.tolist()])
    count = np.zeros(tau, dtype=np.int64)
    used: dict[int, set[int]] = {int(c): set() for c in clusters}
    for _ in range(s):
        unc = np.flatnonzero(pilot < 0)
        sat = np.array([len(used[int(cluster_of_slave[v])]) for v in unc])
        key = np.lexsort((unc, -degree[unc], -sat))
        v = int(unc[key[0]])
        c = int(cluster_of_slave[v])
        allowed = [p for p in range(tau) if p not in used[c] and count[p] < nmax]
        if not allowed:
            return _round_robin(cluster_of_slave, tau)
        p = min(allowed, key=lambda q: (count[q], q))
        pilot[v] = p
        count[p] += 1
        used[c].add(p)
    return pilot


def _round_robin(cluster_of_slave: NDArray, tau: int) -> NDArray[np.int64]:
    pilot = np.empty(cluster_of_slave.size, dtype=np.int64)
    nxt = 0
    for c in np.unique(cluster_of_slave):
        for v in np.flatnonzero(cluster_of_slave == c):
            pilot[v] = nxt % tau
            nxt += 1
    return pilot
