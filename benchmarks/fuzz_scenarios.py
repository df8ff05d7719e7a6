"""Fuzz campaign: mutated scenario files through ``netsim validate`` and ``netsim run --frames 2``.

Each case is a damaged copy of a bundled scenario (:func:`netsim.scenario.mutate.mutate`, seeded
by its case number). A worker process runs the cases in-process through ``netsim.cli.main`` with
a per-case alarm and an address-space limit; the driver restarts a worker that dies or stops
answering. Every case ends in one class:

* ``crash``    an exception escaped the CLI (a traceback), or the worker died;
* ``hang``     past the time limit, more than 100 kB of output, or MemoryError (resource blow-up);
* ``nonsense`` exit 0 from ``run`` but a logged rate/SINR/power/position is not finite, or
  ``frames.mean_sinr_db`` is a placeholder average (< -1000 dB while most users are served);
* ``run_failed`` validate said OK, then ``run`` stopped with exit 1 and a message (``status:
  failed``): clean, but validation let through something a kernel cannot handle;
* ``clean``    a clear error (exit 2), or a finished run with finite tables.

``--summary DIR`` re-reads a ``results.jsonl`` and prints the counts (with this classification).

Usage::

    python benchmarks/fuzz_scenarios.py --cases 1000 --out /tmp/fuzz [--start 0]

Writes ``results.jsonl`` (one line per case) and prints the counts per class and phase.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

FINITE = {
    "frames": ("sum_rate_bps_hz", "min_rate_bps_hz", "mean_sinr_db"),
    "subframes": ("power_w", "sinr_db", "rate_bps_hz"),
    "users": ("x_m", "y_m", "x_hat_m", "y_hat_m"),
    "aps": ("x_m", "y_m"),
}
VALIDATE_LIMIT_S, RUN_LIMIT_S, OUTPUT_LIMIT = 10, 60, 100_000
BASES = ("quickstart", "campus", "drift_longrun", "isac_paper", "umi_cellfree")


class Timeout(BaseException):  # not an Exception: the CLI's own handlers must not catch it
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise Timeout()


def _call(argv: list[str], limit_s: int) -> dict:
    from netsim.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0, c0 = time.perf_counter(), time.process_time()
    signal.alarm(limit_s)
    res: dict = {}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            res["rc"] = main(argv)
    except Timeout:
        res["cls"] = "hang"
        res["why"] = f"over {limit_s} s"
    except MemoryError:
        res["cls"] = "hang"
        res["why"] = "MemoryError (address-space limit)"
    except SystemExit as exc:  # argparse
        res["rc"] = exc.code
    except BaseException as exc:  # noqa: BLE001 - a traceback is what we count
        res["cls"] = "crash"
        res["why"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        signal.alarm(0)
    res["wall_s"] = time.perf_counter() - t0
    res["cpu_s"] = time.process_time() - c0
    n_out = len(out.getvalue()) + len(err.getvalue())
    res["out_chars"] = n_out
    res["stderr_tail"] = err.getvalue()[-300:]
    if "cls" not in res and n_out > OUTPUT_LIMIT:
        res["cls"], res["why"] = "hang", f"{n_out} characters of output"
    return res


def _finite_problem(run_dir: Path) -> str | None:
    import numpy as np

    import netsim

    run = netsim.load_run(run_dir)
    for table, cols in FINITE.items():
        df = getattr(run, table)
        for c in cols:
            v = df[c].to_numpy(dtype=float)
            if v.size and not np.isfinite(v).all():
                return f"{table}.{c} not finite"
    subs = run.subframes
    if len(run.frames) and len(subs):
        served = (subs.sinr_db > -1000).mean()
        if served > 0.5 and (run.frames.mean_sinr_db < -1000).any():
            return "frames.mean_sinr_db averages the -3000 dB placeholder"
    return None


def run_case(case: int, work: Path) -> dict:
    import numpy as np
    import yaml

    from netsim.scenario.mutate import mutate, reduce_for_run

    rng = np.random.default_rng([20261201, case])
    base_name = BASES[case % len(BASES)]
    base = yaml.safe_load(Path(f"scenarios/{base_name}.yaml").read_text())
    text = mutate(base, rng)
    d = work / f"case{case:05d}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    path = d / "scenario.yaml"
    path.write_bytes(text)
    rec = {"case": case, "base": base_name, "bytes": len(text)}
    v = _call(["validate", str(path)], VALIDATE_LIMIT_S)
    rec["validate"] = v
    if "cls" in v:
        rec["cls"], rec["phase"] = v["cls"], "validate"
        return rec
    if v.get("rc") != 0:
        rec["cls"], rec["phase"] = "clean", "validate"
        return rec
    data = yaml.safe_load(text.decode()) or {}
    reduced = d / "reduced.yaml"
    reduced.write_text(yaml.safe_dump(reduce_for_run(data), sort_keys=False))
    out = d / "run"
    if rng.random() < 0.05:  # --out that is an existing file
        out = d / "occupied"
        out.write_text("x")
    r = _call(["run", str(reduced), "--frames", "2", "--out", str(out), "-q"], RUN_LIMIT_S)
    rec["run"] = r
    rec["phase"] = "run"
    if "cls" in r:
        rec["cls"] = r["cls"]
    elif r.get("rc") == 1:
        rec["cls"] = "run_failed" if r["stderr_tail"].strip() else "crash"
    elif r.get("rc") != 0:
        rec["cls"] = "clean" if r["stderr_tail"].strip() else "crash"
    else:
        try:
            why = _finite_problem(out)
        except Exception as exc:  # noqa: BLE001
            why = f"cannot read the run: {type(exc).__name__}: {exc}"
        rec["cls"] = "nonsense" if why else "clean"
        if why:
            rec["why"] = why
    shutil.rmtree(d, ignore_errors=True)
    return rec


def worker(cases: list[int], work: Path, results: Path, current: Path) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    signal.signal(signal.SIGALRM, _alarm)
    import logging

    logging.disable(logging.CRITICAL)
    for case in cases:
        current.write_text(str(case))
        rec = run_case(case, work)
        with results.open("a") as f:
            f.write(json.dumps(rec) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--out", default="/tmp/fuzz")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--summary", action="store_true", help="only print the counts of --out")
    args = ap.parse_args()
    out = Path(args.out)
    results, current = out / "results.jsonl", out / "current"
    if args.summary:
        summary(results, args.start, args.cases)
        return
    if args.worker:
        lo, hi = map(int, args.worker)
        worker(list(range(lo, hi)), out / "work", results, current)
        return
    out.mkdir(parents=True, exist_ok=True)
    done = set()
    if results.exists():
        done = {json.loads(line)["case"] for line in results.read_text().splitlines() if line}
    todo = [c for c in range(args.start, args.start + args.cases) if c not in done]
    t0, c0 = time.perf_counter(), time.process_time()
    while todo:
        lo = todo[0]
        hi = args.start + args.cases
        proc = subprocess.Popen([sys.executable, __file__, "--out", str(out), "--worker",
                                 str(lo), str(hi)], env={**os.environ, "OMP_NUM_THREADS": "1",
                                                         "OPENBLAS_NUM_THREADS": "1"})
        last, last_change = None, time.time()
        while proc.poll() is None:
            time.sleep(1)
            cur = current.read_text() if current.exists() else None
            if cur != last:
                last, last_change = cur, time.time()
            elif time.time() - last_change > VALIDATE_LIMIT_S + RUN_LIMIT_S + 60:
                proc.kill()
                proc.wait()
                break
        done = {json.loads(line)["case"] for line in results.read_text().splitlines() if line} \
            if results.exists() else set()
        todo = [c for c in range(args.start, args.start + args.cases) if c not in done]
        if todo and proc.returncode is not None:
            stuck = int(current.read_text())
            if stuck in todo:  # the worker died or stopped answering on this case
                with results.open("a") as f:
                    f.write(json.dumps({"case": stuck, "cls": "hang" if proc.returncode == -9
                                        else "crash", "phase": "worker",
                                        "why": f"worker exit {proc.returncode}"}) + "\n")
                todo.remove(stuck)
    print(f"wall {time.perf_counter() - t0:.0f} s, driver cpu {time.process_time() - c0:.0f} s")
    summary(results, args.start, args.cases)


def _classify(r: dict) -> str:
    """The class of one record (re-derived, so older result files read the same way)."""
    run = r.get("run")
    if r.get("phase") != "run" or run is None or "cls" in run:
        return r["cls"]
    tail = run.get("stderr_tail", "")
    if run.get("rc") == 1:
        return "hang" if "Timeout" in tail else ("run_failed" if tail.strip() else "crash")
    return r["cls"]


def summary(results: Path, start: int = 0, cases: int = 10**9) -> None:
    from collections import Counter

    recs = [json.loads(line) for line in results.read_text().splitlines() if line]
    recs = [r for r in recs if start <= r["case"] < start + cases]
    for r in recs:
        r["cls"] = _classify(r)
    cpu = sum((r.get("validate") or {}).get("cpu_s", 0) + (r.get("run") or {}).get("cpu_s", 0)
              for r in recs)
    wall = sum((r.get("validate") or {}).get("wall_s", 0) + (r.get("run") or {}).get("wall_s", 0)
               for r in recs)
    print(f"{len(recs)} cases; worker cpu {cpu:.0f} s, wall {wall:.0f} s")
    print("by class:", dict(Counter(r["cls"] for r in recs)))
    print("by class and phase:", dict(Counter((r["cls"], r.get("phase")) for r in recs)))
    for r in recs:
        if r["cls"] != "clean":
            why = r.get("why") or (r.get("run") or r.get("validate") or {}).get("why") or \
                (r.get("run") or {}).get("stderr_tail", "").strip()[-200:].replace("\n", " ")
            print(f"  case {r['case']:5d} {r['base']:<14s} {r['cls']:<8s} {r.get('phase')}: {why}"
                  if "base" in r else f"  case {r['case']:5d} {r['cls']}: {why}")


if __name__ == "__main__":
    main()
