"""Trace tables: fixed schemas, chunked Parquet writing, crash safety."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.trace import SCHEMAS, TraceWriter, read_table


def _event(writer, i):
    writer.emit("events", t_s=float(i), frame=i, kind="test", entity=i, detail=f"row {i}")


def test_emit_checks_columns_against_the_schema():
    w = TraceWriter(None)
    with pytest.raises(ValueError, match="missing columns"):
        w.emit("events", t_s=0.0)
    with pytest.raises(ValueError, match="unknown"):
        w.emit("events", t_s=0.0, frame=0, kind="x", entity=0, detail="", extra=1)
    with pytest.raises(KeyError):
        w.emit("nope", a=1)


def test_arrays_and_scalars_broadcast_into_rows():
    w = TraceWriter(None)
    ap_power = np.arange(12.0).reshape(4, 3)  # [user, AP]: a list column
    w.emit("subframes", frame=3, subframe=1, t_s=0.5, user=np.arange(4),
           power_w=ap_power.sum(axis=1), ap_power_w=ap_power, sinr_db=np.zeros(4),
           rate_bps_hz=np.full(4, 2.0))
    df = w.table("subframes")
    assert list(df.columns) == SCHEMAS["subframes"].names
    assert len(df) == 4 and (df.frame == 3).all() and list(df.user) == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.stack(df.ap_power_w.to_numpy()), ap_power)


def test_chunks_of_an_unfinished_run_are_readable(tmp_path):
    w = TraceWriter(tmp_path, flush_every_rows=3)
    for i in range(10):
        _event(w, i)
    # no close(): as if the process had been killed; 3 chunks of 3 rows are on disk
    parts = sorted((tmp_path / "events").glob("part-*.parquet"))
    assert len(parts) == 3
    df = read_table(tmp_path, "events")
    assert list(df.frame) == list(range(9))


def test_close_merges_chunks_into_one_file(tmp_path):
    w = TraceWriter(tmp_path, flush_every_rows=4)
    for i in range(10):
        _event(w, i)
    w.close()
    assert (tmp_path / "events.parquet").exists() and not (tmp_path / "events").exists()
    assert list(read_table(tmp_path, "events").frame) == list(range(10))
    # tables without rows still exist, with their schema
    assert list(read_table(tmp_path, "users").columns) == SCHEMAS["users"].names
