"""Run directories: ``meta.json`` handling and :func:`load_run`.

A run directory holds ``scenario.yaml`` (the resolved scenario), ``meta.json``
(version, seed, status, wall time per phase) and one Parquet file per trace table
(see :mod:`netsim.trace`). A run that was killed has its tables as chunk folders
instead; :func:`load_run` reads both layouts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netsim.trace import TABLES, read_table

__all__ = ["Run", "load_run", "read_meta", "write_meta"]


def write_meta(run_dir: str | Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` atomically (write to a temp file, then rename)."""
    path = Path(run_dir) / "meta.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no meta.json)")
    return json.loads(path.read_text())


@dataclass
class Run:
    """The tables of one run as pandas DataFrames, with its metadata."""

    path: Path
    meta: dict[str, Any]
    frames: Any = field(repr=False)
    aps: Any = field(repr=False)
    users: Any = field(repr=False)
    subframes: Any = field(repr=False)
    events: Any = field(repr=False)

    def __getitem__(self, name: str):
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        return getattr(self, name)

    def keys(self):
        return TABLES


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory.

    Returns
    -------
    Run
        ``run.frames``, ``run.aps``, ``run.users``, ``run.subframes``, ``run.events`` are
        pandas DataFrames (also reachable as ``run["frames"]``); ``run.meta`` is meta.json.
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    tables = {name: read_table(run_dir, name) for name in TABLES}
    return Run(path=run_dir, meta=meta, **tables)
