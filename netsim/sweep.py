"""Parameter sweeps on Dask (``netsim sweep SWEEP.yaml``) and :func:`load_sweep`.

A sweep file names a base scenario, fixed overrides, a grid of overrides (any field path),
a number of replications and a sweep seed::

    base: ../quickstart.yaml           # relative to the sweep file
    set: [run.frames=20]               # fixed overrides (optional)
    grid:                              # every combination is run
      sync.method: [none, genie]
      sync.period_frames: [1, 10]
    replications: 3
    seed: 2026                         # sweep seed (default 0)
    out: ../../runs/sweep-sync         # optional; relative to the sweep file

Paths *inside* a sweep file (``base``, ``out``) are relative to the sweep file; paths on the
command line (``--out``) are relative to the working directory. Without ``out`` the sweep
writes to ``runs/<sweep file stem>`` under the working directory.

Seeds
-----
Run ``(point, r)`` gets its root seed from ``SeedSequence(seed, spawn_key=(h(point), r))``,
where ``h`` is a stable hash of the point's values: the result of a run depends only on
the sweep seed, its grid values and its replication, never on worker count, order or
which other points the grid holds. With ``common_random_numbers: true`` the point is left
out of the key, so every point of replication ``r`` sees the same draws (variance reduction
when comparing points; the replications stay independent).

Output folder
-------------
::

    OUT/sweep.json                     the sweep file, resolved, and its points in grid order
    OUT/runs/<point>-r<rrr>/           one ordinary run directory per task (netsim.load_run)
    OUT/tables/<table>/point=<point>/r<rrr>.parquet
                                       one Parquet dataset per table, partitioned by point;
                                       every row carries run_id, point, replication, seed and
                                       one column per swept field (named by its path)
    OUT/summary.parquet, summary.csv   one row per task: status, error, wall time, headline
                                       means

``<point>`` is the first 12 hex digits of the SHA-256 of the point's canonical JSON, so
editing the grid never renames the runs of points that stay. Re-running a sweep skips every
task whose run finished with the same resolved scenario, re-runs failed, interrupted or
stale ones (a changed base file or ``set``), and runs new points. A run that fails is
recorded with its error; the sweep goes on, and ``netsim sweep`` exits 1 when any task
failed (the summary and the tables of the other runs are still written).

On a cluster (``--scheduler tcp://host:port``) every worker writes its run directly into
``OUT``: ``OUT`` must be on a filesystem that every worker sees at the same path. The sweep
checks that before submitting anything.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netsim.allocator import tune_allocator
from netsim.scenario.loader import ScenarioError, format_validation_error, load_scenario

__all__ = [
    "Sweep",
    "SweepError",
    "SweepResult",
    "SweepSpec",
    "load_sweep",
    "point_id",
    "read_sweep_file",
    "run_seed",
    "run_sweep",
    "sweep_points",
]

#: Trace tables copied into the sweep's datasets (every table of a run).
SWEEP_TABLES = ("frames", "aps", "users", "subframes", "events")
#: Headline metrics of the summary table: frames-table column -> summary column (run mean).
HEADLINE = {
    "sum_rate_bps_hz": "sum_rate_bps_hz",
    "min_rate_bps_hz": "min_rate_bps_hz",
    "residual_to_rms_s": "residual_to_rms_s",
    "residual_cfo_rms_hz": "residual_cfo_rms_hz",
    "sensing_rmse_m": "sensing_rmse_m",
    "overhead_fraction": "overhead_fraction",
}


class SweepError(ValueError):
    """A sweep cannot start: ``problems`` lists every reason (one per invalid grid point)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n"
                         + "\n".join(f"  - {p}" for p in problems))


class SweepSpec(BaseModel):
    """A validated sweep file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="label of the study (default: the file stem)")
    description: str = Field("", description="free text")
    base: str = Field(..., description="base scenario file (relative to the sweep file)")
    set: list[str] = Field(default_factory=list, description="fixed KEY=VALUE overrides")
    grid: dict[str, list[Any] | dict[str, Any]] = Field(
        default_factory=dict,
        description="field path -> list of values, or a mapping label -> value (the label is "
        "the column value, e.g. for lists of faults); every combination runs")
    replications: int = Field(1, ge=1, le=10_000, description="independent runs per point")
    seed: int = Field(0, ge=0, lt=2**63, description="sweep seed (root of every run's seed)")
    common_random_numbers: bool = Field(
        False, description="same draws for every point of a replication (variance reduction)")
    out: str | None = Field(None, description="output folder (relative to the sweep file)")


# ----------------------------------------------------------------------------- spec helpers
def read_sweep_file(path: str | Path) -> tuple[SweepSpec, Path, Path | None]:
    """Read and validate a sweep file.

    Returns
    -------
    spec : SweepSpec
    base : Path
        The base scenario, resolved against the sweep file's folder.
    out : Path or None
        ``out`` of the file resolved against its folder, None when the file names none.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), ["file not found"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ScenarioError(str(path), [f"not a YAML file: {err}".splitlines()[0]]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(str(path), ["a sweep file is a mapping (base:, grid:, ...)"])
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(str(path), format_validation_error(err)) from None
    problems = [f"grid.{k}: give at least one value" for k, v in spec.grid.items() if not v]
    if problems:
        raise ScenarioError(str(path), problems)
    base = Path(spec.base)
    if not base.is_absolute():
        base = (path.parent / base).resolve()
    out = None
    if spec.out is not None:
        out = Path(spec.out)
        if not out.is_absolute():
            out = (path.parent / out).resolve()
    return spec, base, out


def sweep_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid values (in the file's order), as ``{path: value}``.

    For a labelled grid entry (a mapping label -> value) the point holds the label.
    """
    keys = list(spec.grid)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(list(spec.grid[k]) for k in keys))]


def grid_value(spec: SweepSpec, key: str, value: Any) -> Any:
    """The scenario value of a point's entry (the mapped value of a labelled entry)."""
    entry = spec.grid[key]
    return entry[value] if isinstance(entry, dict) else value


def _canonical(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, separators=(",", ":"), default=str)


def point_id(point: dict[str, Any]) -> str:
    """Stable name of a grid point: 12 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(_canonical(point).encode("utf-8")).hexdigest()[:12]


def run_seed(sweep_seed: int, point: dict[str, Any], replication: int,
             common_random_numbers: bool = False) -> int:
    """Root seed of one run, from ``SeedSequence(sweep_seed, spawn_key=(h(point), r))``.

    ``h(point)`` is the SHA-256 of the point's canonical JSON as eight 32-bit words (left out
    with ``common_random_numbers``). Returns a non-negative 63-bit integer.
    """
    key: tuple[int, ...] = ()
    if not common_random_numbers:
        digest = hashlib.sha256(_canonical(point).encode("utf-8")).digest()
        key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4))
    ss = np.random.SeedSequence(int(sweep_seed), spawn_key=(*key, int(replication)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] & np.uint64(2**63 - 1))


def _override(key: str, value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
    return f"{key}={text.removesuffix('...').strip()}"


def _column_kinds(spec: SweepSpec) -> dict[str, str]:
    """Arrow kind of each swept column: int, float, bool, str, or json (mixed or nested)."""
    kinds = {}
    for key, values in spec.grid.items():
        if isinstance(values, dict):
            kinds[key] = "str"  # labels
            continue
        types = {type(v) for v in values}
        if types == {bool}:
            kinds[key] = "bool"
        elif types <= {int} and bool not in types:
            kinds[key] = "int"
        elif types <= {int, float} and bool not in types:
            kinds[key] = "float"
        elif types == {str}:
            kinds[key] = "str"
        else:  # None, lists, mappings or a mix: JSON text, still groupable
            kinds[key] = "json"
    return kinds


def _column_value(kind: str, value: Any) -> Any:
    if kind == "float":
        return float(value)
    if kind == "json":
        return json.dumps(value, sort_keys=True)
    return value


# ----------------------------------------------------------------------------- one task
@dataclass(frozen=True)
class _Task:
    base: str
    overrides: tuple[str, ...]
    point: dict[str, Any]
    point_id: str
    replication: int
    seed: int
    out: str
    kinds: dict[str, str] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return f"{self.point_id}-r{self.replication:03d}"

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / "runs" / self.run_id

    def scenario_overrides(self) -> list[str]:
        return [*self.overrides, f"run.seed={self.seed}", "run.replication=0",
                f"run.output_dir={self.run_dir}"]


def _partition_files(out: Path, point: str, replication: int) -> list[Path]:
    return [out / "tables" / t / f"point={point}" / f"r{replication:03d}.parquet"
            for t in SWEEP_TABLES]


def _task_done(task: _Task, resolved_yaml: str) -> bool:
    """True when the task's run finished with this resolved scenario and its tables exist."""
    run_dir = task.run_dir
    try:
        meta = json.loads((run_dir / "meta.json").read_text())
        same = (run_dir / "scenario.yaml").read_text() == resolved_yaml
    except (OSError, ValueError):
        return False
    files = _partition_files(Path(task.out), task.point_id, task.replication)
    return meta.get("status") == "finished" and same and all(f.exists() for f in files)


def _write_partitions(task: _Task) -> None:
    """Copy the run's tables into the sweep datasets, with the sweep's key columns added."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from netsim.trace import read_table

    for table, target in zip(SWEEP_TABLES, _partition_files(Path(task.out), task.point_id,
                                                            task.replication), strict=True):
        df = read_table(task.run_dir, table)
        arrow = pa.Table.from_pandas(df, preserve_index=False)
        n = arrow.num_rows
        extra = {"run_id": pa.array([task.run_id] * n, pa.string()),
                 "replication": pa.array([task.replication] * n, pa.int64()),
                 "seed": pa.array([task.seed] * n, pa.int64())}
        for key, value in task.point.items():
            kind = task.kinds.get(key, "json")
            typ = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}.get(kind,
                                                                                  pa.string())
            extra[key] = pa.array([_column_value(kind, value)] * n, typ)
        for name, col in extra.items():
            arrow = arrow.append_column(name, col)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        pq.write_table(arrow, tmp)
        os.replace(tmp, target)


def _summary_row(task: _Task) -> dict[str, Any]:
    return {"run_id": task.run_id, "point": task.point_id, "replication": task.replication,
            "seed": task.seed, **{k: _column_value(task.kinds.get(k, "json"), v)
                                  for k, v in task.point.items()}}


def run_task(task: _Task) -> dict[str, Any]:
    """Run one sweep task (on a worker) and return its summary row; never raises."""
    from netsim.sim.engine import Simulation

    tune_allocator()  # the worker's heap thresholds, as the netsim CLI sets its own
    row = _summary_row(task)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        scenario = load_scenario(task.base, task.scenario_overrides())
        for f in _partition_files(Path(task.out), task.point_id, task.replication):
            f.unlink(missing_ok=True)
        if task.run_dir.exists():  # failed, interrupted or stale: start again from nothing
            shutil.rmtree(task.run_dir)
        summary = Simulation(scenario, task.run_dir).run()
        _write_partitions(task)
        row.update(status=summary.status, error=None, frames=summary.frames,
                   wall_s=summary.wall_s)
        row = _with_headline(row, task)
    except Exception as err:  # noqa: BLE001 - one failed point must not stop the sweep
        row.update(status="failed", error=f"{type(err).__name__}: {err}".strip(),
                   frames=None, wall_s=time.perf_counter() - t0)
    row["task_wall_s"] = time.perf_counter() - t0
    row["task_cpu_s"] = time.process_time() - c0
    return row


def _skipped_row(task: _Task) -> dict[str, Any]:
    from netsim.runs import read_meta

    meta = read_meta(task.run_dir)
    row = _summary_row(task)
    row.update(status="skipped", error=None, frames=meta.get("frames"), wall_s=meta.get("wall_s"))
    row = _with_headline(row, task)
    row["task_wall_s"] = 0.0
    row["task_cpu_s"] = 0.0
    return row


def _with_headline(row: dict[str, Any], task: _Task) -> dict[str, Any]:
    from netsim.trace import read_table

    f = read_table(task.run_dir, "frames")
    for col, name in HEADLINE.items():
        vals = f[col].to_numpy(dtype=float) if col in f else np.array([])
        vals = vals[np.isfinite(vals)]
        row[name] = float(vals.mean()) if vals.size else math.nan
    return row


# ----------------------------------------------------------------------------- planning
def plan_sweep(path: str | Path, out: str | Path | None = None,
               extra_set: list[str] | None = None, replications: int | None = None,
               ) -> tuple[SweepSpec, Path, list[_Task], list[bool]]:
    """Validate a sweep file and every grid point; return (spec, out folder, tasks, done).

    ``done[i]`` is True when task ``i`` already finished with the same resolved scenario
    (it is skipped). ``extra_set`` overrides are applied after the file's ``set`` (and before
    the grid's); ``replications`` replaces the file's count.

    Every grid point is loaded with its overrides and checked for algorithms this build cannot
    run before anything starts; all problems are reported together, each naming the point's
    keys and values.
    """
    from netsim.scenario.loader import scenario_to_yaml
    from netsim.sim.methods import check_available

    path = Path(path)
    spec, base, file_out = read_sweep_file(path)
    if extra_set or replications is not None:
        spec = spec.model_copy(update={
            "set": [*spec.set, *(extra_set or [])],
            "replications": replications if replications is not None else spec.replications})
        if spec.replications < 1:
            raise SweepError(str(path), [f"replications: must be >= 1, got {spec.replications}"])
    if out is not None:
        out_dir = Path(out).resolve()
    elif file_out is not None:
        out_dir = file_out
    else:
        out_dir = (Path("runs") / path.stem).resolve()
    if not base.is_file():
        raise SweepError(str(path), [f"base: scenario file {base} not found"])
    kinds = _column_kinds(spec)
    problems: list[str] = []
    tasks: list[_Task] = []
    done: list[bool] = []
    for point in sweep_points(spec):
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in point.items()) or "(no grid)"
        overrides = (*spec.set, *(_override(k, grid_value(spec, k, v)) for k, v in point.items()))
        try:
            scenario = load_scenario(base, list(overrides))
        except ScenarioError as err:
            problems += [f"grid point {label}: {p}" for p in err.problems]
            continue
        missing = check_available(scenario)
        if missing:
            problems += [f"grid point {label}: {p}" for p in missing]
            continue
        pid = point_id(point)
        for r in range(spec.replications):
            task = _Task(base=str(base), overrides=overrides, point=point, point_id=pid,
                         replication=r,
                         seed=run_seed(spec.seed, point, r, spec.common_random_numbers),
                         out=str(out_dir), kinds=kinds)
            tasks.append(task)
            if (task.run_dir / "meta.json").exists():
                resolved = scenario_to_yaml(load_scenario(base, task.scenario_overrides()))
                done.append(_task_done(task, resolved))
            else:
                done.append(False)
    if problems:
        raise SweepError(str(path), problems)
    return spec, out_dir, tasks, done


def _check_shared_filesystem(client, out_dir: Path) -> None:
    """Every worker must see ``out_dir`` at the same path: write a token, read it on each."""
    token = out_dir / f".netsim-shared-{uuid.uuid4().hex}"
    token.write_text(token.name)

    def sees(path: str, expected: str) -> bool:
        try:
            return Path(path).read_text() == expected
        except OSError:
            return False

    try:
        seen = client.run(sees, str(token), token.name)
    finally:
        token.unlink(missing_ok=True)
    blind = sorted(addr for addr, ok in seen.items() if not ok)
    if not seen:
        raise SweepError(str(out_dir), ["the scheduler has no workers"])
    if blind:
        raise SweepError(str(out_dir), [
            f"worker {addr} cannot see {out_dir}: on a cluster the sweep's out folder must be "
            "on a filesystem shared by every worker, at the same path" for addr in blind])


# ----------------------------------------------------------------------------- running
@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: the summary table and where everything is."""

    out_dir: Path
    summary: Any  # pandas.DataFrame, one row per task
    wall_s: float
    params: list[str] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return int((self.summary.status == "failed").sum())

    @property
    def n_skipped(self) -> int:
        return int((self.summary.status == "skipped").sum())


def run_sweep(path: str | Path, scheduler: str | None = None, workers: int | None = None,
              out: str | Path | None = None, progress: bool = True,
              extra_set: list[str] | None = None, replications: int | None = None
              ) -> SweepResult:
    """Run a sweep file on Dask and return its :class:`SweepResult`.

    Parameters
    ----------
    path : path
        The sweep file.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:port``); a LocalCluster of
        ``workers`` single-threaded worker processes is started otherwise.
    workers : int, optional
        Workers of the local cluster (default: the number of cores).
    out : path, optional
        Output folder (overrides the file's ``out``; relative to the working directory).
    progress : bool
        Show a progress bar on stderr.
    extra_set : list of str, optional
        More ``KEY=VALUE`` overrides after the file's ``set`` (``netsim sweep --set``), e.g. a
        shorter ``run.duration_s`` for a quick look.
    replications : int, optional
        Replaces the file's ``replications`` (``netsim sweep --replications``).

    Raises
    ------
    SweepError, ScenarioError
        Before anything runs, for an invalid sweep file or any invalid grid point.
    """
    import logging
    import sys

    import pandas as pd

    spec, out_dir, tasks, done = plan_sweep(path, out, extra_set, replications)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "sweep_file": str(Path(path).resolve()),
        "spec": {**spec.model_dump(), "name": spec.name or Path(path).stem},
        "name": spec.name or Path(path).stem, "base": tasks[0].base if tasks else spec.base,
        "params": list(spec.grid), "kinds": _column_kinds(spec),
        "points": [{"point": pid, "values": pt} for pid, pt in _unique_points(tasks)],
        "replications": spec.replications,
    }
    _write_json(out_dir / "sweep.json", manifest)

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # also for worker processes
    logging.getLogger("distributed").setLevel(logging.WARNING)
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    t0 = time.perf_counter()
    rows = [_skipped_row(t) for t, d in zip(tasks, done, strict=True) if d]
    todo = [t for t, d in zip(tasks, done, strict=True) if not d]
    if todo:
        if scheduler:
            client, cluster = Client(scheduler, timeout="30s"), None
        else:
            n = workers or os.cpu_count() or 1
            cluster = LocalCluster(n_workers=min(n, len(todo)), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            if scheduler:
                _check_shared_filesystem(client, out_dir)
            futures = [client.submit(run_task, t, pure=False,
                                     key=f"netsim-{t.run_id}-{uuid.uuid4().hex[:8]}")
                       for t in todo]
            bar = tqdm(total=len(futures), unit="run", desc=manifest["name"], file=sys.stderr,
                       disable=not progress)
            for fut in as_completed(futures):
                rows.append(fut.result())
                bar.update(1)
            bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    order = {t.run_id: i for i, t in enumerate(tasks)}
    table = pd.DataFrame(rows)
    if len(table):
        table = table.iloc[table.run_id.map(order).argsort()].reset_index(drop=True)
    table.to_parquet(out_dir / "summary.parquet", index=False)
    table.to_csv(out_dir / "summary.csv", index=False)
    return SweepResult(out_dir=out_dir, summary=table, wall_s=time.perf_counter() - t0,
                       params=list(spec.grid))


def _unique_points(tasks: list[_Task]) -> list[tuple[str, dict[str, Any]]]:
    seen: dict[str, dict[str, Any]] = {}
    for t in tasks:
        seen.setdefault(t.point_id, t.point)
    return list(seen.items())


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- reading
@dataclass
class Sweep:
    """The tables of a sweep as tidy pandas DataFrames.

    ``frames`` has one row per run x frame, ``aps`` per run x AP x frame, ``users`` per
    run x user x frame, ``subframes`` per run x user x subframe and ``events`` per event;
    every row carries ``run_id``, ``point``, ``replication``, ``seed`` and one column per
    swept field, named by its path (``sweep.params``). ``summary`` has one row per task.
    """

    path: Path
    spec: dict[str, Any]
    params: list[str]
    summary: Any = field(repr=False)
    frames: Any = field(repr=False, default=None)
    aps: Any = field(repr=False, default=None)
    users: Any = field(repr=False, default=None)
    subframes: Any = field(repr=False, default=None)
    events: Any = field(repr=False, default=None)

    def __getitem__(self, name: str):
        if name not in SWEEP_TABLES and name != "summary":
            raise KeyError(f"unknown table {name!r}; tables: summary, {', '.join(SWEEP_TABLES)}")
        return getattr(self, name)

    def run(self, run_id: str):
        """The :class:`netsim.runs.Run` of one task (``run_id`` as in the tables)."""
        from netsim.runs import load_run

        return load_run(self.path / "runs" / run_id)


def load_sweep(sweep_dir: str | Path, tables: tuple[str, ...] | list[str] | None = None,
               columns: dict[str, list[str]] | None = None) -> Sweep:
    """Load a sweep folder (written by :func:`run_sweep`) as tidy DataFrames.

    Parameters
    ----------
    sweep_dir : path
        The sweep's output folder.
    tables : sequence of str, optional
        Tables to read (default: all of ``frames, aps, users, subframes, events``); the others
        are None. ``subframes`` is the largest: leave it out of big sweeps when not needed.
    columns : dict, optional
        ``{table: [columns]}`` to read only some columns (the key columns are always read).

    Returns
    -------
    Sweep
        Rows are ordered by grid point (file order), replication, then as in the run's own
        table, so the same sweep gives identical DataFrames whatever the worker count.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.dataset as ds

    from netsim.trace import SCHEMAS

    sweep_dir = Path(sweep_dir)
    manifest_path = sweep_dir / "sweep.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{sweep_dir} is not a sweep folder (no sweep.json)")
    manifest = json.loads(manifest_path.read_text())
    params = list(manifest["params"])
    summary_path = sweep_dir / "summary.parquet"
    summary = pd.read_parquet(summary_path) if summary_path.exists() else pd.DataFrame()
    points = [p["point"] for p in manifest["points"]]
    reps = range(int(manifest["replications"]))
    keys = ["run_id", "point", "replication", "seed", *params]
    out: dict[str, Any] = {}
    for table in tables if tables is not None else SWEEP_TABLES:
        if table not in SWEEP_TABLES:
            raise KeyError(f"unknown table {table!r}; tables: {', '.join(SWEEP_TABLES)}")
        files = [f for pid in points for r in reps
                 if (f := sweep_dir / "tables" / table / f"point={pid}" / f"r{r:03d}.parquet")
                 .exists()]
        wanted = None
        if columns and table in columns:
            wanted = list(dict.fromkeys([*keys, *columns[table]]))
        if files:
            dataset = ds.dataset(
                [str(f) for f in files], format="parquet",
                partitioning=ds.partitioning(pa.schema([("point", pa.string())]), flavor="hive"),
                partition_base_dir=str(sweep_dir / "tables" / table))
            arrow = dataset.to_table(columns=wanted)
        else:
            schema = SCHEMAS[table]
            arrow = schema.empty_table()
            for k in ["run_id", "point"]:
                arrow = arrow.append_column(k, pa.array([], pa.string()))
        out[table] = arrow.to_pandas()
    return Sweep(path=sweep_dir, spec=manifest["spec"], params=params, summary=summary, **out)
