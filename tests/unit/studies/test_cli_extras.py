"""netsim --version and netsim defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import netsim
from netsim.cli import main
from netsim.scenario.loader import parse_scenario

REPO = Path(__file__).resolve().parents[3]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"netsim {netsim.__version__}"


def test_defaults_prints_a_complete_scenario_that_validates_again(capsys):
    assert main(["defaults", str(REPO / "scenarios" / "quickstart.yaml"),
                 "--set", "sync.method=crb"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert data["sync"]["method"] == "crb" and data["deployment"]["aps"]["count"] == 4
    assert "replan_period_s" in data["sync"]  # a default the file does not write
    assert parse_scenario(data).sync.method == "crb"
    assert main(["defaults"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["run"]["seed"] >= 0


def test_defaults_reports_a_bad_override(capsys):
    assert main(["defaults", "--set", "frame.comm_fraction=7"]) == 2
    assert "frame.comm_fraction" in capsys.readouterr().err
