"""Sweep benchmark: runs per minute on 1 and 2 Dask workers, parallel efficiency, and the
scheduler's overhead per task.

Prints (no pass/fail):
* the fixed sweep (quickstart, ``--frames`` frames per run, ``--tasks`` runs): the mean CPU and
  wall time of one run, then for 1 and 2 workers of a warm LocalCluster the wall time, runs per
  minute and parallel efficiency ``E = T_1 / (2 T_2)``;
* the same end to end through :func:`netsim.sweep.run_sweep` (cluster start-up included);
* the scheduler overhead per task: ``--noop`` empty tasks on a warm one-worker cluster
  (submit to result, per task), and in the sweep on 1 worker, wall time not spent inside tasks
  per task.

BLAS threads are pinned to 1 (worker processes inherit it). On a machine shared with other
jobs the 2-worker numbers depend on the load: compare ``task CPU`` with ``task wall`` (printed)
to see how much CPU the tasks actually got.

Usage: python benchmarks/sweep.py [--frames 150] [--tasks 8] [--noop 200]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _noop(i: int) -> int:
    return i


def _warm(_: int) -> int:
    import netsim.sim.engine  # noqa: F401 - imports once per worker, outside the timing
    import netsim.sweep  # noqa: F401

    return 0


def write_sweep(folder: Path, frames: int, tasks: int) -> Path:
    path = folder / "bench.yaml"
    path.write_text(
        f"base: {REPO / 'scenarios' / 'quickstart.yaml'}\n"
        f"set: [run.frames={frames}, sync.method=genie, sensing.method=genie]\n"
        f"grid:\n  run.seed: {list(range(tasks))}\n"
        "replications: 1\nseed: 1\n")
    return path


def timed_batch(client, tasks) -> tuple[float, list[dict]]:
    from dask.distributed import wait

    from netsim.sweep import run_task

    t0 = time.perf_counter()
    futures = [client.submit(run_task, t, pure=False) for t in tasks]
    wait(futures)
    wall = time.perf_counter() - t0
    return wall, [f.result() for f in futures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per run")
    parser.add_argument("--tasks", type=int, default=8, help="runs in the sweep")
    parser.add_argument("--noop", type=int, default=200, help="empty tasks for the overhead")
    args = parser.parse_args()
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from dask.distributed import Client, LocalCluster

    from netsim.sweep import plan_sweep, run_sweep

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="netsim-bench-sweep-") as tmp:
        tmp = Path(tmp)
        spec = write_sweep(tmp, args.frames, args.tasks)
        print(f"== fixed sweep: quickstart, {args.frames} frames per run, {args.tasks} runs ==")
        results = {}
        for n in (1, 2):
            _, _, tasks, _ = plan_sweep(spec, tmp / f"warm{n}")
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.gather([client.submit(_warm, i, pure=False) for i in range(4 * n)])
                wall, rows = timed_batch(client, tasks)
            assert all(r["status"] == "finished" for r in rows), rows
            results[n] = (wall, rows)
        w1, rows1 = results[1]
        task_wall = sum(r["task_wall_s"] for r in rows1) / len(rows1)
        task_cpu = sum(r["task_cpu_s"] for r in rows1) / len(rows1)
        print(f"one run (1 worker): {task_wall:.2f} s wall, {task_cpu:.2f} s CPU")
        print(f"{'workers':>7} {'wall s':>8} {'runs/min':>9} {'efficiency':>10} "
              f"{'task wall s':>11} {'task CPU s':>10}")
        for n, (wall, rows) in results.items():
            tw = sum(r["task_wall_s"] for r in rows) / len(rows)
            tc = sum(r["task_cpu_s"] for r in rows) / len(rows)
            eff = w1 / (n * wall)
            print(f"{n:>7} {wall:8.2f} {60 * len(rows) / wall:9.1f} {eff:10.2f} {tw:11.2f} "
                  f"{tc:10.2f}")
        per_task = (w1 - sum(r["task_wall_s"] for r in rows1)) / len(rows1)
        print(f"overhead per task in the 1-worker sweep (wall not inside tasks): "
              f"{1e3 * per_task:.1f} ms")
        # On a loaded machine the measured efficiency mostly reflects the CPU share each
        # worker got; this is the efficiency the measured overhead allows on idle cores:
        # n workers, tasks of task_cpu seconds, per-task overhead serialised at the scheduler.
        print(f"efficiency bound from the overhead (idle cores, 2 workers): "
              f"{task_cpu / (task_cpu + 2 * max(per_task, 0.0)):.3f}")

        print("\n== end to end: netsim.sweep.run_sweep (cluster start-up and table writing "
              "included) ==")
        e2e = {}
        for n in (1, 2):
            c0, t0 = time.process_time(), time.perf_counter()
            res = run_sweep(spec, workers=n, out=tmp / f"e2e{n}", progress=False)
            e2e[n] = time.perf_counter() - t0
            assert (res.summary.status == "finished").all()
            print(f"{n} worker(s): {e2e[n]:.2f} s wall ({time.process_time() - c0:.2f} s CPU in "
                  f"the driver), {60 * args.tasks / e2e[n]:.1f} runs/min")
        print(f"end-to-end efficiency with 2 workers: {e2e[1] / (2 * e2e[2]):.2f}")

    print(f"\n== scheduler overhead: {args.noop} empty tasks, warm 1-worker LocalCluster ==")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather([client.submit(_noop, i, pure=False) for i in range(20)])
        t0 = time.perf_counter()
        client.gather([client.submit(_noop, i, pure=False) for i in range(args.noop)])
        batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(min(args.noop, 50)):
            client.submit(_noop, i, pure=False).result()
        serial = time.perf_counter() - t0
    print(f"submitted together: {1e3 * batch / args.noop:.2f} ms per task")
    print(f"one at a time (round trip): {1e3 * serial / min(args.noop, 50):.2f} ms per task")
    print(f"load average after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
