"""The command line: run, validate, plot, sweep (as a user would type them)."""

from __future__ import annotations

import subprocess
import sys

import netsim

# the cheap reference models, for tests that check something other than sync or sensing
CHEAP = ("--set", "sync.method=genie", "--set", "sensing.method=genie")


def netsim_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "netsim", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=1800)


def test_run_writes_a_run_directory_and_prints_a_summary(tmp_path):
    out = tmp_path / "run"
    # the bundled defaults: ML sync + MUSIC sensing, end to end (a few CPU-s)
    res = netsim_cli("run", "scenarios/quickstart.yaml", "--out", str(out), "--frames", "5",
                     "--set", "users.count=2")
    assert res.returncode == 0, res.stderr
    assert "sum rate (mean)" in res.stdout and "finished" in res.stdout
    run = netsim.load_run(out)
    assert len(run.frames) == 5 and run.users.user.nunique() == 2


def test_validate_names_every_bad_field_and_exits_nonzero(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("deployment:\n  antenas_per_ap: 4\noscillators:\n  initial_offset_ppm: -2\n")
    res = netsim_cli("validate", str(bad))
    assert res.returncode == 2
    assert "deployment.antenas_per_ap: unknown field; did you mean 'antennas_per_ap'" in res.stderr
    assert "oscillators.initial_offset_ppm: must be greater than or equal to 0" in res.stderr
    ok = netsim_cli("validate", "scenarios/quickstart.yaml")
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_run_refuses_an_invalid_override(tmp_path):
    res = netsim_cli("run", "scenarios/quickstart.yaml", "--out", str(tmp_path / "x"),
                     "--set", "frame.comm_fraction=1.5")
    assert res.returncode == 2 and "frame.comm_fraction" in res.stderr
    assert not (tmp_path / "x").exists()


def test_plot_writes_pngs(tmp_path):
    out = tmp_path / "run"
    assert netsim_cli("run", "scenarios/quickstart.yaml", "--out", str(out), "--frames", "3",
                      *CHEAP, "-q").returncode == 0
    res = netsim_cli("plot", str(out))
    assert res.returncode == 0, res.stderr
    for name in ("rates", "sync", "users", "sinr_cdf"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000


def test_sweep_runs_grid_times_replications(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "base: {base}\nset: [run.frames=3, sensing.method=genie]\ngrid:\n  sync.method: [none, genie]\n"
        "replications: 2\nout: {out}\n".format(base=__import__("os").path.abspath(
            "scenarios/quickstart.yaml"), out=tmp_path / "sw"))
    res = netsim_cli("sweep", str(sweep), "--workers", "1")
    assert res.returncode == 0, res.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "sw" / "summary.csv")
    assert len(table) == 4 and (table.status == "finished").all()
    # replications are independent substreams: different draws for the same point
    none = table[table["sync.method"] == "none"]
    assert none.sum_rate_bps_hz.nunique() == 2


def test_a_killed_run_keeps_every_flushed_chunk(tmp_path):
    """SIGKILL in the middle of a long run: meta.json still says 'running' and every Parquet
    chunk flushed before the kill is readable."""
    import json
    import signal
    import time

    import pyarrow.parquet as pq

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netsim", "run", "scenarios/drift_longrun.yaml", "--out", str(out),
         "-q", "--set", "run.flush_every_rows=50", "--set", "run.flush_every_s=0.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait for the condition itself (3 chunks on disk); the deadline only bounds a hang, and a
    # run that exits early fails here rather than as a missing chunk further down
    deadline = time.monotonic() + 600
    while not list((out / "subframes").glob("part-*.parquet"))[2:]:
        assert proc.poll() is None, "the run ended before it flushed 3 chunks"
        assert time.monotonic() < deadline, "no 3 flushed chunks after 600 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # every chunk of the last complete flush (trace.json) is read back in full; how many rows they
    # hold depends on the machine's speed (the wall-clock flush rule). A kill can land inside a
    # flush, after this table's chunk was renamed but before trace.json counted it: that chunk
    # (at most one per table) is on disk but belongs to an incomplete flush, so readers skip it.
    parts = sorted((out / "subframes").glob("part-*.parquet"))
    complete = json.loads((out / "trace.json").read_text())["chunks"]["subframes"]
    assert len(parts) >= 3 and complete in (len(parts), len(parts) - 1)
    flushed = sum(pq.ParquetFile(f).metadata.num_rows for f in parts[:complete])
    run = netsim.load_run(out)
    assert run.meta["status"] == "running"
    assert len(run.subframes) == flushed > 0 and len(run.subframes) % 4 == 0  # whole subframes (4 users)
    assert len(run.frames) >= 1  # every flush writes every table (the rows rule fired for subframes)
