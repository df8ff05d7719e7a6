"""Sweeps: the same tables whatever runs them (1 or 2 local workers, a real Dask cluster),
re-runs that skip finished work, failures that are recorded and reported, and grid points
that are refused (named with key and value) before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import netsim
from netsim.cli import main as cli_main
from netsim.sweep import SweepError, plan_sweep, point_id, run_seed, run_sweep

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "scenarios" / "quickstart.yaml"


def write_sweep(path: Path, grid: str, replications: int = 3, set_: str = "", seed: int = 7):
    # a small, fast grid: 2 users standing still, 3 frames, genie sync and sensing (references)
    pins = "sensing.method=genie" + ("" if "sync.method" in grid else ", sync.method=genie")
    path.write_text(
        f"base: {BASE}\n"
        f"set: [run.frames=3, users.count=2, users.mobility.model=static, {pins}{set_}]\n"
        f"grid:\n{grid}"
        f"replications: {replications}\nseed: {seed}\n")
    return path


GRID_2x3 = "  sync.method: [none, genie]\n  frame.subframes: [2, 3, 4]\n"


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    """A table without its wall-clock columns (the only ones allowed to differ)."""
    return df[[c for c in df.columns if not c.startswith("wall_")]].reset_index(drop=True)


def assert_same_tables(a, b):
    for name in ("frames", "aps", "users", "subframes", "events"):
        pd.testing.assert_frame_equal(comparable(a[name]), comparable(b[name]), obj=name)


@pytest.fixture(scope="module")
def two_worker_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep2")
    spec = write_sweep(tmp / "grid.yaml", GRID_2x3)
    result = run_sweep(spec, workers=2, out=tmp / "out", progress=False)
    return spec, tmp / "out", result


def test_grid_times_replications_gives_tidy_tables(two_worker_sweep):
    _, out, result = two_worker_sweep
    assert len(result.summary) == 18 and (result.summary.status == "finished").all()
    sw = netsim.load_sweep(out)
    assert sw.params == ["sync.method", "frame.subframes"]
    # one row per run x frame, swept values as typed columns
    assert len(sw.frames) == 18 * 3
    assert sw.frames["frame.subframes"].dtype == np.int64
    assert set(sw.frames["sync.method"]) == {"none", "genie"}
    assert sw.frames.groupby("run_id").size().eq(3).all()
    # one row per run x user x subframe; the subframe count is the swept value
    sub = sw.subframes
    per_run = sub.groupby("run_id").agg(n=("subframe", "size"), s=("frame.subframes", "first"))
    assert (per_run.n == 3 * 2 * per_run.s).all()
    # the point id is the partition key and names the run folder
    row = sw.frames.iloc[0]
    point = {"sync.method": row["sync.method"], "frame.subframes": int(row["frame.subframes"])}
    assert row.point == point_id(point)
    assert (out / "runs" / row.run_id / "meta.json").exists()
    # replications of a point differ (independent seeds); genie sync leaves no residual TO
    seeds = sw.frames.groupby("point").seed.nunique()
    assert (seeds == 3).all()
    genie = sw.aps[(sw.aps["sync.method"] == "genie") & ~sw.aps.is_reference]
    none = sw.aps[(sw.aps["sync.method"] == "none") & ~sw.aps.is_reference]
    assert genie.residual_to_s.abs().max() < none.residual_to_s.abs().median()


def test_one_worker_gives_identical_tables_and_a_rerun_skips_everything(two_worker_sweep, tmp_path):
    spec, out2, _ = two_worker_sweep
    out1 = tmp_path / "out1"
    run_sweep(spec, workers=1, out=out1, progress=False)
    assert_same_tables(netsim.load_sweep(out1), netsim.load_sweep(out2))
    stamps = {p: p.stat().st_mtime_ns for p in (out1 / "runs").glob("*/meta.json")}
    again = run_sweep(spec, workers=2, out=out1, progress=False)
    assert (again.summary.status == "skipped").all() and len(again.summary) == 18
    assert {p: p.stat().st_mtime_ns for p in (out1 / "runs").glob("*/meta.json")} == stamps
    # skipped rows still carry the headline numbers of the runs they stand for
    first = pd.read_parquet(out1 / "summary.parquet")
    np.testing.assert_allclose(again.summary.sum_rate_bps_hz, first.sum_rate_bps_hz)


def _scheduler_address(path: Path) -> str | None:
    """The address in a dask scheduler file, or None while it is missing or half written."""
    import json

    try:
        return json.loads(path.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


def test_a_real_dask_cluster_gives_the_same_tables(two_worker_sweep, tmp_path):
    spec, out2, _ = two_worker_sweep
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    bindir = Path(sys.executable).parent
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen(
        [str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(sched_file)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        # the scheduler writes its file in place (not atomically): wait until it parses, and
        # fail at once (not on a timer) if the scheduler died; the deadline only bounds a hang
        address, deadline = None, time.monotonic() + 600
        while address is None:
            assert procs[0].poll() is None, "the dask scheduler exited"
            assert time.monotonic() < deadline, "no scheduler file after 600 s"
            address = _scheduler_address(sched_file)
            time.sleep(0.1)
        procs.append(subprocess.Popen(
            [str(bindir / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard"], env=env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address, timeout="300s") as c:
            c.wait_for_workers(2, timeout=600)
        out = tmp_path / "cluster"
        result = run_sweep(spec, scheduler=address, out=out, progress=False)
        assert (result.summary.status == "finished").all()
        assert_same_tables(netsim.load_sweep(out), netsim.load_sweep(out2))
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=120)  # a nanny killed early orphans its workers
            except subprocess.TimeoutExpired:
                p.kill()


def test_seeds_depend_only_on_sweep_seed_point_and_replication():
    a = {"sync.method": "ml", "frame.subframes": 3}
    b = {"frame.subframes": 3, "sync.method": "ml"}  # same point, other key order
    assert run_seed(5, a, 2) == run_seed(5, b, 2)
    seeds = {run_seed(5, a, r) for r in range(50)} | {run_seed(6, a, 0), run_seed(5, {"x": 1}, 0)}
    assert len(seeds) == 52 and all(0 <= s < 2**63 for s in seeds)
    # common random numbers: every point of replication r shares its seed
    assert run_seed(5, a, 1, True) == run_seed(5, {"x": 1}, 1, True) != run_seed(5, a, 2, True)
    assert point_id(a) == point_id(b) and len(point_id(a)) == 12


def test_editing_the_grid_keeps_the_run_folders_of_unchanged_points(tmp_path):
    spec = write_sweep(tmp_path / "g.yaml", "  frame.subframes: [2, 3]\n", replications=1)
    _, _, tasks, _ = plan_sweep(spec, tmp_path / "o")
    spec = write_sweep(tmp_path / "g.yaml", "  frame.subframes: [5, 3, 2]\n", replications=1)
    _, _, tasks2, _ = plan_sweep(spec, tmp_path / "o")
    before = {t.run_id: t.seed for t in tasks}
    after = {t.run_id: t.seed for t in tasks2}
    assert before.items() <= after.items() and len(after) == 3


def test_failed_runs_are_recorded_retried_and_give_exit_code_1(tmp_path, capsys):
    spec = write_sweep(tmp_path / "f.yaml", "  frame.subframes: [2, 3]\n", replications=1)
    out = tmp_path / "o"
    _, _, tasks, _ = plan_sweep(spec, out)
    # an obstacle where one run's folder must go: that run fails, the other one finishes
    blocker = tasks[0].run_dir
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a run folder")
    code = cli_main(["sweep", str(spec), "--workers", "1", "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "1 run(s) failed" in err
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.status) == ["failed", "finished"]
    assert isinstance(summary.error[0], str) and summary.error[0]
    sw = netsim.load_sweep(out)
    assert set(sw.frames.run_id) == {tasks[1].run_id}  # tables of the finished run written
    # a re-run retries the failed run and skips the finished one
    blocker.unlink()
    assert cli_main(["sweep", str(spec), "--workers", "1", "--out", str(out), "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.status) == ["finished", "skipped"]


def test_a_changed_fixed_override_reruns_the_stale_runs(tmp_path):
    spec = write_sweep(tmp_path / "s.yaml", "  frame.subframes: [2]\n", replications=1)
    out = tmp_path / "o"
    run_sweep(spec, workers=1, out=out, progress=False)
    spec = write_sweep(tmp_path / "s.yaml", "  frame.subframes: [2]\n", replications=1,
                       set_=", frame.ap_power_dbm=20")
    again = run_sweep(spec, workers=1, out=out, progress=False)
    assert list(again.summary.status) == ["finished"]


def test_invalid_grid_points_are_named_and_nothing_runs(tmp_path, capsys):
    spec = write_sweep(tmp_path / "bad.yaml",
                       "  frame.subframes: [2, 0]\n  comm.power: [equal, no_such_power]\n")
    out = tmp_path / "o"
    with pytest.raises(SweepError) as err:
        plan_sweep(spec, out)
    text = "\n".join(err.value.problems)
    assert 'grid point frame.subframes=0, comm.power="equal": frame.subframes' in text
    assert 'frame.subframes=2, comm.power="no_such_power": comm.power' in text
    assert "base scenario" not in text and str(BASE) not in text
    assert cli_main(["sweep", str(spec), "--out", str(out), "-q"]) == 2
    assert "frame.subframes=0" in capsys.readouterr().err
    assert not out.exists()


def test_algorithms_unavailable_in_this_build_are_refused_before_anything_runs(tmp_path, capsys):
    # valid for the schema, refused by the registries: RZF is the beamformer of pilot CSI only
    spec = write_sweep(tmp_path / "u.yaml", "  comm.beamforming: [mrt_plain, rzf]\n")
    out = tmp_path / "o"
    assert cli_main(["sweep", str(spec), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert 'grid point comm.beamforming="rzf": comm.beamforming' in err
    assert not out.exists()


def test_shared_filesystem_check_names_the_blind_worker(tmp_path):
    from netsim.sweep import _check_shared_filesystem

    class FakeClient:  # a cluster where one worker mounts something else at the same path
        def run(self, fn, path, expected):
            return {"tcp://a:1": fn(path, expected), "tcp://b:2": fn(path + ".elsewhere", expected)}

    with pytest.raises(SweepError, match="tcp://b:2 cannot see .*shared by every worker"):
        _check_shared_filesystem(FakeClient(), tmp_path)
    assert not list(tmp_path.iterdir())  # the token is removed
