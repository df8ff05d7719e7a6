"""Run directories: ``meta.json`` handling and :func:`load_run`.

A run directory holds ``scenario.yaml`` (the resolved scenario), ``meta.json``
(version, seed, status, wall time per phase) and one Parquet file per trace table
(see :mod:`netsim.trace`). A run that was killed has its tables as chunk folders
instead; :func:`load_run` reads both layouts.

Run-folder rules
----------------
* a new run needs an empty or new folder; a folder that holds another run (``meta.json``,
  a checkpoint or trace tables) is refused unless ``overwrite`` (which clears it first), so
  chunks of an earlier run can never enter the new tables; a folder that holds other files
  is always refused;
* an unfinished run (killed, interrupted or failed) keeps ``checkpoint.pkl``, the state at its
  last flush; ``netsim run --resume DIR`` (:meth:`netsim.sim.engine.Simulation.resume`)
  continues from it, deleting the chunks written after it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from netsim.trace import POSITION_FILE, TABLES, read_table

__all__ = ["CHECKPOINT_FILE", "Run", "RunDirError", "holds_run", "load_run", "prepare_run_dir",
           "read_meta", "read_run_meta", "write_meta"]

CHECKPOINT_FILE = "checkpoint.pkl"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (occupied, not a folder, not writable)."""


def write_meta(run_dir: str | Path, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` atomically (write to a temp file, then rename)."""
    path = Path(run_dir) / "meta.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def holds_run(path: str | Path) -> bool:
    """True when ``path`` holds (part of) a run: meta.json, a checkpoint or a trace table."""
    path = Path(path)
    names = {"meta.json", "meta.json.tmp", CHECKPOINT_FILE, "scenario.yaml", POSITION_FILE}
    names |= {t for t in TABLES} | {f"{t}.parquet" for t in TABLES}
    return any((path / n).exists() for n in names)


def prepare_run_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Make ``path`` ready for a new run: create it, or clear an earlier run with ``overwrite``.

    Raises
    ------
    RunDirError
        ``path`` is a file; holds another run and ``overwrite`` is false; holds files that are
        not a run; or cannot be created or written (the message says which).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not holds_run(path):
            raise RunDirError(f"{path} is not empty and holds no run; choose a new or empty "
                              "folder for the run directory")
        if not overwrite:
            status = "unknown status"
            try:
                meta = read_meta(path)
                status = f"status {meta.get('status')}, {meta.get('frames')} frame(s)"
            except (OSError, ValueError):
                pass
            raise RunDirError(f"{path} holds another run ({status}); use --overwrite to replace "
                              f"it or --resume {path} to continue it")
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".netsim-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"cannot write the run directory {path}: {err.strerror or err}") from err
    return path


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    """``meta.json`` of a run to resume; a clear :class:`RunDirError` when there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a run directory (no such folder)")
    try:
        return read_meta(run_dir)
    except FileNotFoundError as err:
        raise RunDirError(str(err)) from err
    except (OSError, ValueError) as err:
        raise RunDirError(f"{run_dir}/meta.json cannot be read ({err})") from err


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no meta.json)")
    return json.loads(path.read_text())


class Run:
    """The tables of one run as pandas DataFrames, with its metadata.

    Tables are read on first access (``run.frames``, ``run["aps"]``) and kept, so a summary
    that needs only the frames table never loads the (large) subframes table.
    """

    def __init__(self, path: str | Path, meta: dict[str, Any],
                 tables: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.meta = meta
        self._tables: dict[str, Any] = dict(tables or {})

    def _get(self, name: str):
        if name not in self._tables:
            self._tables[name] = read_table(self.path, name)
        return self._tables[name]

    frames = property(lambda self: self._get("frames"), doc="one row per frame")
    aps = property(lambda self: self._get("aps"), doc="AP x frame")
    users = property(lambda self: self._get("users"), doc="user x frame")
    subframes = property(lambda self: self._get("subframes"), doc="user x subframe")
    events = property(lambda self: self._get("events"), doc="discrete events")

    def __getitem__(self, name: str):
        if name not in TABLES:
            raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
        return self._get(name)

    def keys(self):
        return TABLES

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, status={self.meta.get('status')!r})"


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory.

    Returns
    -------
    Run
        ``run.frames``, ``run.aps``, ``run.users``, ``run.subframes``, ``run.events`` are
        pandas DataFrames (also reachable as ``run["frames"]``; each read on first access);
        ``run.meta`` is meta.json.
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    return Run(run_dir, meta)
