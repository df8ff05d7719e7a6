"""Fixed-schema trace tables, buffered and streamed to Parquet in chunks.

Each table's schema is defined once, in :data:`SCHEMAS`. Models emit records with
:meth:`TraceWriter.emit` (scalars or equal-length arrays, one row per element). ``emit``
only checks the column names and keeps references to the values; rows are expanded and
converted to Arrow when they are flushed.

Frame boundaries
----------------
The engine calls :meth:`TraceWriter.commit` when a frame's rows are complete. Only committed
rows are ever written, and chunks are written only between frames (:meth:`flush`), so the
tables of a run that is killed or fails always agree: no table holds a frame that another
lacks. Each chunk is a complete Parquet file (``<table>/part-00000.parquet``, written to a
temporary name and renamed), so a killed run keeps every chunk flushed before it died. After
each flush the number of chunks of every table is written to ``trace.json`` (atomically);
readers take only those chunks, so a run killed half-way through a flush (one table's chunk
written, the next one's not yet) still reads as whole frames in every table.

When a run finishes, :meth:`TraceWriter.close` merges each table's chunks into one
``<table>.parquet``, streaming them through :class:`pyarrow.parquet.ParquetWriter` so that
memory at close does not grow with the length of the run.

A writer can continue the chunk sequence of an earlier writer (``resume=`` the
:meth:`position` saved in a checkpoint): chunks written after that position are deleted, so
they can never enter a table twice.

Units are SI and appear in the column names (``_s``, ``_hz``, ``_m``, ``_w``,
``_db``); ``_hz2`` and ``_s2`` are variances (Cramer-Rao bounds).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["POSITION_FILE", "SCHEMAS", "TABLES", "LazyTables", "TraceWriter", "iter_columns",
           "read_table", "table_files", "table_rows"]

f64, i64, b1, s = pa.float64(), pa.int64(), pa.bool_(), pa.string()

SCHEMAS: dict[str, pa.Schema] = {
    "frames": pa.schema([
        ("frame", i64), ("t_s", f64),
        ("sync_ran", b1), ("sync_rounds", i64), ("replanned", b1),
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

_PART = re.compile(r"part-(\d+)\.parquet$")
POSITION_FILE = "trace.json"
"""Chunks per table after the last complete flush (see *Frame boundaries*)."""


class _TableSpec:
    """Per-table constants of :meth:`TraceWriter.emit` (computed once)."""

    __slots__ = ("is_list", "names", "nameset", "schema")

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.names = tuple(schema.names)
        self.nameset = frozenset(self.names)
        self.is_list = tuple(pa.types.is_list(f.type) for f in schema)


_SPECS = {name: _TableSpec(schema) for name, schema in SCHEMAS.items()}


def _column(values: list[Any], counts: np.ndarray, field: pa.Field, n_total: int) -> pa.Array:
    """Expand one column of buffered records (scalars broadcast, arrays as rows) to Arrow."""
    typ = field.type
    if pa.types.is_list(typ) and all(type(v) is np.ndarray and v.ndim == 2 for v in values):
        # the engine's case (one row of values per row): no per-record Python work
        widths = np.fromiter((v.shape[1] for v in values), dtype=np.int64, count=len(values))
        offsets = np.zeros(n_total + 1, dtype=np.int32)
        np.cumsum(np.repeat(widths, counts), out=offsets[1:])
        flat = np.concatenate([v.reshape(-1) for v in values]).astype(float, copy=False)
        values_arr = _numpy_to_arrow(flat, typ.value_type)
        return pa.ListArray.from_arrays(_numpy_to_arrow(offsets, pa.int32()), values_arr)
    if pa.types.is_list(typ):
        flat, lengths = [], []
        for v, n in zip(values, counts, strict=True):
            a = np.asarray(v, dtype=float)
            if a.ndim <= 1:  # one list for every row of the record
                a = np.broadcast_to(a.reshape(1, -1), (n, a.size))
            flat.append(a.reshape(-1))
            lengths.extend([a.shape[1]] * n)
        offsets = np.zeros(n_total + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        values_arr = _numpy_to_arrow(np.concatenate(flat) if flat else np.zeros(0), typ.value_type)
        return pa.ListArray.from_arrays(_numpy_to_arrow(offsets, pa.int32()), values_arr)
    if pa.types.is_string(typ):
        out: list[str] = []
        for v, n in zip(values, counts, strict=True):
            if isinstance(v, np.ndarray) and v.ndim:
                out.extend(str(x) for x in v)
            else:
                out.extend([str(v)] * int(n))
        return _strings_to_arrow(out)
    if all(type(v) is np.ndarray and v.ndim == 1 for v in values):
        col = np.concatenate(values)  # every record gave one array (its rows)
    elif not any(isinstance(v, np.ndarray) and v.ndim for v in values):
        col = np.asarray(values)  # every record gave a scalar
        if col.dtype == object:
            col = np.array([np.asarray(v).item() for v in values])
        if not np.all(counts == 1):
            col = np.repeat(col, counts)
    else:
        col = np.concatenate([np.asarray(v).reshape(-1) if np.ndim(v) else np.full(n, v)
                              for v, n in zip(values, counts, strict=True)])
    return _numpy_to_arrow(col, typ)


# Arrow arrays are built from their buffers: ``pa.array`` on a numpy array or a list imports
# pandas (about 0.4 CPU-s, a third of a short run's start-up) to check for pandas objects.
_NUMPY_OF = {pa.float64(): np.float64, pa.int64(): np.int64, pa.int32(): np.int32}


def _validity(valid: np.ndarray) -> pa.Buffer | None:
    """Arrow validity bitmap of a boolean mask (None when every entry is valid)."""
    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def _numpy_to_arrow(col: np.ndarray, typ: pa.DataType) -> pa.Array:
    """``pa.array(col, type=typ, from_pandas=True)`` without importing pandas.

    Float64, int64/int32 and bool columns of the matching numpy kinds are wrapped from their
    buffers (NaN of a float column becomes null, as with ``from_pandas=True``); anything else
    (object arrays, a float array for an integer column, ...) goes through ``pa.array``.
    """
    col = np.asarray(col)
    kind = col.dtype.kind
    n = int(col.size)
    if col.ndim == 1 and pa.types.is_boolean(typ) and kind == "b":
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(
            np.packbits(col, bitorder="little"))])
    dtype = _NUMPY_OF.get(typ)
    if col.ndim == 1 and dtype is not None and (
            (dtype is np.float64 and kind in "fiu") or (dtype is not np.float64 and kind in "iub")):
        data = np.ascontiguousarray(col, dtype=dtype)
        validity = _validity(~np.isnan(data)) if kind == "f" else None
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(data)],
                                     null_count=-1 if validity is not None else 0)
    return pa.array(col, type=typ, from_pandas=True)


def _strings_to_arrow(values: list[str]) -> pa.Array:
    """``pa.array(values, type=pa.string())`` without importing pandas."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded)),
              out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(encoded),
                                 [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


class TraceWriter:
    """Buffers trace records per table and writes them to Parquet chunks between frames.

    Parameters
    ----------
    out_dir : path or None
        Run directory. ``None`` keeps everything in memory (see :meth:`table`).
    flush_every_rows : int
        Committed rows of one table after which :meth:`flush_due` is true (and, in memory,
        the rows are converted to Arrow).
    flush_every_s : float
        Wall-clock seconds after which :meth:`flush_due` is true however few rows are buffered.
    resume : mapping, optional
        A :meth:`position` of an earlier writer on the same directory: continue its chunk
        numbering and delete every chunk it had not reached (written after that position).
        Without it the directory must hold no trace yet.
    """

    def __init__(self, out_dir: str | Path | None, flush_every_rows: int = 20_000,
                 flush_every_s: float = 30.0, *, resume: Mapping[str, Any] | None = None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.flush_every_rows = int(flush_every_rows)
        self.flush_every_s = float(flush_every_s)
        self.last_flush = time.monotonic()
        # buffered records per table: (rows, values in schema order); the first
        # _committed[t] records are complete frames
        self._buffers: dict[str, list[tuple[int, tuple]]] = {t: [] for t in TABLES}
        self._committed: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._committed_rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._pending_rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._chunks: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._memory: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
        self.rows_written: dict[str, int] = dict.fromkeys(TABLES, 0)
        # optional check of every record before it is buffered, ``check(table, columns)``; it
        # raises to refuse a record (the engine hooks netsim.sim.checks.check_record here)
        self.check: Callable[[str, Mapping[str, Any]], None] | None = None
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume is None:
            stale = [p.name for t in TABLES for p in (self.out_dir / t, self.out_dir / f"{t}.parquet")
                     if p.exists()]
            if stale:
                raise FileExistsError(
                    f"{self.out_dir} already holds trace tables ({', '.join(stale)}); "
                    "clear the folder or resume the run")
        else:
            self._chunks.update({t: int(resume["chunks"][t]) for t in TABLES})
            self.rows_written.update({t: int(resume["rows_written"][t]) for t in TABLES})
            for t in TABLES:
                self._drop_chunks_after(t, self._chunks[t])
            _write_position(self.out_dir, self._chunks)  # before any chunk of this session

    def _drop_chunks_after(self, table: str, keep: int) -> None:
        part_dir = self.out_dir / table
        if not part_dir.exists():
            return
        for p in part_dir.iterdir():
            m = _PART.match(p.name)
            if m is None or int(m.group(1)) >= keep:
                p.unlink()  # a chunk past the checkpoint, or a temporary file

    # ------------------------------------------------------------------ emit
    def emit(self, table: str, **columns: Any) -> None:
        """Append rows to ``table``.

        Every column of the table's schema must be given, and nothing else. Scalars are
        broadcast to the length of the array columns (all arrays must share one length);
        a list column takes a 2-D array (one row of values per record) or a 1-D array (the
        same list on every row). The values are kept by reference until the next flush:
        do not modify an array in place after emitting it.
        """
        spec = _SPECS.get(table)
        if spec is None:
            raise KeyError(f"unknown trace table {table!r}; tables: {', '.join(TABLES)}")
        if columns.keys() != spec.nameset:
            missing = [n for n in spec.names if n not in columns]
            extra = [n for n in columns if n not in spec.nameset]
            raise ValueError(f"trace table {table!r}: missing columns {missing}, unknown {extra}")
        if self.check is not None:
            self.check(table, columns)
        values = [columns[name] for name in spec.names]
        n = 0
        for j, is_list in enumerate(spec.is_list):
            v = values[j]
            if not isinstance(v, np.ndarray):
                if not isinstance(v, (list, tuple)):
                    continue  # a scalar
                v = values[j] = np.asarray(v)
            rows = v.shape[0] if v.ndim > is_list else 0
            if rows:
                if n and rows != n:
                    lengths = {np.shape(x)[0] for x, il in zip(values, spec.is_list, strict=True)
                               if np.ndim(x) > il}
                    raise ValueError(f"trace table {table!r}: array columns of different "
                                     f"lengths {lengths}")
                n = rows
        n = n or 1
        self._buffers[table].append((n, values))
        self._pending_rows[table] += n

    def commit(self) -> None:
        """Mark every row emitted so far as complete (called by the engine between frames)."""
        for t in TABLES:
            self._committed[t] = len(self._buffers[t])
            self._committed_rows[t] += self._pending_rows[t]
            self._pending_rows[t] = 0

    def discard_uncommitted(self) -> None:
        """Forget the rows emitted since the last :meth:`commit` (a frame that did not finish)."""
        for t in TABLES:
            del self._buffers[t][self._committed[t]:]
            self._pending_rows[t] = 0

    # ------------------------------------------------------------------ flush
    def flush_due(self) -> bool:
        """True when a table holds ``flush_every_rows`` committed rows, or (with a run
        directory) ``flush_every_s`` wall seconds have passed since the last flush."""
        if any(r >= self.flush_every_rows for r in self._committed_rows.values()):
            return True
        return (self.out_dir is not None
                and time.monotonic() - self.last_flush >= self.flush_every_s)

    def _to_arrow(self, table: str) -> pa.Table | None:
        k = self._committed[table]
        if k == 0:
            return None
        records = self._buffers[table][:k]
        del self._buffers[table][:k]
        self._committed[table] = 0
        self._committed_rows[table] = 0
        spec = _SPECS[table]
        counts = np.fromiter((r[0] for r in records), dtype=np.int64, count=len(records))
        n_total = int(counts.sum())
        columns = list(zip(*(r[1] for r in records), strict=True))  # per column: the records' values
        arrays = [_column(list(columns[j]), counts, f, n_total) for j, f in enumerate(spec.schema)]
        return pa.Table.from_arrays(arrays, schema=spec.schema)

    def flush(self, table: str | None = None) -> None:
        """Write the committed rows of ``table`` (or of every table) as a new chunk each."""
        if table is None:
            self.last_flush = time.monotonic()
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
        if self.out_dir is not None:  # after every table's chunk: readers see whole flushes
            _write_position(self.out_dir, self._chunks)

    def position(self) -> dict[str, dict[str, int]]:
        """Chunks and rows written so far per table (saved in checkpoints; see ``resume``)."""
        return {"chunks": dict(self._chunks), "rows_written": dict(self.rows_written)}

    def close(self, merge: bool = True) -> None:
        """Flush the committed rows (uncommitted ones are dropped); with ``merge``, turn each
        table's chunks into ``<table>.parquet`` (streamed, one chunk in memory at a time).
        An in-memory writer keeps its committed rows as they are: :meth:`table` expands them
        when a table is read."""
        self.discard_uncommitted()
        if self.out_dir is None:  # in memory: the rows are expanded when a table is read
            return
        self.flush()
        if not merge:
            return
        for name in TABLES:
            if self._chunks[name] == 1 and self.rows_written[name] <= self.flush_every_rows:
                # one chunk, at most one row group: it already is the merged file (the same
                # schema and row group merge_chunks would write), so rename it
                _adopt_single_chunk(self.out_dir, name)
            merge_chunks(self.out_dir, name, self.flush_every_rows)
        (self.out_dir / POSITION_FILE).unlink(missing_ok=True)  # every table is one file now

    # ------------------------------------------------------------------ in-memory access
    def table(self, name: str):
        """The committed rows of ``name`` (in-memory writer, or flushed chunks) as pandas."""
        self.flush(name)
        if self.out_dir is None:
            tables = self._memory[name]
            arrow = pa.concat_tables(tables) if tables else SCHEMAS[name].empty_table()
            return arrow.to_pandas()
        return read_table(self.out_dir, name)

    def tables(self) -> Mapping[str, Any]:
        """Every table as pandas, converted when first looked up (:class:`LazyTables`)."""
        return LazyTables(self)


class LazyTables(Mapping):
    """The tables of a :class:`TraceWriter` as a read-only mapping of pandas DataFrames, each
    converted (flushed to Arrow, then to pandas) the first time it is looked up and kept.

    An in-memory run hands this back as ``RunSummary.tables``: a run whose tables are never
    read (a benchmark, a sweep that only keeps summaries) does not pay for the conversion,
    and reading one table converts only that one. Iteration order is :data:`TABLES`.
    """

    def __init__(self, writer: TraceWriter) -> None:
        self._writer = writer
        self._frames: dict[str, Any] = {}

    def __getitem__(self, name: str):
        if name not in SCHEMAS:
            raise KeyError(name)
        if name not in self._frames:
            self._frames[name] = self._writer.table(name)
        return self._frames[name]

    def __iter__(self):
        return iter(TABLES)

    def __len__(self) -> int:
        return len(TABLES)

    def __repr__(self) -> str:
        done = ", ".join(self._frames) or "none yet"
        return f"LazyTables({', '.join(TABLES)}; converted: {done})"


def _write_position(run_dir: Path, chunks: Mapping[str, int]) -> None:
    import json
    import os

    path = run_dir / POSITION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"chunks": dict(chunks)}, sort_keys=True))
    os.replace(tmp, path)


def _flushed_chunks(run_dir: Path, name: str) -> int | None:
    """Chunks of ``name`` in the last complete flush (None: no ``trace.json``, take all)."""
    import json

    try:
        return int(json.loads((run_dir / POSITION_FILE).read_text())["chunks"][name])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable (a foreign file): every chunk, as before the file existed


def _parts(run_dir: Path, name: str) -> list[Path]:
    part_dir = run_dir / name
    if not part_dir.exists():
        return []
    limit = _flushed_chunks(run_dir, name)
    parts = [(int(m.group(1)), p) for p in part_dir.iterdir() if (m := _PART.match(p.name))]
    return [p for i, p in sorted(parts) if limit is None or i < limit]


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly the columns of ``schema``: a column missing from an older run's
    file becomes nulls, a column of another type is cast (for chunks of unfinished runs)."""
    if table.schema.equals(schema):
        return table
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _read_file(path: Path) -> pa.Table:
    """One Parquet file, read with :class:`pyarrow.parquet.ParquetFile` (no ``pyarrow.dataset``,
    whose import alone costs about 50 MB of memory)."""
    with pq.ParquetFile(path) as pf:
        return pf.read(use_threads=False)


def _adopt_single_chunk(run_dir: Path, name: str) -> None:
    """Rename the only chunk of ``name`` to ``<name>.parquet`` (atomic); :func:`merge_chunks`
    then finds the merged file and removes the empty chunk folder. Nothing happens when the
    folder holds anything else than that chunk (a foreign or temporary file: merge as usual)."""
    part_dir = run_dir / name
    target = run_dir / f"{name}.parquet"
    part = part_dir / "part-00000.parquet"
    if target.exists() or not part.exists() or _parts(run_dir, name) != [part]:
        return
    if any(p.name != part.name for p in part_dir.iterdir()):
        return
    part.replace(target)


def merge_chunks(run_dir: str | Path, name: str, row_group_rows: int = 20_000) -> Path:
    """Merge the chunks of table ``name`` into ``<name>.parquet`` and remove the chunk folder.

    Chunks are read one record batch at a time and written as row groups of about
    ``row_group_rows`` rows through one :class:`pyarrow.parquet.ParquetWriter`, so peak memory
    is about one row group, not the table. The file is written under a temporary name and
    renamed; a merged file that already exists (an earlier close that was killed while removing
    the chunks) is kept.
    """
    run_dir = Path(run_dir)
    target = run_dir / f"{name}.parquet"
    part_dir = run_dir / name
    if target.exists():
        shutil.rmtree(part_dir, ignore_errors=True)
        return target
    schema = SCHEMAS[name]
    tmp = target.with_suffix(".tmp")
    batch_rows = max(1, int(row_group_rows))
    with pq.ParquetWriter(tmp, schema) as writer:
        pending: list[pa.RecordBatch] = []
        rows = 0
        for part in _parts(run_dir, name):
            with pq.ParquetFile(part) as pf:
                for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
                    pending.append(batch)
                    rows += batch.num_rows
                    if rows >= batch_rows:
                        writer.write_table(_conform(pa.Table.from_batches(pending), schema),
                                           row_group_size=rows)
                        pending, rows = [], 0
        if pending:
            writer.write_table(_conform(pa.Table.from_batches(pending), schema),
                               row_group_size=rows)
    tmp.replace(target)
    shutil.rmtree(part_dir, ignore_errors=True)
    return target


def read_table(run_dir: str | Path, name: str):
    """Read one table of a run directory: the merged file, or the chunks of an unfinished run."""
    run_dir = Path(run_dir)
    merged = run_dir / f"{name}.parquet"
    if merged.exists():
        return _read_file(merged).to_pandas()
    parts = _parts(run_dir, name)
    if not parts:
        return SCHEMAS[name].empty_table().to_pandas()
    schema = SCHEMAS[name]
    return pa.concat_tables([_conform(_read_file(p), schema) for p in parts]).to_pandas()


def table_files(run_dir: str | Path, name: str) -> list[Path]:
    """The Parquet files that hold table ``name``: the merged file, or the chunks of an
    unfinished run in order (empty when the table has no rows)."""
    run_dir = Path(run_dir)
    merged = run_dir / f"{name}.parquet"
    return [merged] if merged.exists() else _parts(run_dir, name)


def iter_columns(run_dir: str | Path, name: str, columns: list[str],
                 batch_rows: int = 65_536):
    """Stream some columns of one table of a run directory, one record batch at a time.

    Only the named columns are read, and at most ``batch_rows`` rows of them are in memory
    at a time, so a statistic over a long run needs memory of one batch (no pandas).

    Yields
    ------
    dict of str to numpy.ndarray
        One entry per requested column that the table's files hold (a column missing from an
        older run's files is left out), each ``[rows]``: float columns with NaN for nulls,
        bool columns with False for nulls.
    """
    for path in table_files(run_dir, name):
        with pq.ParquetFile(path) as pf:
            have = [c for c in columns if c in pf.schema_arrow.names]
            if not have:
                if pf.metadata.num_rows:
                    yield {}
                continue
            for batch in pf.iter_batches(batch_size=batch_rows, columns=have, use_threads=False):
                yield {col_name: _arrow_to_numpy(col)
                       for col_name, col in zip(batch.schema.names, batch.columns, strict=True)}


def _bits(buf: pa.Buffer, offset: int, n: int) -> np.ndarray:
    """``n`` bits of an Arrow bitmap from bit ``offset``, as a bool array."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little", count=offset + n)[offset:].astype(bool)


def _arrow_to_numpy(col: pa.Array) -> np.ndarray:
    """A column of a record batch as numpy, read from its buffers: ``Array.to_numpy`` imports
    pandas (0.4 CPU-s). Floats: NaN for nulls; bools: False for nulls; integers: int64, or
    float64 with NaN when a value is null; strings: an object array (None for nulls). Other
    types go through ``to_numpy``."""
    n, offset = len(col), col.offset
    typ = col.type
    bufs = col.buffers()
    valid = None if col.null_count == 0 or bufs[0] is None else _bits(bufs[0], offset, n)
    if pa.types.is_boolean(typ):
        out = _bits(bufs[1], offset, n) if n else np.zeros(0, dtype=bool)
        return out & valid if valid is not None else out
    if pa.types.is_floating(typ) or pa.types.is_integer(typ):
        dtype = np.dtype(typ.to_pandas_dtype())
        data = np.frombuffer(bufs[1], dtype=dtype, count=offset + n)[offset:] if n else \
            np.zeros(0, dtype=dtype)
        if valid is None:
            return data
        out = data.astype(np.float64)
        out[~valid] = np.nan
        return out
    if pa.types.is_string(typ):
        offs = np.frombuffer(bufs[1], dtype=np.int32, count=offset + n + 1)[offset:]
        raw = bufs[2].to_pybytes() if bufs[2] is not None else b""
        out = np.array([raw[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)], dtype=object)
        if valid is not None:
            out[~valid] = None
        return out
    return col.to_numpy(zero_copy_only=False)


def table_rows(run_dir: str | Path, name: str) -> int:
    """Number of rows of table ``name`` of a run directory (from the file footers only)."""
    total = 0
    for path in table_files(run_dir, name):
        with pq.ParquetFile(path) as pf:
            total += pf.metadata.num_rows
    return total
