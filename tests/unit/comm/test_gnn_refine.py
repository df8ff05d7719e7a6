"""Greedy J~ refinement of GNN pilots (netsim/comm/power/gnn_refine.py).

The independent reference is :func:`netsim.comm.pilot_screen.screen_dense` (the full-grid J~
of the tabu pre-screen, written separately): the per-group evaluation must give the same J~
for whole assignments, and the refinement's best move must be the brute-force best single
move over every (user, pilot) pair that screen_dense scores.
"""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.pilot_screen import screen_dense
from netsim.comm.power.gnn import PilotDecision
from netsim.comm.power.gnn_refine import (
    PilotRefineConfig,
    _Model,
    _step,
    net_se_tilde,
    refine_decision,
    refine_pilots,
)

P_U, P_MAX, S2, TAU_C = 0.1, 10.0, 1e-13, 200


def _drop(rng, n_ap, n_ue):
    """Stranger geometry: random APs/UEs in a 600 m square, 3.5-law path loss + 8 dB shadowing,
    each UE served by its best AP and by APs within 12 dB of it."""
    ap = rng.uniform(0, 600, (n_ap, 2))
    ue = rng.uniform(0, 600, (n_ue, 2))
    d = np.maximum(np.linalg.norm(ap[:, None] - ue[None], axis=-1), 10.0)  # [M, K] m
    beta = 10 ** ((-30.5 - 35 * np.log10(d) + rng.normal(0, 8, d.shape)) / 10)  # [M, K]
    assoc = beta >= beta.max(axis=0, keepdims=True) * 10 ** (-1.2)
    return beta, assoc


def _power(assoc):
    a = assoc.astype(float)
    return np.where(assoc, P_MAX / np.maximum(a.sum(1, keepdims=True), 1), 0.0)


def _brute(beta, assoc, colour, n_ant, new_pilots):
    tau = int(colour.max()) + 1
    top = tau + 1 if new_pilots else tau
    us = np.repeat(np.arange(colour.size), top)
    ps = np.tile(np.arange(top), colour.size)
    keep = ps != colour[us]
    if new_pilots:  # a lone user "moving" to a new pilot is the same assignment
        alone = np.bincount(colour)[colour[us]] == 1
        keep &= ~(alone & (ps == tau))
    us, ps = us[keep], ps[keep]
    j = screen_dense(beta, assoc, _power(assoc), n_ant, colour, us, ps, p_pilot_w=P_U, noise_w=S2,
                     tau_c=TAU_C)
    return j, us, ps


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_net_se_tilde_equals_screen_dense(seed):
    rng = np.random.default_rng(seed)
    beta, assoc = _drop(rng, 5, 17)
    colour = rng.integers(0, 6, 17) * 3 + 7  # arbitrary labels with gaps
    c = np.unique(colour, return_inverse=True)[1]
    ref = screen_dense(beta, assoc, _power(assoc), 4, c, np.array([0]), np.array([c[0]]),
                       p_pilot_w=P_U, noise_w=S2, tau_c=TAU_C)[0]
    got = net_se_tilde(beta, assoc, colour, 4, p_pilot_w=P_U, p_max_w=P_MAX, noise_w=S2, tau_c=TAU_C)
    assert got == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("seed,new_pilots", [(4, True), (5, False), (6, True), (7, False)])
def test_best_move_is_the_brute_force_best(seed, new_pilots):
    rng = np.random.default_rng(seed)
    n_ue = int(rng.integers(9, 20))
    beta, assoc = _drop(rng, int(rng.integers(3, 7)), n_ue)
    colour = np.unique(rng.integers(0, 7, n_ue), return_inverse=True)[1]
    if seed % 2 == 0:  # make sure a lone user exists (its moves shrink tau_p)
        colour[0] = colour.max() + 1
    n_ant = int(rng.integers(1, 9))
    model = _Model(beta, assoc, n_ant, P_U, P_MAX, S2)
    j_now, best, u, s = _step(model, colour, int(colour.max()) + 1, TAU_C, new_pilots)
    j, us, ps = _brute(beta, assoc, colour, n_ant, new_pilots)
    assert best == pytest.approx(j.max(), rel=1e-10)
    moved = colour.copy()
    moved[u] = s
    assert net_se_tilde(beta, assoc, moved, n_ant, p_pilot_w=P_U, p_max_w=P_MAX, noise_w=S2,
                        tau_c=TAU_C) == pytest.approx(best, rel=1e-10)
    assert j_now == pytest.approx(net_se_tilde(beta, assoc, colour, n_ant, p_pilot_w=P_U, p_max_w=P_MAX,
                                               noise_w=S2, tau_c=TAU_C), rel=1e-12)


@pytest.mark.parametrize("new_pilots", [True, False])
def test_refinement_climbs_to_a_local_optimum(new_pilots):
    rng = np.random.default_rng(11)
    beta, assoc = _drop(rng, 6, 18)
    colour = rng.integers(0, 5, 18)
    kw = dict(p_pilot_w=P_U, p_max_w=P_MAX, noise_w=S2, tau_c=TAU_C)
    out, info = refine_pilots(beta, assoc, colour, 8, config=PilotRefineConfig(200, new_pilots), **kw)
    assert info["moves"] > 0
    assert info["j_end"] > info["j_start"]
    assert info["j_end"] == pytest.approx(net_se_tilde(beta, assoc, out, 8, **kw), rel=1e-10)
    assert np.array_equal(np.unique(out), np.arange(out.max() + 1))  # relabelled
    j, _, _ = _brute(beta, assoc, out, 8, new_pilots)
    assert j.max() <= info["j_end"] * (1 + 1e-9)  # no single move improves any more
    if not new_pilots:
        assert out.max() <= np.unique(colour).size - 1  # tau_p never grows


def test_move_budget_and_zero_moves():
    rng = np.random.default_rng(12)
    beta, assoc = _drop(rng, 4, 12)
    colour = np.array([5, 5, 9, 9, 9, 2, 2, 2, 2, 7, 7, 7])
    kw = dict(p_pilot_w=P_U, p_max_w=P_MAX, noise_w=S2, tau_c=TAU_C)
    out, info = refine_pilots(beta, assoc, colour, 4, config=PilotRefineConfig(max_moves=0), **kw)
    assert info["moves"] == 0
    assert np.array_equal(out, np.unique(colour, return_inverse=True)[1])
    out, info = refine_pilots(beta, assoc, colour, 4, config=PilotRefineConfig(max_moves=2), **kw)
    assert info["moves"] <= 2
    assert np.count_nonzero(out != np.unique(colour, return_inverse=True)[1]) <= 2


def test_decision_wrapper_and_thresholds():
    rng = np.random.default_rng(13)
    beta, assoc = _drop(rng, 5, 14)
    colour = np.zeros(14, dtype=np.int64)  # one pilot for all: new pilots pay off
    dec = PilotDecision(colour, 1, np.ones((14, 14)) / 14, np.zeros((14, 14)))
    kw = dict(p_pilot_w=P_U, p_max_w=P_MAX, noise_w=S2, tau_c=TAU_C)
    assert refine_decision(dec, beta, assoc, 4, config=None, **kw) is dec
    assert refine_decision(dec, beta, assoc, 4, config=PilotRefineConfig(min_n=8), **kw) is dec
    grown = refine_decision(dec, beta, assoc, 8, config=PilotRefineConfig(5, min_n=8), **kw)
    assert grown.tau_p > 1 and grown.tau_p == grown.colour.max() + 1
    assert grown.x_soft is dec.x_soft  # the network's soft output is kept
    kept = refine_decision(dec, beta, assoc, 4, config=PilotRefineConfig(5, new_pilots_min_n=8), **kw)
    assert kept.tau_p == 1  # no new pilots below new_pilots_min_n: nothing to move to


def test_config_validation():
    with pytest.raises(ValueError, match="max_moves"):
        PilotRefineConfig(max_moves=-1)
    with pytest.raises(ValueError, match="rtol"):
        PilotRefineConfig(rtol=-1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        PilotRefineConfig.from_meta({"max_moves": 3, "bogus": 1})
    with pytest.raises(ValueError, match="mapping"):
        PilotRefineConfig.from_meta([3])
    cfg = PilotRefineConfig(7, False, 2, 16)
    assert PilotRefineConfig.from_meta(cfg.to_meta()) == cfg
    assert PilotRefineConfig.from_meta(None) is None
    with pytest.raises(ValueError, match="users"):
        refine_pilots(np.ones((2, 3)), np.ones((2, 3), bool), np.zeros(4, int), 2, p_pilot_w=P_U,
                      p_max_w=P_MAX, noise_w=S2, tau_c=TAU_C)


@pytest.mark.parametrize("seed", [21, 22])
def test_incremental_caches_equal_a_fresh_evaluation(seed):
    # after every move (tau_p kept, grown or shrunk) the cached terms and the best move are
    # those of a search built from scratch on the moved assignment
    from netsim.comm.power.gnn_refine import _Search

    rng = np.random.default_rng(seed)
    beta, assoc = _drop(rng, 5, 16)
    colour = np.unique(rng.integers(0, 6, 16), return_inverse=True)[1]
    colour[3] = colour.max() + 1  # one lone user
    model = _Model(beta, assoc, 6, P_U, P_MAX, S2)
    search = _Search(model, colour.copy(), TAU_C, True)
    for step in range(12):
        if step % 4 == 3:
            u, s = int(rng.integers(16)), search.tau  # a new pilot
        else:
            u = int(rng.integers(16))
            s = int((search.c[u] + 1 + rng.integers(search.tau - 1)) % search.tau)
        search.move(u, s)
        fresh = _Search(model, search.c.copy(), TAU_C, True)
        for name in ("t_cur", "t_minus", "t_plus", "d_cur", "u_cur", "u_minus", "u_alone"):
            got, ref = getattr(search, name), getattr(fresh, name)
            if ref is None:
                assert got is None
                continue
            mask = np.ones(ref.shape, bool)
            if name == "t_plus":  # own-group entries are never read
                mask[np.arange(16), search.c] = False
            np.testing.assert_allclose(got[mask], ref[mask], rtol=1e-12, err_msg=name)
        assert set(search.d_plus) == set(fresh.d_plus)
        for x in fresh.d_plus:
            np.testing.assert_allclose(search.d_plus[x], fresh.d_plus[x], rtol=1e-12)
        assert search.best() == pytest.approx(fresh.best(), rel=1e-12)
