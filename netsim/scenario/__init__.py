"""Scenario files: typed models and the YAML loader."""

from netsim.scenario.loader import (
    ScenarioError,
    apply_overrides,
    load_scenario,
    parse_scenario,
    scenario_to_yaml,
)
from netsim.scenario.models import Scenario

__all__ = [
    "Scenario",
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "parse_scenario",
    "scenario_to_yaml",
]
