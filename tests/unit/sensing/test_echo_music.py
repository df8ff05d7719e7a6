"""Echo fidelities (Wishart vs snapshots), sync coupling, and near-field MUSIC localisation."""

from __future__ import annotations

import numpy as np

from netsim.sensing.config import IsacConfig, dbm_to_w
from netsim.sensing.echo import (
    complex_wishart,
    echo_covariance,
    sample_echo_covariance,
    sync_path_factors,
)
from netsim.sensing.fim import echo_channel, isotropic_covariance
from netsim.sensing.music import MusicGrid, match_estimates, music_localize, music_spectrum_map

CFG = IsacConfig()


def test_complex_wishart_moments():
    """E[S] = L C and Var(S_ij) = L C_ii C_jj (complex Wishart), by Monte Carlo."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    c = a @ a.conj().T + np.eye(3)
    dof, reps = 20, 4000
    s = np.stack([complex_wishart(c, dof, rng) for _ in range(reps)])
    assert np.allclose(s.mean(0), dof * c, atol=4 * np.sqrt(dof * np.outer(np.diag(c), np.diag(c)).real / reps).max())
    var01 = np.var(s[:, 0, 1])
    assert abs(var01 / (dof * c[0, 0].real * c[1, 1].real) - 1) < 0.1


def test_fidelities_agree_in_distribution():
    """Snapshots vs Wishart: same mean and same entry variance C_ii C_jj / L (design.md fidelity test)."""
    g = CFG.geometry(n_antennas=3)
    p = CFG.user_positions[:2]
    r = isotropic_covariance(g, dbm_to_w(50.0))
    alpha = np.ones((2, 3, 3), dtype=complex)
    noise = CFG.noise_w
    big_l, reps = 40, 600
    c = echo_covariance(echo_channel(g, p, alpha), r, noise, 3)
    out = {}
    for fid in ("wishart", "snapshots"):
        rng = np.random.default_rng(1)
        s = np.stack([sample_echo_covariance(g, p, r, big_l, noise, rng, fidelity=fid, alpha=alpha) for _ in range(reps)])
        out[fid] = s
        se = np.sqrt(np.outer(np.diag(c), np.diag(c)).real / big_l / reps)
        assert np.all(np.abs(s.mean(0) - c) < 5 * se)
    v_w = np.var(out["wishart"][:, 0, 4])
    v_s = np.var(out["snapshots"][:, 0, 4])
    v_th = (c[0, 0] * c[4, 4]).real / big_l
    assert abs(v_w / v_th - 1) < 0.2 and abs(v_s / v_th - 1) < 0.2


def test_sync_factors_structure_and_cfo_mean():
    """Monostatic paths carry no sync error; CFO averages the cross-AP receive blocks (both fidelities)."""
    f = sync_path_factors(3, [0.0, 2e-7, -1e-7], 28e9, 1e-6)
    assert np.allclose(np.diag(f), 1.0)
    assert np.isclose(abs(f[0, 1]), 0.8) and np.isclose(abs(f[2, 1]), 0.7)
    g = CFG.geometry(n_antennas=3)
    p = CFG.user_positions[:2]
    r = isotropic_covariance(g, dbm_to_w(50.0))
    alpha = np.ones((2, 3, 3), dtype=complex)
    cfo = np.array([0.0, 3e3, -5e3])  # Hz, large enough to decorrelate over L T_u
    big_l, reps = 200, 200
    for fid in ("wishart", "snapshots"):
        rng = np.random.default_rng(2)
        s = np.stack([sample_echo_covariance(g, p, r, big_l, CFG.noise_w, rng, residual_cfo_hz=cfo, fidelity=fid, alpha=alpha) for _ in range(reps)]).mean(0)
        c0 = echo_covariance(echo_channel(g, p, alpha), r, CFG.noise_w, 3)
        # same-AP receive blocks unchanged, cross blocks attenuated by the Dirichlet factor
        assert np.allclose(s[:3, :3], c0[:3, :3], rtol=0.2, atol=0.05 * abs(c0[0, 0]))
        ph = -2 * np.pi * (cfo[0] - cfo[1]) * 1e-6
        gam = abs(np.mean(np.exp(1j * ph * np.arange(big_l))))
        ratio = np.abs(s[:3, 3:6]).mean() / np.abs(c0[:3, 3:6]).mean()
        assert abs(ratio - gam) < 0.15


def _cov(n_ant: int, seed: int, step: float = 0.1):
    cfg = CFG.with_(n_antennas=n_ant)
    g = cfg.geometry()
    p = cfg.user_positions
    r = isotropic_covariance(g, dbm_to_w(50.0))
    rng = np.random.default_rng(seed)
    alpha = np.exp(1j * rng.uniform(0, 2 * np.pi, (4, 3, 3)))
    c = sample_echo_covariance(g, p, r, 2000, cfg.noise_w, rng, alpha=alpha)
    return cfg, g, p, c, MusicGrid.from_config(cfg, step_m=step)


def test_music_full_grid_finds_all_users():
    """Spec 8.1 check 12 (reduced): near-field estimates within one grid cell of every user."""
    cfg, g, p, c, grid = _cov(11, 3)
    res = music_localize(c, g, 4, cfg.noise_w, grid, kind="rare")
    _, err = match_estimates(res.positions_m, p)
    assert np.all(err < grid.step_m), err
    # the paper's composite spectrum needs a full-rank echo covariance (spec A11); it still
    # finds most users here
    res = music_localize(c, g, 4, cfg.noise_w, grid, kind="composite")
    _, err = match_estimates(res.positions_m, p)
    assert np.sum(err < grid.step_m) >= 3
    xs, ys, img = music_spectrum_map(c, g, 4, cfg.noise_w, grid)
    assert img.shape == (ys.size, xs.size) and img.max() > 100


def test_music_tracking_and_fallback():
    cfg, g, p, c, grid = _cov(11, 4)
    full = music_localize(c, g, 4, cfg.noise_w, grid)
    tr = music_localize(c, g, 4, cfg.noise_w, grid, predicted_pos=p + 0.15)
    assert tr.mode == "track" and not tr.fell_back
    assert np.all(np.linalg.norm(tr.positions_m - p, axis=1) < grid.step_m)
    assert tr.n_points < full.n_points / 4
    perm, _ = match_estimates(full.positions_m, p)
    lost = music_localize(c, g, 4, cfg.noise_w, grid, predicted_pos=p + 3.0, reference_peaks=full.peak_values[perm])
    assert lost.fell_back
    _, err = match_estimates(lost.positions_m, p)
    assert np.all(err < grid.step_m)
