"""Tests of netsim.comm.pilot_assignment (spec 3.4, 4.1-4.2; acceptance checks 5, 7, 8)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from netsim.comm.association import associate
from netsim.comm.csi_mmse import mmse_estimate, pilot_observation
from netsim.comm.net_se import net_sum_se, sinr_true
from netsim.comm.pilot_assignment import (
    ConflictGraph,
    NetSEProxy,
    TabuConfig,
    colour_to_matrix,
    conflict_graph,
    dsatur,
    dsatur_tabu,
    is_proper_colouring,
    phi_matrix,
    relabel,
    tabu_reassign,
)
from netsim.comm.rzf import rzf_beamformers, rzf_regularisation
from netsim.phy.umi import (
    ChannelConfig,
    drop_users,
    hex_ap_positions,
    large_scale_fading,
    noise_power_w,
)

CFG = ChannelConfig.umi()
SIGMA2 = noise_power_w(CFG)


def drop(seed: int, n_ue: int = 42) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ap = hex_ap_positions(7, CFG.isd_m)
    beta = large_scale_fading(ap, drop_users(ap, n_ue, CFG, rng), CFG, rng)
    return beta, associate(beta)


@pytest.mark.parametrize(
    ("graph", "n_colours"),
    [(nx.cycle_graph(5), 3), (nx.cycle_graph(6), 2), (nx.complete_graph(6), 6),
     (nx.complete_bipartite_graph(3, 4), 2), (nx.petersen_graph(), 3), (nx.empty_graph(4), 1)],
)
def test_dsatur_on_known_graphs(graph: nx.Graph, n_colours: int) -> None:
    # DSatur is exact on bipartite graphs, cycles and complete graphs (Brelaz 1979)
    colour = dsatur(graph)
    assert colour.max() + 1 == n_colours
    for u, v in graph.edges:
        assert colour[u] != colour[v]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dsatur_on_network_drops(seed: int) -> None:
    beta, assoc = drop(seed)
    g = conflict_graph(assoc, beta)
    colour = dsatur(g)
    assert is_proper_colouring(colour, assoc)  # check 7
    assert colour.max() + 1 >= assoc.sum(axis=1).max()
    assert np.array_equal(colour, dsatur(conflict_graph(assoc, beta)))  # deterministic
    # networkx's own DSatur (different tie-breaking) lands on a similar pilot length
    nxg = nx.Graph()
    nxg.add_nodes_from(range(g.number_of_nodes()))
    nxg.add_edges_from(g.edges)
    ref = nx.coloring.greedy_color(nxg, strategy="DSATUR")
    assert abs((colour.max() + 1) - (max(ref.values()) + 1)) <= 2


def _dsatur_loop(adj: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Slow, obvious DSatur (spec 4.1 keys as a tuple, saturation as Python sets): oracle."""
    n = adj.shape[0]
    colour = -np.ones(n, dtype=np.int64)
    sat: list[set[int]] = [set() for _ in range(n)]
    for _ in range(n):
        best = max((k for k in range(n) if colour[k] < 0),
                   key=lambda k: (len(sat[k]), int(adj[k].sum()), float(strength[k]), -k))
        used = {int(colour[i]) for i in np.flatnonzero(adj[best]) if colour[i] >= 0}
        c = 0
        while c in used:
            c += 1
        colour[best] = c
        for i in np.flatnonzero(adj[best]):
            sat[i].add(c)
    return colour


@pytest.mark.parametrize("seed", range(6))
def test_array_dsatur_equals_set_loop_on_random_graphs(seed: int) -> None:
    # own random graphs: random sizes and densities, quantised strengths so that every
    # tie-break level (saturation, degree, strength, index) is exercised
    rng = np.random.default_rng(100 + seed)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        adj = np.triu(rng.random((n, n)) < rng.uniform(0.0, 0.9), 1)
        adj = adj | adj.T
        strength = np.round(rng.uniform(0, 3, n)) if seed % 2 else rng.uniform(0, 1, n)
        colour = dsatur(ConflictGraph(adj, strength))
        assert np.array_equal(colour, _dsatur_loop(adj, strength))
        assert not np.any(adj & (colour[:, None] == colour[None, :]))  # proper


def test_conflict_graph_edges_are_the_shared_ap_pairs() -> None:
    beta, assoc = drop(7, n_ue=17)
    g = conflict_graph(assoc, beta)
    ref = {(k, i) for k in range(17) for i in range(k + 1, 17) if np.any(assoc[:, k] & assoc[:, i])}
    assert set(g.edges) == ref and g.number_of_edges() == len(ref)
    assert g.number_of_nodes() == 17
    assert all(set(g.neighbors(k)) == {i for e in ref for i in e if k in e} - {k} for k in range(17))
    # the same colouring whether DSatur gets our graph or the equivalent networkx graph
    nxg = nx.Graph()
    nxg.add_nodes_from(range(17))
    nxg.add_edges_from(g.edges)
    nx.set_node_attributes(nxg, {k: float(v) for k, v in enumerate(beta.sum(axis=0))}, "strength")
    assert np.array_equal(dsatur(g), dsatur(nxg))


def test_threshold_graph_is_subgraph() -> None:
    beta, assoc = drop(3)
    full = conflict_graph(assoc, beta)
    # a shared AP gives w_ki >= beta_mi/beta_mk + beta_mk/beta_mi >= 2, so theta < 2 keeps all
    assert set(conflict_graph(assoc, beta, theta=1.9).edges) == set(full.edges)
    thin = conflict_graph(assoc, beta, theta=10.0)
    assert set(thin.edges) < set(full.edges)
    assert conflict_graph(assoc, beta, theta=1e30).number_of_edges() == 0
    assert dsatur(thin).max() <= dsatur(full).max() + 1


def test_pilot_matrix_representation() -> None:
    colour = np.array([0, 1, 0])  # spec Fig. 2: PS1 -> UE1, UE3; PS2 -> UE2; PS3 unused
    x = colour_to_matrix(colour)
    assert x.shape == (3, 3)
    assert np.array_equal(x.sum(axis=0), np.ones(3))  # (7b) one-hot columns
    phi = phi_matrix(x)
    assert phi.shape[0] == 2 == int((x.sum(axis=1) > 0).sum())  # (6)
    assert np.array_equal(relabel(np.array([4, 4, 1, 7])), [0, 0, 1, 2])


def test_tabu_finds_known_optimum_of_toy_objective() -> None:
    target = np.array([0, 1, 2, 0, 1, 2, 0, 1])

    def objective(colours: np.ndarray) -> np.ndarray:
        return -(colours != target).sum(axis=-1).astype(float)

    start = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    res = tabu_reassign(start, objective, np.random.default_rng(0),
                        TabuConfig(n_candidates=None, max_iter=30))
    assert np.array_equal(res.colour, relabel(target))
    assert np.all(np.diff(res.j_best_trace) >= 0)
    assert res.j_best_trace[-1] == 0.0


def test_proxy_matches_direct_pipeline() -> None:
    beta, assoc = drop(4, n_ue=14)
    proxy = NetSEProxy(beta, assoc, 4, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(1))
    colour = dsatur(conflict_graph(assoc, beta))
    tau_p = colour.max() + 1
    j_direct = []
    for s in range(2):
        y = pilot_observation(proxy.h[s], colour, CFG.p_pilot_w, SIGMA2, noise=proxy.noise[s])
        hhat, err = mmse_estimate(y, beta, colour, CFG.p_pilot_w, SIGMA2, assoc)
        w = rzf_beamformers(hhat, assoc, rzf_regularisation(err, SIGMA2, CFG.p_pilot_w))
        j_direct.append(net_sum_se(sinr_true(proxy.h[s], w, proxy.power, SIGMA2), tau_p, 200))
    assert proxy(colour) == pytest.approx(np.mean(j_direct))
    batch = proxy(np.stack([colour, np.zeros_like(colour)]))
    assert batch[0] == pytest.approx(np.mean(j_direct))


def test_dsatur_tabu_properties() -> None:
    beta, assoc = drop(5, n_ue=21)
    cfg = TabuConfig(max_iter=6, n_candidates=16)
    res = dsatur_tabu(beta, assoc, 2, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                      noise_w=SIGMA2, tau_c=200, rng=np.random.default_rng(2), config=cfg)
    assert np.all(np.diff(res.j_best_trace) >= 0)  # check 8
    assert res.tau_p <= res.info["tau_p_initial"]
    assert res.n_evaluations <= cfg.max_iter * cfg.n_candidates
    assert res.tau_p == len(np.unique(res.colour)) == res.colour.max() + 1
    assert res.j_best_trace[-1] >= res.j_best_trace[0]


def hostile_association(rng: np.random.Generator, m: int, k: int, p_assoc: float):
    """Random gains ``[m, k]`` and association with every user served, AP 0 serving nobody and
    user 0 served by every other AP."""
    beta = 10 ** rng.uniform(-13, -8, size=(m, k))
    assoc = rng.random((m, k)) < p_assoc
    assoc[rng.integers(0, m, size=k), np.arange(k)] = True
    assoc[0] = False
    assoc[1:, 0] = True
    return beta, assoc


@pytest.mark.parametrize(("seed", "n_ant", "p_assoc"), [(0, 1, 0.3), (1, 4, 0.5), (2, 16, 0.4),
                                                        (3, 3, 0.9)])
def test_served_pair_proxy_equals_dense_pipeline_on_random_geometries(seed, n_ant, p_assoc):
    # own geometry: M = 5 APs at random spots, K = 11 users, random association with one AP
    # serving nobody and one user served by every AP; candidates include pilot-length changes
    rng = np.random.default_rng(50 + seed)
    k = 11
    beta, assoc = hostile_association(rng, 5, k, p_assoc)
    proxy = NetSEProxy(beta, assoc, n_ant, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=3, rng=np.random.default_rng(seed))
    colours = rng.integers(0, k, size=(9, k))
    colours[0] = np.arange(k)  # orthogonal pilots
    colours[1] = 0  # everybody on one pilot
    j = proxy(colours)
    ref = proxy.evaluate_dense(colours)
    np.testing.assert_allclose(j, ref, rtol=1e-10)
    assert proxy(colours[2]) == pytest.approx(ref[2], rel=1e-10)


def test_tabu_with_served_pair_proxy_matches_dense_oracle():
    beta, assoc = drop(6, n_ue=21)
    proxy = NetSEProxy(beta, assoc, 4, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(3))
    colour0 = dsatur(conflict_graph(assoc, beta))
    cfg = TabuConfig(max_iter=8, n_candidates=24, n_exact=None)  # every candidate exactly
    fast = tabu_reassign(colour0, proxy, np.random.default_rng(4), cfg)
    slow = tabu_reassign(colour0, proxy.evaluate_dense, np.random.default_rng(4), cfg)
    assert np.array_equal(fast.colour, slow.colour)
    np.testing.assert_allclose(fast.j_best_trace, slow.j_best_trace, rtol=1e-10)


@pytest.mark.parametrize(("seed", "n_ant", "p_assoc"), [(0, 1, 0.3), (1, 4, 0.5), (2, 6, 0.9)])
def test_batched_moves_equal_dense_pipeline(seed, n_ant, p_assoc):
    # own geometry (M = 5, K = 12) with an AP serving nobody and a user served by every AP;
    # the moves include ones that empty a pilot (tau_p shrinks) and ones onto an unused pilot
    # (tau_p grows), and users of every association size
    rng = np.random.default_rng(80 + seed)
    k = 12
    beta, assoc = hostile_association(rng, 5, k, p_assoc)
    proxy = NetSEProxy(beta, assoc, n_ant, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(seed))
    colour = np.array([0, 0, 1, 2, 2, 2, 3, 4, 5, 1, 3, 6])  # pilot 6 held by user 11 alone
    users = np.array([11, 0, 5, 1, 8, 11, 4, 0])
    pilots = np.array([0, 7, 1, 3, 0, 9, 6, 6])  # 7 and 9: unused pilots
    cands = np.repeat(colour[None], users.size, axis=0)
    cands[np.arange(users.size), users] = pilots
    j = proxy.evaluate_moves(colour, users, pilots)
    np.testing.assert_allclose(j, proxy.evaluate_dense(cands), rtol=1e-10)
    np.testing.assert_allclose(j, proxy(cands), rtol=1e-12)
    assert j[0] != j[5]  # the same user on different pilots: different J


@pytest.mark.parametrize(("seed", "n_ant", "p_assoc", "unserved"),
                         [(0, 2, 0.4, False), (1, 5, 0.7, True), (2, 8, 0.95, False)])
def test_same_length_moves_equal_general_path_and_dense(seed, n_ant, p_assoc, unserved):
    # own geometry (M = 6, K = 14): AP 0 serves nobody, user 0 is served by every other AP,
    # optionally user 13 by nobody; an improper colouring (co-pilot users at one AP, so up to
    # 4 rows of a block change) and every move that keeps tau_p, i.e. the incremental path
    rng = np.random.default_rng(300 + seed)
    k = 14
    beta, assoc = hostile_association(rng, 6, k, p_assoc)
    if unserved:
        assoc[:, k - 1] = False
    proxy = NetSEProxy(beta, assoc, n_ant, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(seed))
    colour = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 1, 0])
    users, pilots = np.nonzero(colour[:, None] != np.arange(5)[None, :])  # all 56 moves
    j = proxy.evaluate_moves(colour, users, pilots)
    np.testing.assert_allclose(j, proxy._moves_general(colour, users, pilots), rtol=1e-12)
    cands = np.repeat(colour[None], users.size, axis=0)
    cands[np.arange(users.size), users] = pilots
    np.testing.assert_allclose(j, proxy.evaluate_dense(cands), rtol=1e-10)
    with pytest.raises(ValueError, match="must change"):
        proxy.evaluate_moves(colour, np.array([1]), np.array([0]))


def test_tabu_same_choices_with_incremental_moves():
    # the incremental path (default) and the general one pick the same moves on a seed-004
    # drop: same colouring, J traces equal to rounding
    beta, assoc = drop(8, n_ue=28)
    proxy = NetSEProxy(beta, assoc, 8, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(5))
    colour0 = dsatur(conflict_graph(assoc, beta))
    cfg = TabuConfig(max_iter=10, n_candidates=40, n_exact=None)
    fast = tabu_reassign(colour0, proxy, np.random.default_rng(6), cfg)

    class General:
        def __call__(self, c):
            return proxy(c)

        def evaluate_moves(self, c, u, p):
            return proxy._moves_general(np.asarray(c), np.asarray(u), np.asarray(p))

    slow = tabu_reassign(colour0, General(), np.random.default_rng(6), cfg)
    assert np.array_equal(fast.colour, slow.colour)
    np.testing.assert_allclose(fast.j_trace, slow.j_trace, rtol=1e-12)
