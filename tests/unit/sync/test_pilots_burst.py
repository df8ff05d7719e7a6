"""Pilots, chip pulse and received burst against the explicit matrix model (spec 2.3-2.5)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy.pilots import (
    bpsk_pilots,
    delayed_pilot,
    delayed_pilot_derivative,
    delayed_pilot_pair,
    pilot_convolution_matrix,
    pilot_lag1_autocorrelation,
    shifted_pilot,
    triangular_pulse,
    zadoff_chu,
)
from netsim.sync.burst import burst_signals, received_burst


def test_triangular_pulse_values():
    t = np.array([-0.5, 0.0, 0.25, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(triangular_pulse(t), [0, 0, 0.25, 1.0, 0.5, 0.0, 0.0])


def test_bpsk_and_zc():
    rng = np.random.default_rng(0)
    s = bpsk_pilots(3, 50, rng)
    assert s.shape == (3, 50) and set(np.unique(s)) <= {-1.0, 1.0}
    z = zadoff_chu(63, 5)
    np.testing.assert_allclose(np.abs(z), 1.0)
    # ideal periodic autocorrelation of a ZC sequence (gcd(root, N) = 1)
    r = np.array([np.vdot(z, np.roll(z, k)) for k in range(1, 63)])
    assert np.max(np.abs(r)) < 1e-9
    with pytest.raises(ValueError):
        zadoff_chu(64, 2)


def _explicit_u(x, m, n):
    """U(theta1) column by the pulse definition: U[c] = nabla(c - x) (eq 8)."""
    c = np.arange(m - n + 1)
    return triangular_pulse(c - x)


@pytest.mark.parametrize("x", [0.0, 0.3, 1.77, 4.5])
def test_delayed_pilot_matches_matrix_model(x):
    rng = np.random.default_rng(1)
    n, m = 16, 26
    s = bpsk_pilots(1, n, rng)[0]
    ref = pilot_convolution_matrix(s, m) @ _explicit_u(x, m, n)
    np.testing.assert_allclose(delayed_pilot(s, x, m), ref, atol=1e-12)


def test_delayed_pilot_derivative_is_finite_difference():
    rng = np.random.default_rng(2)
    s = bpsk_pilots(1, 20, rng)[0]
    x, h = 2.37, 1e-6
    fd = (delayed_pilot(s, x + h, 30) - delayed_pilot(s, x - h, 30)) / (2 * h)
    np.testing.assert_allclose(delayed_pilot_derivative(s, x, 30), fd, atol=1e-6)


def test_lag1_autocorrelation():
    s = np.array([1.0, 1.0, -1.0, -1.0, 1.0])
    assert pilot_lag1_autocorrelation(s) == pytest.approx(1 - 1 + 1 - 1)


def test_burst_equals_sum_of_F_S_U_h():
    rng = np.random.default_rng(3)
    n, m, lt = 32, 48, 3
    pil = bpsk_pilots(2, n, rng)
    th = np.array([1.3, 0.4])
    eps = np.array([0.07, -0.2])
    dl = np.array([[0.0, 1.2, 2.9], [3.1, 3.1, 3.1]])
    h = rng.standard_normal((2, lt)) + 1j * rng.standard_normal((2, lt))
    sig = burst_signals(pil, th, eps, dl, h, m)
    for i in range(2):
        smat = pilot_convolution_matrix(pil[i], m)
        u = np.stack([_explicit_u(th[i] + d, m, n) for d in dl[i]], 1)
        ref = np.exp(2j * np.pi * eps[i] * np.arange(m)) * (smat @ u @ h[i])
        np.testing.assert_allclose(sig[i], ref, atol=1e-12)
    # noise has the requested variance
    y = received_burst(pil, th, eps, dl, 0 * h, m, 2.0, np.random.default_rng(4))
    big = received_burst(
        pil[None].repeat(400, 0),
        np.tile(th, (400, 1)),
        np.tile(eps, (400, 1)),
        np.tile(dl, (400, 1, 1)),
        np.zeros((400, 2, lt)),
        m,
        2.0,
        np.random.default_rng(5),
    )
    assert y.shape == (m,)
    assert np.mean(np.abs(big) ** 2) == pytest.approx(2.0, rel=0.03)


def test_shifted_and_delayed_pilots_batched_any_delay():
    # per-link pilots (complex), per-tap delays from far before to far after the window
    # (including integer delays and the 1e7-chip offsets the round can meet), against the
    # chip-by-chip definitions s[m - q] and (1 - f) s[m-k-1] + f s[m-k-2]
    rng = np.random.default_rng(4)
    n, m = 9, 21
    s = rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n))  # [B, N]
    x = rng.uniform(-15.0, 30.0, (3, 5))  # [B, L]
    x[0, 0], x[1, 1], x[2, 2], x[2, 3] = 3.0, -1.0, 1e7, -1e7

    def chip(b, i):
        return s[b, i] if 0 <= i < n else 0.0

    q = np.floor(x).astype(np.int64)
    ref_q = np.array([[[chip(b, t - q[b, l]) for t in range(m)] for l in range(5)]
                      for b in range(3)])
    np.testing.assert_array_equal(shifted_pilot(s, q, m), ref_q)
    k = np.floor(x)
    f = x - k
    ref_w = np.array([[[(1 - f[b, l]) * chip(b, t - int(k[b, l]) - 1)
                        + f[b, l] * chip(b, t - int(k[b, l]) - 2) for t in range(m)]
                       for l in range(5)] for b in range(3)])
    w, dw = delayed_pilot_pair(s, x, m)
    np.testing.assert_allclose(w, ref_w, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(w, delayed_pilot(s, x, m))
    np.testing.assert_array_equal(dw, delayed_pilot_derivative(s, x, m))
    assert not w[2, 2].any() and not w[2, 3].any()
