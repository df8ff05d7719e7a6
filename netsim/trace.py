"""Fixed-schema trace tables, buffered and streamed to Parquet in chunks.

Each table's schema is defined once, in :data:`SCHEMAS`. Models emit records with
:meth:`TraceWriter.emit` (scalars or equal-length arrays, one row per element);
the writer checks the columns against the schema, buffers them and writes a
Parquet *chunk* (``<table>/part-00000.parquet``) every ``flush_every_rows`` rows.
A chunk is a complete Parquet file, so a run that is killed keeps every chunk
flushed before it died. When the run closes normally, the chunks of a table are
merged into one ``<table>.parquet`` file.

Units are SI and appear in the column names (``_s``, ``_hz``, ``_m``, ``_w``,
``_db``); ``_hz2`` and ``_s2`` are variances (Cramer-Rao bounds).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["SCHEMAS", "TABLES", "TraceWriter", "read_table"]

f64, i64, b1, s = pa.float64(), pa.int64(), pa.bool_(), pa.string()

SCHEMAS: dict[str, pa.Schema] = {
    "frames": pa.schema([
        ("frame", i64), ("t_s", f64),
        ("sync_ran", b1), ("replanned", b1),
        ("sync_duration_s", f64), ("sense_duration_s", f64), ("comm_duration_s", f64),
        ("overhead_fraction", f64), ("comm_fraction", f64),
        ("n_online_aps", i64), ("n_clusters", i64), ("n_pilots", i64),
        ("residual_cfo_rms_hz", f64), ("residual_cfo_max_hz", f64),
        ("residual_to_rms_s", f64), ("residual_to_max_s", f64),
        ("residual_phase_rms_rad", f64),
        ("n_measured_aps", i64), ("n_gated", i64),
        ("sensing_rmse_m", f64), ("crlb_rms_m", f64),
        ("sensing_ratio_median", f64), ("tracked_fraction", f64),
        ("beamformer_reused", b1), ("comm_pilot_length", i64), ("power_iterations_mean", f64),
        ("sum_rate_bps_hz", f64), ("min_rate_bps_hz", f64), ("certified_min_rate_bps_hz", f64),
        ("mean_sinr_db", f64),
        ("wall_sync_s", f64), ("wall_sense_s", f64), ("wall_comm_s", f64), ("wall_power_s", f64),
    ]),
    "aps": pa.schema([
        ("frame", i64), ("t_s", f64), ("ap", i64), ("x_m", f64), ("y_m", f64), ("cluster", i64),
        ("is_master", b1), ("is_reference", b1), ("online", b1),
        ("true_cfo_hz", f64), ("est_cfo_hz", f64), ("residual_cfo_hz", f64),
        ("true_to_s", f64), ("est_to_s", f64), ("residual_to_s", f64),
        ("residual_phase_rad", f64),
        ("crb_cfo_hz2", f64), ("crb_to_s2", f64),
        ("track_to_std_s", f64), ("track_cfo_std_hz", f64), ("track_phase_std_rad", f64),
    ]),
    "users": pa.schema([
        ("frame", i64), ("t_s", f64), ("user", i64),
        ("x_m", f64), ("y_m", f64), ("x_hat_m", f64), ("y_hat_m", f64),
        ("loc_err_m", f64), ("crlb_m", f64), ("speed_mps", f64),
        ("crlb_ratio", f64), ("tracked", b1), ("crlb_plan_m", f64),
    ]),
    "subframes": pa.schema([
        ("frame", i64), ("subframe", i64), ("t_s", f64), ("user", i64),
        ("power_w", f64), ("ap_power_w", pa.list_(f64)), ("sinr_db", f64), ("rate_bps_hz", f64),
    ]),
    "events": pa.schema([
        ("t_s", f64), ("frame", i64), ("kind", s), ("entity", i64), ("detail", s),
    ]),
}
TABLES: tuple[str, ...] = tuple(SCHEMAS)


class TraceWriter:
    """Buffers trace records per table and writes them to Parquet chunks.

    Parameters
    ----------
    out_dir : path or None
        Run directory. ``None`` keeps everything in memory (see :meth:`frames`).
    flush_every_rows : int
        Rows buffered per table before a chunk is written.
    flush_every_s : float
        Wall-clock seconds after which every table is flushed, however few rows it holds
        (so a long run that is killed loses at most this much work).
    """

    def __init__(self, out_dir: str | Path | None, flush_every_rows: int = 20_000,
                 flush_every_s: float = 30.0) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.flush_every_rows = int(flush_every_rows)
        self.flush_every_s = float(flush_every_s)
        self._last_flush = time.monotonic()
        self._buffers: dict[str, list[dict[str, np.ndarray]]] = {t: [] for t in TABLES}
        self._buffered_rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._chunks: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._memory: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
        self.rows_written: dict[str, int] = dict.fromkeys(TABLES, 0)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ emit
    def emit(self, table: str, **columns: Any) -> None:
        """Append rows to ``table``.

        Every column of the table's schema must be given, and nothing else. Scalars are
        broadcast to the length of the array columns (all arrays must share one length).
        """
        schema = SCHEMAS.get(table)
        if schema is None:
            raise KeyError(f"unknown trace table {table!r}; tables: {', '.join(TABLES)}")
        names = schema.names
        if set(columns) != set(names):
            missing = [n for n in names if n not in columns]
            extra = [n for n in columns if n not in names]
            raise ValueError(f"trace table {table!r}: missing columns {missing}, unknown {extra}")
        is_list = {f.name: pa.types.is_list(f.type) for f in schema}
        # list columns take a 2-D array: one row of values per record
        lengths = {np.shape(v)[0] if is_list[k] else np.size(v) for k, v in columns.items()
                   if np.ndim(v) > (1 if is_list[k] else 0)}
        if len(lengths) > 1:
            raise ValueError(f"trace table {table!r}: array columns of different lengths {lengths}")
        n = lengths.pop() if lengths else 1
        record = {}
        for name in names:
            value = np.asarray(columns[name])
            if is_list[name]:
                value = np.broadcast_to(np.atleast_2d(value), (n, np.shape(np.atleast_2d(value))[-1]))
                record[name] = np.empty(n, dtype=object)
                record[name][:] = list(value)
            else:
                record[name] = np.broadcast_to(value, (n,))
        self._buffers[table].append(record)
        self._buffered_rows[table] += n
        if self._buffered_rows[table] >= self.flush_every_rows:
            self.flush(table)
        elif self.out_dir is not None and time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    # ------------------------------------------------------------------ flush
    def _to_arrow(self, table: str) -> pa.Table | None:
        records = self._buffers[table]
        if not records:
            return None
        schema = SCHEMAS[table]
        arrays = []
        for field in schema:
            col = np.concatenate([r[field.name] for r in records])
            if pa.types.is_string(field.type):
                arrays.append(pa.array(col.astype(str), type=field.type))
            elif pa.types.is_list(field.type):
                arrays.append(pa.array([np.asarray(v, dtype=float) for v in col], type=field.type))
            else:
                arrays.append(pa.array(col, type=field.type, from_pandas=True))
        self._buffers[table] = []
        self._buffered_rows[table] = 0
        return pa.Table.from_arrays(arrays, schema=schema)

    def flush(self, table: str | None = None) -> None:
        """Write the buffered rows of ``table`` (or of every table) as a new chunk."""
        if table is None:
            self._last_flush = time.monotonic()
        for name in [table] if table else TABLES:
            arrow = self._to_arrow(name)
            if arrow is None:
                continue
            self.rows_written[name] += arrow.num_rows
            if self.out_dir is None:
                self._memory[name].append(arrow)
                continue
            part_dir = self.out_dir / name
            part_dir.mkdir(exist_ok=True)
            part = part_dir / f"part-{self._chunks[name]:05d}.parquet"
            tmp = part.with_suffix(".tmp")
            pq.write_table(arrow, tmp)
            tmp.replace(part)  # atomic: a reader never sees a half-written chunk
            self._chunks[name] += 1

    def close(self, merge: bool = True) -> None:
        """Flush everything; with ``merge``, turn each table's chunks into ``<table>.parquet``."""
        self.flush()
        if self.out_dir is None or not merge:
            return
        for name in TABLES:
            target = self.out_dir / f"{name}.parquet"
            part_dir = self.out_dir / name
            parts = sorted(part_dir.glob("part-*.parquet")) if part_dir.exists() else []
            if parts:
                merged = pa.concat_tables([pq.read_table(p) for p in parts])
            else:
                merged = SCHEMAS[name].empty_table()
            tmp = target.with_suffix(".tmp")
            pq.write_table(merged, tmp)
            tmp.replace(target)
            if part_dir.exists():
                shutil.rmtree(part_dir)

    # ------------------------------------------------------------------ in-memory access
    def table(self, name: str):
        """The rows of ``name`` written so far (in-memory writer, or flushed chunks) as pandas."""
        self.flush(name)
        if self.out_dir is None:
            tables = self._memory[name]
            arrow = pa.concat_tables(tables) if tables else SCHEMAS[name].empty_table()
            return arrow.to_pandas()
        return read_table(self.out_dir, name)

    def tables(self) -> Mapping[str, Any]:
        return {name: self.table(name) for name in TABLES}


def read_table(run_dir: str | Path, name: str):
    """Read one table of a run directory: the merged file, or the chunks of an unfinished run."""
    run_dir = Path(run_dir)
    merged = run_dir / f"{name}.parquet"
    if merged.exists():
        return pq.read_table(merged).to_pandas()
    part_dir = run_dir / name
    parts = sorted(part_dir.glob("part-*.parquet")) if part_dir.exists() else []
    if not parts:
        return SCHEMAS[name].empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas()
