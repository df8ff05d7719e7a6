"""Runs ``analysis/reproduce_isac.py --quick`` and requires every spec 8.1 check to pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reproduce_isac_quick(tmp_path: Path) -> None:
    out = tmp_path / "isac"
    # BLAS pinned to one thread, as the CLI and the benchmarks do: the interior-point solves are
    # many small factorisations, which extra BLAS threads only slow down on a shared machine
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "reproduce_isac.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=3600, env=env,  # timeout: a hang bound only
    )
    checks = json.loads((out / "checks.json").read_text())
    names = {c["name"].split("_")[0] for c in checks}
    assert names == {str(i) for i in range(1, 15)}, names
    failed = [c for c in checks if not c["pass"]]
    assert not failed, json.dumps(failed, indent=1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for f in ("fig3_channel_error.csv", "fig4_crlb_vs_ps.csv", "fig5_music.csv", "fig6_rate_vs_power.csv",
              "fig7_rate_vs_eps_th.csv", "fig8_convergence.csv", "fig9_rho_vs_power.csv", "fig5.png"):
        assert (out / f).exists(), f
