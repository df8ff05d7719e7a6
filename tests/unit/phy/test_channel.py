"""Tests of the near-field LOS channel and the NLOS fading (netsim.phy.channel)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy.channel import (
    angle_from_axis,
    far_field_response,
    jakes_correlation,
    los_channel,
    near_field_response,
    nlos_initial,
    nlos_step,
    path_gain,
    rician_channel,
)
from netsim.phy.geometry import ula_element_positions

# spec/isac.md section 1 defaults: 28 GHz, N = 21, D = 0.5 m, d = D/(N-1).
LAM = 299_792_458.0 / 28e9
N = 21
D = 0.5
SPACING = D / (N - 1)
RAYLEIGH = 2 * D**2 / LAM  # about 46.7 m (spec/isac.md section 1)


def test_rayleigh_distance_matches_spec() -> None:
    assert RAYLEIGH == pytest.approx(46.7, abs=0.05)


def test_near_field_response_is_unit_modulus_and_one_at_centre() -> None:
    c = np.array([1.0, 2.0])
    q = ula_element_positions(c, 0.3, N, SPACING)  # [N, 2]
    a = near_field_response(q, c, np.array([4.0, 7.0]), LAM)
    np.testing.assert_allclose(np.abs(a), 1.0, rtol=1e-12)
    assert a[(N - 1) // 2] == pytest.approx(1.0, abs=1e-12)


def test_near_field_response_matches_loop_oracle() -> None:
    rng = np.random.default_rng(0)
    c = rng.uniform(0, 20, (3, 2))
    ang = rng.uniform(0, np.pi, 3)
    q = ula_element_positions(c, ang, N, SPACING)  # [3, N, 2]
    p = rng.uniform(0, 20, (4, 2))
    a = near_field_response(q[None], c[None], p[:, None, :], LAM)  # [4, 3, N]
    for k in range(4):
        for m in range(3):
            r = np.hypot(*(p[k] - c[m]))
            for n in range(N):
                rn = np.hypot(*(p[k] - q[m, n]))
                assert a[k, m, n] == pytest.approx(np.exp(-2j * np.pi / LAM * (rn - r)), abs=1e-9)


def test_angle_from_axis_known_points() -> None:
    c = np.array([0.0, 0.0])
    axis = np.pi / 2  # array along +y
    pts = np.array([[0.0, 5.0], [3.0, 0.0], [0.0, -2.0], [1.0, 1.0], [-1.0, 1.0]])
    th = angle_from_axis(c, axis, pts)
    np.testing.assert_allclose(th, [0, np.pi / 2, np.pi, np.pi / 4, np.pi / 4], atol=1e-12)


@pytest.mark.parametrize("factor", [10.0, 100.0, 1000.0])
def test_far_field_limit(factor: float) -> None:
    """Beyond the Rayleigh distance the exact response tends to the planar steering vector.

    r_n - r = -delta_n cos(t) + delta_n^2 sin^2(t) / (2 r) + O(delta^3 / r^2), so with
    |delta_n| <= D/2 the phase error is at most pi D^2 sin^2(t) / (4 lambda r) (+3rd order):
    the tolerance shrinks as 1/r.
    """
    rng = np.random.default_rng(int(factor))
    c = np.array([10.0, 0.0])
    axis = 0.4
    q = ula_element_positions(c, axis, N, SPACING)  # [N, 2]
    r = factor * RAYLEIGH
    phis = rng.uniform(0, 2 * np.pi, 50)
    p = c + r * np.stack([np.cos(phis), np.sin(phis)], axis=-1)  # [50, 2]
    a_nf = near_field_response(q[None], c[None], p, LAM)  # [50, N]
    th = angle_from_axis(c, axis, p)  # [50]
    a_ff = far_field_response(N, SPACING, th, LAM)  # [50, N]
    err = np.max(np.abs(a_nf - a_ff), axis=-1)  # [50]
    bound = np.pi * D**2 * np.sin(th) ** 2 / (4 * LAM * r) + 2 * np.pi / LAM * (D / 2) ** 3 / r**2
    assert np.all(err <= bound * 1.001 + 1e-12)
    assert np.max(err) <= np.pi / 8 / factor * 1.001  # pi D^2/(4 lambda d_R) = pi/8 at r = d_R


def test_near_field_differs_from_far_field_inside_rayleigh_distance() -> None:
    """At r = d_R / 10 the second-order term is visible (the model is not trivially planar)."""
    c = np.array([0.0, 0.0])
    q = ula_element_positions(c, 0.0, N, SPACING)
    p = np.array([[0.0, RAYLEIGH / 10]])  # broadside
    err = np.max(np.abs(near_field_response(q[None], c[None], p, LAM) - far_field_response(N, SPACING, np.pi / 2, LAM)))
    assert err > 1.0


@pytest.mark.parametrize("ple", [2.0, 3.5])
def test_path_gain_falls_as_r_to_minus_half_ple(ple: float) -> None:
    r = np.geomspace(1.0, 1000.0, 7)
    beta = path_gain(r, LAM, ple)
    slope = np.polyfit(np.log(r), np.log(np.abs(beta)), 1)[0]
    assert slope == pytest.approx(-ple / 2, abs=1e-12)
    # Friis amplitude lambda / (4 pi r) at ple = 2 (spec/isac.md 2.2 with kappa0 = (lambda/4pi)^2)
    if ple == 2.0:
        np.testing.assert_allclose(np.abs(beta), LAM / (4 * np.pi * r), rtol=1e-12)
    np.testing.assert_allclose(np.angle(beta * np.exp(2j * np.pi * r / LAM)), 0.0, atol=1e-9)


def test_path_gain_reference_amplitude_option() -> None:
    g0 = np.sqrt(LAM / (4 * np.pi))  # the convention of [29] (spec/isac.md A2)
    assert abs(path_gain(7.0, LAM, 2.0, g0)) == pytest.approx(g0 / 7.0)


def test_los_channel_matches_per_pair_formula() -> None:
    centers = np.array([[0.0, 10.0], [10.0, 0.0], [20.0, 10.0]])  # spec/isac.md section 1
    axes = np.array([np.pi / 2, 0.0, np.pi / 2])
    users = np.array([[5.0, 5.0], [6.0, 14.0], [14.0, 6.0], [15.0, 15.0]])
    q = ula_element_positions(centers, axes, N, SPACING)  # [3, N, 2]
    h = los_channel(q, centers, users, LAM)  # [4, 3, N]
    assert h.shape == (4, 3, N)
    for k in range(4):
        for m in range(3):
            r = np.hypot(*(users[k] - centers[m]))
            beta = LAM / (4 * np.pi * r) * np.exp(-2j * np.pi * r / LAM)
            a = near_field_response(q[m], centers[m], users[k], LAM)
            np.testing.assert_allclose(h[k, m], beta * a, rtol=1e-12)
    np.testing.assert_allclose(
        np.linalg.norm(h, axis=-1) ** 2,
        N * (LAM / (4 * np.pi)) ** 2 / np.sum((users[:, None] - centers[None]) ** 2, -1),
        rtol=1e-12,
    )


def test_jakes_correlation_values() -> None:
    assert jakes_correlation(0.0, 1.0) == 1.0
    # first zero of J0 at 2.404825557695773 (Abramowitz & Stegun table 9.5)
    assert jakes_correlation(2.404825557695773 / (2 * np.pi), 1.0) == pytest.approx(0.0, abs=1e-12)
    assert jakes_correlation(100.0, 1e-3) == pytest.approx(0.904, abs=1e-3)  # J0(0.2 pi)


@pytest.mark.parametrize("fd_dt", [0.05, 0.3])
def test_gauss_markov_autocorrelation(fd_dt: float) -> None:
    """Empirical autocorrelation: lag 1 = J0(2 pi fD dt) (Jakes), lag n = rho^n (AR(1)
    property of the model), and unit power is preserved. Tolerance: 6 / sqrt(samples)."""
    rng = np.random.default_rng(42)
    n_chain, n_step = 20_000, 6
    rho = float(jakes_correlation(fd_dt, 1.0))
    g = np.empty((n_step + 1, n_chain), dtype=complex)
    g[0] = nlos_initial(n_chain, rng)
    for t in range(n_step):
        g[t + 1] = nlos_step(g[t], rho, rng)
    tol = 6 / np.sqrt(n_chain)
    np.testing.assert_allclose(np.mean(np.abs(g) ** 2, axis=1), 1.0, atol=tol * 2)
    for lag in (1, 2, 3, 6):
        corr = np.mean(g[lag:] * np.conj(g[: n_step + 1 - lag]))
        assert abs(corr - rho**lag) < tol, (lag, corr, rho**lag)
    assert abs(np.mean(g[1:] * np.conj(g[:-1])) - float(jakes_correlation(fd_dt, 1.0))) < tol


def test_nlos_step_broadcast_per_user_correlation() -> None:
    rng = np.random.default_rng(7)
    state = nlos_initial((3, 2, 4), rng)
    rho = np.array([1.0, 0.0, -1.0])[:, None, None]
    nxt = nlos_step(state, rho, rng)
    np.testing.assert_array_equal(nxt[0], state[0])
    np.testing.assert_array_equal(nxt[2], -state[2])
    with pytest.raises(ValueError):
        nlos_step(state, 1.5, rng)


def test_nlos_initial_is_circular_unit_power() -> None:
    g = nlos_initial((200, 500), np.random.default_rng(3))
    assert np.mean(np.abs(g) ** 2) == pytest.approx(1.0, abs=0.02)
    assert abs(np.mean(g * g)) < 0.02  # circular: E[g^2] = 0


def test_rician_channel_power_and_k_factor() -> None:
    """E|h|^2 = |beta|^2 for every K, and |E h|^2 / var(h) = K; K = inf is pure LOS."""
    rng = np.random.default_rng(9)
    centers = np.array([[0.0, 10.0], [10.0, 0.0]])
    q = ula_element_positions(centers, np.array([np.pi / 2, 0.0]), 5, SPACING)
    users = np.array([[5.0, 5.0], [15.0, 12.0]])
    h_los = los_channel(q, centers, users, LAM)  # [2, 2, 5]
    beta2 = np.abs(h_los[..., 0]) ** 2  # [2, 2]
    np.testing.assert_array_equal(rician_channel(h_los, nlos_initial(h_los.shape, rng), np.inf), h_los)
    n_mc = 20_000
    for kf in (0.0, 3.0):
        g = nlos_initial((n_mc, *h_los.shape), rng)
        h = rician_channel(h_los[None], g, kf)  # [n_mc, 2, 2, 5]
        power = np.mean(np.abs(h) ** 2, axis=(0, -1)) / beta2
        np.testing.assert_allclose(power, 1.0, atol=0.03)
        mean = h.mean(axis=0)
        var = np.mean(np.abs(h - mean) ** 2, axis=0)
        k_est = np.mean(np.abs(mean) ** 2 / var)
        assert k_est == pytest.approx(kf, abs=0.02 + 0.03 * kf)
    with pytest.raises(ValueError):
        rician_channel(h_los, h_los, -1.0)


def _los_oracle(q, c, p, lam, ple=2.0):
    """The original formula (np.linalg.norm on stacked (x, y) pairs), kept as the oracle."""
    r_n = np.linalg.norm(p[:, None, None, :] - q[None], axis=-1)  # [K, M, N]
    r = np.linalg.norm(p[:, None, :] - c[None], axis=-1)  # [K, M]
    a = np.exp(-2j * np.pi / lam * (r_n - r[..., None]))
    return path_gain(r, lam, ple)[..., None] * a


def test_los_channel_class_is_bit_identical_to_the_norm_formula() -> None:
    """LosChannel (cached geometry, split coordinates) gives exactly the same bits as the
    formula with np.linalg.norm, on random geometries, off-grid users and exponents."""
    from netsim.phy.channel import LosChannel

    rng = np.random.default_rng(11)
    for _ in range(30):
        m, n, k = (int(v) for v in rng.integers(1, 12, 3))
        c = rng.uniform(-30, 120, (m, 2))
        q = ula_element_positions(c, rng.uniform(0, np.pi, m), n, rng.uniform(1e-3, 0.05))
        p = rng.uniform(-30, 120, (k, 2))
        lam = float(rng.uniform(2e-3, 0.2))
        ple = float(rng.choice([2.0, 2.9, 3.5]))
        want = _los_oracle(q, c, p, lam, ple)
        got = LosChannel(q, c, lam, ple)(p)
        assert got.shape == (k, m, n)
        assert np.array_equal(got.view(float), want.view(float))
        assert np.array_equal(los_channel(q, c, p, lam, ple).view(float), want.view(float))


def test_los_channel_class_rejects_bad_shapes_and_a_user_on_a_centre() -> None:
    from netsim.phy.channel import LosChannel

    with pytest.raises(ValueError, match="M, N, 2"):
        LosChannel(np.zeros((3, 2)), np.zeros((3, 2)), LAM)
    c = np.array([[1.0, 1.0]])
    los = LosChannel(ula_element_positions(c, 0.0, 4, SPACING), c, LAM)
    with pytest.raises(ValueError, match="> 0"):
        los(c)


# ---------------------------------------------------------------- the engine's fast forms
def test_polar_los_matches_the_exact_channel_within_a_microradian() -> None:
    """LosChannel.polar / .fast (combined phase, float32 trig after float64 reduction) against
    the exact float64 formula: |beta| to 1e-12, the channel's modulus to 2e-7 (float32 cos and
    sin: cos^2 + sin^2 = 1 to a few float32 ulps), phase to 1e-6 rad, on random geometries
    with users up to ~200 m away (2e4 wavelengths at 28 GHz) and off-grid positions."""
    from netsim.phy.channel import LosChannel

    rng = np.random.default_rng(12)
    worst = 0.0
    for _ in range(20):
        m, n, k = (int(v) for v in rng.integers(1, 10, 3))
        c = rng.uniform(0, 150, (m, 2))
        q = ula_element_positions(c, rng.uniform(0, np.pi, m), n, rng.uniform(1e-3, 0.03))
        p = rng.uniform(0, 150, (k, 2))
        lam = float(rng.choice([LAM, 0.05, 0.003]))
        ple = float(rng.choice([2.0, 3.1]))
        los = LosChannel(q, c, lam, ple)
        want = los(p)  # exact
        got = los.fast(p)
        np.testing.assert_allclose(np.abs(got), np.abs(want), rtol=2e-7)
        err = np.abs(np.angle(got * np.conj(want)))
        worst = max(worst, float(err.max()))
        amp, cos, sin = los.polar(p)
        np.testing.assert_allclose(cos**2 + sin**2, 1.0, atol=1e-6)
        np.testing.assert_allclose(amp, np.abs(want[..., 0]), rtol=1e-12)
    assert worst < 1e-6, worst
    cen = np.array([[1.0, 1.0]])
    with pytest.raises(ValueError, match="> 0"):
        LosChannel(ula_element_positions(cen, 0.0, 4, SPACING), cen, LAM).polar(cen)


def test_polar_cn01_draws_follow_the_complex_normal_law() -> None:
    """cn01_polar: |w|^2 ~ Exp(1) (KS test), phase uniform and independent of |w|, circular
    (E w^2 = 0), E|w|^4 = 2; the same law as the exact normal draws (two-sample KS on |w|^2
    and on Re w)."""
    from scipy import stats

    from netsim.phy.channel import cn01_polar

    rng = np.random.default_rng(13)
    w = cn01_polar((400, 500), rng).ravel()  # 2e5 draws
    p2 = np.abs(w) ** 2
    assert stats.kstest(p2, "expon").pvalue > 1e-3
    assert stats.kstest((np.angle(w) + np.pi) / (2 * np.pi), "uniform").pvalue > 1e-3
    tol = 6 / np.sqrt(w.size)
    assert abs(np.mean(p2) - 1.0) < tol
    assert abs(np.mean(p2**2) - 2.0) < 10 * tol
    assert abs(np.mean(w * w)) < tol
    assert abs(np.corrcoef(p2, np.cos(np.angle(w)))[0, 1]) < tol
    exact = nlos_initial(w.size, np.random.default_rng(14))
    assert stats.ks_2samp(p2, np.abs(exact) ** 2).pvalue > 1e-3
    assert stats.ks_2samp(w.real * np.sqrt(2), exact.real * np.sqrt(2)).pvalue > 1e-3
    assert stats.kstest(w.real * np.sqrt(2), "norm").pvalue > 1e-3


@pytest.mark.parametrize("fd_dt", [0.05, 0.3])
def test_polar_fading_steps_keep_the_gauss_markov_statistics(fd_dt: float) -> None:
    """fading_steps_polar: unit power, lag-n correlation rho^n (tolerance 6 / sqrt(samples)),
    per-user correlations broadcast (rho = 1 keeps, rho = -1 flips the state), and a batch of
    S steps gives the same bits as S single steps (the engine's batch vs one-by-one path)."""
    from netsim.phy.channel import fading_steps_polar

    rng = np.random.default_rng(15)
    n_chain, n_step = 20_000, 6
    rho = float(jakes_correlation(fd_dt, 1.0))
    g0 = nlos_initial(n_chain, rng)
    g = np.concatenate([g0[None], fading_steps_polar(g0, np.full(n_step, rho), rng)])
    tol = 6 / np.sqrt(n_chain)
    np.testing.assert_allclose(np.mean(np.abs(g) ** 2, axis=1), 1.0, atol=tol * 2)
    for lag in (1, 2, 3, 6):
        corr = np.mean(g[lag:] * np.conj(g[: n_step + 1 - lag]))
        assert abs(corr - rho**lag) < tol, (lag, corr, rho**lag)
    state = nlos_initial((3, 2, 4), rng)
    rhos = np.array([1.0, 0.0, -1.0])[:, None, None]
    nxt = fading_steps_polar(state, rhos[None], rng)[0]
    np.testing.assert_array_equal(nxt[0], state[0])
    np.testing.assert_array_equal(nxt[2], -state[2])
    with pytest.raises(ValueError):
        fading_steps_polar(state, np.full((1, 3, 1, 1), 1.5), rng)
    per_step = rng.uniform(0.2, 0.99, (5, 3, 1, 1))
    batch = fading_steps_polar(state, per_step, np.random.default_rng(16))
    one, r1 = state, np.random.default_rng(16)
    for s in range(5):
        one = fading_steps_polar(one, per_step[s:s + 1], r1)[0]
        np.testing.assert_array_equal(batch[s], one)


def test_rician_polar_equals_the_rician_combination_of_the_exact_los() -> None:
    """rician_polar(LosChannel.polar) = rician_channel(exact LOS) to the LOS phase precision,
    for K = 0, 3 and 10; K = inf is refused (the engine returns the LOS channel itself)."""
    from netsim.phy.channel import LosChannel, rician_polar

    rng = np.random.default_rng(17)
    centers = np.array([[0.0, 10.0], [10.0, 0.0], [30.0, 40.0]])
    q = ula_element_positions(centers, np.array([np.pi / 2, 0.0, 1.0]), 6, SPACING)
    users = rng.uniform(0, 50, (4, 2))
    los = LosChannel(q, centers, LAM)
    amp, cos, sin = los.polar(users)
    g = nlos_initial((4, 3, 6), rng)
    for kf in (0.0, 3.0, 10.0):
        want = rician_channel(los(users), g, kf)
        got = rician_polar(amp, cos, sin, g, kf)
        scale = np.abs(los(users))  # |beta| per entry
        assert np.max(np.abs(got - want) / scale) < 2e-6
    with pytest.raises(ValueError):
        rician_polar(amp, cos, sin, g, np.inf)


def test_fused_rician_fading_equals_steps_then_combination() -> None:
    """rician_fading_polar (the engine's batch) = fading_steps_polar + rician_polar per time,
    bit for bit, with times that do and do not step the fading."""
    from netsim.phy.channel import LosChannel, fading_steps_polar, rician_fading_polar, rician_polar

    rng = np.random.default_rng(18)
    centers = rng.uniform(0, 40, (3, 2))
    q = ula_element_positions(centers, rng.uniform(0, np.pi, 3), 5, SPACING)
    los = LosChannel(q, centers, LAM)
    users = rng.uniform(0, 40, (4, 2, 2))  # [S, K, 2]
    amp, cos, sin = los.polar(users.reshape(-1, 2))
    amp, cos, sin = amp.reshape(4, 2, 3), cos.reshape(4, 2, 3, 5), sin.reshape(4, 2, 3, 5)
    g0 = nlos_initial((2, 3, 5), rng)
    # the engine's first time is usually the fading's own time (no step); all-quiet spans too
    for stepped in ([True, False, True, True], [False, True, False, True], [False] * 4):
        n_steps = sum(stepped)
        rhos = rng.uniform(0.1, 0.99, (n_steps, 2, 1, 1))
        h, g_end = rician_fading_polar(amp, cos, sin, g0, rhos, stepped, 4.0,
                                       np.random.default_rng(3))
        r, g, done = np.random.default_rng(3), g0, 0
        for s, step in enumerate(stepped):
            if step:
                g = fading_steps_polar(g, rhos[done:done + 1], r)[0]
                done += 1
            np.testing.assert_array_equal(h[s], rician_polar(amp[s], cos[s], sin[s], g, 4.0))
        np.testing.assert_array_equal(g_end, g)
