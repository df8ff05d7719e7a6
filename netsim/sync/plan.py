"""Synchronization network planning (seed 000, Sec. IV; spec ``sync.md`` 5).

The CPU computes a :class:`SyncPlan` from the AP positions: clusters with a master each
(Algorithm 1: K-means plus medoid masters, eq 50), the pilot overhead ``tau`` and the
pilot-sharing groups (Algorithm 2: DSatur start plus swap matching, eq 52-59), jointly under
the overhead budget ``2 K_C + tau <= L_S`` (Algorithm 3). The paper's comparison schemes
(Benchmarks 1-3, Schemes 1-4) are exposed as building blocks for the reproduction.

Engine entry point: :func:`plan_network`.

Besides the paper's content, the plan says how masters stay on the network reference:
the *reference AP* is the medoid of the masters, and every other master is linked to it by a
shortest-path tree over the masters (edge weight ``1 / beta(d)``, i.e. proportional to the
link's error variance). In the ``2 K_C`` master slots each non-reference master exchanges a
pilot two-way with its parent (``master_parent``), so offsets chain
slave -> master -> ... -> reference (see :mod:`netsim.sync.round`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from numpy.typing import NDArray
from scipy.cluster.hierarchy import fcluster, linkage

from netsim.sync.channel import (
    DEFAULT_NOISE_POWER_W,
    SPEED_OF_LIGHT_M_S,
    LinkTaps,
    PathLossModel,
    draw_link_taps,
)
from netsim.sync.crb import contamination_diag, crb_to_cfo

__all__ = [
    "SyncPlanConfig",
    "SyncPlan",
    "max_cluster_distance",
    "kmeans",
    "medoid_masters",
    "random_masters",
    "cluster_distances",
    "alg1_clusters",
    "ward_clusters",
    "received_power_matrix",
    "sinr_db",
    "objective",
    "dsatur_capacity",
    "dsatur_min_contamination",
    "swap_matching",
    "improving_swaps",
    "alg2_pilot_sharing",
    "ChannelBank",
    "evaluate_crb",
    "alg3_allocation",
    "master_tree",
    "plan_network",
]


@dataclass(frozen=True)
class SyncPlanConfig:
    """Parameters of the synchronization planning (defaults: spec 6.1).

    Attributes
    ----------
    sinr_req_db : float
        SINR requirement of every slave (dB), 15.
    overhead_budget_slots : int
        ``L_S``: ``2 K_C + tau <= L_S`` (slots). Default 40 (largest value of Fig 8).
    pilot_length_chips : int
        ``N``, 256.
    to_range_chips : float
        ``eta`` used for the CRB (TO ~ U[0, eta]), 3.
    window_margin_chips : int
        ``M = N + window_margin`` samples in the SINR noise term and the CRB window; 26 gives
        the spec's ``M = 282`` for ``N = 256``. Enlarged automatically when a link needs more.
    n_taps : int
        Taps of the random desired-link channels (spec 6.2), 4.
    tx_power_w : float
        ``Pt``, 1 W.
    noise_power_w : float
        ``sigma^2`` per sample, -92 dBm.
    chip_time_s : float
        ``Ts``, 50 ns.
    path_loss : PathLossModel
        eq 60 constants.
    swap_iterations : int
        ``N_2^max`` per tau value, 1000.
    sa_temperature : float
        ``T`` of eq 55 (1/dB), 0.01.
    kc_start : int
        First ``K_C`` of Algorithm 1, 2.
    kmeans_restarts : int
        K-means++ restarts (lowest inertia kept), 5.
    objective : str
        ``"per_slave"`` (default) or ``"all_or_nothing"`` reading of eq 56 (spec 5.6).
    selection : str
        How Algorithm 3 compares candidate K_C: ``"crb"`` (sum over slaves of full CRBs with
        random channels, as the paper), ``"composite"`` (default: sum over all APs of the CRB
        of their estimate relative to the reference, i.e. the slave link plus the two-way
        master links along the master tree; without this the paper's objective prefers as
        many clusters as the budget allows, because masters contribute nothing), or ``"sinr"``
        (the cheaper objective of eq 56).
    """

    sinr_req_db: float = 15.0
    overhead_budget_slots: int = 40
    pilot_length_chips: int = 256
    to_range_chips: float = 3.0
    window_margin_chips: int = 26
    n_taps: int = 4
    tx_power_w: float = 1.0
    noise_power_w: float = DEFAULT_NOISE_POWER_W
    chip_time_s: float = 50e-9
    path_loss: PathLossModel = field(default_factory=PathLossModel)
    swap_iterations: int = 1000
    sa_temperature: float = 0.01
    kc_start: int = 2
    kmeans_restarts: int = 5
    objective: str = "per_slave"
    selection: str = "composite"

    @property
    def n_samples(self) -> int:
        """``M`` (samples in the observation window)."""
        return self.pilot_length_chips + self.window_margin_chips


@dataclass(frozen=True)
class SyncPlan:
    """Result of the synchronization planning (what the engine needs).

    Attributes
    ----------
    cluster_of_ap : ndarray, shape (n_ap,), int
        Cluster index of each AP, -1 for offline APs.
    masters : ndarray, shape (n_clusters,), int
        AP index of each cluster's master.
    pilot_of_ap : ndarray, shape (n_ap,), int
        Pilot index (0..n_pilots-1) of each slave, -1 for masters and offline APs.
    n_pilots : int
        ``tau``.
    reference_ap : int
        AP that defines network time and frequency (a master), -1 if no AP is online.
    overhead_slots : int
        ``2 K_C + tau``.
    master_parent : ndarray, shape (n_clusters,), int
        Cluster whose master each master synchronizes to (two-way exchange); -1 for the
        reference cluster.
    within_budget : bool
        ``overhead_slots <= L_S``; False when no allocation fits and the smallest overhead
        allocation was returned instead.
    planned_sinr_db : ndarray, shape (n_ap,), float
        Average-power SINR (spec 5.2) of each slave on its pilot; NaN for others.
    sum_crb : float
        Sum of CRB_TO + CRB_CFO (normalised units) of the chosen allocation (NaN if not computed).
    """

    cluster_of_ap: NDArray[np.int64]
    masters: NDArray[np.int64]
    pilot_of_ap: NDArray[np.int64]
    n_pilots: int
    reference_ap: int
    overhead_slots: int
    master_parent: NDArray[np.int64]
    within_budget: bool = True
    planned_sinr_db: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    sum_crb: float = float("nan")

    @property
    def n_ap(self) -> int:
        return int(self.cluster_of_ap.size)

    @property
    def n_clusters(self) -> int:
        return int(self.masters.size)

    @property
    def online(self) -> NDArray[np.bool_]:
        return self.cluster_of_ap >= 0

    def is_master(self, ap: int) -> bool:
        """True if ``ap`` is a cluster master."""
        return bool(np.any(self.masters == ap))

    def master_of_ap(self, ap: int) -> int:
        """Master AP of ``ap``'s cluster (itself for a master), -1 if offline."""
        k = int(self.cluster_of_ap[ap])
        return -1 if k < 0 else int(self.masters[k])

    def slaves_of(self, cluster: int) -> NDArray[np.int64]:
        """AP indices of the slaves of ``cluster`` (ascending)."""
        idx = np.flatnonzero(self.cluster_of_ap == cluster)
        return idx[idx != self.masters[cluster]]

    def slaves(self) -> NDArray[np.int64]:
        """All slave APs (ascending)."""
        return np.flatnonzero(self.pilot_of_ap >= 0)

    def master_path(self, cluster: int) -> list[int]:
        """Clusters from ``cluster`` up to the reference cluster (inclusive)."""
        path = [int(cluster)]
        while self.master_parent[path[-1]] >= 0:
            path.append(int(self.master_parent[path[-1]]))
        return path


# --------------------------------------------------------------------------------------------
# SINR requirement -> maximum cluster distance (eq 46-47)
# --------------------------------------------------------------------------------------------


def _rx_energy_factor(n: int) -> float:
    """``tr(D_ideal) / (Pt beta) ~ 2N/3`` (Theorem 1, random-BPSK average)."""
    return 2.0 * n / 3.0


def max_cluster_distance(cfg: SyncPlanConfig, n_samples: int | None = None) -> float:
    """``dis_max`` (m): the largest master-slave distance meeting ``SINR_req`` with no
    contamination and a single path (eq 46-47, spec 5.3)::

        beta_min = M sigma^2 10^(SINR_req/10) / (Pt 2N/3);   dis_max = PL^-1(-10 log10 beta_min)
    """
    m = cfg.n_samples if n_samples is None else n_samples
    beta_min = (
        m
        * cfg.noise_power_w
        * 10 ** (cfg.sinr_req_db / 10)
        / (cfg.tx_power_w * _rx_energy_factor(cfg.pilot_length_chips))
    )
    return cfg.path_loss.distance_for_gain(beta_min)


# --------------------------------------------------------------------------------------------
# Clustering (Algorithm 1 and Benchmarks)
# --------------------------------------------------------------------------------------------


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


def medoid_masters(loc: NDArray, labels: NDArray, k: int) -> NDArray[np.int64]:
    """Master of each cluster by eq 50: ``argmin_{j in C_k} sum_{i in C_k} ||Loc_j - Loc_i||``."""
    masters = np.empty(k, dtype=np.int64)
    for j in range(k):
        mem = np.flatnonzero(labels == j)
        d = np.linalg.norm(loc[mem, None, :] - loc[None, mem, :], axis=-1)
        masters[j] = mem[int(np.argmin(d.sum(1)))]
    return masters


def random_masters(labels: NDArray, k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """A uniformly random master per cluster (Benchmark 2 / Scheme 2)."""
    return np.array([rng.choice(np.flatnonzero(labels == j)) for j in range(k)], dtype=np.int64)


def cluster_distances(loc: NDArray, labels: NDArray, masters: NDArray) -> NDArray[np.float64]:
    """Largest master-member distance of each cluster (m), shape (k,)."""
    d = np.linalg.norm(loc - loc[masters[labels]], axis=1)
    return np.array([d[labels == j].max() for j in range(masters.size)])


def alg1_clusters(
    loc: NDArray, dis_max: float, rng: np.random.Generator, kc_start: int = 2, restarts: int = 5
) -> tuple[int, NDArray[np.int64], NDArray[np.int64]]:
    """Algorithm 1: increase ``K_C`` until every cluster's master-member distance is within
    ``dis_max`` (the pseudo-code's ``min`` read as ``max``, spec 5.4); masters by eq 50.

    Terminates at the latest at ``K_C = n`` (every AP alone).

    Returns
    -------
    (K_C, labels [n] int, masters [K_C] int)
    """
    n = loc.shape[0]
    kc = int(min(max(1, kc_start), n))
    while True:
        lab = kmeans(loc, kc, rng, restarts)
        mas = medoid_masters(loc, lab, kc)
        if kc >= n or cluster_distances(loc, lab, mas).max() <= dis_max:
            return kc, lab, mas
        kc += 1


def ward_clusters(loc: NDArray, k: int) -> NDArray[np.int64]:
    """Benchmark 3: agglomerative clustering, Ward linkage, ``k`` clusters. Labels (n,)."""
    if loc.shape[0] < 2 or k <= 1:
        return np.zeros(loc.shape[0], dtype=np.int64)
    lab = fcluster(linkage(loc, "ward"), k, "maxclust") - 1
    _, lab = np.unique(lab, return_inverse=True)
    return lab.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Pilot sharing (Algorithm 2 and the DSatur variants)
# --------------------------------------------------------------------------------------------


def received_power_matrix(
    node_loc: NDArray, slave_nodes: NDArray, master_of_slave: NDArray, cfg: SyncPlanConfig
) -> NDArray[np.float64]:
    """``Pmat[i, i'] = P_rx(i' -> master(i)) = Pt beta(d) 2N/3`` (spec 5.2), shape (S, S), W."""
    d = np.linalg.norm(
        node_loc[master_of_slave][:, None, :] - node_loc[slave_nodes][None, :, :], axis=-1
    )
    return cfg.tx_power_w * cfg.path_loss.gain(d) * _rx_energy_factor(cfg.pilot_length_chips)


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
    while True:
        stage_p, stage_o = swap_matching(cur, cluster_of_slave, pmat, noise_w, tau, cfg, rng)
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


# --------------------------------------------------------------------------------------------
# Sum of CRBs for an allocation (Algorithm 3 line 6; Figs 7-8)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelBank:
    """Common random numbers for every ordered node pair (spec 5.8): taps, TO, and pilots.

    Attributes
    ----------
    taps : LinkTaps with arrays (n_node, n_node, L)
        ``taps[i, j]``: channel from node i to node j.
    to_chips : ndarray, shape (n_node, n_node)
        ``theta1 ~ U(0, eta)`` of link i -> j.
    pilots : ndarray, shape (n_pilot_max, N)
        Random BPSK pilot ``p`` of this drop.
    """

    taps: LinkTaps
    to_chips: NDArray[np.float64]
    pilots: NDArray[np.float64]

    @staticmethod
    def draw(
        n_node: int, cfg: SyncPlanConfig, n_pilot_max: int, rng: np.random.Generator
    ) -> ChannelBank:
        taps = draw_link_taps((n_node, n_node), cfg.n_taps, rng)
        to = rng.uniform(0.0, cfg.to_range_chips, (n_node, n_node))
        pilots = rng.choice(
            np.array([-1.0, 1.0]), size=(max(n_pilot_max, 1), cfg.pilot_length_chips)
        )
        return ChannelBank(taps, to, pilots)


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
        for i in range(s):
            idx = np.flatnonzero(same[i])
            vs[i, : idx.size] = d_int[i, idx] / c_ts
            pw[i, : idx.size] = cfg.tx_power_w * cfg.path_loss.gain(d_int[i, idx])
    pil = bank.pilots[pilot_of_slave % bank.pilots.shape[0]]  # [S, N]
    xi = contamination_diag(pil, vs, cfg.to_range_chips, pw, m) + cfg.noise_power_w  # [S, M]
    res = crb_to_cfo(pil, bank.to_chips[slave_nodes, master_of_slave], delays, h, xi, m)
    return res.to_chips2, res.cfo_norm2


def _finite_sum(x: NDArray) -> float:
    return float(np.sum(x[np.isfinite(x)]))


def alg3_allocation(
    loc: NDArray,
    cfg: SyncPlanConfig,
    rng: np.random.Generator,
    bank: ChannelBank | None = None,
    dis_max: float | None = None,
) -> dict | None:
    """Algorithm 3 (spec 5.8): for increasing ``K_C`` run Algorithm 1 and, when
    ``2 K_C + max|S_k| <= L_S``, Algorithm 2; keep the allocation with the smallest sum of CRBs
    (``cfg.selection == "crb"``) or the largest eq-56 objective (``"sinr"``).

    Returns
    -------
    dict with ``kc, labels [n], masters [kc], slaves [S], pilot [S], tau, obj, sum_crb,
    crb_to [S], crb_cfo [S], sinr_db [S], dsatur_overhead``; or None if no ``K_C`` fits ``L_S``.
    """
    n = loc.shape[0]
    ls = cfg.overhead_budget_slots
    dmax = max_cluster_distance(cfg) if dis_max is None else dis_max
    noise = cfg.n_samples * cfg.noise_power_w
    kc = max(1, cfg.kc_start)
    best = None
    best_key = np.inf
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
        if key < best_key or best is None:
            best_key = key
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
    ref, parent = master_tree(loc[mas], cfg)
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


# --------------------------------------------------------------------------------------------
# Reference and master tree; engine entry point
# --------------------------------------------------------------------------------------------


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


def plan_network(
    ap_positions_m: NDArray, online: NDArray, cfg: SyncPlanConfig, rng: np.random.Generator
) -> SyncPlan:
    """Run Algorithm 3 on the online APs and return the engine's :class:`SyncPlan`.

    Parameters
    ----------
    ap_positions_m : ndarray, shape (n_ap, 2), float, metres
    online : ndarray, shape (n_ap,), bool
    cfg : SyncPlanConfig
    rng : numpy.random.Generator
        K-means seeds, swap proposals and the random channels of the CRB selection.

    Returns
    -------
    SyncPlan (indices refer to the full AP list; offline APs get -1).

    Notes
    -----
    When no ``K_C`` fits the budget ``L_S`` (many APs, small budget), the allocation with the
    smallest overhead ``2 K_C + max|S_k|`` over the Algorithm-1 clusterings is returned with
    ``within_budget = False`` (DSatur plus swap matching at ``tau = max|S_k|``).

    Raises
    ------
    ValueError
        If no AP is online or the shapes disagree.
    """
    pos = np.asarray(ap_positions_m, dtype=float)
    on = np.asarray(online, dtype=bool)
    if pos.ndim != 2 or pos.shape[1] != 2 or on.shape != (pos.shape[0],):
        raise ValueError("ap_positions_m must be (n_ap, 2) and online (n_ap,)")
    idx = np.flatnonzero(on)
    n_ap = pos.shape[0]
    if idx.size == 0:
        raise ValueError("plan_network: no AP is online")
    loc = pos[idx]
    n = idx.size
    within = True
    if n == 1:
        best = dict(
            kc=1,
            labels=np.zeros(1, np.int64),
            masters=np.zeros(1, np.int64),
            slaves=np.zeros(0, np.int64),
            pilot=np.zeros(0, np.int64),
            tau=0,
            sum_crb=0.0,
            sinr_db=np.zeros(0),
        )
    else:
        best = alg3_allocation(loc, cfg, rng)
        if best is None:
            within = False
            best = _smallest_overhead(loc, cfg, rng)
    cluster = np.full(n_ap, -1, dtype=np.int64)
    cluster[idx] = best["labels"]
    masters = idx[best["masters"]]
    pilot = np.full(n_ap, -1, dtype=np.int64)
    pilot[idx[best["slaves"]]] = best["pilot"]
    sinr = np.full(n_ap, np.nan)
    sinr[idx[best["slaves"]]] = best["sinr_db"]
    ref_c, parent = master_tree(pos[masters], cfg)
    tau = int(best["tau"])
    kc = int(best["kc"])
    return SyncPlan(
        cluster_of_ap=cluster,
        masters=masters,
        pilot_of_ap=pilot,
        n_pilots=tau,
        reference_ap=int(masters[ref_c]),
        overhead_slots=2 * kc + tau,
        master_parent=parent,
        within_budget=within and 2 * kc + tau <= cfg.overhead_budget_slots,
        planned_sinr_db=sinr,
        sum_crb=float(best.get("sum_crb", float("nan"))),
    )


def _smallest_overhead(loc: NDArray, cfg: SyncPlanConfig, rng: np.random.Generator) -> dict:
    n = loc.shape[0]
    dmax = max_cluster_distance(cfg)
    noise = cfg.n_samples * cfg.noise_power_w
    cands = []
    kc = max(1, cfg.kc_start)
    while kc <= n:
        kc1, lab, mas = alg1_clusters(loc, dmax, rng, kc, cfg.kmeans_restarts)
        ov = 2 * kc1 + int((np.bincount(lab, minlength=kc1) - 1).max())
        cands.append((ov, kc1, lab, mas))
        if cands and ov > min(c[0] for c in cands) + 10:
            break
        kc = kc1 + 1
    ov, kc1, lab, mas = min(cands, key=lambda c: (c[0], c[1]))
    slaves = np.setdiff1d(np.arange(n), mas)
    clu = lab[slaves]
    pmat = received_power_matrix(loc, slaves, mas[clu], cfg)
    pil, obj, tau, _, _ = alg2_pilot_sharing(clu, pmat, noise, ov - 2 * kc1, cfg, rng)
    sinr = sinr_db(pmat, pil, noise) if slaves.size else np.zeros(0)
    return dict(
        kc=kc1,
        labels=lab,
        masters=mas,
        slaves=slaves,
        pilot=pil,
        tau=tau,
        sum_crb=float("nan"),
        sinr_db=sinr,
    )
