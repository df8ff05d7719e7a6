"""Load scenario YAML files, apply ``--set`` overrides and report validation errors.

Errors name the field path (``oscillators.initial_offset_ppm``) and, for unknown
keys, the allowed names, so a user can fix a file without reading the code.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from netsim.scenario.models import Scenario

__all__ = [
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "parse_scenario",
    "scenario_to_yaml",
]


class ScenarioError(ValueError):
    """A scenario failed to load or validate. ``problems`` lists one message per error."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        text = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{text}")


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``path`` (for listing allowed keys)."""
    model: Any = Scenario
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for arg in list(candidates):
            candidates.extend(getattr(arg, "__args__", ()))
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def format_validation_error(err: ValidationError) -> list[str]:
    """One readable line per pydantic error: ``path: message (got value)``."""
    problems = []
    for e in err.errors():
        # drop pydantic's internal tags for tagged unions / function validators
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _format_loc(loc)
        if e["type"] == "extra_forbidden":
            owner = _model_at(loc[:-1])
            allowed = sorted(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"{path}: unknown field{hint} (allowed: {', '.join(allowed)})")
            continue
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        msg = msg.replace("Input should be", "must be")
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        problems.append(f"{path}: {msg}{shown}")
    return problems


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied.

    Values are parsed as YAML (``3``, ``1e-6``, ``true``, ``[1, 2]``, ``ml``). List items are
    addressed by index (``faults.0.at_s=5``).
    """
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ScenarioError("--set", [f"'{item}': expected KEY=VALUE, e.g. sync.method=ml"])
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        node: Any = data
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[int(part)]
                continue
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = _parse_value(raw)
        else:
            node[last] = _parse_value(raw)
    return data


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate a plain dict into a :class:`Scenario` or raise :class:`ScenarioError`."""
    if not isinstance(data, dict):
        raise ScenarioError(source, ["(root): the file must contain a mapping of sections"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(source, format_validation_error(err)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), ["file not found"])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ScenarioError(str(path), [f"YAML syntax error: {err}"]) from None
    return data


def load_scenario(
    path: str | Path, overrides: list[str] | None = None, resolve_paths: bool = True
) -> Scenario:
    """Read, override and validate a scenario file.

    Relative file references inside the scenario (``users.mobility.trajectory_file``) are
    resolved against the scenario file's folder when ``resolve_paths`` is true.
    """
    path = Path(path)
    data = apply_overrides(read_yaml(path), overrides)
    traj = ((data.get("users") or {}).get("mobility") or {}).get("trajectory_file")
    if resolve_paths and isinstance(traj, str) and not Path(traj).is_absolute():
        data["users"]["mobility"]["trajectory_file"] = str((path.parent / traj).resolve())
    return parse_scenario(data, str(path))


def scenario_to_yaml(scenario: Scenario) -> str:
    """The resolved scenario (all defaults filled) as YAML text."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
