"""Hostile scenario files for robustness testing (the fuzz test and ``benchmarks/fuzz_scenarios.py``).

:func:`mutate` turns a scenario (a plain dict, e.g. a bundled file) into the bytes of a
damaged scenario file: wrong types, out-of-range values, NaN/inf, huge numbers, empty or
missing sections, lists where mappings belong, unknown keys, garbage and non-UTF-8 bytes,
YAML alias bombs, deep nesting and degenerate deployments. Every draw comes from the
``numpy.random.Generator`` passed in, so a (base, seed) pair always gives the same file.

Nothing here runs a simulation; the callers feed the bytes to ``netsim validate`` / ``run``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import yaml

__all__ = ["MUTATIONS", "leaf_paths", "mutate", "reduce_for_run"]

# whole-file mutations 25 %, valid-but-extreme values 34 %, damaging mutations 41 %

_WRONG_TYPES: list[Any] = ["abc", "", [1, 2], {"a": 1}, True, None, [], {}, "1e3", "nan"]
_SPECIAL_FLOATS = [float("nan"), float("inf"), float("-inf")]
_HUGE: list[Any] = [1e300, -1e300, 2**64, 10**30, 1e-300, 5e-324]
_SECTIONS = ("deployment", "users", "oscillators", "frame", "sync", "sensing", "comm",
             "channel", "fronthaul", "faults", "run")
_CHOICES: dict[tuple[str, ...], list[Any]] = {
    ("sync", "method"): ["none", "genie", "ml", "crb"],
    ("sensing", "method"): ["genie", "music"],
    ("sensing", "fidelity"): ["wishart", "snapshots"],
    ("sensing", "covariance"): ["isotropic", "optimized"],
    ("comm", "csi"): ["location", "perfect", "pilots"],
    ("comm", "beamforming"): ["mrt", "mrt_plain", "main", "ei", "rzf"],
    ("comm", "power"): ["equal", "wmmse", "maxmin", "gnn"],
    ("channel", "model"): ["nearfield", "umi"],
    ("deployment", "aps", "layout"): ["grid", "random", "hexagon", "list"],
    ("deployment", "orientation", "mode"): ["fixed", "random", "list"],
    ("users", "placement"): ["uniform", "hex_cells"],
    ("users", "mobility", "model"): ["static", "constant_velocity", "random_waypoint",
                                     "trajectory"],
    ("frame", "time_allocation"): ["fixed", "crlb_feasible"],
}


def leaf_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a non-container value (and to every container) in ``data``."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += leaf_paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += leaf_paths(v, (*prefix, i))
    return out


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _pick(rng: np.random.Generator, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


def _numeric_variant(value: Any, rng: np.random.Generator) -> Any:
    kind = int(rng.integers(5))
    if kind == 0:
        return _pick(rng, _SPECIAL_FLOATS)
    if kind == 1:
        return _pick(rng, _HUGE)
    if kind == 2:
        return -abs(value) - 1 if isinstance(value, int | float) else -1
    if kind == 3:
        return 0
    scale = 10.0 ** float(rng.uniform(-8, 8))
    return (value if isinstance(value, int | float) and value else 1.0) * scale


# --------------------------------------------------------------------------- structural mutations
def _m_wrong_type(d: dict, rng: np.random.Generator) -> dict:
    path = _pick(rng, leaf_paths(d))
    _set(d, path, copy.deepcopy(_pick(rng, _WRONG_TYPES)))
    return d


def _m_numeric(d: dict, rng: np.random.Generator) -> dict:
    paths = [p for p in leaf_paths(d) if isinstance(_get(d, p), int | float)
             and not isinstance(_get(d, p), bool)]
    if paths:
        p = _pick(rng, paths)
        _set(d, p, _numeric_variant(_get(d, p), rng))
    return d


def _m_section(d: dict, rng: np.random.Generator) -> dict:
    name = _pick(rng, list(_SECTIONS))
    kind = int(rng.integers(4))
    if kind == 0:
        d.pop(name, None)
    elif kind == 1:
        d[name] = {} if name != "faults" else []
    elif kind == 2:
        d[name] = None
    else:  # a list where a mapping belongs (or the reverse)
        d[name] = [d.get(name) or {}] if name != "faults" else {"at_s": 1.0, "ap": 0}
    return d


def _m_nested_list(d: dict, rng: np.random.Generator) -> dict:
    paths = [p for p in leaf_paths(d) if isinstance(_get(d, p), dict)]
    if paths:
        p = _pick(rng, paths)
        _set(d, p, [_get(d, p)])
    return d


def _m_unknown_key(d: dict, rng: np.random.Generator) -> dict:
    paths = [()] + [p for p in leaf_paths(d) if isinstance(_get(d, p), dict)]
    p = _pick(rng, paths)
    _get(d, p)[_pick(rng, ["foo", "cuont", "method_", "1", "seeed"])] = 1
    return d


def _m_choice(d: dict, rng: np.random.Generator) -> dict:
    path = _pick(rng, list(_CHOICES))
    node = d
    for p in path[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[path[-1]] = _pick(rng, _CHOICES[path] + ["bogus"])
    return d


def _section(d: dict, name: str) -> dict:
    """The mapping ``d[name]``, created if missing or null (a detached dict if it is not one)."""
    if d.get(name) is None:
        d[name] = {}
    return d[name] if isinstance(d[name], dict) else {}


def _m_degenerate(d: dict, rng: np.random.Generator) -> dict:
    """Degenerate deployments and hostile combinations the issue found."""
    dep, users, osc = _section(d, "deployment"), _section(d, "users"), _section(d, "oscillators")
    kind = int(rng.integers(12))
    if kind == 0:
        dep["aps"] = {"layout": "grid", "count": 1}
    elif kind == 1:
        users.pop("positions_m", None)
        users["count"] = 1
    elif kind == 2:
        dep["width_m"], dep["height_m"] = 0.01, 0.01
    elif kind == 3:
        dep["aps"] = {"layout": "list", "positions_m": [[1.0, 1.0]] * 3}
    elif kind == 4:
        users["placement"] = "hex_cells"
        users["min_ap_distance_m"] = float(rng.choice([50.0, 500.0, 1e4]))
    elif kind == 5:
        d["sync"] = {"method": "ml"}
        osc["initial_time_offset_s"] = float(rng.choice([1e-3, 0.1, 1.0]))
    elif kind == 6:
        d["sync"] = {"method": "ml"}
        dep["aps"] = {"layout": "grid", "count": 1}
    elif kind == 7:
        users["mobility"] = {"model": "trajectory", "trajectory_file": "no_such_file.csv"}
    elif kind == 8:
        dep["orientation"] = {"mode": "list", "angles_deg": [float("nan")] * 64}
    elif kind == 9:
        _section(d, "channel")["min_doppler_hz"] = float("inf")
    elif kind == 10:
        d["faults"] = [{"at_s": 0.0, "ap": int(rng.integers(0, 2000))}]
    else:
        d["run"] = {"duration_s": float("inf")}
    return d


def _numeric_fields(model: type, prefix: tuple = ()) -> list[tuple[tuple, type, dict]]:
    """(path, int|float, bounds) of every numeric field of a scenario model, recursively."""
    import types
    import typing

    from pydantic import BaseModel

    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] \
            if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union else [ann]
        kind = args[0] if args else ann
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += _numeric_fields(kind, (*prefix, name))
        elif kind in (int, float):
            bounds = {}
            for m in f.metadata:
                for key in ("ge", "gt", "le", "lt"):
                    if getattr(m, key, None) is not None:
                        bounds[key] = getattr(m, key)
            out.append(((*prefix, name), kind, bounds))
    return out


def _m_in_range(d: dict, rng: np.random.Generator) -> dict:
    """A valid but extreme value: a bound of the field's range, or log-uniform inside it."""
    from netsim.scenario.models import Scenario

    fields = _numeric_fields(Scenario)
    path, kind, b = _pick(rng, fields)
    lo = b.get("ge", b.get("gt"))
    hi = b.get("le", b.get("lt"))
    lo = -1e3 if lo is None else lo
    hi = (abs(lo) + 1) * 1e6 if hi is None else hi
    r = rng.random()
    if r < 0.3:
        v = lo if "ge" in b or "gt" not in b else lo + abs(lo) * 1e-9 + (1e-12 if kind is float else 1)
    elif r < 0.6:
        v = hi if "le" in b or "lt" not in b else hi - abs(hi) * 1e-9 - (0 if kind is float else 1)
    elif lo > 0:
        v = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    else:
        v = float(rng.uniform(lo, hi))
    if kind is int:
        v = int(np.clip(round(v), -(2**62), 2**62))
        v = max(v, int(np.ceil(lo)) + (1 if "gt" in b else 0))
        v = min(v, 10**6)  # an int field at 1e9 frames or seeds says nothing new
    node = d
    for p in path[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[path[-1]] = v
    return d


MUTATIONS = {
    "in_range": _m_in_range,
    "wrong_type": _m_wrong_type,
    "numeric": _m_numeric,
    "section": _m_section,
    "list_for_mapping": _m_nested_list,
    "unknown_key": _m_unknown_key,
    "choice": _m_choice,
    "degenerate": _m_degenerate,
}

# --------------------------------------------------------------------------- whole-file mutations
_BOMB = (b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
         b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
         b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
         b"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\nusers: &u [*g, *g, *g, *g, *g, *g, *g]\n")


def _file_level(text: bytes, rng: np.random.Generator) -> bytes:
    kind = int(rng.integers(9))
    if kind == 0:
        return bytes(rng.integers(0, 256, size=int(rng.integers(1, 2000)), dtype=np.uint8))
    if kind == 1:  # non-UTF-8 bytes inside an otherwise good file
        i = int(rng.integers(0, len(text) + 1))
        return text[:i] + b"\xff\xfe\xc3(" + text[i:]
    if kind == 2:
        return _BOMB
    if kind == 3:
        depth = int(rng.choice([200, 5000, 50_000]))
        return b"users: " + b"[" * depth + b"]" * depth + b"\n"
    if kind == 4:
        return b"run:\n  seed: " + b"7" * int(rng.choice([400, 5000, 20_000])) + b"\n"
    if kind == 5:
        return text[: int(rng.integers(0, len(text) + 1))]  # truncated
    if kind == 6:
        return _pick(rng, [b"", b"- 1\n- 2\n", b"42\n", b"just a string\n", b"~\n", b"[]\n"])
    if kind == 7:
        return _pick(rng, [b"users: 3\n", b"users: [1, 2]\n", b"users:\n  mobility: fast\n",
                           b"deployment: []\n", b"run: 5\n", b"faults: {ap: 1}\n"])
    return b"a: {b: " * 2000 + b"1" + b"}" * 2000 + b"\n"


def mutate(base: dict, rng: np.random.Generator) -> bytes:
    """Bytes of a damaged copy of scenario ``base`` (1 to 3 mutations, or a whole-file one)."""
    text = yaml.safe_dump(base, sort_keys=False).encode()
    if rng.random() < 0.25:
        return _file_level(text, rng)
    data = copy.deepcopy(base)
    if rng.random() < 0.45:  # valid but extreme: what reaches the kernels
        for _ in range(int(rng.integers(1, 4))):
            data = _pick(rng, [_m_in_range, _m_in_range, _m_choice, _m_degenerate])(data, rng)
        return yaml.safe_dump(data, sort_keys=False).encode()
    names = list(MUTATIONS)
    for _ in range(int(rng.integers(1, 4))):
        data = MUTATIONS[_pick(rng, names)](data, rng)
        if not isinstance(data, dict):
            break
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()


def reduce_for_run(data: dict, max_users: int | None = None, cheap: bool = False) -> dict:
    """A cheaper copy of a scenario for smoke runs: at most 2 subframes and 2 subcarriers, at
    most 64 sensing snapshots per frame and 50 plan swap iterations; with ``max_users``, at most
    that many random users (``users.count``; explicit positions and trajectories are kept);
    with ``cheap``, the isotropic sensing covariance instead of the optimized SDP and mrt_plain
    instead of the robust beamforming designs (mrt, main, ei). AP counts
    and antennas are kept: their cost is what ``netsim validate`` warns about."""
    data = copy.deepcopy(data)
    sensing = data.get("sensing")
    if cheap and isinstance(sensing, dict) and sensing.get("covariance") == "optimized":
        sensing["covariance"] = "isotropic"
    comm = data.get("comm")
    if cheap and isinstance(comm, dict) and comm.get("beamforming") in ("mrt", "main", "ei"):
        comm["beamforming"] = "mrt_plain"  # the robust SDPs have their own tests (minutes, GBs)
    users = data.get("users")
    if max_users is not None and isinstance(users, dict) and not users.get("positions_m"):
        count = users.get("count")
        if isinstance(count, int) and not isinstance(count, bool) and count > max_users:
            users["count"] = max_users
    for section, key, cap in (("frame", "subframes", 2), ("comm", "subcarriers_evaluated", 2),
                              ("sensing", "max_snapshots", 64), ("sync", "swap_iterations", 50)):
        node = data.get(section)
        if node is None:
            data[section] = node = {}
        if isinstance(node, dict):
            v = node.get(key)
            if v is None or (isinstance(v, int) and not isinstance(v, bool) and v > cap):
                node[key] = cap
    return data
