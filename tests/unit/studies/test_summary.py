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
        "run.frames=6", "users.count=2", "sync.method=genie", "sensing.method=genie",
        "faults=[{at_s: 0.02, ap: 1, duration_s: 0.02}]"])
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


def _expected_rows(out):
    """The summary statistics computed independently with pandas on whole tables."""
    run = load_run(out)
    f, u, ev = run.frames, run.users, run.events

    def fmean(x):
        x = x[np.isfinite(x)]
        return x.mean()

    return {
        "frames": len(f),
        "sum": fmean(f.sum_rate_bps_hz.to_numpy(float)),
        "min": fmean(f.min_rate_bps_hz.to_numpy(float)),
        "to_max": np.nanmax(np.abs(f.residual_to_max_s.to_numpy(float))),
        "tracked": (int(u.tracked.sum()), len(u)),
        "events": ev.kind.value_counts().to_dict(),
    }


def test_streamed_summary_matches_whole_table_statistics(tmp_path):
    """Many small chunks (an unfinished run) and the merged file give the statistics that
    pandas gives on the whole tables."""
    out = tmp_path / "run"
    sc = load_scenario(REPO / "scenarios" / "quickstart.yaml", [
        "run.frames=12", "users.count=3", "sync.method=crb", "sensing.method=genie",
        "run.flush_every_rows=5",
        "faults=[{at_s: 0.03, ap: 2, duration_s: 0.03}]"])
    sim = Simulation(sc, out)
    sim.trace.close = lambda merge=True, _c=sim.trace.close: _c(merge=False)  # keep the chunks
    sim.run()
    assert len(list((out / "subframes").glob("part-*.parquet"))) > 3
    for merged in (False, True):
        if merged:
            from netsim.trace import TABLES, merge_chunks

            for t in TABLES:
                merge_chunks(out, t, 7)
        exp = _expected_rows(out)
        rows = dict(run_summary(load_run(out)))
        assert rows["frames"] == str(exp["frames"]) == "12"
        assert rows["sum rate (mean)"] == f"{exp['sum']:.4g} bit/s/Hz"
        assert rows["min user rate (mean)"] == f"{exp['min']:.4g} bit/s/Hz"
        assert rows["residual |TO| max"] == f"{exp['to_max']:.3g} s"
        n, total = exp["tracked"]
        tracked = next(v for k, v in rows.items() if k.startswith("user-frames tracked"))
        assert tracked.endswith(f"({n} of {total})")
        assert rows["events"] == ", ".join(f"{k}: {v}" for k, v in sorted(exp["events"].items()))


def test_streamed_never_corrected_matches_the_dataframe_version(tmp_path):
    """never_corrected_aps on a run directory (aps and events streamed from several chunks)
    agrees with the same tables given as DataFrames."""
    from netsim.runs import Run
    from netsim.trace import TraceWriter

    fake = fake_run(untrusted=[(0, 2), (2, 2), (2, 3)], est_nan={(0, 1)}, n_aps=5, frames=4)
    w = TraceWriter(tmp_path, flush_every_rows=4)
    for fr in range(4):
        w.emit("events", t_s=0.0, frame=fr, kind="replan", entity=-1, detail="")
        for a in fake.events[fake.events.frame == fr].entity:
            w.emit("events", t_s=0.0, frame=fr, kind="sync_untrusted", entity=int(a), detail="")
        a = fake.aps[fake.aps.frame == fr]
        nan = np.full(len(a), np.nan)
        w.emit("aps", frame=fr, t_s=0.0, ap=a.ap.to_numpy(), x_m=0.0, y_m=0.0, cluster=0,
               is_master=False, is_reference=a.is_reference.to_numpy(), online=True,
               true_cfo_hz=0.0, est_cfo_hz=a.est_cfo_hz.to_numpy(float), residual_cfo_hz=0.0,
               true_to_s=0.0, est_to_s=0.0, residual_to_s=0.0, residual_phase_rad=0.0,
               crb_cfo_hz2=nan, crb_to_s2=nan, track_to_std_s=nan, track_cfo_std_hz=nan,
               track_phase_std_rad=nan)
        w.commit()
        if w.flush_due():
            w.flush()
    w.flush()
    assert len(list((tmp_path / "aps").glob("part-*.parquet"))) >= 3
    run = Run(tmp_path, {}, tables={"frames": fake.frames})
    assert never_corrected_aps(run) == never_corrected_aps(fake) == [2]
    # six frames: AP 2 is trusted on the third round (frame 4), so no AP is left uncorrected
    fake6 = fake_run(untrusted=[(0, 2), (2, 2), (2, 3)], est_nan={(0, 1)}, n_aps=5, frames=6)
    assert never_corrected_aps(fake6) == []


def test_summary_of_a_run_directory_does_not_need_pandas(tmp_path):
    """The CLI's end-of-run summary streams columns with pyarrow: pandas is never imported
    (it costs memory and start-up time in every ``netsim run``)."""
    import subprocess
    import sys

    out = tmp_path / "run"
    Simulation(load_scenario(REPO / "scenarios" / "quickstart.yaml",
                             ["run.frames=3", "users.count=2", "sync.method=genie",
                              "sensing.method=genie"]), out).run()
    code = ("import sys; sys.modules['pandas'] = None\n"  # any import of pandas fails
            "from netsim.runs import load_run\nfrom netsim.summary import run_summary\n"
            f"rows = dict(run_summary(load_run({str(out)!r})))\n"
            "assert rows['frames'] == '3', rows\nprint('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_distinct_and_member_helpers_equal_numpys_unique_and_isin():
    """The summary's replacements of np.unique / np.isin (which import numpy.ma) give the same
    arrays on random integer inputs, empty ones included."""
    from netsim.summary import _member, _sorted_distinct

    rng = np.random.default_rng(17)
    for _ in range(100):
        a = rng.integers(-5, 30, rng.integers(0, 40))
        v = rng.integers(-5, 30, rng.integers(0, 10))
        u = _sorted_distinct(v)
        np.testing.assert_array_equal(u, np.unique(v))
        np.testing.assert_array_equal(_member(a, u), np.isin(a, u))
