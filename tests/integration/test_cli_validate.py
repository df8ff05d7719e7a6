"""`netsim validate` / `netsim run` on hostile input, as a user types them: clean errors only."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def netsim_cli(*args):
    return subprocess.run([sys.executable, "-m", "netsim", *args], capture_output=True, text=True,
                          timeout=1200)


def test_validate_prints_algorithms_and_cost_warnings():
    res = netsim_cli("validate", "scenarios/campus.yaml", "--set", "comm.beamforming=mrt")
    assert res.returncode == 0, res.stderr
    assert "beamforming: mrt (robust SDP, seed 003)" in res.stdout
    assert "warning: comm.beamforming: mrt solves a robust SDP of dimension ~18" in res.stdout
    # Main over every AP of the campus: refused before anything is allocated (resource guard)
    res = netsim_cli("validate", "scenarios/campus.yaml", "--set", "comm.beamforming=main",
                     "--set", "comm.serving_aps=0")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "comm.beamforming = main: the robust design here has dimension d = 216" in res.stderr


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"users: [1, 2]\n",
                                     b"a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                     b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                                     b"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nusers: *e\n"])
def test_garbage_files_get_a_clean_error(tmp_path, content):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content)
    for cmd in ("validate", "run"):
        res = netsim_cli(cmd, str(bad), "--out", str(tmp_path / "o")) if cmd == "run" else \
            netsim_cli(cmd, str(bad))
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr) < 5000
        assert "is not a valid scenario" in res.stderr


def test_run_refuses_an_out_that_is_a_file_or_read_only(tmp_path):
    occupied = tmp_path / "file"
    occupied.write_text("x")
    res = netsim_cli("run", "scenarios/quickstart.yaml", "--frames", "1", "--set", "sensing.method=genie", "--out", str(occupied))
    assert res.returncode == 2 and "exists and is not a folder" in res.stderr
    assert "Traceback" not in res.stderr
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            res = netsim_cli("run", "scenarios/quickstart.yaml", "--frames", "1", "--set", "sensing.method=genie", "--out",
                             str(ro / "sub" / "run"))
        finally:
            ro.chmod(0o700)
        assert res.returncode == 2 and "is not writable" in res.stderr


def test_the_cli_skips_pydantic_plugin_discovery_unless_the_user_set_it(monkeypatch, capsys):
    """netsim's own process sets PYDANTIC_DISABLE_PLUGINS (start-up: no scan of every installed
    distribution's entry points); a value the user gave is kept."""
    from netsim.cli import main

    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    assert main(["validate", "scenarios/quickstart.yaml"]) == 0
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "__all__"
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "some_plugin")
    assert main(["validate", "scenarios/quickstart.yaml"]) == 0
    assert os.environ["PYDANTIC_DISABLE_PLUGINS"] == "some_plugin"
    assert "quickstart.yaml: OK" in capsys.readouterr().out
