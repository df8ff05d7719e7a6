"""Suite-wide pytest hooks.

Opt-in CPU accounting for CI-time work: with ``NETSIM_TEST_TIMES=<dir>`` set, every test's
CPU seconds (this process, plus any child processes it waited for) and wall seconds, set-up and
tear-down included, are written to ``<dir>/times-<worker>.jsonl``. CPU time is what a loaded,
shared machine distorts least, so the slow-test lists are compared in CPU seconds. Without the
variable nothing is recorded and nothing changes.

Outcomes that must not depend on the machine's speed, load or luck:

* Hypothesis runs derandomized (the same examples every run, no example database), with no
  per-example deadline: a property test either always passes or always fails on a commit.
* ``NETSIM_FULL_SIZE``: the ``slow`` tests run at full size only when they are selected on their
  own (``pytest -m slow``, as the README says) or with ``NETSIM_FULL_SIZE=1``; the whole suite
  (CI) runs them too, at a reduced size that each test names.
* BLAS runs one thread per process, as the CLI and the benchmarks pin it: the kernels multiply
  many small matrices, and on a shared 2-core machine with two xdist workers extra BLAS threads
  only burn CPU (the robust interior-point test measured 260.8 CPU-s unpinned against 38.7
  pinned). Set here, before any test imports numpy; the worker processes inherit it. A value
  the user set is kept.
* Dask's connect / tcp timeouts (30 s by default) are raised for the sweep tests' local and
  real clusters, whose worker processes can take that long to start on a loaded 2-core machine.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

for _key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_key, "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("netsim", derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.load_profile("netsim")

for _key in ("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP"):
    os.environ.setdefault(_key, "300s")  # also seen by the worker processes the tests start

_OUT = os.environ.get("NETSIM_TEST_TIMES")


def pytest_configure(config: pytest.Config) -> None:
    # before any test module is imported (sizes are read at import); xdist workers inherit it
    if os.environ.get("NETSIM_FULL_SIZE") is None:
        alone = (config.getoption("markexpr", "") or "").strip() == "slow"
        os.environ["NETSIM_FULL_SIZE"] = "1" if alone else "0"


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


if _OUT:

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):  # noqa: ANN001, ANN201
        own0, kids0 = _cpu()
        wall0 = time.perf_counter()
        yield
        own1, kids1 = _cpu()
        row = {"test": item.nodeid, "cpu_s": round(own1 - own0, 3),
               "child_cpu_s": round(kids1 - kids0, 3),
               "wall_s": round(time.perf_counter() - wall0, 3)}
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        path = Path(_OUT) / f"times-{worker}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
