"""The run summary: oracles are marked, tracked fraction, APs never corrected, event counts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from netsim.runs import load_run
from netsim.scenario.loader import load_scenario
from netsim.sim.engine import Simulation
from netsim.summary import format_summary, never_corrected_aps, run_summary

REPO = Path(__file__).resolve().parents[3]


def fake_run(untrusted, n_aps=4, frames=4, est_nan=()):
    """Tables of a run where AP 0 is the reference and sync runs on even frames."""
    f = pd.DataFrame({"frame": range(frames), "sync_ran": [fr % 2 == 0 for fr in range(frames)]})
    aps = pd.DataFrame([{"frame": fr, "ap": a, "online": True, "is_reference": a == 0,
                         "est_cfo_hz": np.nan if (fr, a) in est_nan else 1.0}
                        for fr in range(frames) for a in range(n_aps)])
    ev = pd.DataFrame([{"frame": fr, "entity": a, "kind": "sync_untrusted"}
                       for fr, a in untrusted], columns=["frame", "entity", "kind"])
    return SimpleNamespace(frames=f, aps=aps, events=ev)


def test_an_ap_untrusted_on_every_round_is_never_corrected():
    # AP 2 untrusted on both rounds; AP 3 untrusted on one only; AP 1 has no estimate once
    run = fake_run(untrusted=[(0, 2), (2, 2), (2, 3)], est_nan={(0, 1)})
    assert never_corrected_aps(run) == [2]
    run = fake_run(untrusted=[(0, 2)], est_nan={(2, 2)})
    assert never_corrected_aps(run) == [2]
    assert never_corrected_aps(fake_run(untrusted=[])) == []


def test_summary_marks_oracles_and_counts_events(tmp_path):
    out = tmp_path / "run"
    sc = load_scenario(REPO / "scenarios" / "quickstart.yaml", [
        "run.frames=6", "users.count=2", "faults=[{at_s: 0.02, ap: 1, duration_s: 0.02}]"])
    Simulation(sc, out).run()
    rows = dict(run_summary(load_run(out)))
    assert rows["sync"].startswith("genie (oracle")
    assert rows["sensing"].startswith("genie (oracle")
    assert rows["beamforming"] == "mrt_plain"
    assert "residual |TO| max (oracle)" in rows and "sensing RMSE (mean) (oracle)" in rows
    assert rows["user-frames tracked (oracle)"] == "100.0 % (12 of 12)"
    assert rows["APs never corrected"] == "none"
    ev = load_run(out).events.kind.value_counts()
    for kind, n in ev.items():
        assert f"{kind}: {n}" in rows["events"]
    assert "outage: 1" in rows["events"] and "recovery: 1" in rows["events"]
    text = format_summary(list(rows.items()))
    assert text.count("\n") == len(rows) - 1


def test_summary_does_not_mark_a_real_estimator_as_oracle(tmp_path):
    out = tmp_path / "run"
    sc = load_scenario(REPO / "scenarios" / "quickstart.yaml",
                       ["run.frames=3", "users.count=2", "sync.method=crb",
                        "sensing.method=genie"])
    Simulation(sc, out).run()
    rows = dict(run_summary(load_run(out)))
    assert rows["sync"] == "crb, every 1 frame(s)" and "(oracle)" not in rows["sync"]
    assert "residual |TO| max" in rows  # a real estimate: not marked
