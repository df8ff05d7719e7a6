"""The glibc heap tuning is applied where simulations run: the CLI and every sweep task on its
Dask worker (issue 10, item 4 of the engine brief)."""

from __future__ import annotations

import platform

import pytest

import netsim.sweep as sweep
from netsim.allocator import tune_allocator


def test_a_sweep_task_tunes_its_workers_allocator_before_it_runs(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "tune_allocator", lambda: calls.append("tuned") or True)
    task = sweep._Task(base=str(tmp_path / "missing.yaml"), overrides=(), point={},
                       point_id="p0", replication=0, seed=1, out=str(tmp_path / "out"))
    row = sweep.run_task(task)  # the scenario does not exist: a failed row, never a raise
    assert calls == ["tuned"]
    assert row["status"] == "failed"


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_tune_allocator_sets_the_thresholds_on_glibc():
    assert tune_allocator() is True
    assert tune_allocator() is True  # again: harmless
