"""Parameter sweeps on Dask (``netsim sweep SWEEP.yaml``).

A sweep file names a base scenario, a grid of overrides and a number of
replications::

    base: scenarios/quickstart.yaml      # relative to the sweep file
    set: [run.frames=20]                 # fixed overrides (optional)
    grid:                                # every combination is run
      sync.method: [none, genie]
      sync.period_frames: [1, 10]
    replications: 3                      # same seed, independent substreams
    out: runs/sweep-sync                 # one run directory per point and replication

Each task runs one simulation into ``out/<point>-r<replication>/`` and returns a
tidy summary row (the grid values, the replication and the run's headline
numbers). The rows are written to ``out/summary.parquet`` and ``summary.csv``.
A failed run is recorded with ``status = failed`` and its error; the others go on.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from netsim.scenario.loader import ScenarioError, format_validation_error, load_scenario

__all__ = ["SweepSpec", "load_sweep", "run_one", "run_sweep", "sweep_points"]


class SweepSpec(BaseModel):
    """A validated sweep file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str = Field(..., description="base scenario file (relative to the sweep file)")
    set: list[str] = Field(default_factory=list, description="fixed KEY=VALUE overrides")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="KEY -> values")
    replications: int = Field(1, ge=1, le=10_000)
    out: str = Field("runs/sweep", description="output folder")


def load_sweep(path: str | Path) -> tuple[SweepSpec, Path]:
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), ["file not found"])
    try:
        spec = SweepSpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as err:
        raise ScenarioError(str(path), format_validation_error(err)) from None
    base = Path(spec.base)
    if not base.is_absolute():
        base = (path.parent / base).resolve()
    return spec, base


def sweep_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid values (in the file's order), as {key: value}."""
    keys = list(spec.grid)
    return [dict(zip(keys, values, strict=True))
            for values in itertools.product(*(spec.grid[k] for k in keys))]


def _override(key: str, value: Any) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"


def run_one(base: str, overrides: list[str], replication: int, out_dir: str,
            point: dict[str, Any]) -> dict[str, Any]:
    """Run one sweep task and return its summary row (never raises for a failed run)."""
    from netsim.runs import load_run
    from netsim.sim.engine import Simulation

    row: dict[str, Any] = {**point, "replication": replication, "run_dir": out_dir}
    try:
        scenario = load_scenario(base, [*overrides, f"run.replication={replication}"])
        summary = Simulation(scenario, out_dir).run()
        f = load_run(out_dir).frames
        row.update(
            status=summary.status, error=None, frames=summary.frames, wall_s=summary.wall_s,
            sum_rate_bps_hz=f.sum_rate_bps_hz.mean(), min_rate_bps_hz=f.min_rate_bps_hz.mean(),
            residual_to_rms_s=f.residual_to_rms_s.mean(),
            residual_cfo_rms_hz=f.residual_cfo_rms_hz.mean(),
            sensing_rmse_m=f.sensing_rmse_m.mean(),
            overhead_fraction=f.overhead_fraction.mean(),
        )
    except Exception as err:  # noqa: BLE001 - one failed point must not stop the sweep
        row.update(status="failed", error=f"{type(err).__name__}: {err}")
    return row


def run_sweep(path: str | Path, scheduler: str | None = None, workers: int | None = None,
              out: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Run a sweep file on Dask and return the summary table.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing Dask scheduler; a local cluster is started otherwise.
    workers : int, optional
        Workers of the local cluster (default: number of cores).
    """
    import logging
    import os

    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # also for worker processes
    logging.getLogger("distributed").setLevel(logging.WARNING)
    from dask.distributed import Client, LocalCluster, as_completed
    from tqdm import tqdm

    spec, base = load_sweep(path)
    out_dir = Path(out or spec.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    # validate every point before starting anything
    tasks = []
    for i, point in enumerate(sweep_points(spec)):
        overrides = [*spec.set, *(_override(k, v) for k, v in point.items())]
        load_scenario(base, overrides)
        for r in range(spec.replications):
            run_dir = out_dir / f"point{i:04d}-r{r:03d}"
            tasks.append((str(base), overrides, r, str(run_dir), {"point": i, **point}))

    if scheduler:
        client, cluster = Client(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futures = [client.submit(run_one, *t, pure=False) for t in tasks]
        bar = tqdm(total=len(futures), unit="run", desc="sweep", disable=not progress)
        rows = []
        for fut in as_completed(futures):
            rows.append(fut.result())
            bar.update(1)
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    table = pd.DataFrame(rows).sort_values(["point", "replication"]).reset_index(drop=True)
    table.to_parquet(out_dir / "summary.parquet")
    table.to_csv(out_dir / "summary.csv", index=False)
    return table
