"""Runs the seed-000 reproduction in --quick mode and requires every acceptance check to pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_reproduce_sync_quick(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "analysis" / "reproduce_sync.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=3600,  # a hang bound only (a loaded machine stretches the wall time)
    )
    checks = json.loads((tmp_path / "checks.json").read_text())
    failed = [c for c in checks if not c["pass"]]
    assert not failed, failed
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(checks) >= 25
    for name in (
        "fig4_d_diagonal",
        "fig5_contamination_power",
        "fig6_crb_mse",
        "fig7_clustering",
        "fig8_pilot_sharing",
    ):
        assert (tmp_path / f"{name}.csv").stat().st_size > 0
        assert (tmp_path / f"{name}.png").stat().st_size > 0
