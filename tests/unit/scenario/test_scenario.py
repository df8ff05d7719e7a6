"""Scenario models and loader: defaults, ranges, unknown keys, overrides."""

from __future__ import annotations

import pytest
import yaml

from netsim.scenario import ScenarioError, apply_overrides, load_scenario, parse_scenario
from netsim.scenario.loader import scenario_to_yaml


def test_empty_file_gives_valid_defaults():
    sc = parse_scenario({})
    assert sc.sync.method == "genie"
    assert sc.run.frames == 20 and sc.run.duration_s is None
    # thermal noise k T B F of the default 20 MHz, NF 9 dB receiver: -92.0 dBm
    assert sc.channel.noise_power_w == pytest.approx(1.380649e-23 * 290 * 20e6 * 10**0.9)


def test_every_problem_is_reported_with_its_path():
    data = {
        "deployment": {"aps": {"cuont": 4}},
        "oscillators": {"initial_offset_ppm": -1},
        "sync": {"method": "mll"},
    }
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    text = "\n".join(info.value.problems)
    assert len(info.value.problems) == 3
    assert "deployment.aps.cuont: unknown field; did you mean 'count'?" in text
    assert "oscillators.initial_offset_ppm: must be greater than or equal to 0" in text
    assert "sync.method" in text and "'genie'" in text


def test_unknown_top_level_section_is_an_error():
    with pytest.raises(ScenarioError, match="synch: unknown field; did you mean 'sync'"):
        parse_scenario({"synch": {"method": "ml"}})


def test_cross_field_checks():
    with pytest.raises(ScenarioError, match="only 9 APs"):
        parse_scenario({"faults": [{"at_s": 1.0, "ap": 9}]})
    with pytest.raises(ScenarioError, match="outside the area"):
        parse_scenario({"users": {"positions_m": [[500.0, 1.0]]}})
    with pytest.raises(ScenarioError, match="not both"):
        parse_scenario({"run": {"frames": 3, "duration_s": 1.0}})


def test_overrides_parse_yaml_values_and_nest():
    data = apply_overrides({"sync": {"method": "genie"}},
                           ["sync.method=ml", "frame.subframes=4", "faults=[]", "run.seed=9"])
    assert data == {"sync": {"method": "ml"}, "frame": {"subframes": 4}, "faults": [],
                    "run": {"seed": 9}}
    with pytest.raises(ScenarioError, match="KEY=VALUE"):
        apply_overrides({}, ["sync.method"])


def test_resolved_yaml_round_trips(tmp_path):
    sc = parse_scenario({"users": {"count": 7}, "faults": [{"at_s": 1.0, "ap": 2}]})
    text = scenario_to_yaml(sc)
    again = parse_scenario(yaml.safe_load(text))
    assert again == sc


@pytest.mark.parametrize("name", ["quickstart", "campus", "drift_longrun"])
def test_bundled_scenarios_validate(name):
    sc = load_scenario(f"scenarios/{name}.yaml")
    assert sc.name == name
