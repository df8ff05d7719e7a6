"""Tests of netsim.comm.pilot_screen (the tabu pre-screen J~) and of the pre-screened tabu."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.association import associate
from netsim.comm.csi_mmse import draw_pilot_noise, mmse_estimate, pilot_observation
from netsim.comm.pilot_assignment import (
    NetSEProxy,
    TabuConfig,
    _prescreen,
    conflict_graph,
    dsatur,
    tabu_reassign,
)
from netsim.comm.pilot_screen import screen_dense, screen_moves
from netsim.phy.umi import (
    ChannelConfig,
    drop_users,
    hex_ap_positions,
    large_scale_fading,
    noise_power_w,
)

CFG = ChannelConfig.umi()
SIGMA2 = noise_power_w(CFG)
KW = dict(p_pilot_w=CFG.p_pilot_w, noise_w=SIGMA2, tau_c=200)


def hostile(seed: int, m: int, k: int, p_assoc: float):
    """Random gains [m, k], a random association with AP 0 serving nobody, user 0 served by
    every other AP and user k-1 by nobody; equal power P_max / |K_m| on the served pairs."""
    rng = np.random.default_rng(seed)
    beta = 10 ** rng.uniform(-13, -8, size=(m, k))
    assoc = rng.random((m, k)) < p_assoc
    assoc[0] = False
    assoc[1:, 0] = True
    assoc[:, k - 1] = False
    load = np.maximum(assoc.sum(axis=1), 1)
    power = np.where(assoc, (CFG.p_max_w / load)[:, None], 0.0)
    return beta, assoc, power


def loop_j_tilde(beta, assoc, power, n_ant, colour) -> float:
    """The module docstring's J~ with plain loops (independent of the vectorised forms)."""
    n_ap, n_ue = beta.shape
    tau = len(set(colour.tolist()))
    t = tau * CFG.p_pilot_w
    psi = np.zeros((n_ap, n_ue))
    for m in range(n_ap):
        for k in range(n_ue):
            psi[m, k] = t * sum(beta[m, i] for i in range(n_ue) if colour[i] == colour[k]) + SIGMA2
    total = 0.0
    for k in range(n_ue):
        amp = {}
        for i in range(n_ue):
            if colour[i] == colour[k]:
                amp[i] = sum(np.sqrt(power[m, i] * n_ant * t) * beta[m, k] / np.sqrt(psi[m, i])
                             for m in range(n_ap) if assoc[m, i])
        resid = 0.0
        for m in range(n_ap):
            err = beta[m, k] - t * beta[m, k] ** 2 / psi[m, k] if assoc[m, k] else beta[m, k]
            resid += power[m].sum() * err
        contam = sum(a**2 for i, a in amp.items() if i != k)
        total += np.log2(1 + amp[k] ** 2 / (contam + resid + SIGMA2))
    return (1 - tau / 200) * total


@pytest.mark.parametrize(("seed", "n_ant", "p_assoc"), [(0, 1, 0.3), (1, 4, 0.6), (2, 9, 0.95)])
def test_screen_equals_loop_formula_and_incremental_equals_dense(seed, n_ant, p_assoc):
    # own geometry (M = 5, K = 9) with an AP serving nobody, a user served by all and one by
    # none; an improper colouring (co-pilot users at one AP); every move, including those that
    # empty a pilot (tau_p shrinks) and those onto an unused pilot (tau_p grows)
    beta, assoc, power = hostile(400 + seed, 5, 9, p_assoc)
    colour = np.array([0, 0, 1, 1, 1, 2, 3, 3, 0])  # pilot 2 held by user 5 alone
    users, pilots = np.nonzero(colour[:, None] != np.arange(6)[None, :])  # pilots 4, 5 unused
    j = screen_moves(beta, assoc, power, n_ant, colour, users, pilots, **KW)
    np.testing.assert_allclose(j, screen_dense(beta, assoc, power, n_ant, colour, users, pilots,
                                               **KW), rtol=1e-12)
    for b in range(0, users.size, 5):
        c = colour.copy()
        c[users[b]] = pilots[b]
        assert j[b] == pytest.approx(loop_j_tilde(beta, assoc, power, n_ant, c), rel=1e-12)
    with pytest.raises(ValueError, match="equal 1-d"):
        screen_moves(beta, assoc, power, n_ant, colour, users, pilots[:-1], **KW)


def test_coherent_amplitude_is_the_mmse_estimators_mean():
    # A[k, i] / sqrt(p_mi) at one AP = E[h_mk^H hhat_mi] / sqrt(E ||hhat_mi||^2)
    # = sqrt(N t) beta_mk / sqrt(psi_mi), checked by Monte-Carlo on the engine's estimator:
    # 1 AP, 3 users, users 0 and 2 share pilot 0, 20000 draws, N = 4
    rng = np.random.default_rng(7)
    n_ant, n_draw = 4, 20000
    beta = np.array([[3e-10, 1e-10, 5e-11]])  # [1, 3]
    assoc = np.ones((1, 3), dtype=bool)
    colour = np.array([0, 1, 0])
    g = (rng.standard_normal((n_draw, 1, 3, n_ant))
         + 1j * rng.standard_normal((n_draw, 1, 3, n_ant))) / np.sqrt(2)
    h = np.sqrt(beta)[..., None] * g  # [D, 1, 3, N]
    noise = draw_pilot_noise((n_draw, 1, 3, n_ant), rng)
    y = pilot_observation(h, colour, CFG.p_pilot_w, SIGMA2, noise=noise)
    hhat, _ = mmse_estimate(y, beta, colour, CFG.p_pilot_w, SIGMA2, assoc)
    t = 2 * CFG.p_pilot_w
    psi0 = t * (beta[0, 0] + beta[0, 2]) + SIGMA2
    norm = np.sqrt(np.mean(np.sum(np.abs(hhat[:, 0, 0]) ** 2, axis=-1)))  # sqrt E||hhat_00||^2
    for k in (0, 2):  # the desired user and its co-pilot user
        mc = np.mean(np.sum(np.conj(h[:, 0, k]) * hhat[:, 0, 0], axis=-1)) / norm
        assert mc.real == pytest.approx(np.sqrt(n_ant * t) * beta[0, k] / np.sqrt(psi0), rel=0.03)
        assert abs(mc.imag) < 0.03 * abs(mc.real)


def seed004_drop(seed: int, n_ap: int, n_ue: int):
    rng = np.random.default_rng(seed)
    ap = hex_ap_positions(n_ap, CFG.isd_m)
    beta = large_scale_fading(ap, drop_users(ap, n_ue, CFG, rng), CFG, rng)
    return beta, associate(beta)


def test_screen_ranks_the_exact_best_move_high():
    # own deployment (4 APs, 20 users, 8 antennas): at 6 random states, 32 random moves each,
    # the exactly best move is among J~'s top 8 at >= 5 states (by chance: 1/4 per state) and
    # the rank correlation of J~ and J is clearly positive
    beta, assoc = seed004_drop(11, 4, 20)
    proxy = NetSEProxy(beta, assoc, 8, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(12))
    rng = np.random.default_rng(13)
    colour = dsatur(conflict_graph(assoc, beta))
    tau = int(colour.max()) + 1
    hits, corr = 0, []
    for _ in range(6):
        users = rng.integers(0, 20, size=32)
        pilots = (colour[users] + rng.integers(1, tau, size=32)) % tau
        j = proxy.evaluate_moves(colour, users, pilots)
        jt = proxy.screen_moves(colour, users, pilots)
        hits += int(np.argmax(j) in np.argsort(-jt)[:8])
        rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
        corr.append(np.corrcoef(rank(j), rank(jt))[0, 1])
        colour = colour.copy()
        colour[users[0]] = pilots[0]  # walk on (a random move)
    assert hits >= 5
    assert np.mean(corr) > 0.5


def test_prescreen_selection_keeps_best_free_moves_and_promising_tabu_ones():
    jt = np.array([5.0, 9.0, 7.0, 7.0, 1.0, 8.0, 6.0])
    tabu = np.array([False, True, False, False, False, False, True])
    # free moves by J~: 5 (8.0), 2 (7.0), 3 (7.0, tie -> lower index first), 0, ...
    assert _prescreen(jt, tabu, 2).tolist() == [1, 2, 5]  # tabu 1 (9.0) above the floor 7.0
    assert _prescreen(jt, tabu, 3).tolist() == [1, 2, 3, 5]
    assert _prescreen(jt, tabu, 5).tolist() == [0, 1, 2, 3, 4, 5, 6]  # floor 1.0: all
    assert _prescreen(jt, np.ones(7, dtype=bool), 2).tolist() == list(range(7))  # no free move
    with pytest.raises(ValueError, match="n_exact"):
        TabuConfig(n_exact=0)


def test_prescreen_off_is_the_full_search_and_screen_works_with_any_objective():
    beta, assoc = seed004_drop(21, 4, 16)
    proxy = NetSEProxy(beta, assoc, 4, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                       noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(22))
    colour0 = dsatur(conflict_graph(assoc, beta))
    full = tabu_reassign(colour0, proxy, np.random.default_rng(23),
                         TabuConfig(max_iter=8, n_candidates=20, n_exact=None))
    wide = tabu_reassign(colour0, proxy, np.random.default_rng(23),
                         TabuConfig(max_iter=8, n_candidates=20, n_exact=20))
    assert np.array_equal(full.colour, wide.colour)
    np.testing.assert_array_equal(full.j_trace, wide.j_trace)
    assert full.info["n_screened"] == wide.info["n_screened"] == 0
    cfg = TabuConfig(max_iter=8, n_candidates=20, n_exact=4)
    fast = tabu_reassign(colour0, proxy, np.random.default_rng(23), cfg)

    class DenseScreened:  # the dense oracle J with the same pre-screen
        def __call__(self, c):
            return proxy.evaluate_dense(c)

        def screen_moves(self, c, u, p):
            return proxy.screen_moves(c, u, p)

    slow = tabu_reassign(colour0, DenseScreened(), np.random.default_rng(23), cfg)
    assert np.array_equal(fast.colour, slow.colour)
    np.testing.assert_allclose(fast.j_trace, slow.j_trace, rtol=1e-10)
    assert np.all(np.diff(fast.j_best_trace) >= 0)
    n_it = fast.j_trace.size - 1
    assert fast.info["n_screened"] == 20 * n_it
    assert n_it * 4 <= fast.n_evaluations <= n_it * (4 + cfg.tabu_length)


def test_prescreened_tabu_close_to_full_search_on_own_drops():
    # own deployment (5 APs, 24 users, 4 antennas), 4 drops: the pre-screened search
    # (8 of 32 candidates exactly) ends within 1 % of the full search's J on average
    ratios = []
    for d in range(4):
        beta, assoc = seed004_drop(40 + d, 5, 24)
        proxy = NetSEProxy(beta, assoc, 4, p_pilot_w=CFG.p_pilot_w, p_max_w=CFG.p_max_w,
                           noise_w=SIGMA2, tau_c=200, n_draws=2, rng=np.random.default_rng(d))
        colour0 = dsatur(conflict_graph(assoc, beta))
        res = [tabu_reassign(colour0, proxy, np.random.default_rng(50 + d),
                             TabuConfig(max_iter=12, n_candidates=32, n_exact=n))
               for n in (None, 8)]
        ratios.append(res[1].j_best_trace[-1] / res[0].j_best_trace[-1])
        assert res[1].n_evaluations < res[0].n_evaluations / 2
    assert np.mean(ratios) > 0.99


@pytest.mark.parametrize("seed", [3, 8])
def test_group_terms_per_row_t_equals_one_t_per_call_and_the_loop_formula(seed):
    # the shared per-group form (tabu pre-screen and GNN pilot refinement): rows of
    # assignments with different tau_p in one call give, bit for bit, the terms of separate
    # calls with one t each; and the groups of a whole assignment sum to the loop formula's J~
    from netsim.comm.pilot_screen import group_terms

    rng = np.random.default_rng(seed)
    beta, assoc, power = hostile(seed, 5, 13, 0.45)
    n_ant = int(rng.integers(1, 9))
    colour = np.unique(rng.integers(0, 5, 13), return_inverse=True)[1]
    tau = int(colour.max()) + 1
    grp = np.full((tau, 13), -1)
    for p in range(tau):
        members = np.nonzero(colour == p)[0]
        grp[p, :members.size] = rng.permutation(members)  # slot order must not matter
    args = (beta.T, assoc.T, power.T, n_ant, power.sum(axis=1))
    t_rows = CFG.p_pilot_w * rng.integers(1, 30, tau)  # [tau] a different t per row
    both = group_terms(*args, grp, t_rows, SIGMA2)  # [tau, G]
    for p in range(tau):
        one = group_terms(*args, grp[p:p + 1], float(t_rows[p]), SIGMA2)
        assert np.array_equal(both[p], one[0])
    assert np.all(both[grp < 0] == 0.0)
    whole = group_terms(*args, grp, tau * CFG.p_pilot_w, SIGMA2).sum()
    assert (1 - tau / 200) * whole == pytest.approx(loop_j_tilde(beta, assoc, power, n_ant, colour), rel=1e-10)
