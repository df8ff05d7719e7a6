"""Every analysis notebook executes from a clean kernel (nbclient), on runs it creates.

The notebooks are committed without outputs; this test runs them in a temporary folder
(``NETSIM_NOTEBOOK_OUT``) with this checkout on the kernel's path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "analysis").glob("*.ipynb"))


def test_the_four_notebooks_exist_and_have_no_outputs():
    assert {p.stem for p in NOTEBOOKS} >= {"drift_and_synchronization", "sensing_and_mobility",
                                           "power_control", "sweep_results"}
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        for cell in book.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("NETSIM_NOTEBOOK_OUT", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, "1")
    book = nbformat.read(path, as_version=4)
    # the timeouts only bound a hang (per cell, and the kernel's start): a loaded shared machine
    # can stretch a cell of a few CPU-s to minutes of wall time
    client = nbclient.NotebookClient(book, timeout=1800, startup_timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO / "analysis")}})
    client.execute()
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert any(tmp_path.iterdir())  # it made its own run(s)
