"""analysis/gnn_gap.py: the Table II gap decomposition (tiny sizes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from netsim.comm.pilot_assignment import TabuConfig
from netsim.comm.subframe import prepare_subframe
from netsim.comm.surrogate import SurrogateModel
from netsim.learn.data import DropSpec, draw_drops, draw_ssf
from netsim.learn.evaluate import evaluate_frames
from netsim.phy.umi import channel_from_fading
from netsim.rng import RandomStreams

ROOT = Path(__file__).resolve().parents[3]
TABU = TabuConfig(max_iter=4, n_candidates=16, n_exact=None)


@pytest.fixture(scope="module")
def gap():
    spec = importlib.util.spec_from_file_location("gnn_gap", ROOT / "analysis" / "gnn_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def small():
    return DropSpec.paper(3, 8, 4)


@pytest.fixture(scope="module")
def rows(gap, small):
    return gap.gap_rows(small, 3, seed=11, n_sub=2, n_starts=2, saa_drops=2, saa_sub=1, saa_samples=8,
                        tabu=TABU)


def test_sample_rate_model_gradient_and_single_sample_surrogate(gap):
    rng = np.random.default_rng(3)
    s, m, k = 3, 4, 5
    g = rng.standard_normal((s, m, k, k)) + 1j * rng.standard_normal((s, m, k, k))
    model = gap.SampleRateModel(g, 0.3)
    v = rng.random((m, k))
    grad = model.gradient(v, *model.evaluate_full(v)[1:])
    num = np.zeros_like(v)
    for idx in np.ndindex(v.shape):
        e = np.zeros_like(v)
        e[idx] = 1e-6
        num[idx] = (model.evaluate_full(v + e)[0] - model.evaluate_full(v - e)[0]) / 2e-6
    assert np.abs(grad - num).max() < 1e-6 * np.abs(num).max()
    # one sample and no variance part: the project's own surrogate (perfect CSI = the sum rate)
    one, sur = gap.SampleRateModel(g[:1], 0.3), SurrogateModel(g[0], np.zeros((m, k, k)), 0.3)
    assert one.evaluate_full(v)[0] == pytest.approx(sur.evaluate(v)[0], rel=1e-12)
    assert np.allclose(one.gradient(v, *one.evaluate_full(v)[1:]), sur.gradient(v, *sur.evaluate(v)[1:]),
                       rtol=1e-10, atol=1e-12)


def test_posterior_model_matches_the_simulators_estimator(gap, small):
    """h - hhat from the simulator's own pilot chain has variance err_var per antenna and is
    uncorrelated with hhat (the posterior the SAA bound samples from), and the posterior draws
    have those moments."""
    drops = draw_drops(small, 1, np.random.default_rng(5))
    beta, assoc = drops.beta[0], drops.assoc[0]
    cfg = small.channel
    colour = np.arange(small.n_ue) % 3
    rng = np.random.default_rng(6)
    err, cross, evar = [], [], None
    for _ in range(1500):
        h = channel_from_fading(beta, draw_ssf((small.n_ap, small.n_ue, small.n_ant), rng))
        csi = prepare_subframe(h, beta, assoc, colour, cfg.p_pilot_w, small.noise_w, rng)
        e = h - np.where(assoc[..., None], csi.hhat, 0.0)
        err.append(np.mean(np.abs(e) ** 2, axis=-1))
        cross.append(np.mean(np.conj(csi.hhat) * e, axis=-1))
        evar = csi.err_var
    rel = np.mean(err, axis=0) / evar
    assert np.all(np.abs(rel - 1) < 0.06)  # 6000 terms per entry: ~1.3 % standard error
    scale = np.sqrt(np.mean(err, axis=0) * beta)
    assert np.all(np.abs(np.mean(cross, axis=0)) < 0.05 * scale + 1e-300)
    # the draws: mean hhat (associated), mean 0 elsewhere, variance err_var per antenna
    hhat = csi.hhat
    draws = gap.posterior_channels(hhat, evar, assoc, 4000, np.random.default_rng(7))
    dev = draws - np.where(assoc[..., None], hhat, 0.0)[None]
    assert np.all(np.abs(np.mean(np.abs(dev) ** 2, axis=(0, 3)) / evar - 1) < 0.05)
    assert np.all(np.abs(dev.mean(axis=0)) < 5 * np.sqrt(evar / 4000)[..., None])


def test_rows_are_the_evaluation_pipelines_numbers(gap, small, rows):
    """(a) to (d) equal netsim.learn.evaluate's methods on the same drops (independent path)."""
    drops = draw_drops(small, 3, RandomStreams(11).generator("test-lsf", small.n_ap, small.n_ue, 0))
    dts = gap.dts_weights(small.n_ant)
    frame = rows.groupby(["pilots", "power", "drop"]).net_se.mean()
    for method, key in (("dsatur_tabu+wmmse", ("base", "wmmse")), ("dts_gnn", ("gnn", "gnn")),
                        ("dsatur_tabu+gnn", ("base", "gnn")), ("dts_pilot+wmmse", ("gnn", "wmmse"))):
        res = evaluate_frames(small, drops, method, seed=12, dts=dts, tabu=TABU, n_sub=2)
        assert np.allclose([r.net_se for r in res], frame.loc[key].values, rtol=1e-12), method


def test_multi_start_and_bounds_are_consistent(gap, rows):
    sub = rows.set_index(["pilots", "drop", "sub", "power"])
    for _key, g in sub.groupby(level=[0, 1, 2]):
        g = g.droplevel([0, 1, 2])
        if "ms_rsur" not in g.index:
            continue
        starts = [k for k in g.index if k == "wmmse" or k == "gnnwarm" or k.startswith("rnd")]
        assert g.loc["ms_rsur", "rsur"] == max(g.loc[starts, "rsur"])  # the honest multi-start choice
        assert g.loc["ms_true", "net_se"] == max(g.loc[starts, "net_se"])
        assert g.loc["ms_rsur", "rsur"] >= g.loc["wmmse", "rsur"]
        if "genie" in g.index:  # monotone ascent of the true rate from the WMMSE point
            assert g.loc["genie", "net_se"] >= g.loc["wmmse", "net_se"] * (1 - 1e-12)
    n_saa = rows[rows.power == "saa"]
    assert set(n_saa["drop"]) == {0, 1} and set(n_saa["sub"]) == {0}


def test_summary_ratios(gap, rows):
    table = gap.summarise(rows).set_index(["pilots", "power"])
    assert table.loc[("base", "wmmse"), "ratio"] == pytest.approx(1.0)
    # ratios are taken against the baseline on the same subframes
    saa = rows[(rows.pilots == "base") & (rows.power == "saa")]
    base = rows[(rows.pilots == "base") & (rows.power == "wmmse")].set_index(["drop", "sub"]).net_se
    want = saa.net_se.mean() / base.loc[list(zip(saa["drop"], saa["sub"], strict=True))].mean()
    assert table.loc[("base", "saa"), "ratio"] == pytest.approx(want, rel=1e-12)
    assert table.loc[("base", "saa"), "subframes"] == 2


def test_main_writes_the_tables(gap, tmp_path):
    assert gap.main(["--out", str(tmp_path), "--n", "2", "--drops", "1", "--subframes", "1", "--starts", "1",
                     "--saa-drops", "1", "--saa-subframes", "1", "--saa-samples", "4", "--m", "3", "--k", "6",
                     "--quiet"]) == 0
    assert (tmp_path / "gap_rows.csv").is_file() and (tmp_path / "gap_table.csv").is_file()
