"""Batched certificate SDPs (netsim.comm.robust_cert_batch) and the closed-form gamma boundary of
the certificate check (netsim.comm.robust_certify._lmi_gamma_max).

References: the generic block solver (netsim.comm.robust_cert_ipm.certificate_sdp) on the same
instances, one at a time; a plain bisection on gamma written here; the LMI itself (PSD at the
certified gamma, not PSD just above it). Instances are random beams of our own on random
channels (not the bundled scenario), with off-grid sizes and hostile entries.
"""

from __future__ import annotations

import numpy as np

from netsim.comm.robust import reduce_problem
from netsim.comm.robust_cert_batch import certificate_sdp_batch
from netsim.comm.robust_cert_ipm import certificate_sdp
from netsim.comm.robust_certify import _lmi_gamma_max
from netsim.comm.robust_model import _phi


def _instance(seed: int, k: int, m: int, n: int):
    rng = np.random.default_rng(seed)
    h = (rng.standard_normal((k, m * n)) + 1j * rng.standard_normal((k, m * n))) * 10 ** rng.uniform(-4, -3)
    nrm = np.linalg.norm(h.reshape(k, m, n), axis=-1).T  # [M, K]
    eps = nrm * rng.uniform(0.02, 0.2, size=(m, k))
    red = reduce_problem(h, eps, p_max_w=0.1, noise_w=1e-10, n_aps=m)
    x = red.g.conj() * rng.uniform(0.5, 2.0, size=(k, 1)) + 0.3 * (
        rng.standard_normal(red.g.shape) + 1j * rng.standard_normal(red.g.shape))  # [K, d] near-MRT beams
    x *= np.sqrt(red.pbar / ((np.abs(x) ** 2) @ red.indicator).sum(axis=0).max())
    return red, x


def _terms(red, x):  # noqa: ANN001, ANN202 - (A0, A1, L) of every user, as worst_case_sinr builds them
    w = np.einsum("ki,kj->kij", x, x.conj())  # [K, d, d]
    d = red.dim
    out = []
    for k in range(red.n_users):
        s = w.sum(axis=0) - w[k]
        g = red.g[k]
        a0 = np.block([[w[k], (w[k] @ g)[:, None]], [(g.conj() @ w[k])[None, :], np.array([[np.real(g.conj() @ w[k] @ g)]])]])
        a1 = -np.block([[s, (s @ g)[:, None]], [(g.conj() @ s)[None, :], np.array([[np.real(g.conj() @ s @ g) + 1.0]])]])
        lmat = np.zeros((d + 1, red.n_aps))
        lmat[:d] = red.indicator
        lmat[d] = -red.eps2[:, k]
        out.append((a0, a1, lmat))
    return w, out


def test_batch_matches_the_generic_solver_user_by_user():
    for seed, (k, m, n) in zip((21, 22, 23), ((3, 2, 3), (5, 3, 2), (2, 4, 3)), strict=True):
        red, x = _instance(seed, k, m, n)
        _, terms = _terms(red, x)
        got = certificate_sdp_batch(*(np.stack([t[i] for t in terms]) for i in range(3)))
        for (a0, a1, lmat), b in zip(terms, got, strict=True):
            ref = certificate_sdp(a0, a1, lmat)
            assert ref is not None and b is not None
            assert abs(b[0] - ref[0]) <= 1e-7 * max(1.0, ref[0])
            # the multipliers are feasible for the LMI at (a hair below) the optimum found
            phi = a0 + 0.999 * b[0] * a1 + np.diag(lmat @ b[1])
            assert np.linalg.eigvalsh(phi)[0] >= -1e-9 * np.abs(phi).max()


def test_an_invalid_user_is_refused_alone():
    red, x = _instance(31, 3, 2, 3)
    _, terms = _terms(red, x)
    a0, a1, lmat = (np.stack([t[i] for t in terms]) for i in range(3))
    lmat[1, -1, 0] = 0.0  # a zero radius for user 1: unbounded multiplier, not for this solver
    a0[2] = 0.0  # user 2: nothing received, no strictly feasible start
    got = certificate_sdp_batch(a0, a1, lmat)
    assert got[1] is None and got[2] is None
    ref = certificate_sdp(a0[0], a1[0], lmat[0])
    assert got[0] is not None and abs(got[0][0] - ref[0]) <= 1e-7 * max(1.0, ref[0])


def _psd(red, w, lam, g: float, k: int) -> bool:  # noqa: ANN001
    return bool(np.linalg.eigvalsh(_phi(red, w, lam, g, k))[0] >= 0)


def test_closed_form_gamma_boundary_matches_a_bisection():
    n_checked = 0
    for seed in (41, 42, 43):
        red, x = _instance(seed, 3, 3, 2)
        w, terms = _terms(red, x)
        got = certificate_sdp_batch(*(np.stack([t[i] for t in terms]) for i in range(3)))
        lam = np.stack([g[1] if g is not None else np.zeros(red.n_aps) for g in got], axis=1)  # [M, K]
        for k in range(red.n_users):
            if got[k] is None:  # no certificate at gamma >= 0: the generic solver refuses it too
                assert certificate_sdp(*terms[k]) is None
                continue
            hi = 4.0 * got[k][0]
            lo, up = 0.0, hi
            for _ in range(80):
                mid = 0.5 * (lo + up)
                lo, up = (mid, up) if _psd(red, w, lam, mid, k) else (lo, mid)
            g = _lmi_gamma_max(red, w, lam, k, hi)
            assert _psd(red, w, lam, g, k) and not _psd(red, w, lam, g * (1 + 1e-6), k)
            assert abs(g - lo) <= 1e-9 * lo
            n_checked += 1
    assert n_checked >= 5
