"""Load scenario YAML files, apply ``--set`` overrides and report validation errors.

Errors name the field path (``oscillators.initial_offset_ppm``) and, for unknown
keys, the allowed names, so a user can fix a file without reading the code.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from reprlib import Repr
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from netsim.scenario.models import Scenario

_REPR = Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 80, 80, 8, 8, 3
reprlib_repr = _REPR.repr

__all__ = [
    "ScenarioError",
    "apply_overrides",
    "load_scenario",
    "parse_scenario",
    "parse_yaml_bytes",
    "read_yaml",
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
    """One readable line per pydantic error: ``path: message (got value)``; at most
    :data:`MAX_PROBLEMS` lines, values clipped (bounded output whatever the input)."""
    problems = []
    errors = err.errors(include_url=False)
    for e in errors[:MAX_PROBLEMS]:
        # drop pydantic's internal tags for tagged unions / function validators
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _clip(_format_loc(loc))
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
        if not loc and e["type"] == "value_error":  # the cross-field checks: one line each
            problems += [_clip(line, 400) for line in msg.splitlines()]
            continue
        msg = msg.replace("Input should be", "must be")
        if e["type"] == "finite_number":
            msg = "must be a finite number (not NaN or infinity)"
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {_clip(_safe_repr(got))})"
        problems.append(f"{path}: {_clip(msg, 400)}{shown}")
    if len(errors) > MAX_PROBLEMS:
        problems.append(f"... and {len(errors) - MAX_PROBLEMS} more problem(s)")
    return problems


def _safe_repr(value: Any) -> str:
    """repr() that stays cheap for huge or self-referencing values."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 300:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if isinstance(value, list | tuple) and len(value) > 8:
        return f"a list of {len(value)} items"
    try:
        return reprlib_repr(value)
    except (RecursionError, ValueError):
        return f"a {type(value).__name__}"


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied.

    Values are parsed as YAML (``3``, ``1e-6``, ``true``, ``[1, 2]``, ``ml``). List items are
    addressed by index (``faults.0.at_s=5``). A key that does not fit the data (an index into
    a mapping, a field of a number, an index past the end) is a :class:`ScenarioError`.
    """
    data = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ScenarioError("--set", [f"'{_clip(item)}': expected KEY=VALUE, e.g. sync.method=ml"])
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise ScenarioError("--set", [f"'{_clip(key)}': empty field name in the key"])
        try:
            value = parse_yaml_bytes(raw.encode(), "--set") if raw.strip() else None
        except ScenarioError:
            value = raw
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                    raise ScenarioError("--set", [f"{_clip(key)}: '{where}' is not an index of "
                                                  f"the {len(node)}-item list"])
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise ScenarioError("--set", [f"{_clip(key)}: '{'.'.join(parts[:depth])}' is "
                                              f"{type(node).__name__}, not a section"])
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
    return data


def parse_scenario(data: Any, source: str = "<scenario>", check_files: bool = False
                   ) -> Scenario:
    """Validate a plain dict into a :class:`Scenario` or raise :class:`ScenarioError`.

    Every problem is listed in one pass: field errors (type, range, unknown keys), every
    cross-field problem (:func:`netsim.scenario.checks.cross_field_problems`) and, with
    ``check_files``, the referenced files (trajectories). When some fields are invalid, the
    cross-field and file checks that do not read any of them still run (on the scenario with
    the invalid fields left out, see :func:`_without_invalid`).
    """
    if not isinstance(data, dict):
        raise ScenarioError(source, [_root_problem(data)])
    from netsim.scenario.checks import cross_field_problems, file_problems

    invalid: set[tuple[str, ...]] = set()
    try:
        scenario = Scenario.model_validate(data, context=_NO_CROSS)
        problems: list[str] = []
    except ValidationError as err:
        problems = format_validation_error(err)
        scenario, invalid = _without_invalid(data, err)
    except RecursionError:
        raise ScenarioError(source, ["the scenario is nested too deeply"]) from None
    if scenario is not None:
        problems += cross_field_problems(scenario, skip=invalid)
        if check_files:
            problems += file_problems(scenario, skip=invalid)
    if problems:
        raise ScenarioError(source, _bounded(problems))
    return scenario


_NO_CROSS = {"cross_checks": False}
_PARTIAL_ROUNDS = 4


def _drop(data: dict[str, Any], loc: tuple[Any, ...]) -> tuple[tuple[str, ...], bool] | None:
    """Delete from ``data`` the value a pydantic error ``loc`` points at: the deepest mapping
    key on the path (a list is dropped whole; union tags and missing keys end the walk).

    Returns the dropped key path and whether it is exactly ``loc`` (None: nothing to drop,
    an error of the root itself)."""
    node: Any = data
    parent, key, path = None, None, []
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            parent, key, node = node, part, node[part]
            path.append(part)
        else:
            break
    if parent is None:
        return None
    del parent[key]
    return tuple(path), len(path) == len(loc)


def _without_invalid(data: dict[str, Any], err: ValidationError
                     ) -> tuple[Scenario | None, set[tuple[str, ...]]]:
    """The scenario with every invalid field left out (defaults instead), and those fields.

    Unknown keys are dropped without counting as invalid (no known field changes). Dropping
    a value can expose another error (a section validator now sees a default), so this is
    repeated a few times; ``None`` when the rest still does not validate.
    """
    data = copy.deepcopy(data)
    invalid: set[tuple[str, ...]] = set()
    for _ in range(_PARTIAL_ROUNDS):
        for e in err.errors(include_url=False):
            dropped = _drop(data, tuple(e["loc"]))
            if dropped is None:
                return None, invalid
            path, exact = dropped
            if not (exact and e["type"] == "extra_forbidden"):
                invalid.add(path)
        try:
            return Scenario.model_validate(data, context=_NO_CROSS), invalid
        except ValidationError as again:
            err = again
        except RecursionError:
            break
    return None, invalid


def _bounded(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problem(s)"]


MAX_FILE_BYTES = 1_000_000
"""Scenario files above this size are refused (a scenario is a few kB)."""
MAX_DEPTH = 32
"""Deepest YAML nesting accepted (a scenario needs 4 levels)."""
MAX_NODES = 100_000
"""Most YAML nodes a file may expand to, aliases counted at every use (alias bombs)."""
MAX_PROBLEMS = 40
"""At most this many problems are listed (the count of the rest is given)."""
_MAX_SHOWN = 120


class _BoundedLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses deep nesting before it recurses."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML hook
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _LimitError(f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _LimitError(Exception):
    pass


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of nodes ``node`` stands for once every alias is expanded (memoised: linear)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once (PyYAML builds a cyclic object)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo) + _expanded_size(v, memo)
    memo[key] = size
    return size


def parse_yaml_bytes(raw: bytes, source: str = "<scenario>") -> Any:
    """Decode and parse YAML with bounded time, memory and error output.

    Raises :class:`ScenarioError` for a file that is too large, not UTF-8, not YAML, nested
    deeper than :data:`MAX_DEPTH`, expanding to more than :data:`MAX_NODES` nodes through
    aliases, or holding a number Python refuses to convert (integers above 4300 digits).
    """
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(source, [f"file is {len(raw)} bytes; a scenario must be under "
                                     f"{MAX_FILE_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ScenarioError(source, [f"line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} "
                                     f"at offset {err.start}); save the file as UTF-8"]) from None
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        size = _expanded_size(node, {})
        if size > MAX_NODES:
            raise _LimitError(f"the file expands to {size} YAML nodes through aliases "
                              f"(limit {MAX_NODES}): refusing an alias bomb")
        return loader.construct_document(node)
    except _LimitError as err:
        raise ScenarioError(source, [str(err)]) from None
    except yaml.YAMLError as err:
        msg = _clip(str(err).replace("\n", " "), 400)
        raise ScenarioError(source, [f"YAML syntax error: {msg}"]) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as err:
        raise ScenarioError(source, [f"cannot read a value: {_clip(str(err), 200)}"]) from None
    finally:
        loader.dispose()


def _clip(text: str, n: int = _MAX_SHOWN) -> str:
    return text if len(text) <= n else text[: n - 20] + f"... ({len(text)} chars)"


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML of a scenario file (``{}`` for an empty file); see :func:`parse_yaml_bytes`."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(str(path), ["file not found"])
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ScenarioError(str(path), [f"cannot read the file: {err.strerror}"]) from None
    return parse_yaml_bytes(raw, str(path))


def load_scenario(
    path: str | Path, overrides: list[str] | None = None, resolve_paths: bool = True
) -> Scenario:
    """Read, override and validate a scenario file.

    Relative file references inside the scenario (``users.mobility.trajectory_file``) are
    resolved against the scenario file's folder when ``resolve_paths`` is true; the referenced
    files are checked (present, well-formed, one trajectory per user) as part of validation.
    """
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError(str(path), [_root_problem(data)])
    data = apply_overrides(data, overrides)
    users = data.get("users")
    mob = users.get("mobility") if isinstance(users, dict) else None
    traj = mob.get("trajectory_file") if isinstance(mob, dict) else None
    if resolve_paths and isinstance(traj, str) and traj and not Path(traj).is_absolute():
        data["users"] = {**users, "mobility": {**mob, "trajectory_file": str(
            (path.parent / traj).resolve())}}
    return parse_scenario(data, str(path), check_files=True)


def _root_problem(data: Any) -> str:
    return (f"(root): the file must contain a mapping of sections (deployment:, users:, ...), "
            f"got {type(data).__name__} {_clip(repr(data), 60)}")


def scenario_to_yaml(scenario: Scenario) -> str:
    """The resolved scenario (all defaults filled) as YAML text (libyaml's emitter where PyYAML
    has it: the same text as ``yaml.safe_dump``, a quarter of its cost)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(scenario.model_dump(mode="json"), Dumper=dumper, sort_keys=False)
