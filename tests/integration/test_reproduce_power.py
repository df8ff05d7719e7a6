"""Runs analysis/reproduce_power.py --quick and requires every acceptance check (spec power.md 7, 1-10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def test_reproduce_power_quick(tmp_path: Path) -> None:
    out = tmp_path / "power"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "reproduce_power.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=3600,  # a hang bound only
    )
    checks = json.loads((out / "checks.json").read_text())
    names = [c["name"].split()[0] for c in checks]
    for n in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "9b", "10"]:
        assert n in names
    failed = [c for c in checks if not c["pass"]]
    assert not failed, failed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(out / "table2_baseline.csv")
    assert list(table["n_ant"]) == [2, 4, 8, 16]
    assert (out / "table2_baseline.png").stat().st_size > 0
