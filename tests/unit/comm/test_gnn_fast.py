"""Fast single-graph numpy path (netsim.comm.power.gnn_fast) against the shared reference
layer arithmetic (netsim.comm.power.gnn_layers, which torch is checked against): random
weights with non-trivial batch norm, random off-grid drops, several sizes, both attention
modes, the Fix(tau_p) graph, float64 to 1e-10 and float32 to 1e-3."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.power.gnn import gnn_pilot_assignment, gnn_power, sts_power
from netsim.comm.power.gnn_layers import (
    NumpyOps,
    lsf_features,
    power_activation,
    power_forward,
    ssf_features,
    sts_forward,
)

from .test_gnn import NOISE, P_MAX, P_U, ghat_of, random_drop, random_weights

OPS = NumpyOps()


def _reference_power(w, ghat, assoc, p_max):
    snr = float(np.max(p_max)) / NOISE
    m_idx, k_idx = np.nonzero(assoc)
    g = ghat[m_idx, k_idx, :][None]
    f0 = ssf_features(OPS, g.real, g.imag, assoc[m_idx, :][None].astype(float), snr)
    an_k = np.eye(assoc.shape[1])[k_idx][None]
    logit = power_forward(OPS, w.params["power"], w.archs["power"], f0, an_k, np.ones((1, m_idx.size)))[0]
    dense = np.zeros((1,) + assoc.shape)
    dense[0, m_idx, k_idx] = logit
    return power_activation(OPS, dense, assoc[None].astype(float), p_max[None])[0]


def _reference_sts(w, model, beta, assoc, z):
    d0 = lsf_features(OPS, beta[None], assoc[None].astype(float), P_U / NOISE)
    return sts_forward(OPS, w.params[model], w.archs[model], d0, z[None, :, :, None])


@pytest.mark.parametrize("seed,n_ap,n_ue,attention,n_ps",
                         [(1, 4, 7, True, 0), (2, 3, 9, False, 0), (3, 6, 5, True, 3),
                          (4, 1, 4, True, 0), (5, 5, 2, False, 0)])
def test_fast_path_matches_reference(seed, n_ap, n_ue, attention, n_ps):
    rng = np.random.default_rng(seed)
    dts, sts = random_weights(rng, attention=attention, n_ps=n_ps)
    for _ in range(3):
        beta, assoc, h = random_drop(rng, n_ap, n_ue, int(rng.integers(1, 5)))
        ghat = ghat_of(rng, beta, assoc, h) * rng.uniform(0.1, 10.0)
        p_max = rng.uniform(1.0, 30.0, n_ap)
        z = rng.uniform(0, 1, (n_ps or n_ue, n_ue))
        ref = _reference_power(dts, ghat, assoc, p_max)
        fast = gnn_power(dts, ghat, assoc, NOISE, p_max)
        assert np.max(np.abs(fast - ref)) <= 1e-10 * P_MAX
        f32 = gnn_power(dts, ghat, assoc, NOISE, p_max, dtype=np.float32)
        assert np.max(np.abs(f32 - ref)) <= 1e-3 * P_MAX
        assert np.all(f32.sum(axis=1) <= p_max) and np.all(f32[~assoc] == 0)
        p_ref, x_ref = _reference_sts(sts, "sts", beta, assoc, z)
        power, dec = sts_power(sts, beta, assoc, P_U, NOISE, p_max, None, z=z)
        ref_p = power_activation(OPS, p_ref, assoc[None].astype(float), p_max[None])[0]
        assert np.max(np.abs(power - ref_p)) <= 1e-10 * P_MAX
        assert np.max(np.abs(dec.logits - x_ref[0])) <= 1e-10 * (1 + np.abs(x_ref).max())
        _, x_pil = _reference_sts(dts, "pilot", beta, assoc, z)
        pd = gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, None, z=z)
        assert np.max(np.abs(pd.logits - x_pil[0])) <= 1e-10 * (1 + np.abs(x_pil).max())
        assert np.array_equal(pd.colour, np.unique(np.argmax(x_pil[0], axis=0), return_inverse=True)[1])


def test_plans_are_cached_per_size_and_dtype():
    rng = np.random.default_rng(9)
    dts, _ = random_weights(rng)
    beta, assoc, h = random_drop(rng, 3, 6, 2)
    ghat = ghat_of(rng, beta, assoc, h)
    gnn_power(dts, ghat, assoc, NOISE, P_MAX)
    gnn_power(dts, ghat, assoc, NOISE, P_MAX, dtype=np.float32)
    gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, rng)
    assert sorted(k[0] for k in dts.cache if k != "power_graph") == ["pilot", "power", "power"]
    # the AN graph of the last association is kept (one per frame), and a new one replaces it
    assert dts.cache["power_graph"][1]["m_idx"].size == assoc.sum()
    assoc2 = assoc.copy()
    assoc2[:, 0] = True
    gnn_power(dts, ghat, assoc2, NOISE, P_MAX)
    assert dts.cache["power_graph"][1]["m_idx"].size == assoc2.sum()


def test_subframes_of_one_frame_in_one_batched_pass():
    """T subframes sharing the association: one batched forward pass equals T single ones."""
    rng = np.random.default_rng(12)
    dts, _ = random_weights(rng)
    beta, assoc, _ = random_drop(rng, 4, 9, 3)
    stack = np.stack([ghat_of(rng, beta, assoc, random_drop(rng, 4, 9, 3)[2]) for _ in range(5)])
    batched = gnn_power(dts, stack, assoc, NOISE, P_MAX)  # [5, M, K]
    single = np.stack([gnn_power(dts, g, assoc, NOISE, P_MAX) for g in stack])
    np.testing.assert_allclose(batched, single, rtol=1e-12, atol=1e-18)
    per_sub = gnn_power(dts, stack, np.broadcast_to(assoc, (5,) + assoc.shape).copy(), NOISE, P_MAX)
    np.testing.assert_allclose(per_sub, single, rtol=1e-12, atol=1e-18)


@pytest.mark.parametrize("seed,n_ap,n_ue,n_t", [(21, 7, 30, 4), (22, 2, 1, 3), (23, 3, 2, 2), (24, 9, 13, 1)])
def test_batched_power_pass_matches_reference_on_hostile_graphs(seed, n_ap, n_ue, n_t):
    """Every subframe of a batched pass against the reference layer arithmetic (float64, 1e-10),
    on random off-grid drops with hand-made associations: one UE served by every AP, an AP with
    no AN, one UE only (no INF edge), two UEs (no "other INF" edge), zero estimates."""
    rng = np.random.default_rng(seed)
    dts, _ = random_weights(rng)
    beta, assoc, _ = random_drop(rng, n_ap, n_ue, 2)
    assoc = assoc.copy()
    assoc[:, 0] = True  # UE 0 served by every AP
    if n_ap > 2:
        assoc[-1, :] = False  # an AP that serves nobody
        assoc[-1, 0] = n_ue == 1
    stack = np.stack([ghat_of(rng, beta, assoc, random_drop(rng, n_ap, n_ue, 2)[2]) * rng.uniform(0.01, 100.0)
                      for _ in range(n_t)])
    stack[-1, :, :, -1] = 0.0  # a receiver every AN estimates as zero
    p_max = rng.uniform(1.0, 30.0, n_ap)
    batched = gnn_power(dts, stack, assoc, NOISE, p_max)  # [T, M, K]
    for t in range(n_t):
        ref = _reference_power(dts, stack[t], assoc, p_max)
        assert np.max(np.abs(batched[t] - ref)) <= 1e-10 * P_MAX
    f32 = gnn_power(dts, stack, assoc, NOISE, p_max, dtype=np.float32)
    assert np.max(np.abs(f32 - batched)) <= 1e-3 * P_MAX
    assert np.all(f32.sum(axis=2) <= p_max) and np.all(f32[:, ~assoc] == 0)


def test_workspace_reuse_keeps_results_and_outputs_independent():
    """The forward pass keeps scratch arrays with the graph: passes of other sizes in between
    change nothing, and a returned result is not overwritten by the next pass."""
    rng = np.random.default_rng(31)
    dts, _ = random_weights(rng)
    beta, assoc, _ = random_drop(rng, 5, 11, 3)
    stack = np.stack([ghat_of(rng, beta, assoc, random_drop(rng, 5, 11, 3)[2]) for _ in range(3)])
    for dtype in (np.float64, np.float32):
        first = gnn_power(dts, stack, assoc, NOISE, P_MAX, dtype=dtype)
        keep = first.copy()
        one = gnn_power(dts, stack[1], assoc, NOISE, P_MAX, dtype=dtype)
        two = gnn_power(dts, stack[:2], assoc, NOISE, P_MAX, dtype=dtype)
        again = gnn_power(dts, stack, assoc, NOISE, P_MAX, dtype=dtype)
        np.testing.assert_array_equal(first, keep)
        np.testing.assert_array_equal(again, first)
        np.testing.assert_array_equal(one, gnn_power(dts, stack[1], assoc, NOISE, P_MAX, dtype=dtype))
        np.testing.assert_allclose(two, first[:2], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-9 * P_MAX)


def test_batched_activation_equals_the_per_subframe_one():
    """power_activation_fast on [T, A] logits and [T, M] budgets = T calls on [A] (bitwise: the
    per-AP sums are the same sequential bincount)."""
    from netsim.comm.power.gnn_fast import power_activation_fast

    rng = np.random.default_rng(41)
    assoc = rng.random((6, 9)) < 0.4
    assoc[0] = False
    m_idx, k_idx = np.nonzero(assoc)
    logit = rng.normal(0.0, 4.0, (5, m_idx.size))
    p_max = rng.uniform(0.5, 20.0, (5, 6))
    out = power_activation_fast(logit, m_idx, k_idx, assoc.shape, p_max)
    for t in range(5):
        np.testing.assert_array_equal(out[t], power_activation_fast(logit[t], m_idx, k_idx, assoc.shape, p_max[t]))
    assert np.all(out.sum(axis=2) <= p_max) and np.all(out[:, ~assoc] == 0)


def test_pickled_weights_drop_the_cache_and_compute_the_same():
    """Plans and workspaces (views into their own buffers) are not pickled: a pickled / deep-copied
    GNNWeights rebuilds them and gives bit-identical decisions."""
    import copy
    import pickle

    rng = np.random.default_rng(61)
    dts, _ = random_weights(rng)
    beta, assoc, h = random_drop(rng, 4, 9, 3)
    ghat, ghat2 = ghat_of(rng, beta, assoc, h), ghat_of(rng, beta, assoc, random_drop(rng, 4, 9, 3)[2])
    z = rng.uniform(0, 1, (9, 9))
    for dtype in (np.float64, np.float32):
        gnn_power(dts, ghat, assoc, NOISE, P_MAX, dtype=dtype)  # the workspace holds this pass
        others = (pickle.loads(pickle.dumps(dts)), copy.deepcopy(dts))
        p0 = gnn_power(dts, ghat2, assoc, NOISE, P_MAX, dtype=dtype)
        x0 = gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, None, z=z, dtype=dtype).logits
        for other in others:
            assert other.cache == {} and dts.cache
            np.testing.assert_array_equal(gnn_power(other, ghat2, assoc, NOISE, P_MAX, dtype=dtype), p0)
            np.testing.assert_array_equal(gnn_pilot_assignment(other, beta, assoc, P_U, NOISE, None, z=z,
                                                               dtype=dtype).logits, x0)


@pytest.mark.parametrize("seed,n_ap,n_ue,attention,n_ps", [(71, 1, 1, True, 0), (72, 2, 1, False, 0),
                                                            (73, 3, 3, True, 1), (74, 7, 42, True, 0)])
def test_pilot_head_pass_on_edge_sizes(seed, n_ap, n_ue, attention, n_ps):
    """The pilot-head-only pass (gnn_fast.pilot_head_fast) = the reference layers' pilot logits
    (float64 1e-10, float32 1e-5) for one UE, one pilot (Fix(tau_p) = 1) and the paper's size."""
    rng = np.random.default_rng(seed)
    dts, _ = random_weights(rng, attention=attention, n_ps=n_ps)
    beta, assoc, _ = random_drop(rng, n_ap, n_ue, 2)
    z = rng.uniform(0, 1, (n_ps or n_ue, n_ue))
    _, x_ref = _reference_sts(dts, "pilot", beta, assoc, z)
    scale = 1 + np.abs(x_ref).max()
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-5)):
        pd = gnn_pilot_assignment(dts, beta, assoc, P_U, NOISE, None, z=z, dtype=dtype)
        assert pd.logits.shape == x_ref[0].shape and pd.logits.dtype == np.float64
        assert np.max(np.abs(pd.logits - x_ref[0])) <= tol * scale


def test_weights_named_by_path_are_loaded_once_and_reloaded_when_the_file_changes(tmp_path):
    """resolve_weights (called every subframe by the engine's comm.power: gnn) keeps the loaded
    file while its mtime is unchanged and loads it again after it is rewritten; a missing file
    gets the clear error naming it."""
    import os

    from netsim.comm.power.gnn import GNNWeightsError, resolve_weights, save_gnn_weights

    rng = np.random.default_rng(81)
    dts, _ = random_weights(rng)
    path = tmp_path / "w.npz"
    save_gnn_weights(path, dts)
    first = resolve_weights(str(path), "dts")
    assert resolve_weights(str(path), "dts") is first and resolve_weights(path, "dts") is first
    dts2, _ = random_weights(np.random.default_rng(82))
    save_gnn_weights(path, dts2)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a visibly newer file
    second = resolve_weights(str(path), "dts")
    assert second is not first
    np.testing.assert_array_equal(second.params["power"]["pow.0.Us"], dts2.params["power"]["pow.0.Us"])
    with pytest.raises(GNNWeightsError, match="nope.npz"):
        resolve_weights(str(tmp_path / "nope.npz"), "dts")
