"""Synchronization planning, allocation (seed 000 Algorithm 3; spec ``sync.md`` 5.8).

For increasing ``K_C``: Algorithm 1 clusters, Algorithm 2 pilot sharing under the budget
``2 K_C + tau <= L_S``, and the allocation with the smallest sum of CRBs (with common random
channels, :class:`ChannelBank`) is kept. Also the master tree that chains masters to the
reference AP, and the engine entry point :func:`plan_network`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from netsim.sync.channel import SPEED_OF_LIGHT_M_S, LinkTaps, draw_link_taps
from netsim.sync.crb import contamination_diag, crb_to_cfo
from netsim.sync.plan_clusters import alg1_clusters
from netsim.sync.plan_config import (
    SyncPlan,
    SyncPlanConfig,
    max_cluster_distance,
    rx_energy_factor,
)
from netsim.sync.plan_pilots import alg2_pilot_sharing, received_power_matrix, sinr_db

__all__ = [
    "ChannelBank",
    "evaluate_crb",
    "evaluate_crb_batch",
    "untrusted_aps",
    "alg3_allocation",
    "master_tree",
    "plan_network",
]


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
    return evaluate_crb_batch(
        [(slave_nodes, master_of_slave, pilot_of_slave)], node_loc, bank, cfg)[0]


def _crb_inputs(
    node_loc: NDArray,
    slave_nodes: NDArray,
    master_of_slave: NDArray,
    pilot_of_slave: NDArray,
    bank: ChannelBank,
    cfg: SyncPlanConfig,
) -> tuple:
    """Arguments of :func:`~netsim.sync.crb.crb_to_cfo` for one :func:`evaluate_crb` call:
    ``(pilots [S, N], theta1 [S], delays [S, L], taps [S, L], xi [S, M], M)``."""
    s = slave_nodes.size
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
    pil = bank.pilots[pilot_of_slave % bank.pilots.shape[0]]  # [S, N]
    if n_int == 0:
        # no co-pilot slave: contamination_diag of an empty interferer set is zero
        xi = np.full((s, m), 0.0) + cfg.noise_power_w  # [S, M]
    else:
        d_int = np.linalg.norm(
            node_loc[master_of_slave][:, None] - node_loc[slave_nodes][None], axis=-1
        )
        # each slave's co-pilot slaves in ascending order, packed to the left
        order = np.argsort(~same, axis=1, kind="stable")[:, :n_int]  # [S, I]
        on = np.take_along_axis(same, order, 1)  # [S, I]
        d_on = np.take_along_axis(d_int, order, 1)  # [S, I] m
        vs = np.where(on, d_on / c_ts, 0.0)
        pw = np.where(on, cfg.tx_power_w * cfg.path_loss.gain(d_on), 0.0)
        xi = contamination_diag(pil, vs, cfg.to_range_chips, pw, m) + cfg.noise_power_w  # [S, M]
    return pil, bank.to_chips[slave_nodes, master_of_slave], delays, h, xi, m


def evaluate_crb_batch(
    jobs: list[tuple[NDArray, NDArray, NDArray]],
    node_loc: NDArray,
    bank: ChannelBank,
    cfg: SyncPlanConfig,
) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """:func:`evaluate_crb` of several allocations on one channel bank, with one batched
    :func:`~netsim.sync.crb.crb_to_cfo` per window length ``M`` (Algorithm 3 evaluates every
    ``K_C`` candidate; the links of a candidate never interact with another's, so the result of
    each is that of its own call).

    Parameters
    ----------
    jobs : list of (slave_nodes [S], master_of_slave [S], pilot_of_slave [S]) int arrays
    node_loc, bank, cfg : as in :func:`evaluate_crb`

    Returns
    -------
    list of (crb_to [S], crb_cfo [S]), one per job, in order.
    """
    out: list = [None] * len(jobs)
    groups: dict[int, list[tuple[int, tuple]]] = {}
    for q, (sl, ms, pl) in enumerate(jobs):
        if sl.size == 0:
            out[q] = (np.zeros(0), np.zeros(0))
            continue
        args = _crb_inputs(node_loc, sl, ms, pl, bank, cfg)
        groups.setdefault(args[-1], []).append((q, args))
    for m, items in groups.items():
        cat = [np.concatenate([a[k] for _, a in items]) for k in range(5)]
        res = crb_to_cfo(*cat, m, exact_cond=False)  # only the CRBs are used
        lo = 0
        for q, a in items:
            hi = lo + a[0].shape[0]
            out[q] = (res.to_chips2[lo:hi], res.cfo_norm2[lo:hi])
            lo = hi
    return out


def untrusted_aps(
    loc: NDArray,
    masters: NDArray,
    clu_of_slave: NDArray,
    slaves: NDArray,
    pilot_of_slave: NDArray,
    cfg: SyncPlanConfig,
) -> NDArray[np.bool_]:
    """APs of an allocation whose chain to the reference has a link the round will not trust.

    The sync round (:func:`netsim.sync.round.sync_round`) trusts a link when its average-power
    SINR (spec 5.2) is at least ``cfg.trust_sinr_db``, with the noise of its observation
    window ``M_r = N + ceil(2 g + d_max / (c Ts) + 1.5 (L - 1)) + 3`` samples (``g`` =
    ``cfg.trust_guard_chips``; ``1.5 (L - 1)`` bounds the excess delay of the spec-6.2 taps):

    * slave ``i`` -> its master: ``Pmat[i, i] / (sum_{i' co-pilot} Pmat[i, i'] + M_r sigma^2)``;
    * master ``k`` <-> its parent in :func:`master_tree` (dedicated slots, no interference):
      ``Pt beta(d) 2N/3 / (M_r sigma^2)``.

    An AP is untrusted when its own link or any master link up to the reference is below the
    threshold. Co-pilot interferers are all counted (the round drops those whose pilot lands
    after its window, so this is conservative). Geometry only: an estimate can still be
    untrusted for an out-of-range offset (see ``sync.max_cfo_hz``).

    Parameters
    ----------
    loc : ndarray, shape (n, 2), m
        Node positions.
    masters : ndarray, shape (K_C,), int
        Node of each cluster's master.
    clu_of_slave, slaves, pilot_of_slave : ndarray, shape (S,), int
        Cluster, node and pilot of each slave.
    cfg : SyncPlanConfig

    Returns
    -------
    ndarray, shape (n,), bool
        True for an untrusted node; all False when ``cfg.trust_sinr_db`` is None.
    """
    n = loc.shape[0]
    bad = np.zeros(n, dtype=bool)
    if cfg.trust_sinr_db is None or n == 0:
        return bad
    kc = masters.size
    ref, parent = master_tree(loc[masters], cfg)
    child = np.flatnonzero(parent >= 0)  # [C]
    d_m = np.linalg.norm(loc[masters[child]] - loc[masters[parent[child]]], axis=1)  # [C] m
    d_s = np.linalg.norm(loc[slaves] - loc[masters[clu_of_slave]], axis=1)  # [S] m
    d_max = max(float(d_m.max()) if d_m.size else 0.0, float(d_s.max()) if d_s.size else 0.0)
    c_ts = SPEED_OF_LIGHT_M_S * cfg.chip_time_s
    m_r = cfg.pilot_length_chips + math.ceil(
        2.0 * cfg.trust_guard_chips + d_max / c_ts + 1.5 * (cfg.n_taps - 1)) + 3
    noise = m_r * cfg.noise_power_w  # W
    e = cfg.tx_power_w * rx_energy_factor(cfg.pilot_length_chips)
    with np.errstate(divide="ignore"):
        ok_m = 10 * np.log10(e * cfg.path_loss.gain(d_m) / noise) >= cfg.trust_sinr_db  # [C]
        pmat = received_power_matrix(loc, slaves, masters[clu_of_slave], cfg)  # [S, S] W
        ok_s = sinr_db(pmat, pilot_of_slave, noise) >= cfg.trust_sinr_db  # [S]
    link_ok = np.ones(kc, dtype=bool)
    link_ok[child] = ok_m
    chain_ok = np.zeros(kc, dtype=bool)
    for k in range(kc):
        v, good = k, True
        while v >= 0:
            good = good and bool(link_ok[v])
            v = int(parent[v])
        chain_ok[k] = good
    bad[masters] = ~chain_ok
    bad[slaves] = ~(ok_s & chain_ok[clu_of_slave])
    return bad


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

    The CRBs of all candidates are evaluated after the ``K_C`` loop in one batch
    (:func:`evaluate_crb_batch`; they draw nothing from ``rng``, and the channel bank is drawn
    where the first candidate needs it, so the generator's sequence is that of evaluating them
    one by one).

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
    cands: list[dict] = []
    jobs: list[tuple[NDArray, NDArray, NDArray]] = []
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
        cand = dict(
            kc=kc1,
            labels=lab,
            masters=mas,
            slaves=slaves,
            pilot=pil,
            tau=tau,
            obj=obj,
            sinr_db=sinr,
            dsatur_overhead=2 * kc1 + int(p0.max()) + 1 if p0.size else 2 * kc1,
            untrusted=int(untrusted_aps(loc, mas, clu, slaves, pil, cfg).sum()),
        )
        if cfg.selection in ("crb", "composite") and (slaves.size or cfg.selection == "composite"):
            if bank is None:
                bank = ChannelBank.draw(n, cfg, ls, rng)
            cand["job"] = len(jobs)
            jobs.append((slaves, mas[clu], pil))
            if cfg.selection == "composite":
                chain = _master_chain_links(loc, mas, cfg)
                if chain is not None:
                    cand["chain"] = (chain, len(jobs))
                    jobs.append(chain[2])
        cand["clu"] = clu
        cands.append(cand)
        kc = kc1 + 1
    crbs = evaluate_crb_batch(jobs, loc, bank, cfg) if jobs else []
    best = None
    best_key = (n + 1, np.inf)  # (untrusted APs, selection key): trusted chains first
    for cand in cands:
        q = cand.pop("job", None)
        chain = cand.pop("chain", None)
        clu = cand.pop("clu")
        if q is not None:
            cto, ccfo = crbs[q]
            key = _finite_sum(cto) + _finite_sum(ccfo)
            if cfg.selection == "composite":
                key += (0.0 if chain is None
                        else _master_chain_total(chain[0], crbs[chain[1]], clu, cand["kc"]))
        else:
            cto = ccfo = np.full(cand["slaves"].size, np.nan)
            key = -cand["obj"]
        n_bad = cand["untrusted"]
        if (n_bad, key) < best_key or best is None:
            best_key = (n_bad, key)
            best = dict(cand, sum_crb=float(key) if cfg.selection != "sinr" else float("nan"),
                        crb_to=cto, crb_cfo=ccfo)
    return best


def _master_chain_links(
    loc: NDArray, mas: NDArray, cfg: SyncPlanConfig
) -> tuple[NDArray, NDArray, tuple[NDArray, NDArray, NDArray]] | None:
    """The master tree's links of an allocation as an :func:`evaluate_crb_batch` job:
    ``(parent [K_C], child [C], (tx nodes, rx nodes, pilots))``, None below two clusters."""
    if mas.size < 2:
        return None
    _, parent = master_tree(loc[mas], cfg)
    child = np.flatnonzero(parent >= 0)
    return parent, child, (mas[child], mas[parent[child]], np.arange(child.size))


def _master_chain_total(
    tree: tuple, crb: tuple[NDArray, NDArray], clu_of_slave: NDArray, kc: int
) -> float:
    """Sum over all APs of the master-chain part of their composite CRB (TO + CFO), from
    the CRBs ``crb = (to [C], cfo [C])`` of the links of :func:`_master_chain_links`."""
    parent, child, _ = tree
    cto, ccfo = crb
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


def _master_chain_sum(
    loc: NDArray, mas: NDArray, clu_of_slave: NDArray, bank: ChannelBank, cfg: SyncPlanConfig
) -> float:
    """Sum over all APs of the master-chain part of their composite CRB (TO + CFO)."""
    tree = _master_chain_links(loc, mas, cfg)
    if tree is None:
        return 0.0
    crb = evaluate_crb(loc, *tree[2], bank, cfg)
    return _master_chain_total(tree, crb, clu_of_slave, mas.size)


def master_tree(master_loc: NDArray, cfg: SyncPlanConfig) -> tuple[int, NDArray[np.int64]]:
    """Reference cluster and parent of each master.

    The reference is the medoid of the masters; parents come from the shortest-path tree
    (Dijkstra on the complete graph of masters) with edge weight ``1e-9 / beta(d)``
    (proportional to the error variance of a master-master link), so each master's composite
    error variance is minimised. Where several shortest paths tie, the parent is the smallest
    cluster index among the equally good predecessors (the rule the former networkx version
    applied to ``dijkstra_predecessor_and_distance``; ``tests/unit/sync/test_plan_speed.py``
    checks the two agree).

    Parameters
    ----------
    master_loc : ndarray, shape (K_C, 2), m
    cfg : SyncPlanConfig

    Returns
    -------
    (reference cluster index, parent [K_C] int with -1 at the reference)
    """
    k = master_loc.shape[0]
    if k == 0:
        return -1, np.zeros(0, dtype=np.int64)
    d = np.linalg.norm(master_loc[:, None] - master_loc[None], axis=-1)  # [K, K] m
    ref = int(np.argmin(d.sum(1)))
    w = 1.0 / cfg.path_loss.gain(d) * 1e-9  # [K, K], edge weights
    iu = np.triu_indices(k, 1)
    w[iu[1], iu[0]] = w[iu]  # one weight per undirected edge, as in an undirected graph
    return ref, _shortest_path_parents(w, ref)


def _shortest_path_parents(w: NDArray, src: int) -> NDArray[np.int64]:
    """Dense Dijkstra from ``src`` on a complete graph with weights ``w`` (K, K), > 0.

    Returns parent (K,) int: the smallest ``u`` with ``dist[u] + w[u, v] == dist[v]``, -1 at
    ``src``. O(K^2) on Python floats (K is the number of clusters, at most ``L_S / 2``).
    """
    k = w.shape[0]
    wl = w.tolist()
    dist = [math.inf] * k
    dist[src] = 0.0
    todo = set(range(k))
    while todo:
        u = min(todo, key=lambda v: (dist[v], v))
        todo.discard(u)
        du, wu = dist[u], wl[u]
        for v in todo:
            nd = du + wu[v]
            if nd < dist[v]:
                dist[v] = nd
    parent = np.full(k, -1, dtype=np.int64)
    for v in range(k):
        if v == src:
            continue
        for u in range(k):
            if u != v and dist[u] + wl[u][v] == dist[v]:
                parent[v] = u
                break
    return parent


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
        predicted_untrusted=int(best.get("untrusted", 0)),
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
