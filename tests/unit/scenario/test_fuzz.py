"""Fuzz test: damaged copies of the bundled scenarios through ``validate`` and ``run --frames 2``.

Each example is a bundled scenario damaged by :func:`netsim.scenario.mutate.mutate` (wrong
types, out-of-range, NaN/inf, huge numbers, empty/missing sections, lists for mappings,
unknown keys, garbage and non-UTF-8 bytes, alias bombs, deep nesting, degenerate deployments).
Properties, for every file:

* ``netsim validate`` returns 0 or 2 without raising, prints less than 20 kB and uses less than
  5 s of CPU (a valid file takes ~0.05 s; the bound catches hangs and alias bombs, with a wide
  margin, and is CPU time, not wall time);
* a file that validates runs two frames (reduced: 2 subframes, 2 subcarriers, at most 4 random
  users, isotropic sensing covariance, mrt_plain for the robust SDP designs; see
  ``reduce_for_run``) to exit 0 with finite rates, SINRs, powers and positions, or to exit 1 with
  ``meta.json`` ``status: failed`` and a message; never a traceback.

The default run draws 80 examples (deterministic: ``derandomize``); the ``slow`` variant 400 other
ones at full size (``pytest -m slow``), 80 of them in the whole suite (CI; see tests/conftest.py).
``benchmarks/fuzz_scenarios.py`` is the 1000-file campaign with hang and memory limits.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netsim
from netsim.cli import main
from netsim.scenario.mutate import mutate, reduce_for_run
from netsim.sim.checks import FINITE

REPO = Path(__file__).resolve().parents[3]
BASES = ("quickstart", "campus", "drift_longrun", "isac_paper", "umi_cellfree")
_BASE_DATA = {b: yaml.safe_load((REPO / "scenarios" / f"{b}.yaml").read_text()) for b in BASES}
# quickstart and campus run ML sync and MUSIC sensing by default; the fuzzer mutates them with
# their former genie sync and sensing (same draws and cost as before; a mutation may still pick
# ml or music): a MUSIC acquisition costs seconds per frame on a mutated geometry
for _b in ("quickstart", "campus"):
    _BASE_DATA[_b]["sync"]["method"] = "genie"
    _BASE_DATA[_b]["sensing"]["method"] = "genie"


def _cli(argv: list[str]) -> tuple[int, str, float]:
    out, err = io.StringIO(), io.StringIO()
    c0 = time.process_time()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue() + err.getvalue(), time.process_time() - c0


def _check_file(base: str, seed: int, work: Path) -> str:
    """Run one mutated file through validate (and run); returns how it ended."""
    text = mutate(_BASE_DATA[base], np.random.default_rng([12, seed]))
    d = work / f"{base}-{seed}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "scenario.yaml"
    path.write_bytes(text)
    rc, output, cpu = _cli(["validate", str(path)])
    assert rc in (0, 2), output[-2000:]
    assert cpu < 5.0, f"validate used {cpu:.1f} s of CPU"
    assert len(output) < 20_000, f"{len(output)} characters of output"
    if rc == 2:
        assert "error:" in output
        return "refused"
    data = yaml.safe_load(text.decode())
    reduced = d / "reduced.yaml"
    reduced.write_text(yaml.safe_dump(reduce_for_run(data or {}, max_users=4, cheap=True)))
    out = d / "run"
    rc, output, _ = _cli(["run", str(reduced), "--frames", "2", "--out", str(out), "-q"])
    assert rc in (0, 1, 2), output[-2000:]
    if rc == 2:  # refused before running (e.g. the reduced file or the deployment draw)
        assert "error:" in output
        return "refused at run"
    meta = json.loads((out / "meta.json").read_text())
    if rc == 1:
        assert meta["status"] == "failed" and meta["error"], meta
        assert "error: run failed" in output
        return "failed"
    assert meta["status"] == "finished" and meta["frames"] == 2
    run = netsim.load_run(out)
    for table, cols in FINITE.items():
        df = getattr(run, table)
        assert len(df), table
        for c in cols:
            values = df[c].to_numpy()
            if values.dtype == object:  # list column
                values = np.concatenate([np.asarray(v, float) for v in values])
            assert np.isfinite(values.astype(float)).all(), f"{table}.{c}"
    return "finished"


_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


@settings(max_examples=80, **_SETTINGS)
@given(base=st.sampled_from(BASES), seed=st.integers(0, 2**32 - 1))
def test_mutated_scenarios_validate_and_run_cleanly(base, seed, tmp_path_factory):
    _check_file(base, seed, tmp_path_factory.mktemp("fuzz"))


FULL_SIZE = os.environ.get("NETSIM_FULL_SIZE") == "1"


@pytest.mark.slow
@settings(max_examples=400 if FULL_SIZE else 80, **_SETTINGS)
@given(base=st.sampled_from(BASES), seed=st.integers(0, 2**32 - 1))
def test_mutated_scenarios_many(base, seed, tmp_path_factory):
    _check_file(base, seed, tmp_path_factory.mktemp("fuzz"))


def test_the_mutations_reach_both_outcomes(tmp_path):
    """The fuzzer is not vacuous: over fixed seeds it produces refused files AND files that run."""
    ends = [_check_file(BASES[i % 3], i, tmp_path) for i in range(24)]
    assert "refused" in ends and "finished" in ends, ends
