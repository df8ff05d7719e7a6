"""netsim.plots: every figure of a run and a sweep, with the conventions the docs promise
(algorithm names in titles, units on axes, legends off the data, border APs inside the map)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from netsim import plots
from netsim.runs import load_run
from netsim.scenario.loader import load_scenario
from netsim.sim.engine import Simulation

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A short run with an outage (so events appear) and APs placed on the area's border."""
    out = tmp_path_factory.mktemp("plots") / "run"
    sc = load_scenario(REPO / "scenarios" / "quickstart.yaml", [
        "run.frames=12", "sync.method=crb", "sensing.method=genie", "users.count=2",
        "deployment.aps={layout: list, positions_m: [[0, 0], [40, 0], [0, 40], [40, 40]]}",
        "faults=[{at_s: 0.03, ap: 1, duration_s: 0.04}]"])
    Simulation(sc, out).run()
    return out


def test_plot_run_writes_every_figure(run_dir, tmp_path):
    paths = plots.plot_run(run_dir, tmp_path)
    assert [p.stem for p in paths] == list(plots.RUN_FIGURES)
    for p in paths:
        assert p.stat().st_size > 5000, p  # a real image, not an empty canvas


def test_titles_name_the_algorithms_and_axes_carry_units(run_dir):
    run = load_run(run_dir)
    sync = plots.fig_sync(run)
    assert "sync: crb" in sync.texts[0].get_text()
    for ax in sync.axes:
        assert "(" in ax.get_ylabel() and ax.get_ylabel().endswith(")")
    assert sync.axes[-1].get_xlabel() == "network time (s)"
    rates = plots.fig_rates(run)
    title = rates.texts[0].get_text()
    assert "mrt_plain" in title and "power: equal" in title
    assert "bit/s/Hz" in rates.axes[1].get_ylabel()
    loc = plots.fig_localization(run)
    assert "genie (oracle)" in loc.texts[0].get_text()
    # the outage and the recovery are marked on the sync figure
    labels = {t.get_text() for ax in sync.axes if ax.get_legend()
              for t in ax.get_legend().get_texts()}
    assert {"outage", "recovery", "replan"} <= labels
    import matplotlib.pyplot as plt

    plt.close("all")


def test_map_keeps_border_aps_inside_and_legend_off_the_data(run_dir):
    run = load_run(run_dir)
    fig = plots.fig_map(run)
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x0 < 0 < 40 < x1 and y0 < 0 < 40 < y1  # APs sit exactly on the corners
    fig.canvas.draw()
    leg = ax.get_legend().get_window_extent()
    assert leg.x0 >= ax.get_window_extent().x1  # legend right of the axes
    # estimates are markers, true tracks are lines: visibly different artists
    styles = {(ln.get_linestyle(), ln.get_marker()) for ln in ax.get_lines()}
    assert ("-", "None") in styles and ("None", "x") in styles


def fake_sweep(values, param="sync.period_frames", other=None):
    """A Sweep-like object: 3 replications per point with known per-run means."""
    rows = []
    for i, (p, reps) in enumerate(values.items()):
        for r, v in enumerate(reps):
            for fr in range(4):  # per-run mean is v (frames straddle it)
                rows.append({"run_id": f"{i}-{r}", "point": str(i), param: p, "frame": fr,
                             "sum_rate_bps_hz": v + (fr - 1.5),
                             "residual_to_rms_s": abs(v) * 1e-9})
    return SimpleNamespace(frames=pd.DataFrame(rows), params=[param], spec={"name": "fake"},
                           path=Path("fake"))


def test_sweep_statistics_is_the_student_t_interval():
    sweep = fake_sweep({1: [1.0, 2.0, 4.0], 10: [5.0, 5.0, 8.0]})
    st = plots.sweep_statistics(sweep, "sum_rate_bps_hz", ["sync.period_frames"])
    for p, reps in ((1, [1.0, 2.0, 4.0]), (10, [5.0, 5.0, 8.0])):
        row = st[st["sync.period_frames"] == p].iloc[0]
        m, s = np.mean(reps), np.std(reps, ddof=1)
        half = stats.t.ppf(0.975, 2) * s / math.sqrt(3)  # 4.303 * s / sqrt(3)
        assert row["mean"] == pytest.approx(m) and row.n == 3
        assert row.hi - row["mean"] == pytest.approx(half)
        assert row["mean"] - row.lo == pytest.approx(half)


def test_sweep_figure_has_one_panel_per_metric_with_error_bars():
    sweep = fake_sweep({1: [1.0, 2.0, 4.0], 10: [5.0, 5.0, 8.0], 100: [6.0, 7.0, 6.5]})
    fig = plots.fig_sweep(sweep, "sync.period_frames",
                          {k: plots.SWEEP_METRICS[k] for k in ("sum_rate_bps_hz",
                                                                "residual_to_rms_s")})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 2
    assert axes[0].get_ylabel() == "sum spectral efficiency (bit/s/Hz)"
    assert axes[1].get_yscale() == "log" and axes[0].get_xscale() == "log"
    assert "3 replications" in fig.texts[0].get_text()


def test_plot_path_refuses_a_folder_that_is_neither(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        plots.plot_path(tmp_path)
