"""Convergence quality of the WMMSE power kernel (issue 10 item 5): the windowed rule + SPG
refinement against a tight-tolerance run of the same sweeps and an independent multi-start
SLSQP optimum; the SPG gradient against finite differences; warm starts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import minimize

from netsim.comm.net_se import sinr_from_equivalent
from netsim.comm.spg import spg_refine
from netsim.comm.surrogate import SurrogateModel, into_budget, wmmse_terms
from netsim.comm.wmmse import WMMSE_CONVERGED, WMMSE_SPEC_RULE, WMMSEConfig, wmmse_power

from .test_wmmse import CFG, HARD_NAMES, SIGMA2, hard_instance, subframe

# tight-tolerance reference run of the spec sweeps (the "converged optimum" of the kernel)
TIGHT = replace(WMMSE_SPEC_RULE, tol=1e-12, max_iter=4000)


def _stranger(seed: int):
    """A geometry of my own: M = 5 APs, K = 9 users, random association and gains spread
    over 30 dB, imperfect CSI with error variance 1-50 % of the gain."""
    rng = np.random.default_rng(seed)
    m, k = 5, 9
    assoc = rng.random((m, k)) < 0.5
    assoc[rng.integers(0, m, size=k), np.arange(k)] = True
    gain = 10 ** rng.uniform(-11, -8, size=(m, k))  # [M, K] (AP m -> UE i)
    ghat = (rng.standard_normal((m, k, k)) + 1j * rng.standard_normal((m, k, k))) / np.sqrt(2)
    ghat *= np.sqrt(gain)[:, None, :]
    ghat[:, np.arange(k), np.arange(k)] = np.sqrt(gain) * 3.0  # beamformers point at own user
    err = gain * rng.uniform(0.01, 0.5, size=(m, k))
    return ghat, err, assoc, 1e-12, float(10 ** rng.uniform(-1, 1))


def _instances():
    out = {}
    for seed in range(8):
        _, _, g, e, a = subframe(seed)
        out[f"n4_s{seed}"] = (g, e, a, SIGMA2, CFG.p_max_w)
    for seed in (5, 10, 11, 12, 13):
        _, _, g, e, a = subframe(seed, n_ant=2)
        out[f"n2_s{seed}"] = (g, e, a, SIGMA2, CFG.p_max_w)
    for name in HARD_NAMES:
        out[name] = hard_instance(name)
    for seed in range(3):
        out[f"stranger{seed}"] = _stranger(100 + seed)
    return out


INSTANCES = _instances()


@pytest.fixture(scope="module")
def tight_rates() -> dict[str, float]:
    return {name: wmmse_power(*inst, TIGHT).objective[-1] for name, inst in INSTANCES.items()}


def test_default_within_half_percent_of_tight_run_on_every_instance(tight_rates) -> None:
    spec_gaps = []
    for name, inst in INSTANCES.items():
        ghat, err, assoc, sigma2, p_max = inst
        res = wmmse_power(*inst)
        obj = res.objective
        assert res.converged, name
        assert np.all(np.diff(obj) >= -1e-9 * np.abs(obj[:-1])), name  # monotone
        assert np.all(res.power_w >= 0) and np.all(res.power_w[~assoc] == 0), name
        assert np.all(res.power_w.sum(axis=1) <= p_max), name  # exactly feasible
        assert obj[-1] >= (1 - 0.005) * tight_rates[name], name
        spec = wmmse_power(*inst, WMMSE_SPEC_RULE)
        spec_gaps.append(1 - spec.objective[-1] / tight_rates[name])
    # the spec's one-sweep rule is what the default replaces: it stops > 0.5 % short somewhere
    # (measured: up to 4 % on s2025_d19_t4), so the bound above is not vacuous
    assert max(spec_gaps) > 0.005


def test_converged_preset_agrees_with_default(tight_rates) -> None:
    for name in ("n4_s4", "stranger0"):
        inst = INSTANCES[name]
        ref = wmmse_power(*inst, WMMSE_CONVERGED)
        res = wmmse_power(*inst)
        assert ref.converged and ref.info["stationarity"] < 1e-6
        assert res.objective[-1] >= (1 - 0.005) * ref.objective[-1]
        assert ref.objective[-1] >= (1 - 0.005) * tight_rates[name]


def _slsqp_multistart(g: np.ndarray, p_max: float, noise: float, starts: int, seed: int) -> float:
    """Best true sum rate [bit/s/Hz] of ``starts`` SLSQP runs on the powers p [M, K] (perfect
    CSI, every AP serves every user): an optimiser that shares no code with the kernel."""
    m, k = g.shape[:2]
    rng = np.random.default_rng(seed)
    scale = p_max / k

    def neg_rate(x):
        return -np.log2(1 + sinr_from_equivalent(g, scale * x.reshape(m, k), noise)).sum()

    cons = [{"type": "ineq", "fun": lambda x, i=i: k - x.reshape(m, k)[i].sum()} for i in range(m)]
    best = -np.inf
    for j in range(starts):
        x0 = np.ones(m * k) if j == 0 else rng.dirichlet(np.ones(k), size=m).ravel() * k
        r = minimize(neg_rate, x0, method="SLSQP", bounds=[(0, k)] * (m * k),
                     constraints=cons, options={"maxiter": 500, "ftol": 1e-12})
        x = np.clip(r.x, 0, None).reshape(m, k)
        x *= np.minimum(1.0, k / np.maximum(x.sum(axis=1), 1e-300))[:, None]  # feasible
        best = max(best, -neg_rate(x.ravel()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_perfect_csi_30db_matches_multistart_slsqp(seed: int) -> None:
    # perfect CSI (err_var = 0, Ghat = G, all pairs associated): Rsur is the true sum rate;
    # M = 3, K = 4, Rayleigh equivalent channels, 30 dB per-AP SNR (p_max |g|^2 / sigma^2)
    rng = np.random.default_rng(1000 + seed)
    m, k = 3, 4
    g = (rng.standard_normal((m, k, k)) + 1j * rng.standard_normal((m, k, k))) / np.sqrt(2)
    g *= np.sqrt(10 ** rng.uniform(-1, 1, size=(m, 1, k)))
    g[:, np.arange(k), np.arange(k)] *= 2.0  # some beamforming gain towards the own user
    p_max, noise = 1000.0, 1.0
    assoc = np.ones((m, k), dtype=bool)
    res = wmmse_power(g, np.zeros((m, k)), assoc, noise, p_max)
    true = np.log2(1 + sinr_from_equivalent(g, res.power_w, noise)).sum()
    assert res.objective[-1] == pytest.approx(true, rel=1e-10)
    ref = _slsqp_multistart(g, p_max, noise, starts=12, seed=seed)
    assert true >= (1 - 0.005) * ref


def test_gradient_matches_finite_differences() -> None:
    ghat, err, assoc, sigma2, p_max = _stranger(7)
    model = SurrogateModel(*wmmse_terms(ghat, err, assoc), sigma2)
    rng = np.random.default_rng(8)
    v = into_budget(rng.uniform(0.1, 1.0, assoc.shape), assoc, np.full(assoc.shape[0], p_max))
    f, s, tt = model.evaluate(v)
    grad = model.gradient(v, s, tt)
    for m, j in zip(*np.nonzero(assoc), strict=True):
        h = 1e-6 * max(v[m, j], 1e-3)
        vp, vm = v.copy(), v.copy()
        vp[m, j] += h
        vm[m, j] -= h
        fd = (model.evaluate(vp)[0] - model.evaluate(vm)[0]) / (2 * h)
        assert grad[m, j] == pytest.approx(fd, rel=1e-5, abs=1e-8 * abs(f) / max(v[m, j], 1e-3))


def test_projection_is_the_euclidean_projection() -> None:
    # into_budget against a brute-force projection (minimise ||y - x||^2 over the set, SLSQP)
    rng = np.random.default_rng(9)
    assoc = rng.random((3, 4)) < 0.7
    p_max = np.array([0.5, 2.0, 1.0])
    for _ in range(5):
        x = rng.normal(0, 1, (3, 4))
        y = into_budget(x, assoc, p_max)
        cons = [{"type": "ineq", "fun": lambda z, i=i: p_max[i] - (z.reshape(3, 4)[i] ** 2).sum()}
                for i in range(3)]
        bounds = [(0, None) if a else (0, 0) for a in assoc.ravel()]
        r = minimize(lambda z, x=x: ((z - x.ravel()) ** 2).sum(), np.zeros(12), method="SLSQP",
                     bounds=bounds, constraints=cons, options={"ftol": 1e-14, "maxiter": 500})
        assert np.allclose(y.ravel(), r.x, atol=1e-6)
        assert np.all((y**2).sum(axis=1) <= p_max)


def _masked_projection(x: np.ndarray, assoc: np.ndarray, p_max: np.ndarray) -> np.ndarray:
    """The row-masked form into_budget replaced (stop 13): gather the rows over budget, scale."""
    ref = np.where(assoc, np.maximum(x, 0.0), 0.0)
    tot = (ref**2).sum(axis=1)
    over = tot > p_max
    ref[over] *= np.sqrt(p_max[over] / tot[over])[:, None]
    still = (ref**2).sum(axis=1) > p_max
    ref[still] *= 1.0 - 4.0 * np.finfo(float).eps
    return ref


def test_projection_all_over_budget_path_equals_the_masked_form() -> None:
    # into_budget scales every row at once when every AP is over its budget; the result must be
    # bit-identical to the row-masked scaling it replaces (and the mixed case still masked)
    rng = np.random.default_rng(21)
    assoc = rng.random((5, 7)) < 0.6
    assoc[:, 0] = True  # every AP serves someone
    for p_max in (np.full(5, 0.05), np.array([0.05, 50.0, 0.05, 50.0, 0.05])):
        x = rng.uniform(0.2, 1.5, (5, 7))
        ref = _masked_projection(x, assoc, p_max)
        over = (np.where(assoc, np.maximum(x, 0.0), 0.0) ** 2).sum(axis=1) > p_max
        y = into_budget(x, assoc, p_max)
        assert np.array_equal(y, ref)
        assert np.all((y**2).sum(axis=1) <= p_max)
        assert over.all() == (p_max.max() < 1.0)  # the first case takes the unmasked path


def test_projection_factor_path_is_bit_identical_to_the_masked_form() -> None:
    # the mixed case (some APs over budget, some not) scales every row by a factor that is 1.0
    # within budget; the bytes must equal the masked scaling (signed zeros included) on random
    # shapes with empty rows, zero budgets, negative entries and magnitudes from 1e-6 to 1e3
    rng = np.random.default_rng(2026)
    n_mixed = 0
    for _ in range(1500):
        n_ap, n_ue = int(rng.integers(1, 30)), int(rng.integers(1, 9))
        assoc = rng.random((n_ap, n_ue)) < rng.uniform(0.1, 1.0)
        x = rng.normal(0.0, 10 ** rng.uniform(-6, 3), (n_ap, n_ue))
        x[rng.integers(n_ap)] = -0.0 if rng.random() < 0.5 else 0.0
        p_max = 10 ** rng.uniform(-6, 2, n_ap)
        p_max[rng.integers(n_ap)] = 0.0 if rng.random() < 0.2 else p_max[0]
        ref = _masked_projection(x, assoc, p_max)
        with np.errstate(all="raise"):  # no division by a zero row's total
            y = into_budget(x, assoc, p_max)
        assert y.tobytes() == ref.tobytes()
        over = (np.where(assoc, np.maximum(x, 0.0), 0.0) ** 2).sum(axis=1) > p_max
        n_mixed += bool(over.any() and not over.all())
    assert n_mixed > 300  # the factor path was exercised


def test_spg_refine_stationary_point_and_monotone() -> None:
    ghat, err, assoc, sigma2, p_max = INSTANCES["n4_s1"]
    model = SurrogateModel(*wmmse_terms(ghat, err, assoc), sigma2)
    pm = np.full(assoc.shape[0], p_max)
    v0 = into_budget(np.where(assoc, 0.3, 0.0), assoc, pm)
    res = spg_refine(model, v0, assoc, pm, window=20, window_tol=1e-10, max_iter=3000)
    assert np.all(np.diff(res.objective) >= 0)
    assert res.stationarity < 1e-7
    assert np.all((res.v**2).sum(axis=1) <= pm)
    # from a poor start the refinement alone climbs to the value of the tight sweeps run
    tight = wmmse_power(ghat, err, assoc, sigma2, p_max, TIGHT).objective[-1]
    assert res.objective[-1] >= (1 - 1e-3) * tight


def test_warm_start_reuses_the_previous_solution() -> None:
    inst = INSTANCES["s2025_d19_t4"]
    ghat, err, assoc, sigma2, p_max = inst
    cold = wmmse_power(*inst)
    # same subframe again from its own solution: (nearly) nothing left to do, same rate
    again = wmmse_power(*inst, WMMSEConfig(init="given"), v0=np.sqrt(cold.power_w))
    assert again.info["warm_start"]
    assert again.objective[0] == pytest.approx(cold.objective[-1], rel=1e-12)
    assert again.objective[-1] >= cold.objective[-1]
    assert again.iterations < cold.iterations
    # a perturbed channel (1 % of the entries' magnitude): warm start stays within 0.5 % of
    # the tight run on the new channel, in fewer iterations than a cold start
    rng = np.random.default_rng(11)
    noise = rng.standard_normal(ghat.shape) + 1j * rng.standard_normal(ghat.shape)
    ghat2 = ghat + 0.01 * np.abs(ghat) * noise
    inst2 = (ghat2, err, assoc, sigma2, p_max)
    warm = wmmse_power(*inst2, WMMSEConfig(init="given"), v0=np.sqrt(cold.power_w))
    tight = wmmse_power(*inst2, TIGHT)
    assert warm.objective[-1] >= (1 - 0.005) * tight.objective[-1]
    assert np.all(warm.power_w.sum(axis=1) <= p_max) and np.all(warm.power_w[~assoc] == 0)


def test_useless_warm_start_falls_back_to_equal_power() -> None:
    inst = INSTANCES["n4_s0"]
    res = wmmse_power(*inst, WMMSEConfig(init="given"), v0=np.zeros(inst[2].shape))
    assert not res.info["warm_start"]
    assert res.objective[-1] >= 0.995 * wmmse_power(*inst).objective[-1]


def test_bad_config_is_rejected() -> None:
    inst = INSTANCES["n4_s0"]
    for bad in (WMMSEConfig(stop="never"), WMMSEConfig(refine="bfgs"), WMMSEConfig(window=0)):
        with pytest.raises(ValueError):
            wmmse_power(*inst, bad)


def test_windowed_rule_without_refinement_runs_the_sweeps_longer() -> None:
    inst = INSTANCES["n4_s4"]
    spec = wmmse_power(*inst, WMMSE_SPEC_RULE)
    win = wmmse_power(*inst, WMMSEConfig(refine="none", max_iter=2000, window_tol=1e-6))
    assert win.converged and win.iterations > spec.iterations
    assert win.objective[-1] > spec.objective[-1]
    assert win.info["refine_iterations"] == 0




def test_warm_chain_with_previous_step_stays_within_half_percent() -> None:
    # own chain: a stranger geometry whose channel drifts by 2 % of each entry per subframe
    # (AR(1)-like), each call warm-started from the previous powers and spectral step
    ghat, err, assoc, sigma2, p_max = _stranger(7)
    rng = np.random.default_rng(21)
    cold = wmmse_power(ghat, err, assoc, sigma2, p_max)
    step = cold.info["spg_step"]
    assert 0.0 < step < np.inf
    v = np.sqrt(cold.power_w)
    for _ in range(6):
        noise = rng.standard_normal(ghat.shape) + 1j * rng.standard_normal(ghat.shape)
        ghat = ghat + 0.02 * np.abs(ghat) * noise / np.sqrt(2)
        res = wmmse_power(ghat, err, assoc, sigma2, p_max, WMMSEConfig(init="given"), v0=v,
                          step0=step)
        tight = wmmse_power(ghat, err, assoc, sigma2, p_max, TIGHT).objective[-1]
        assert res.info["warm_start"] and res.converged
        assert res.objective[-1] >= (1 - 0.005) * tight
        assert np.all(res.power_w.sum(axis=1) <= p_max) and np.all(res.power_w[~assoc] == 0)
        v, step = np.sqrt(res.power_w), res.info["spg_step"]
    # a cold call ignores step0: the same result bit for bit
    a = wmmse_power(ghat, err, assoc, sigma2, p_max)
    b = wmmse_power(ghat, err, assoc, sigma2, p_max, step0=1e-30)
    assert np.array_equal(a.power_w, b.power_w)
    with pytest.raises(ValueError, match="window_when_warm"):
        wmmse_power(ghat, err, assoc, sigma2, p_max, WMMSEConfig(window_when_warm=0))


def test_spg_first_step_given_or_not_reaches_the_same_point() -> None:
    ghat, err, assoc, sigma2, p_max = _stranger(8)
    model = SurrogateModel(*wmmse_terms(ghat, err, assoc), sigma2)
    pm = np.full(assoc.shape[0], p_max)
    v0 = into_budget(np.where(assoc, 1e-3, 0.0), assoc, pm)
    ref = spg_refine(model, v0, assoc, pm, window=20, window_tol=1e-10, max_iter=3000)
    for alpha0 in (ref.alpha, 1e-6 * ref.alpha, 1e6 * ref.alpha, float("nan"), -1.0):
        res = spg_refine(model, v0, assoc, pm, window=20, window_tol=1e-10, max_iter=3000,
                         alpha0=alpha0)
        assert res.objective[-1] == pytest.approx(ref.objective[-1], rel=1e-6)
        assert np.all(np.diff(res.objective) >= 0)
