"""CRB with pilot contamination (spec 3): closed forms, Monte-Carlo, invariances."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy.pilots import bpsk_pilots, delayed_pilot, pilot_convolution_matrix
from netsim.sync.channel import FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS
from netsim.sync.crb import (
    a_matrix,
    a_matrix_closed_form,
    contamination_cov_full,
    contamination_diag,
    contamination_power,
    crb_to_cfo,
    expected_contamination_diag,
    fisher_matrix,
)

H6 = FIG6_TAP_GAINS * np.exp(1j * np.array([0.0, np.pi / 3, -np.pi / 4, 2 * np.pi / 3]))


@pytest.mark.parametrize("eta", [1, 2, 3, 5])
@pytest.mark.parametrize("vs", [0.0, 0.3, 0.77, 2.4])
def test_a_matrix_closed_form_and_quadrature(eta, vs):
    a = a_matrix(vs, eta)
    np.testing.assert_allclose(a, a_matrix_closed_form(vs, eta), atol=1e-12)
    assert np.trace(a) == pytest.approx(2 / 3, abs=1e-12)
    assert np.sum(np.diag(a, 1)) == pytest.approx(1 / 6, abs=1e-12)
    # independent: midpoint-rule average of u(x) u(x)^T over x ~ U[vs, vs+eta]
    xs = vs + (np.arange(20000) + 0.5) / 20000 * eta
    k = np.floor(xs).astype(int)
    f = xs - k
    u = np.zeros((xs.size, a.shape[0]))
    u[np.arange(xs.size), k + 1] = 1 - f
    u[np.arange(xs.size), k + 2] = f
    np.testing.assert_allclose(u.T @ u / xs.size, a, atol=1e-7)


def test_a_matrix_general_delay_beyond_one_chip():
    a = a_matrix(7.6, 3)
    assert a.shape == (13, 13)
    assert np.all(a[:7, :] == 0)
    assert np.trace(a) == pytest.approx(2 / 3)


def test_contamination_diag_equals_eq30_matrix_form():
    rng = np.random.default_rng(0)
    n, m = 32, 50
    s = bpsk_pilots(1, n, rng)[0]
    for vs in (0.45, 3.2):
        a = a_matrix(vs, 3, m - n + 1)
        ref = np.real(
            np.diag(pilot_convolution_matrix(s, m) @ a @ pilot_convolution_matrix(s, m).T)
        )
        np.testing.assert_allclose(contamination_diag(s, [vs], 3, [1.0], m), ref, atol=1e-12)
    # sum over interferers is linear
    two = contamination_diag(s, [0.45, 3.2], 3, [1.0, 2.0], m)
    one = contamination_diag(s, [0.45], 3, [1.0], m) + contamination_diag(s, [3.2], 3, [2.0], m)
    np.testing.assert_allclose(two, one, atol=1e-12)


def _mc_cov(s, vs, eta, fmax, m, trials, rng):
    th = rng.uniform(0, eta, trials)
    eps = rng.uniform(-fmax, fmax, trials)
    psi = (rng.standard_normal(trials) + 1j * rng.standard_normal(trials)) / np.sqrt(2)
    x = delayed_pilot(s, th + vs, m) * (psi * np.exp(2j * np.pi * eps[:, None] * np.arange(m)).T).T
    return x.T @ x.conj() / trials


@pytest.mark.parametrize("eta,fmax", [(1, 0.5), (3, 3.0)])
def test_contamination_diag_monte_carlo(eta, fmax):
    """Monte-Carlo check of D against eq 30 (spec check 2, reduced trials)."""
    rng = np.random.default_rng(11)
    n, m, vs = 16, 16 + eta + 6, 0.45
    s = bpsk_pilots(1, n, rng)[0]
    cov = _mc_cov(s, vs, eta, fmax, m, 40000, rng)
    d = contamination_diag(s, [vs], eta, [1.0], m)
    assert np.max(np.abs(np.real(np.diag(cov)) - d)) < 0.03
    off = cov - np.diag(np.diag(cov))
    assert np.max(np.abs(off)) < 0.03  # 2 fmax integer -> diagonal (eq 29)


def test_full_covariance_small_fmax_monte_carlo():
    rng = np.random.default_rng(12)
    n, eta, vs, fmax = 16, 3, 0.45, 0.01
    m = n + 9
    s = bpsk_pilots(1, n, rng)[0]
    cov = _mc_cov(s, vs, eta, fmax, m, 40000, rng)
    full = contamination_cov_full(s, vs, eta, fmax, 1.0, m)
    assert np.max(np.abs(cov - full)) < 0.03
    assert np.max(np.abs(full - np.diag(np.diag(full)))) > 0.5  # strongly non-diagonal


def test_contamination_power_closed_form_and_theorem1():
    rng = np.random.default_rng(3)
    s = bpsk_pilots(1, 64, rng)[0]
    m = 64 + 12
    for vs in (0.0, 0.5, 2.2):
        for eta in (1, 3):
            d = contamination_diag(s, [vs], eta, [2.5], m)
            assert d.sum() == pytest.approx(float(contamination_power(s, 2.5)), rel=1e-12)
    # pilot-averaged diagonal is 2/3 P on fully covered rows (eq 42)
    e = expected_contamination_diag(0.3, 3, 64, 1.0, m)
    np.testing.assert_allclose(e[6:64], 2 / 3)
    # average over BPSK pilots
    ps = bpsk_pilots(400, 64, rng)
    assert np.mean(contamination_power(ps, 1.0)) == pytest.approx(2 * 64 / 3, rel=0.01)


def test_crb_cfo_single_tap_closed_form():
    """Spec check 4: CRB_CFO = 6 / ((2 pi)^2 SNR N (N^2 - 1)), N = 64, SNR = 20 dB -> 5.80e-9."""
    rng = np.random.default_rng(4)
    n, snr = 64, 100.0
    s = bpsk_pilots(1, n, rng)[0]
    r = crb_to_cfo(s, 1.0001, [0.0], [1.0 + 0j], 1.0 / snr, n + 10)
    ref = 6 / ((2 * np.pi) ** 2 * snr * n * (n**2 - 1))
    assert ref == pytest.approx(5.80e-9, rel=1e-3)
    assert float(r.cfo_norm2) == pytest.approx(ref, rel=0.01)


def test_fisher_matches_numerical_jacobian():
    """J = 2 Re(Omega^H Xi^-1 Omega) with Omega from finite differences of the mean (eq 11)."""
    rng = np.random.default_rng(5)
    n, m = 32, 45
    s = bpsk_pilots(1, n, rng)[0]
    dl = np.array([0.0, 1.3])
    h = np.array([1.0 + 0.5j, -0.4 + 0.2j])
    th, eps = 1.62, 0.03
    xi = 0.5 + rng.random(m)

    def mean(p):
        hh = p[2::2] + 1j * p[3::2]
        w = delayed_pilot(s, p[0] + dl, m)
        return np.exp(2j * np.pi * p[1] * np.arange(m)) * (hh @ w)

    p0 = np.array([th, eps, h[0].real, h[0].imag, h[1].real, h[1].imag])
    om = np.stack([(mean(p0 + d) - mean(p0 - d)) / 2e-7 for d in np.eye(6) * 1e-7], 1)
    jref = 2 * np.real(om.conj().T @ (om / xi[:, None]))
    j = fisher_matrix(s, th, dl, h, xi, m, cfo_norm=eps)
    np.testing.assert_allclose(j, jref, rtol=1e-5, atol=1e-5 * np.abs(jref).max())


def test_crb_scaling_and_floor():
    """Spec check 5: 10x per 10 dB without contamination; a floor with contamination."""
    rng = np.random.default_rng(6)
    n = 256
    m = n + 9
    s = bpsk_pilots(1, n, rng)[0]
    d_int = contamination_diag(s, [0.4], 3, [0.01], m)
    out = {}
    for snr_db in (20, 30, 40):
        sig2 = 10 ** (-snr_db / 10)
        a = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, sig2, m)
        b = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, d_int + sig2, m)
        out[snr_db] = (
            float(a.to_chips2),
            float(a.cfo_norm2),
            float(b.to_chips2),
            float(b.cfo_norm2),
        )
    assert out[20][0] / out[30][0] == pytest.approx(10, rel=1e-9)
    assert out[20][1] / out[30][1] == pytest.approx(10, rel=1e-9)
    assert out[20][2] / out[40][2] < 4 and out[20][3] / out[40][3] < 4


def test_crb_invariances():
    """Spec check 13: no dependence on the true CFO or on a common power scaling."""
    rng = np.random.default_rng(7)
    n, m = 64, 75
    s = bpsk_pilots(1, n, rng)[0]
    xi = 1e-3 + contamination_diag(s, [0.7, 2.1], 3, [0.01, 0.02], m)
    a = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, xi, m, cfo_norm=0.0)
    b = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6, xi, m, cfo_norm=0.37)
    c = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, H6 * np.sqrt(5e-10), xi * 5e-10, m)
    for r in (b, c):
        assert float(r.to_chips2) == pytest.approx(float(a.to_chips2), rel=1e-7)
        assert float(r.cfo_norm2) == pytest.approx(float(a.cfo_norm2), rel=1e-7)
    # D's diagonal does not depend on fmax (the full covariance's diagonal neither)
    for fmax in (0.01, 0.5, 3.0):
        full = contamination_cov_full(s, 0.7, 3, fmax, 0.01, m)
        np.testing.assert_allclose(
            np.real(np.diag(full)), contamination_diag(s, [0.7], 3, [0.01], m), atol=1e-12
        )


def test_singular_fisher_reports_inf():
    """Spec check 6: Fig 6 profile with theta1 = 1.1 -> cond > 1e12 and inf, with a reason."""
    rng = np.random.default_rng(8)
    s = bpsk_pilots(1, 256, rng)[0]
    r = crb_to_cfo(s, 1.1, FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS + 0j, 1.0, 265)
    assert float(r.cond) > 1e12
    assert np.isinf(r.to_chips2) and np.isinf(r.cfo_norm2) and bool(r.singular)
    assert "ill-conditioned" in r.reason
    ok = crb_to_cfo(s, 1.8, FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS + 0j, 1.0, 265)
    assert np.isfinite(ok.to_chips2) and ok.reason == ""
    # batch: mixed singular / regular
    both = crb_to_cfo(
        np.stack([s, s]), np.array([1.1, 1.8]), FIG6_TAP_DELAYS_CHIPS, FIG6_TAP_GAINS + 0j, 1.0, 265
    )
    assert list(both.singular) == [True, False]


def test_contamination_diag_batched_complex_pilots_against_eq30():
    # complex (non-BPSK) pilots, several interferers per link, delays from 0 to past the
    # window, fractional and integer eta: every row equals diag(S A S^H) summed (eq 30)
    rng = np.random.default_rng(17)
    n, m = 12, 30
    for eta in (0.4, 1.0, 3.0, 4.5):
        s = rng.standard_normal((3, n)) + 1j * rng.standard_normal((3, n))  # [B, N]
        vs = rng.uniform(0.0, m + 4.0, (3, 4))  # [B, I]
        vs[0, 0] = 0.0
        vs[1, 1] = 5.0  # an integer delay
        pw = rng.uniform(0.1, 2.0, (3, 4))
        got = contamination_diag(s, vs, eta, pw, m)  # [B, M]
        smat = [pilot_convolution_matrix(s[b], m + 40) for b in range(3)]
        for b in range(3):
            ref = np.zeros(m)
            for i in range(4):
                a = a_matrix(vs[b, i], eta, m + 40 - n + 1)
                ref += pw[b, i] * np.real(np.diag(smat[b] @ a @ smat[b].conj().T))[:m]
            np.testing.assert_allclose(got[b], ref, atol=1e-12 * pw.sum())


def test_fisher_complex_pilot_batch_matches_numerical_jacobian():
    # the Gram-matrix assembly of J (real/imaginary parameter layout) on a complex pilot,
    # three taps and a batch of links, against finite differences of the mean (eq 11)
    rng = np.random.default_rng(23)
    n, m = 16, 40
    for _ in range(3):
        s = np.exp(2j * np.pi * rng.random(n))
        dl = np.sort(rng.uniform(0.0, 4.0, 3))
        h = rng.standard_normal(3) + 1j * rng.standard_normal(3)
        th, eps = rng.uniform(0.2, 6.0), rng.uniform(-0.05, 0.05)
        xi = 0.5 + rng.random(m)

        def mean(p, s=s, dl=dl):
            hh = p[2::2] + 1j * p[3::2]
            return np.exp(2j * np.pi * p[1] * np.arange(m)) * (hh @ delayed_pilot(s, p[0] + dl, m))

        p0 = np.concatenate([[th, eps], np.stack([h.real, h.imag], 1).ravel()])
        om = np.stack([(mean(p0 + d) - mean(p0 - d)) / 2e-7 for d in np.eye(8) * 1e-7], 1)
        jref = 2 * np.real(om.conj().T @ (om / xi[:, None]))
        batch = fisher_matrix(np.stack([s, s]), np.array([th, th]), np.stack([dl, dl]),
                              np.stack([h, h]), np.stack([xi, xi]), m)  # [2, 8, 8]
        for j in batch:
            np.testing.assert_allclose(j, jref, rtol=1e-5, atol=1e-5 * np.abs(jref).max())
