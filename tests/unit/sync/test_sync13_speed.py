"""Speed paths of the sync round that must not change a bit (issue 10): the Frobenius-bound
shortcut of the CRB's condition check and the per-plan round geometry cache."""

from __future__ import annotations

import copy
import pickle

import numpy as np

from netsim.phy.pilots import bpsk_pilots
from netsim.sync.channel import FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS
from netsim.sync.crb import crb_from_fisher, crb_to_cfo, fisher_matrix
from netsim.sync.plan import SyncPlanConfig, plan_network
from netsim.sync.round import SyncRoundConfig, sync_round


def _fisher_batch(rng):
    """Random Fisher matrices of our own: random SPD ones spanning cond 1..1e14, an exactly
    singular one, a zero row, a non-finite one, and the Fig-6 singular profile (spec check 6)."""
    p = 10
    mats = []
    for log_c in np.linspace(0, 14, 29):
        q, _ = np.linalg.qr(rng.standard_normal((p, p)))
        ev = np.logspace(0, -log_c, p) * 10.0 ** rng.uniform(-20, 5)
        d = np.diag(10.0 ** rng.uniform(-3, 3, p))  # scaling that equilibration removes
        mats.append(d @ (q * ev) @ q.T @ d)
    a = rng.standard_normal((p, p - 1))
    mats.append(a @ a.T)  # rank p-1
    z = mats[3].copy()
    z[4, :] = z[:, 4] = 0.0
    mats.append(z)
    bad = mats[5].copy()
    bad[0, 1] = np.nan
    mats.append(bad)
    s = bpsk_pilots(1, 256, rng)[0]
    mats.append(fisher_matrix(s, 1.1, FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS + 0j, 1.0, 265))
    mats.append(fisher_matrix(s, 1.8, FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS + 0j, 1.0, 265))
    return np.stack(mats)


def test_bounded_condition_check_gives_the_same_crbs_bit_for_bit():
    rng = np.random.default_rng(1301)
    j = _fisher_batch(rng)
    ref = crb_from_fisher(j)
    for shape in [(j.shape[0],), (3, j.shape[0] // 3)]:
        jj = j[: int(np.prod(shape))].reshape(shape + j.shape[-2:])
        r0 = crb_from_fisher(jj)
        r1 = crb_from_fisher(jj, exact_cond=False)
        np.testing.assert_array_equal(r1.to_chips2, r0.to_chips2)
        np.testing.assert_array_equal(r1.cfo_norm2, r0.cfo_norm2)
        np.testing.assert_array_equal(r1.singular, r0.singular)
        # cond is an upper bound where the eigenvalues were skipped, exact elsewhere
        fin = np.isfinite(r0.cond)
        assert np.all(r1.cond[fin] >= r0.cond[fin] * (1 - 1e-9))
        assert np.all(~np.isfinite(r1.cond[~fin]))
    # the batch covers both verdicts, and the near-limit matrices got the exact value
    assert ref.singular.any() and (~ref.singular).any()
    r1 = crb_from_fisher(j, exact_cond=False)
    near = ref.cond > 1e9
    np.testing.assert_array_equal(r1.cond[near], ref.cond[near])
    assert bool(r1.singular[-2]) and not bool(r1.singular[-1])  # Fig 6 at 1.1 and 1.8 chips


def test_bounded_condition_check_on_a_single_exactly_singular_batch():
    """An exactly singular matrix makes the batched inverse fail: the eigenvalue path decides."""
    a = np.ones((4, 4))
    r0, r1 = crb_from_fisher(a), crb_from_fisher(a, exact_cond=False)
    assert bool(r0.singular) and bool(r1.singular)
    assert np.isinf(r1.to_chips2) and np.isinf(r1.cfo_norm2)
    rng = np.random.default_rng(7)
    s = bpsk_pilots(1, 128, rng)[0]
    args = (s, 0.8, np.array([0.0, 1.4, 2.9]), np.array([1.0, 0.4j, -0.2]), 0.3, 140)
    r0, r1 = crb_to_cfo(*args), crb_to_cfo(*args, exact_cond=False)
    assert float(r1.to_chips2) == float(r0.to_chips2)
    assert float(r1.cfo_norm2) == float(r0.cfo_norm2)


def _same_round(a, b):
    for name in ("est_time_offset_s", "est_cfo_hz", "true_time_offset_s", "true_cfo_hz",
                 "crb_time_offset_s2", "crb_cfo_hz2", "valid"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in a.links.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a.links, name), getattr(b.links, name),
                                      err_msg=name)


def test_round_geometry_cache_is_invisible():
    """Rounds on one plan object (cache warm), on a fresh copy (cold), after pickling, and at
    other positions (the cache must be rebuilt) give the same results as cold rounds."""
    rng = np.random.default_rng(1302)
    n = 14
    pos = rng.uniform(0, 90.0, (n, 2))
    on = np.ones(n, bool)
    on[5] = False
    plan = plan_network(pos, on, SyncPlanConfig(overhead_budget_slots=14, swap_iterations=60), rng)
    assert plan.slaves().size > 3
    cfg = SyncRoundConfig(pilot_length_chips=64, max_cfo_hz=2e5)
    for method in ("crb", "ml"):
        for k in range(3):
            x = rng.normal(0, 2e-7, n)
            f = rng.normal(0, 2e4, n)
            p2 = pos + (0.0 if k < 2 else rng.normal(0, 3.0, pos.shape))  # k = 2: moved APs
            seed = int(rng.integers(1 << 30))
            warm = sync_round(plan, p2, x, f, cfg, method, np.random.default_rng(seed))
            cold = sync_round(copy.deepcopy(plan), p2, x, f, cfg, method,
                              np.random.default_rng(seed))
            _same_round(warm, cold)
            thawed = pickle.loads(pickle.dumps(plan))
            again = sync_round(thawed, p2, x, f, cfg, method, np.random.default_rng(seed))
            _same_round(warm, again)
    # the result's link arrays are the round's own (mutating them leaves the next round alone)
    r1 = sync_round(plan, pos, x, f, cfg, "crb", np.random.default_rng(3))
    r1.links.tx_ap[:] = -5
    r2 = sync_round(plan, pos, x, f, cfg, "crb", np.random.default_rng(3))
    assert np.all(r2.links.tx_ap >= 0)


def test_phase_std_bound_is_above_the_exact_conditional_std():
    """The acquisition check's shortcut: ``phase_std_bound >= phase_std_given_rest`` on random
    tracker states of our own (random noise levels, carriers, correlated covariances,
    measurement variances over many decades, inactive tracks, prediction gaps of 0 to 30 s)."""
    from netsim.phy.oscillator import ClockNoise
    from netsim.sync.tracking import ClockTracker, TrackerConfig

    rng = np.random.default_rng(1303)
    checked = 0
    for trial in range(12):
        noise = ClockNoise.from_allan(10 ** rng.uniform(-12, -9), 10 ** rng.uniform(-13, -10))
        cfg = TrackerConfig(noise=noise, carrier_hz=10 ** rng.uniform(9, 10.5))
        n = 9
        trk = ClockTracker(n, cfg, reference=trial % n)
        others = np.array([a for a in range(n) if a != trk.reference])
        t = 0.0
        for _ in range(4):
            t += rng.uniform(0.001, 2.0)
            sd = np.array([10 ** rng.uniform(-10, -7), 10 ** rng.uniform(-1, 2),
                           10 ** rng.uniform(-2, 0.5)])  # s, Hz, rad
            z = rng.normal(0, 1, (others.size, 3)) * sd
            trk.update(others, t, z, np.broadcast_to(sd**2, z.shape))
        # correlated covariances, as a long filter run leaves them
        a = rng.normal(0, 1, (n, 3, 3)) * np.array([0.3, 0.1, 0.2])
        trk.cov[:] = trk.cov + a @ np.swapaxes(a, -1, -2)
        trk.cov[trk.reference] = 0.0
        trk.reset([others[0]])  # one inactive track: inf in both
        for gap in (0.0, 1e-3, 0.5, 30.0):
            exact = trk.phase_std_given_rest(t + gap)
            bound = trk.phase_std_bound(t + gap)
            assert np.all(bound >= exact), (trial, gap)
            assert np.isinf(bound[others[0]]) and bound[trk.reference] == 0.0
            fin = np.isfinite(exact) & (exact > 0)
            # a bound, not a different quantity: within the correlation factor of the exact one
            assert np.all(bound[fin] <= 1e3 * exact[fin])
            checked += int(fin.sum())
    assert checked > 200


def test_contamination_diag_rows_do_not_depend_on_the_batch():
    """The round computes the contamination diagonal only for links with a co-pilot
    interferer: each row must be what the whole batch gives (bit for bit), and a row whose
    interferers all have zero power must be exactly zero."""
    from netsim.sync.crb import contamination_diag

    rng = np.random.default_rng(1304)
    for kind in ("bpsk", "complex"):
        n_link, n_int, n, m = 23, 3, 64, 110
        if kind == "bpsk":
            pil = bpsk_pilots(n_link, n, rng)
        else:
            pil = np.exp(2j * np.pi * rng.uniform(size=(n_link, n)))
        vs = rng.uniform(0.0, 40.0, (n_link, n_int))
        pw = rng.exponential(1e-9, (n_link, n_int))
        pw[rng.uniform(size=pw.shape) < 0.5] = 0.0
        pw[::4] = 0.0  # links without interferers
        for eta in (1.0, 2.5):
            full = contamination_diag(pil, vs, eta, pw, m)
            hit = np.flatnonzero((pw > 0).any(1))
            assert 0 < hit.size < n_link
            sub = contamination_diag(pil[hit], vs[hit], eta, pw[hit], m)
            np.testing.assert_array_equal(sub, full[hit])
            rest = np.setdiff1d(np.arange(n_link), hit)
            assert np.all(full[rest] == 0.0)
            one = contamination_diag(pil[hit[:1]], vs[hit[:1]], eta, pw[hit[:1]], m)
            np.testing.assert_array_equal(one, full[hit[:1]])
