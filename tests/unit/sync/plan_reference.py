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

