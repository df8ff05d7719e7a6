"""GNN power control and pilot assignment inside the engine (seed 004 part 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netsim.scenario import load_scenario
from netsim.sim.engine import Simulation

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["users.count=14", "deployment.antennas_per_ap=4", "run.frames=2", "frame.subframes=3"]


def run_umi(*overrides, out=None):
    sc = load_scenario(ROOT / "scenarios/umi_cellfree.yaml", [*SMALL, *overrides])
    sim = Simulation(sc, out)
    return sim, sim.run().tables


def _per_ap(sub):
    ap_power = np.stack(sub.ap_power_w.to_numpy())  # [rows, M]
    cols = [f"p{m}" for m in range(ap_power.shape[1])]
    return sub.assign(**dict(zip(cols, ap_power.T, strict=True))).groupby(
        ["frame", "subframe"])[cols].sum()


@pytest.mark.parametrize("power", ["gnn", "sts_gnn"])
def test_gnn_policies_run_and_meet_the_budget(power):
    sim, t = run_umi(f"comm.power={power}", "comm.pilot_assignment=gnn")
    sub, frames = t["subframes"], t["frames"]
    p_max = 10 ** ((44 - 30) / 10)
    per_ap = _per_ap(sub)
    assert (per_ap.to_numpy() <= p_max).all() and (per_ap.to_numpy() > 0).any()
    assert ((frames.comm_pilot_length >= 1) & (frames.comm_pilot_length <= 14)).all()
    assert (sub.rate_bps_hz >= 0).all() and sub.rate_bps_hz.sum() > 0
    if power == "sts_gnn":  # one power matrix per frame: every subframe carries the same
        spread = per_ap.groupby(level="frame").agg(np.ptp).to_numpy()
        assert np.all(spread <= 1e-12 * p_max)


def test_gnn_runs_are_reproducible():
    _, t1 = run_umi("comm.power=gnn", "comm.pilot_assignment=gnn")
    _, t2 = run_umi("comm.power=gnn", "comm.pilot_assignment=gnn")
    np.testing.assert_array_equal(t1["subframes"].rate_bps_hz, t2["subframes"].rate_bps_hz)


def test_bad_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "w.npz"
    bad.write_text("garbage")
    with pytest.raises(ValueError, match=f"comm.gnn_weights: GNN weights file {bad}"):
        Simulation(load_scenario(ROOT / "scenarios/umi_cellfree.yaml",
                                 [*SMALL, "comm.power=gnn", f"comm.gnn_weights={bad}"]))


def test_sts_gnn_needs_pilot_csi():
    with pytest.raises(Exception, match="sts_gnn needs csi: pilots"):
        load_scenario(ROOT / "scenarios/umi_cellfree.yaml",
                      ["comm.power=sts_gnn", "comm.csi=location", "comm.beamforming=mrt"])


def test_cli_run_without_torch_records_the_weights(tmp_path):
    """A fresh install without torch: torch is made unimportable in the child process."""
    site = tmp_path / "site"
    site.mkdir()
    # an import hook (not sys.modules['torch'] = None, which scipy's array-API probe trips on)
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked in this test')\n"
        "sys.meta_path.insert(0, _NoTorch())\n")
    out = tmp_path / "run"
    probe = ("import runpy, sys; sys.argv = ['netsim'] + sys.argv[1:]; "
             "from netsim.cli import main; rc = main(sys.argv[1:]); "
             "assert 'torch' not in sys.modules; sys.exit(rc)")
    cmd = [sys.executable, "-c", probe, "run", str(ROOT / "scenarios/umi_cellfree.yaml"),
           "--frames", "1", "--out", str(out), "-q",
           "--set", "comm.power=gnn", "--set", "comm.pilot_assignment=gnn",
           *[x for s in SMALL[:2] for x in ("--set", s)], "--set", "frame.subframes=2"]
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "finished"
    assert meta["algorithms"]["power"] == "gnn" and meta["algorithms"]["pilot_assignment"] == "gnn"
    dts = meta["gnn_weights"]["dts"]
    assert dts["path"].endswith("dts_gnn.npz") and dts["trained_on"] == "umi_cellfree"


def test_gnn_pilot_refine_is_opt_in(monkeypatch):
    # comm.gnn_pilot_refine > 0 moves the GNN's pilots by refine_pilots (spied: the frames'
    # pilot lengths are the refined ones), 0 leaves the run as before; N = 8 here (>= min_n 4)
    import netsim.comm.power.gnn_refine as gr

    base = ["comm.power=gnn", "comm.pilot_assignment=gnn", "deployment.antennas_per_ap=8"]
    _, plain = run_umi(*base)
    _, zero = run_umi(*base, "comm.gnn_pilot_refine=0")
    np.testing.assert_array_equal(plain["subframes"].rate_bps_hz, zero["subframes"].rate_bps_hz)
    seen = []
    orig = gr.refine_pilots

    def spy(*a, **k):
        out = orig(*a, **k)
        seen.append((int(out[0].max()) + 1, out[1]))
        return out

    monkeypatch.setattr(gr, "refine_pilots", spy)
    _, ref = run_umi(*base, "comm.gnn_pilot_refine=5")
    assert seen and all(0 < info["moves"] <= 5 or info["j_end"] == info["j_start"] for _, info in seen)
    assert all(info["j_end"] >= info["j_start"] for _, info in seen)
    assert list(ref["frames"].comm_pilot_length[-len(seen):]) == [tp for tp, _ in seen]


def test_engine_feeds_err_var_to_a_power_gnn_that_reads_it(tmp_path):
    """The engine passes its err_var (the MMSE error variances WMMSE gets) to the Power-GNN:
    the shipped file with the err_var input added at zero weight (function-preserving) gives the
    shipped file's tables; the same file with weight on that input gives other powers."""
    from netsim.comm.power.gnn import (
        GNNWeights,
        default_weights_path,
        load_gnn_weights,
        save_gnn_weights,
    )
    from netsim.learn.widen import add_err_var_input

    old = load_gnn_weights(default_weights_path("dts"))
    arch, ps = add_err_var_input(old.params["power"], old.archs["power"])
    zero, moved = tmp_path / "zero.npz", tmp_path / "moved.npz"
    save_gnn_weights(zero, GNNWeights("dts", {**old.archs, "power": arch}, {**old.params, "power": ps}, old.meta))
    ps2 = {k: v.copy() for k, v in ps.items()}
    ps2["pow.0.Us"][:, 4] = 2.0  # the SIG edges now read the variance
    save_gnn_weights(moved, GNNWeights("dts", {**old.archs, "power": arch}, {**old.params, "power": ps2}, old.meta))
    _, t0 = run_umi("comm.power=gnn")
    _, t1 = run_umi("comm.power=gnn", f"comm.gnn_weights={zero}")
    _, t2 = run_umi("comm.power=gnn", f"comm.gnn_weights={moved}")
    p0, p1, p2 = (np.stack(t["subframes"].ap_power_w.to_numpy()) for t in (t0, t1, t2))
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-6 * p0.max())  # float32 pass, zero column
    assert np.max(np.abs(p2 - p0)) > 1e-3 * p0.max()
