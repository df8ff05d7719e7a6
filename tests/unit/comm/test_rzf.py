"""Tests of netsim.comm.rzf (spec 3.6, acceptance check 4)."""

from __future__ import annotations

import numpy as np

from netsim.comm.rzf import rzf_beamformers, rzf_regularisation


def _rand(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_unit_norm_and_zero_outside_association() -> None:
    rng = np.random.default_rng(0)
    assoc = rng.random((4, 9)) < 0.5
    assoc[0, :] = True
    hhat = _rand(rng, (4, 9, 3)) * assoc[..., None]
    w = rzf_beamformers(hhat, assoc, 0.3)
    nrm = np.linalg.norm(w, axis=-1)
    assert np.allclose(nrm[assoc], 1.0)
    assert np.all(nrm[~assoc] == 0)


def test_zero_forcing_limit() -> None:
    rng = np.random.default_rng(1)
    assoc = np.zeros((2, 6), dtype=bool)
    assoc[0, :4] = True  # n_0 = 4 <= N = 4
    assoc[1, 2:] = True
    hhat = _rand(rng, (2, 6, 4)) * assoc[..., None]
    w = rzf_beamformers(hhat, assoc, 1e-12)
    for m in range(2):
        served = np.flatnonzero(assoc[m])
        cross = np.conj(hhat[m, served]) @ w[m, served].T  # [i, k] = hhat_i^H w_k
        off = cross - np.diag(np.diag(cross))
        assert np.max(np.abs(off)) < 1e-6
        assert np.all(np.abs(np.diag(cross)) > 1e-3)


def test_dense_form_equals_ragged_loop_oracle() -> None:
    rng = np.random.default_rng(2)
    assoc = rng.random((3, 8)) < 0.6
    assoc[:, 0] = True
    hhat = _rand(rng, (3, 8, 2)) * assoc[..., None]  # n_m > N for some APs
    err = rng.uniform(0.1, 1.0, size=(3, 8))
    reg = rzf_regularisation(err, 0.5, 2.0)
    assert np.allclose(reg, err.sum(axis=1) + 0.25)
    w = rzf_beamformers(hhat, assoc, reg)
    for m in range(3):
        idx = np.flatnonzero(assoc[m])
        hm = hhat[m, idx].T  # [N, n_m]
        wbar = hm @ np.linalg.inv(np.conj(hm.T) @ hm + reg[m] * np.eye(idx.size))  # push-through form
        wbar /= np.linalg.norm(wbar, axis=0, keepdims=True)
        assert np.allclose(w[m, idx].T, wbar)


def test_batched_beamformers() -> None:
    rng = np.random.default_rng(3)
    assoc = np.ones((2, 3), dtype=bool)
    hhat = _rand(rng, (5, 2, 3, 4))
    reg = rng.uniform(0.1, 1, size=(5, 2))
    w = rzf_beamformers(hhat, assoc, reg)
    for b in range(5):
        assert np.allclose(w[b], rzf_beamformers(hhat[b], assoc, reg[b]))
