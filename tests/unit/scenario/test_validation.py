"""Total validation: every hostile input of issue 12 gets a clear, bounded error (no traceback)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from netsim.scenario import ScenarioError, apply_overrides, load_scenario, parse_scenario
from netsim.scenario.checks import algorithm_summary, cost_warnings
from netsim.scenario.loader import MAX_PROBLEMS, parse_yaml_bytes


def _problems(text: str | bytes, tmp_path, name="s.yaml") -> list[str]:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value.problems


@pytest.mark.parametrize("text, needle", [
    ("- 1\n- 2\n", "(root): the file must contain a mapping"),
    ("42\n", "(root): the file must contain a mapping"),
    ("users: [1, 2]\n", "users: must be a valid dictionary"),
    ("users:\n  mobility: fast\n", "users.mobility: must be a valid dictionary"),
    ("users:\n  mobility: [1]\n", "users.mobility: must be a valid dictionary"),
    ("faults: {ap: 1}\n", "faults: must be a valid list"),
])
def test_non_mappings_are_named(tmp_path, text, needle):
    assert any(needle in p for p in _problems(text, tmp_path)), _problems(text, tmp_path)


def test_non_utf8_names_the_line(tmp_path):
    (p,) = _problems(b"name: x\nusers:\n  count: \xff\xfe\n", tmp_path)
    assert p.startswith("line 3: not UTF-8") and "0xff" in p


def test_deep_nesting_and_huge_integers_are_refused_quickly(tmp_path):
    c0 = time.process_time()
    (p,) = _problems("users: " + "[" * 50_000 + "]" * 50_000 + "\n", tmp_path)
    assert "nested deeper than" in p
    (p,) = _problems("run:\n  seed: " + "7" * 5000 + "\n", tmp_path)
    assert "cannot read a value" in p and "4300" in p
    # 4000 digits converts, and the range error does not print 4000 digits
    (p,) = _problems("run:\n  seed: " + "7" * 4000 + "\n", tmp_path)
    assert "run.seed" in p and "integer of about" in p and len(p) < 300
    assert time.process_time() - c0 < 5.0


def test_alias_bomb_is_refused_with_bounded_output(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("users: *h")
    text = "\n".join(lines) + "\n"  # ~0.5 kB that expands to 9^9 nodes
    c0 = time.process_time()
    problems = _problems(text, tmp_path)
    assert time.process_time() - c0 < 2.0
    assert len(problems) == 1 and "alias bomb" in problems[0]
    # a bomb just under the node limit still gets bounded error text
    small = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n" \
            "users: {positions_m: [*b, *b, *b, *b, *b, *b]}\n"
    problems = _problems(small, tmp_path)
    assert len(problems) <= MAX_PROBLEMS + 1 and sum(map(len, problems)) < 20_000


@pytest.mark.parametrize("field, value", [
    ("run.duration_s", ".inf"), ("frame.period_s", ".inf"), ("frame.period_s", "1e300"),
    ("sync.chip_time_s", ".inf"), ("sync.chip_time_s", "1e300"),
    ("sensing.snapshot_duration_s", "1e300"), ("oscillators.phase_noise_rad2_per_s", "1e300"),
    ("channel.min_doppler_hz", ".inf"), ("deployment.width_m", ".nan"),
    ("sync.tx_power_w", "1e300"), ("faults.0.duration_s", ".nan"),
])
def test_floats_are_finite_and_physically_bounded(field, value):
    data = apply_overrides({"faults": [{"at_s": 0.1, "ap": 0}]}, [f"{field}={value}"])
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    text = "\n".join(info.value.problems)
    assert field.replace(".0.", "[0].") in text


def test_nan_orientation_and_permanent_outage():
    with pytest.raises(ScenarioError, match="finite number"):
        parse_scenario({"deployment": {"orientation": {"mode": "list",
                                                       "angles_deg": [float("nan")] * 9}}})
    # .inf stays the documented "permanent" outage; -inf the documented "every AP serves"
    sc = parse_scenario({"faults": [{"at_s": 1.0, "ap": 0, "duration_s": float("inf")}],
                         "comm": {"association_eta_db": float("-inf")}})
    assert np.isinf(sc.faults[0].duration_s)


def test_every_cross_field_problem_is_listed_at_once():
    data = {
        "deployment": {"width_m": 50, "height_m": 50,
                       "aps": {"layout": "list", "positions_m": [[10, 10], [60, 10]]}},
        "users": {"positions_m": [[1, 1], [-1, 3]]},
        "faults": [{"at_s": 1.0, "ap": 5}],
        "sync": {"reference_ap": 7},
        "frame": {"period_s": 0.001},
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 5, text
    for needle in ("faults[0].ap = 5 but there are only 2 APs", "sync.reference_ap = 7",
                   "deployment.aps.positions_m[1] = [60.0, 10.0] lies outside the area",
                   "users.positions_m[1] = [-1.0, 3.0] lies outside the area",
                   "frame.period_s = 0.001 s is shorter than one frame"):
        assert needle in text


def test_layout_fits_are_checked_at_validation():
    with pytest.raises(ScenarioError, match="hexagon with isd_m = 80.0 m .* does not fit"):
        parse_scenario({"deployment": {"aps": {"layout": "hexagon", "count": 7, "isd_m": 80}}})
    with pytest.raises(ScenarioError, match="min_ap_distance_m = 500.0 m leaves no room"):
        parse_scenario({"deployment": {"width_m": 2000, "height_m": 2000,
                                       "aps": {"layout": "hexagon", "count": 7}},
                        "users": {"placement": "hex_cells", "min_ap_distance_m": 500}})
    with pytest.raises(ScenarioError, match="hexagonal cells .* outside the"):
        parse_scenario({"deployment": {"width_m": 410, "height_m": 400,
                                       "aps": {"layout": "hexagon", "count": 7}},
                        "users": {"placement": "hex_cells"}})
    with pytest.raises(ScenarioError, match="APs 0 and 1 are at the same place"):
        parse_scenario({"deployment": {"aps": {"layout": "list",
                                               "positions_m": [[1, 1], [1, 1]]}}})
    with pytest.raises(ScenarioError, match="cannot fit"):
        parse_scenario({"deployment": {"aps": {"layout": "random", "count": 100,
                                               "min_distance_m": 50}}})
    with pytest.raises(ScenarioError, match="MUSIC grid"):
        parse_scenario({"deployment": {"width_m": 1e4, "height_m": 1e4},
                        "sensing": {"method": "music", "grid_step_m": 0.25}})


def _traj_scenario(tmp_path, csv: str | None, users: int = 2):
    if csv is not None:
        (tmp_path / "t.csv").write_text(csv)
    (tmp_path / "s.yaml").write_text(
        f"users:\n  count: {users}\n  mobility: {{model: trajectory, trajectory_file: t.csv}}\n")
    return tmp_path / "s.yaml"


def test_trajectory_file_is_checked_at_validation(tmp_path):
    with pytest.raises(ScenarioError, match="t.csv not found"):
        load_scenario(_traj_scenario(tmp_path, None))
    with pytest.raises(ScenarioError, match="missing column"):
        load_scenario(_traj_scenario(tmp_path, "a,b\n1,2\n"))
    with pytest.raises(ScenarioError, match="no trajectory for user\\(s\\) 1 of the 2 users"):
        load_scenario(_traj_scenario(tmp_path, "t_s,user,x_m,y_m\n0,0,1,1\n1,0,2,2\n"))
    with pytest.raises(ScenarioError, match="trajectory_file"):
        load_scenario(_traj_scenario(tmp_path, "t_s,user,x_m,y_m\n0,0,1,1\n0,1,500,2\n"))
    ok = "t_s,user,x_m,y_m\n0,0,1,1\n1,0,2,2\n0,1,3,3\n"
    assert load_scenario(_traj_scenario(tmp_path, ok)).n_users == 2


def test_overrides_that_do_not_fit_the_data_are_clear_errors():
    for item, needle in (("users.count.x=3", "'users.count' is int"),
                         ("faults.3.ap=1", "not an index of the 1-item list"),
                         ("faults.x=1", "not an index"), ("a..b=1", "empty field name")):
        with pytest.raises(ScenarioError, match=needle):
            apply_overrides({"users": {"count": 3}, "faults": [{"ap": 0}]}, [item])
    # a YAML-invalid value stays a string and is then refused by the schema
    with pytest.raises(ScenarioError, match="run.seed"):
        parse_scenario(apply_overrides({}, ["run.seed=[1"]))


def test_defaults_are_fast_and_the_summary_names_the_algorithms():
    sc = parse_scenario({})
    assert sc.comm.beamforming == "mrt_plain"
    assert "beamforming: mrt_plain" in algorithm_summary(sc)
    assert cost_warnings(sc) == []
    with pytest.raises(ScenarioError, match="comm.beamforming = mrt: .* dimension d = 216"):
        parse_scenario({"comm": {"beamforming": "mrt"}, "deployment": {"aps": {"count": 36}},
                        "users": {"count": 6}})
    small = parse_scenario({"comm": {"beamforming": "mrt"}, "users": {"count": 2}})
    (w,) = cost_warnings(small)
    assert "mrt solves a robust SDP of dimension ~18 for 2 users" in w and "mrt_plain" in w
    far = parse_scenario({"sync": {"method": "ml"}, "oscillators": {"initial_time_offset_s": 1.0}})
    assert any("far beyond the sync search window" in w for w in cost_warnings(far))


def test_parse_yaml_bytes_limits():
    assert parse_yaml_bytes(b"") == {}
    with pytest.raises(ScenarioError, match="under 1000000 bytes"):
        parse_yaml_bytes(b"#" * 1_000_001)
    with pytest.raises(ScenarioError, match="YAML syntax error"):
        parse_yaml_bytes(b"a: [1\n")


def test_field_and_cross_field_problems_are_listed_together():
    """One pass shows the field errors and every cross-field problem that reads no invalid
    field; a check that would read an invalid field (here the AP list) is not run on defaults."""
    data = {
        "deployment": {"width_m": 50, "height_m": 50, "antennas_per_ap": -3,
                       "aps": {"layout": "list", "positions_m": [[10, 10], [60, 10]]}},
        "users": {"positions_m": [[1, 1], [-1, 3]]},
        "faults": [{"at_s": 1.0, "ap": 5}],
        "sync": {"reference_ap": 7, "method": "bogus"},
        "frame": {"period_s": 0.001},
        "channel": {"carrier_hz": "x"},
        "oops": 1,
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    text = "\n".join(info.value.problems)
    for needle in ("deployment.antennas_per_ap", "sync.method", "channel.carrier_hz",
                   "oops: unknown field", "faults[0].ap = 5 but there are only 2 APs",
                   "sync.reference_ap = 7", "deployment.aps.positions_m[1] = [60.0, 10.0]",
                   "users.positions_m[1] = [-1.0, 3.0]", "frame.period_s = 0.001 s is shorter"):
        assert needle in text, (needle, text)
    assert len(info.value.problems) == 9, text
    # the AP list itself invalid: nothing is checked against the default 9 APs, the checks
    # that do not read the APs still run
    data["deployment"]["aps"]["positions_m"] = "bad"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    text = "\n".join(info.value.problems)
    assert "deployment.aps.positions_m: must be a valid list" in text
    assert "users.positions_m[1] = [-1.0, 3.0]" in text and "frame.period_s = 0.001" in text
    assert "faults[0]" not in text and "reference_ap" not in text and "only 9 APs" not in text
    # an invalid area: no position is checked against the default area
    with pytest.raises(ScenarioError) as info:
        parse_scenario({"deployment": {"width_m": -1}, "users": {"positions_m": [[200, 1]]},
                        "frame": {"min_comm_fraction": 0.9, "max_comm_fraction": 0.5}})
    text = "\n".join(info.value.problems)
    assert "deployment.width_m" in text and "min_comm_fraction = 0.9" in text
    assert "users.positions_m[0]" not in text and len(info.value.problems) == 2, text


def test_trajectory_file_problems_come_with_the_field_errors(tmp_path):
    (tmp_path / "s.yaml").write_text("users:\n  count: 2\n  mobility: {model: trajectory, "
                                     "trajectory_file: missing.csv}\nsync: {method: nope}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "s.yaml")
    text = "\n".join(info.value.problems)
    assert "sync.method" in text and "missing.csv not found" in text, text


def test_robust_designs_above_the_resource_guard_are_refused():
    """The estimated memory / time of the robust designs (netsim.scenario.checks) refuses the
    campus Main design (d = 108 for 6 users: terabytes) and accepts the paper-size one."""
    from netsim.scenario.checks import (
        MAX_ROBUST_CPU_S_PER_FRAME,
        MAX_ROBUST_MEMORY_BYTES,
        max_robust_dim,
        robust_design_cost,
        robust_problem_size,
    )

    with pytest.raises(ScenarioError, match="comm.beamforming = main: the robust design here "
                                            "has dimension d = 108 for 6 users"):
        load_scenario("scenarios/campus.yaml", ["comm.beamforming=main"])
    sc = load_scenario("scenarios/isac_paper.yaml", ["comm.beamforming=main"])
    assert robust_problem_size(sc) == (12, 4)  # the paper's d = 12 (3 APs x 4 users)
    assert any("main solves a robust SDP of dimension ~12" in w for w in cost_warnings(sc))
    # the model passes through the measured points it was fitted to (benchmarks/robust_cost.py)
    for d, k, mb, cpu in ((16, 4, 272, 13.8), (16, 2, 112, 4.3)):
        mem, per_frame = robust_design_cost("main", d, k)
        assert 0.5 < mem / (mb * 1e6) < 2.0 and 0.5 < per_frame / 12 / cpu < 2.0
    # monotone in the sizes, and the run-time bound is the largest accepted dimension
    for scheme in ("main", "mrt", "ei"):
        dims = [max_robust_dim(scheme, k) for k in (1, 2, 4, 8, 16)]
        assert dims == sorted(dims, reverse=True) and dims[-1] >= 1
        d = dims[2]
        for dd, inside in ((d, True), (d + 1, False)):
            mem, cpu = robust_design_cost(scheme, dd, 4)
            assert (mem <= MAX_ROBUST_MEMORY_BYTES and cpu <= MAX_ROBUST_CPU_S_PER_FRAME) == inside
