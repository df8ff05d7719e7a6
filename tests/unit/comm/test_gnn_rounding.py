"""Test-phase rounding of the pilot head (netsim.comm.power.gnn.conflict_free_colour).

Independent checks: a proper colouring of spec 4.1's conflict graph (no two UEs that share an
AP on one pilot) whenever there are enough pilots; the greedy bound tau_p <= max degree + 1 of
the "reuse" rule; the argmax rule's result when it is already conflict-free; UE-permutation
equivariance; the Fix(tau_p) fallback. No torch needed."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.association import associate
from netsim.comm.power.gnn import (
    _round_pilots,
    conflict_free_colour,
    gnn_pilot_assignment,
    sts_power,
)
from netsim.phy import umi

CFG = umi.ChannelConfig.umi()
NOISE = umi.noise_power_w(CFG)


def _conflicts(assoc: np.ndarray) -> np.ndarray:
    a = assoc.astype(float)
    share = (a.T @ a) > 0  # [K, K]
    np.fill_diagonal(share, False)
    return share


def _drop(rng, n_ap, n_ue, density):
    """Random association with every UE served by >= 1 AP, and a random soft assignment."""
    assoc = rng.random((n_ap, n_ue)) < density
    assoc[rng.integers(n_ap, size=n_ue), np.arange(n_ue)] = True
    logit = 3.0 * rng.standard_normal((n_ue, n_ue))
    x = np.exp(logit) / np.exp(logit).sum(axis=0, keepdims=True)  # [S, K]
    return assoc, x


@pytest.mark.parametrize("seed,n_ap,n_ue,density", [(1, 5, 17, 0.3), (2, 9, 40, 0.15), (3, 3, 11, 0.8)])
@pytest.mark.parametrize("reuse,order", [(False, "confidence"), (True, "confidence"), (True, "saturation")])
def test_rounding_is_a_proper_colouring(seed, n_ap, n_ue, density, reuse, order):
    rng = np.random.default_rng(seed)
    assoc, x = _drop(rng, n_ap, n_ue, density)
    col = conflict_free_colour(x, assoc, reuse=reuse, order=order)
    share = _conflicts(assoc)
    same = col[:, None] == col[None, :]
    assert not (same & share).any()
    assert col.min() >= 0 and col.max() < n_ue
    if reuse:  # greedy colouring bound: at most (max degree + 1) pilots
        assert np.unique(col).size <= share.sum(axis=1).max() + 1


def test_reuse_needs_no_more_pilots_and_free_keeps_proper_argmax():
    rng = np.random.default_rng(7)
    assoc, x = _drop(rng, 6, 30, 0.25)
    t_free = np.unique(conflict_free_colour(x, assoc, reuse=False)).size
    t_reuse = np.unique(conflict_free_colour(x, assoc, reuse=True)).size
    assert t_reuse <= t_free
    # an argmax that is already conflict-free is kept by the conflict_free rule
    assoc1 = np.eye(8, dtype=bool)[:, :8]  # every UE alone at its AP: no conflicts
    assert np.array_equal(conflict_free_colour(x[:8, :8] / x[:8, :8].sum(0), assoc1, reuse=False),
                          np.argmax(x[:8, :8], axis=0))


def test_rounding_is_ue_permutation_equivariant():
    rng = np.random.default_rng(11)
    assoc, x = _drop(rng, 5, 20, 0.3)
    perm = rng.permutation(20)
    for rule in ("argmax", "conflict_free", "reuse", "dsatur"):
        logit = np.log(x)
        _, c0, t0 = _round_pilots(logit, 0, rule, assoc)
        _, c1, t1 = _round_pilots(logit[:, perm], 0, rule, assoc[:, perm])
        assert t0 == t1
        # same partition of the UEs into pilot groups
        same0 = c0[perm][:, None] == c0[perm][None, :]
        same1 = c1[:, None] == c1[None, :]
        assert np.array_equal(same0, same1)


def test_too_few_pilots_fall_back_to_least_conflict():
    rng = np.random.default_rng(5)
    assoc = np.ones((2, 6), dtype=bool)  # a clique of 6 UEs, only 3 pilots
    logit = rng.standard_normal((3, 6))
    x = np.exp(logit) / np.exp(logit).sum(axis=0, keepdims=True)
    col = conflict_free_colour(x, assoc, reuse=True)
    assert np.bincount(col, minlength=3).tolist() == [2, 2, 2]  # least-conflict = balanced
    with pytest.raises(ValueError, match="rounding"):
        _round_pilots(logit, 0, "nearest", assoc)
    with pytest.raises(ValueError, match="association"):
        _round_pilots(logit, 0, "reuse", None)
    with pytest.raises(ValueError, match="order"):
        conflict_free_colour(x, assoc, reuse=True, order="random")


def test_saturation_order_colours_a_bipartite_graph_with_two_pilots():
    """DSatur is exact on bipartite graphs (Brelaz 1979): an even cycle of UEs, consecutive
    UEs sharing one AP, needs 2 pilots whatever the soft assignment says."""
    rng = np.random.default_rng(9)
    k = 10
    assoc = np.zeros((k, k), dtype=bool)  # AP j serves UEs j and j+1 (mod k)
    assoc[np.arange(k), np.arange(k)] = True
    assoc[np.arange(k), (np.arange(k) + 1) % k] = True
    for _ in range(5):
        logit = 2.0 * rng.standard_normal((k, k))
        x = np.exp(logit) / np.exp(logit).sum(axis=0, keepdims=True)
        col = conflict_free_colour(x, assoc, reuse=True, order="saturation")
        assert np.unique(col).size == 2
        assert np.all(col != np.roll(col, -1))


def test_shipped_weights_round_without_conflicts_on_a_real_drop():
    rng = np.random.default_rng(3)
    ap = umi.hex_ap_positions(7, CFG.isd_m)
    ue = umi.drop_users(ap, 42, CFG, rng)
    beta = umi.large_scale_fading(ap, ue, CFG, rng)
    assoc = associate(beta, -10.0)
    share = _conflicts(assoc)
    z = rng.uniform(size=(42, 42))
    arg = gnn_pilot_assignment(None, beta, assoc, CFG.p_pilot_w, NOISE, None, z=z, rounding="argmax")
    reu = gnn_pilot_assignment(None, beta, assoc, CFG.p_pilot_w, NOISE, None, z=z, rounding="dsatur")
    _, sdec = sts_power(None, beta, assoc, CFG.p_pilot_w, NOISE, CFG.p_max_w, None, z=z, rounding="reuse")
    np.testing.assert_array_equal(arg.x_soft, reu.x_soft)  # rounding only: same soft output
    for dec in (reu, sdec):
        same = dec.colour[:, None] == dec.colour[None, :]
        assert not (same & share).any()
        assert dec.tau_p == np.unique(dec.colour).size
    assert reu.tau_p <= arg.tau_p


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scalar_and_array_loops_agree(seed):
    """The bit-set loop (S >= K) and the array loop make the same choices, ties included."""
    from netsim.comm.power.gnn import _colour_numpy, _colour_scalar

    rng = np.random.default_rng(seed)
    assoc, x = _drop(rng, 6, 35, 0.3)
    x = np.round(x, 2) + 1e-9  # many exact ties in x and in the confidences
    share = _conflicts(assoc)
    for reuse, order in ((False, "confidence"), (True, "confidence"), (True, "saturation"), (False, "saturation")):
        np.testing.assert_array_equal(_colour_scalar(x, share, reuse, order),
                                      _colour_numpy(x, share, reuse, order))


@pytest.mark.parametrize("seed,n_ap,n_ue,density", [(11, 7, 60, 0.5), (12, 3, 42, 0.9), (13, 9, 23, 0.15)])
def test_scalar_loop_agrees_on_dense_and_sparse_conflicts(seed, n_ap, n_ue, density):
    """The bit-set loop (heap-ordered DSatur, decided UEs skipped) = the array loop on larger,
    denser and sparser conflict graphs than above, with ties."""
    from netsim.comm.power.gnn import _colour_numpy, _colour_scalar

    rng = np.random.default_rng(seed)
    for rounded in (False, True):
        assoc, x = _drop(rng, n_ap, n_ue, density)
        if rounded:
            x = np.round(x, 1) + 1e-9
        share = _conflicts(assoc)
        for reuse, order in ((False, "confidence"), (True, "confidence"), (True, "saturation"), (False, "saturation")):
            np.testing.assert_array_equal(_colour_scalar(x, share, reuse, order),
                                          _colour_numpy(x, share, reuse, order))


@pytest.mark.parametrize("seed,n_ap,n_ue,n_ps,density", [(51, 8, 70, 70, 0.35), (52, 4, 130, 131, 0.2),
                                                         (53, 5, 20, 300, 0.5)])
def test_bit_sliced_dsatur_on_wide_sets(seed, n_ap, n_ue, n_ps, density):
    """The bit-sliced DSatur loop (gnn._colour_dsatur_bits) = the array loop when the UE sets
    are wider than a machine word (K = 70, 130: Python ints of any width, saturations up to ~60
    need 6 counter planes) and with more than 256 pilots (the nested-list preference path)."""
    from netsim.comm.power.gnn import _colour_numpy, _colour_scalar

    rng = np.random.default_rng(seed)
    assoc = rng.random((n_ap, n_ue)) < density
    assoc[rng.integers(n_ap, size=n_ue), np.arange(n_ue)] = True
    logit = 3.0 * rng.standard_normal((n_ps, n_ue))
    x = np.exp(logit) / np.exp(logit).sum(axis=0, keepdims=True)  # [S, K]
    share = _conflicts(assoc)
    for reuse in (True, False):
        got = _colour_scalar(x, share, reuse, "saturation")
        np.testing.assert_array_equal(got, _colour_numpy(x, share, reuse, "saturation"))
        assert not ((got[:, None] == got[None, :]) & share).any()
