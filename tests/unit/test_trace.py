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
    w.commit()  # the frame is complete
    df = w.table("subframes")
    assert list(df.columns) == SCHEMAS["subframes"].names
    assert len(df) == 4 and (df.frame == 3).all() and list(df.user) == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.stack(df.ap_power_w.to_numpy()), ap_power)


def _frame_of_events(writer, frame, rows=1):
    for _ in range(rows):
        _event(writer, frame)
    writer.commit()
    if writer.flush_due():
        writer.flush()


def test_chunks_of_an_unfinished_run_are_readable(tmp_path):
    w = TraceWriter(tmp_path, flush_every_rows=3)
    for i in range(10):
        _frame_of_events(w, i)
    # no close(): as if the process had been killed; 3 chunks of 3 rows are on disk
    parts = sorted((tmp_path / "events").glob("part-*.parquet"))
    assert len(parts) == 3
    df = read_table(tmp_path, "events")
    assert list(df.frame) == list(range(9))


def test_only_committed_rows_are_written(tmp_path):
    """Rows of a frame that did not finish never reach a chunk, so the tables agree."""
    w = TraceWriter(tmp_path, flush_every_rows=1)
    _frame_of_events(w, 0, rows=2)
    _event(w, 1)  # frame 1 starts ...
    assert not w.flush_due() or w._committed_rows["events"] == 0
    w.flush()  # ... and a flush now writes nothing of it
    w.close()  # the run dies in frame 1
    assert list(read_table(tmp_path, "events").frame) == [0, 0]


def test_close_merges_chunks_into_one_file(tmp_path):
    w = TraceWriter(tmp_path, flush_every_rows=4)
    for i in range(10):
        _frame_of_events(w, i)
    w.close()
    assert (tmp_path / "events.parquet").exists() and not (tmp_path / "events").exists()
    assert list(read_table(tmp_path, "events").frame) == list(range(10))
    # tables without rows still exist, with their schema
    assert list(read_table(tmp_path, "users").columns) == SCHEMAS["users"].names


def test_streaming_merge_groups_small_chunks_into_row_groups(tmp_path):
    import pyarrow.parquet as pq

    w = TraceWriter(tmp_path, flush_every_rows=10)
    for i in range(95):  # 95 one-row chunks (a flush after every frame)
        _event(w, i)
        w.commit()
        w.flush()
    w.close()
    meta = pq.ParquetFile(tmp_path / "events.parquet").metadata
    assert meta.num_rows == 95 and meta.num_row_groups == 10  # 9 groups of 10 rows + 5
    assert list(read_table(tmp_path, "events").frame) == list(range(95))


def test_a_single_chunk_is_renamed_into_the_merged_file(tmp_path, monkeypatch):
    """A table flushed once (at most one row group): close() renames its chunk instead of
    re-writing it; the file is the one the streaming merge writes, byte for byte."""
    import pyarrow.parquet as pq

    from netsim.trace import merge_chunks

    def write(folder, extra=False):
        w = TraceWriter(folder, flush_every_rows=100)
        for i in range(7):  # one flush at close: one chunk of 7 rows
            _frame_of_events(w, i)
        w.flush()
        if extra:  # a foreign file in the chunk folder: the merge runs as usual
            (folder / "events" / "notes.txt").write_text("x")
        return w

    w = write(tmp_path / "a")
    with monkeypatch.context() as m:  # close() must not write the events table again
        def refuse(where, schema, *a, **k):
            if "events" in str(where):
                raise AssertionError("the single chunk was re-written")
            return original(where, schema, *a, **k)

        original = pq.ParquetWriter
        m.setattr(pq, "ParquetWriter", refuse)
        w.close()
    assert not (tmp_path / "a" / "events").exists()
    renamed = (tmp_path / "a" / "events.parquet").read_bytes()
    w2 = write(tmp_path / "b")
    merged = merge_chunks(tmp_path / "b", "events", 100)  # the streaming merge itself
    assert merged.read_bytes() == renamed
    assert list(read_table(tmp_path / "a", "events").frame) == list(range(7))
    assert pq.ParquetFile(tmp_path / "a" / "events.parquet").metadata.num_row_groups == 1
    w3 = write(tmp_path / "c", extra=True)
    w3.close()
    assert list(read_table(tmp_path / "c", "events").frame) == list(range(7))
    assert not (tmp_path / "c" / "events").exists()
    del w2


def test_a_new_writer_refuses_a_folder_with_tables(tmp_path):
    w = TraceWriter(tmp_path, flush_every_rows=1)
    _frame_of_events(w, 0)
    with pytest.raises(FileExistsError, match="already holds trace tables"):
        TraceWriter(tmp_path)


def test_resume_drops_chunks_written_after_the_position(tmp_path):
    w = TraceWriter(tmp_path, flush_every_rows=1)
    for i in range(3):
        _frame_of_events(w, i)
    pos = w.position()
    for i in range(3, 6):  # written after the checkpoint, then the process died
        _frame_of_events(w, i)
    (tmp_path / "events" / "part-00009.tmp").write_bytes(b"half a chunk")
    w2 = TraceWriter(tmp_path, flush_every_rows=1, resume=pos)
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    for i in range(3, 5):
        _frame_of_events(w2, i)
    w2.close()
    assert list(read_table(tmp_path, "events").frame) == [0, 1, 2, 3, 4]


def test_expansion_matches_row_by_row_records():
    """Deferred expansion (scalars broadcast, arrays stacked, lists, NaN) against rows built
    one by one in Python."""
    rng = np.random.default_rng(5)
    w = TraceWriter(None)
    expected = []
    for frame in range(7):
        k = int(rng.integers(1, 5))
        m = 3
        p = rng.random((k, m))
        sinr = rng.normal(size=k)
        sinr[rng.random(k) < 0.3] = np.nan
        w.emit("subframes", frame=frame, subframe=np.int64(frame % 2), t_s=0.1 * frame,
               user=np.arange(k), power_w=p.sum(axis=1), ap_power_w=p if frame % 3 else p[0],
               sinr_db=sinr, rate_bps_hz=list(np.full(k, 1.5)))
        for u in range(k):
            expected.append((frame, frame % 2, 0.1 * frame, u, p[u].sum(),
                             list(p[u] if frame % 3 else p[0]), sinr[u], 1.5))
    w.commit()
    df = w.table("subframes")
    assert len(df) == len(expected)
    for row, exp in zip(df.itertuples(index=False), expected, strict=True):
        assert (row.frame, row.subframe, row.user) == exp[:2] + exp[3:4]
        assert row.t_s == exp[2] and row.power_w == exp[4] and row.rate_bps_hz == exp[7]
        np.testing.assert_array_equal(row.ap_power_w, exp[5])
        assert (np.isnan(row.sinr_db) and np.isnan(exp[6])) or row.sinr_db == exp[6]


def test_mismatched_array_lengths_are_refused():
    w = TraceWriter(None)
    with pytest.raises(ValueError, match="different lengths"):
        w.emit("events", t_s=0.0, frame=np.arange(2), kind="x", entity=np.arange(3), detail="")


def test_iter_columns_streams_only_the_asked_columns_in_batches(tmp_path):
    from netsim.trace import iter_columns, table_rows

    w = TraceWriter(tmp_path, flush_every_rows=7)
    for i in range(30):
        _frame_of_events(w, i, rows=2)
    w.flush()
    # chunks of an unfinished run, then the merged file: the same values, in order
    for merged in (False, True):
        if merged:
            w.close()
            assert (tmp_path / "events.parquet").exists()
        batches = list(iter_columns(tmp_path, "events", ["frame", "kind", "nope"], batch_rows=5))
        assert all(set(b) == {"frame", "kind"} for b in batches)  # a missing column is left out
        assert max(len(b["frame"]) for b in batches) <= 5
        frames = np.concatenate([b["frame"] for b in batches])
        np.testing.assert_array_equal(frames, np.repeat(np.arange(30), 2))
        assert table_rows(tmp_path, "events") == 60
    assert list(iter_columns(tmp_path, "users", ["x_m"])) == []  # a table without rows


def test_chunks_of_an_older_schema_are_conformed(tmp_path):
    """A chunk that lacks a column (written before it existed) reads with nulls there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from netsim.trace import merge_chunks

    schema = SCHEMAS["events"]
    (tmp_path / "events").mkdir()
    old = pa.table({"t_s": [0.0, 1.0], "frame": [0, 1], "kind": ["a", "b"], "entity": [3, 4]})
    pq.write_table(old, tmp_path / "events" / "part-00000.parquet")
    df = read_table(tmp_path, "events")
    assert list(df.columns) == schema.names and df.detail.isna().all()
    merge_chunks(tmp_path, "events")
    assert pq.read_schema(tmp_path / "events.parquet").equals(schema)
    assert list(read_table(tmp_path, "events").entity) == [3, 4]


def test_a_flush_killed_half_way_reads_as_whole_frames(tmp_path):
    """Chunks written after the last complete flush (one table's chunk on disk, the next
    table's not yet: a SIGKILL inside flush) are not read, so the tables agree."""
    import shutil

    w = TraceWriter(tmp_path, flush_every_rows=1)
    for fr in range(3):
        _event(w, fr)
        w.emit("users", frame=fr, t_s=0.0, user=0, x_m=0.0, y_m=0.0, x_hat_m=0.0, y_hat_m=0.0,
               loc_err_m=0.0, crlb_m=0.0, speed_mps=0.0, crlb_ratio=1.0, tracked=True,
               crlb_plan_m=0.0)
        w.commit()
        w.flush()
    # the kill: frame 2's events chunk on disk, its users chunk missing, trace.json not rewritten
    saved = (tmp_path / "trace.json").read_text()
    _event(w, 3)
    w.commit()
    w.flush()
    (tmp_path / "trace.json").write_text(saved)
    shutil.copy(tmp_path / "events" / "part-00003.parquet", tmp_path / "events" / "part-00004.parquet")
    assert list(read_table(tmp_path, "events").frame) == [0, 1, 2]
    assert list(read_table(tmp_path, "users").frame) == [0, 1, 2]
    # a writer resumed at that position rewrites it before its first chunk, and the merged
    # run folder keeps no trace.json
    position = w.position()
    position["chunks"]["events"] = 3  # the checkpoint was taken after frame 2
    w2 = TraceWriter(tmp_path, flush_every_rows=1, resume=position)
    assert not (tmp_path / "events" / "part-00003.parquet").exists()
    _event(w2, 3)
    w2.commit()
    w2.close()
    assert list(read_table(tmp_path, "events").frame) == [0, 1, 2, 3]
    assert not (tmp_path / "trace.json").exists()


def test_arrow_from_buffers_equals_pa_array():
    """The pandas-free builders give the arrays ``pa.array(..., from_pandas=True)`` gives
    (NaN -> null, packed bools, UTF-8 strings), on random and edge-case columns."""
    import pyarrow as pa

    from netsim.trace import _numpy_to_arrow, _strings_to_arrow

    rng = np.random.default_rng(7)
    for n in (0, 1, 7, 8, 9, 1000):
        x = rng.standard_normal(n)
        x[rng.random(n) < 0.3] = np.nan
        x[rng.random(n) < 0.1] = np.inf
        cases = [(x, pa.float64()), (x[::2], pa.float64()), (rng.integers(-5, 5, n), pa.int64()),
                 (rng.random(n) < 0.5, pa.bool_()), (rng.random(n) < 0.5, pa.int64()),
                 (np.arange(n, dtype=np.int32), pa.int32()), (np.arange(n), pa.float64()),
                 (rng.integers(0, 9, n).astype(float), pa.int64()),  # slow path (pa.array)
                 (np.array([None] * n, dtype=object), pa.float64())]
        for col, typ in cases:
            got = _numpy_to_arrow(col, typ)
            want = pa.array(col, type=typ, from_pandas=True)
            assert got.type == want.type and got.equals(want), (n, typ)
            assert got.null_count == want.null_count
        words = ["", "replan", "é ünïcode ✓", "a,b"] * (n // 4 + 1)
        assert _strings_to_arrow(words[:n]).equals(pa.array(words[:n], type=pa.string()))


def test_a_flush_does_not_import_pandas(tmp_path):
    """Writing the trace needs pyarrow only (pandas costs ~0.4 CPU-s of start-up)."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from netsim.trace import TraceWriter\n"
        f"w = TraceWriter({str(tmp_path)!r})\n"
        "w.emit('events', t_s=0.0, frame=0, kind='replan', entity=-1, detail='start')\n"
        "w.emit('users', frame=0, t_s=0.0, user=np.arange(2), x_m=np.zeros(2), y_m=np.ones(2),"
        " x_hat_m=np.full(2, np.nan), y_hat_m=np.zeros(2), loc_err_m=np.zeros(2),"
        " crlb_m=np.zeros(2), speed_mps=np.zeros(2), crlb_ratio=np.zeros(2),"
        " tracked=np.ones(2, bool), crlb_plan_m=np.zeros(2))\n"
        "w.emit('subframes', frame=0, subframe=0, t_s=0.0, user=np.arange(2),"
        " power_w=np.ones(2), ap_power_w=np.ones((2, 3)), sinr_db=np.ones(2),"
        " rate_bps_hz=np.ones(2))\n"
        "w.commit(); w.close()\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    from netsim.trace import read_table

    users = read_table(tmp_path, "users")
    assert users["x_hat_m"].isna().tolist() == [True, True]
    assert users["tracked"].tolist() == [True, True]


def test_arrow_to_numpy_from_buffers_matches_to_numpy():
    """Reading columns from their buffers (no pandas) gives what ``to_numpy`` gives, with
    iter_columns' null conventions, also on sliced arrays (non-zero offsets)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from netsim.trace import _arrow_to_numpy

    rng = np.random.default_rng(11)
    for n in (0, 1, 9, 300):
        mask = rng.random(n) < 0.25
        floats = pa.array(rng.standard_normal(n), mask=mask)
        ints = pa.array(rng.integers(-9, 9, n), mask=mask)
        bools = pa.array(rng.random(n) < 0.5, mask=mask)
        strs = pa.array([f"k{i}é" for i in range(n)], mask=mask)
        for arr in (floats, ints, bools, strs):
            for a in (arr, arr.slice(min(3, n)), arr.slice(min(1, n), max(0, n - 2))):
                got = _arrow_to_numpy(a)
                if pa.types.is_boolean(a.type):
                    want = pc.fill_null(a, False).to_numpy(zero_copy_only=False)
                elif pa.types.is_integer(a.type) and a.null_count:
                    want = pc.cast(a, pa.float64()).to_numpy(zero_copy_only=False)
                else:
                    want = a.to_numpy(zero_copy_only=False)
                assert got.dtype == want.dtype and got.shape == want.shape
                if got.dtype == object:
                    assert list(got) == list(want)
                else:
                    np.testing.assert_array_equal(got, want)
        no_null = pa.array(rng.integers(0, 5, n))
        assert _arrow_to_numpy(no_null).dtype == np.int64


def test_in_memory_tables_are_converted_when_read(monkeypatch):
    """``tables()`` of an in-memory writer converts a table at its first look-up only, and
    gives the rows an eager conversion gives: committed frames, flushed or not, in order;
    the rows of the frame that did not finish are dropped by ``close``."""
    w = TraceWriter(None, flush_every_rows=3)
    for i in range(7):  # frames 0-5 reach Arrow in two flushes, frame 6 stays buffered
        _frame_of_events(w, i)
    _event(w, 99)  # an unfinished frame
    w.close()
    calls = []
    real = TraceWriter.table
    monkeypatch.setattr(TraceWriter, "table", lambda self, name: calls.append(name) or real(self, name))
    tables = w.tables()
    assert calls == [] and list(tables) == list(SCHEMAS) and len(tables) == len(SCHEMAS)
    events = tables["events"]
    assert tables["events"] is events and calls == ["events"]  # converted once, then kept
    assert list(events.frame) == list(range(7)) and list(events.detail) == [f"row {i}" for i in range(7)]
    assert list(events.columns) == SCHEMAS["events"].names
    assert len(tables["users"]) == 0 and list(tables["users"].columns) == SCHEMAS["users"].names
    with pytest.raises(KeyError):
        tables["nope"]
