"""The run summary printed by ``netsim run`` (and usable on any run directory).

:func:`run_summary` computes it from the tables and ``scenario.yaml`` of a run, so it
describes what the tables say, never what the engine intended:

* the algorithm of every phase, with oracles marked as such (``genie`` sync and sensing
  read the true offsets and positions; ``perfect`` CSI is the true channel): their
  "0 s" and "0 m" are not estimation results;
* the fraction of user-frames tracked (`users.tracked`: error within 3 sqrt(CRLB) or 1 cm);
* APs that took part in sync rounds but were never corrected (every one of their
  estimates untrusted, or missing), which an average over APs hides;
* a count of every event kind.

Memory does not grow with the length of the run: the statistics are computed in one pass
over record batches of only the columns they need (:func:`netsim.trace.iter_columns`), and
pandas is not imported (a run directory's tables are never loaded whole here).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["ORACLES", "format_summary", "never_corrected_aps", "run_summary"]

#: (section, field, value) combinations that are oracles, with what they read.
ORACLES: dict[tuple[str, str, str], str] = {
    ("sync", "method", "genie"): "oracle: corrects the true offsets",
    ("sensing", "method", "genie"): "oracle: the true positions",
    ("comm", "csi", "perfect"): "oracle: the true channel",
}


def _algo(scenario: dict[str, Any], section: str, name: str) -> str:
    value = (scenario.get(section) or {}).get(name)
    text = str(value)
    oracle = ORACLES.get((section, name, text))
    return f"{text} ({oracle})" if oracle else text


def _fmt(value: float, unit: str, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g} {unit}".strip()


# ---------------------------------------------------------------- streamed table access
def _streamed(run, table: str) -> bool:
    """True when ``table`` of ``run`` is read from its files (a :class:`netsim.runs.Run`
    whose table was not loaded yet); otherwise it is taken as a DataFrame attribute."""
    from netsim.runs import Run

    return isinstance(run, Run) and table not in run._tables


def _batches(run, table: str, columns: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Record batches ``{column: [rows] array}`` of the columns of ``table`` that exist."""
    if _streamed(run, table):
        from netsim.trace import iter_columns

        yield from iter_columns(run.path, table, columns)
        return
    df = getattr(run, table)
    if len(df):
        yield {c: df[c].to_numpy() for c in columns if c in df}


def _n_rows(run, table: str) -> int:
    if _streamed(run, table):
        from netsim.trace import table_rows

        return table_rows(run.path, table)
    return len(getattr(run, table))


class _Stats:
    """One-pass statistics of float columns: mean of the finite values, max of |x| over
    the non-NaN values (an infinite value gives an infinite max, shown as n/a)."""

    def __init__(self) -> None:
        self.sum: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.absmax: dict[str, float] = {}

    def add_mean(self, name: str, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=float)  # [rows]
        x = x[np.isfinite(x)]
        self.sum[name] = self.sum.get(name, 0.0) + float(x.sum())
        self.count[name] = self.count.get(name, 0) + int(x.size)

    def add_absmax(self, name: str, x: np.ndarray) -> None:
        x = np.abs(np.asarray(x, dtype=float))  # [rows]
        x = x[~np.isnan(x)]
        if x.size:
            self.absmax[name] = max(self.absmax.get(name, -math.inf), float(x.max()))

    def mean(self, name: str) -> float:
        n = self.count.get(name, 0)
        return self.sum[name] / n if n else math.nan

    def max(self, name: str) -> float:
        return self.absmax.get(name, math.nan)


# np.unique / np.isin import numpy.ma (~20-40 CPU ms) on their first call: a run's summary
# does without them
def _sorted_distinct(a: np.ndarray) -> np.ndarray:
    """``np.unique(a)`` of a 1-D integer array: its distinct values, sorted."""
    s = np.sort(a.reshape(-1))  # [n]
    return s[np.concatenate(([True], s[1:] != s[:-1]))] if s.size else s


def _member(a: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    """``np.isin(a, sorted_values)`` for integer ``a`` and sorted distinct ``sorted_values``."""
    a = np.asarray(a)
    if not sorted_values.size:
        return np.zeros(a.shape, dtype=bool)
    i = np.minimum(np.searchsorted(sorted_values, a), sorted_values.size - 1)
    return sorted_values[i] == a


def never_corrected_aps(run, rounds: np.ndarray | None = None,
                        untrusted: set[tuple[int, int]] | None = None) -> list[int]:
    """APs (not the reference) online on at least one sync round and corrected on none.

    A round corrects an AP when its estimate is finite and no ``sync_untrusted`` event names
    it on that frame. Empty when synchronization is off or no round ran. ``rounds`` (frames
    with ``sync_ran``) and ``untrusted`` ((frame, AP) of the ``sync_untrusted`` events) are
    read from the tables when not given.
    """
    if rounds is None:
        rounds = np.concatenate([b["frame"][b["sync_ran"].astype(bool)]
                                 for b in _batches(run, "frames", ["frame", "sync_ran"])
                                 if "sync_ran" in b] or [np.zeros(0, np.int64)])
    rounds = _sorted_distinct(np.asarray(rounds, dtype=np.int64))  # [n_rounds] sorted
    if not rounds.size:
        return []
    if untrusted is None:
        untrusted = _untrusted(run)
    seen: set[int] = set()
    corrected: set[int] = set()
    cols = ["frame", "ap", "online", "is_reference", "est_cfo_hz"]
    for b in _batches(run, "aps", cols):
        keep = (_member(b["frame"], rounds) & b["online"].astype(bool)
                & ~b["is_reference"].astype(bool))  # [rows]
        frame, ap = b["frame"][keep], b["ap"][keep]  # [n]
        ok = np.isfinite(b["est_cfo_hz"][keep].astype(float))  # [n]
        if untrusted:
            ok &= np.fromiter(((int(fr), int(a)) not in untrusted
                               for fr, a in zip(frame, ap, strict=True)), dtype=bool,
                              count=frame.size)
        seen.update(int(a) for a in ap.tolist())
        corrected.update(int(a) for a in ap[ok].tolist())
    return sorted(seen - corrected)


def _untrusted(run) -> set[tuple[int, int]]:
    bad: set[tuple[int, int]] = set()
    for b in _batches(run, "events", ["frame", "entity", "kind"]):
        sel = b["kind"] == "sync_untrusted"
        bad.update(zip(b["frame"][sel].tolist(), b["entity"][sel].tolist(), strict=True))
    return bad


def run_summary(run) -> list[tuple[str, str]]:
    """The summary rows ``(label, text)`` of a :class:`netsim.runs.Run`."""
    import yaml

    scenario_path = run.path / "scenario.yaml"
    # the resolved scenario netsim wrote: libyaml's parser where PyYAML has it (the same
    # safe constructors as yaml.safe_load; a third of the pure-Python parser's cost)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    scenario = yaml.load(scenario_path.read_text(), Loader=loader) if scenario_path.exists() else {}
    meta = run.meta
    sim_s, wall_s = float(meta.get("sim_time_s") or 0.0), float(meta.get("wall_s") or 0.0)
    sync_method = (scenario.get("sync") or {}).get("method")
    sensing_method = (scenario.get("sensing") or {}).get("method")
    n_frames = _n_rows(run, "frames")
    rows: list[tuple[str, str]] = [
        ("status", str(meta.get("status")) + (f" ({meta['error']})" if meta.get("error") else "")),
        ("frames", f"{n_frames}"),
        ("simulated time", _fmt(sim_s, "s", 4)),
        ("wall time", _fmt(wall_s, "s")),
        ("real-time factor", f"{sim_s / wall_s:.3g} sim s / wall s" if wall_s > 0 else "n/a"),
        ("sync", _algo(scenario, "sync", "method")
         + f", every {(scenario.get('sync') or {}).get('period_frames', '?')} frame(s)"),
        ("sensing", _algo(scenario, "sensing", "method")),
        ("csi", _algo(scenario, "comm", "csi")),
        ("beamforming", _algo(scenario, "comm", "beamforming")),
        ("power control", _algo(scenario, "comm", "power")),
    ]
    tag_sync = " (oracle)" if sync_method == "genie" else ""
    tag_sense = " (oracle)" if sensing_method == "genie" else ""
    means = ["sum_rate_bps_hz", "min_rate_bps_hz", "sensing_rmse_m", "overhead_fraction"]
    maxes = ["residual_to_max_s", "residual_cfo_max_hz"]
    stats = _Stats()
    rounds: list[np.ndarray] = []
    for b in _batches(run, "frames", ["frame", "sync_ran", *means, *maxes]):
        for name in means:
            if name in b:
                stats.add_mean(name, b[name])
        for name in maxes:
            if name in b:
                stats.add_absmax(name, b[name])
        if "sync_ran" in b:
            rounds.append(b["frame"][b["sync_ran"].astype(bool)])
    if n_frames:
        rows += [
            ("sum rate (mean)", _fmt(stats.mean("sum_rate_bps_hz"), "bit/s/Hz", 4)),
            ("min user rate (mean)", _fmt(stats.mean("min_rate_bps_hz"), "bit/s/Hz", 4)),
            ("residual |TO| max" + tag_sync, _fmt(stats.max("residual_to_max_s"), "s")),
            ("residual |CFO| max" + tag_sync, _fmt(stats.max("residual_cfo_max_hz"), "Hz")),
            ("sensing RMSE (mean)" + tag_sense, _fmt(stats.mean("sensing_rmse_m"), "m")),
            ("sync overhead (mean)", f"{100 * stats.mean('overhead_fraction'):.2f} %"),
        ]
    n_tracked = n_user_frames = 0
    for b in _batches(run, "users", ["tracked", "x_hat_m", "y_hat_m"]):
        if "tracked" in b:  # error within 3 sqrt(CRLB) or 1 cm (the engine's definition)
            tracked = b["tracked"].astype(bool)
        else:  # a run written before the column existed
            tracked = np.isfinite(b["x_hat_m"].astype(float)) & np.isfinite(
                b["y_hat_m"].astype(float))
        n_tracked += int(tracked.sum())
        n_user_frames += int(tracked.size)
    if n_user_frames:
        rows.append(("user-frames tracked" + tag_sense,
                     f"{100 * n_tracked / n_user_frames:.1f} % ({n_tracked} of {n_user_frames})"))
    counts: Counter[str] = Counter()
    untrusted: set[tuple[int, int]] = set()
    for b in _batches(run, "events", ["frame", "entity", "kind"]):
        kinds = b["kind"].astype(str)  # [rows]
        counts.update(kinds.tolist())
        sel = kinds == "sync_untrusted"
        untrusted.update(zip(b["frame"][sel].tolist(), b["entity"][sel].tolist(), strict=True))
    if sync_method and sync_method != "none":
        never = never_corrected_aps(
            run, np.concatenate(rounds) if rounds else np.zeros(0, np.int64), untrusted)
        rows.append(("APs never corrected", ", ".join(map(str, never)) if never else "none"))
    rows.append(("events", ", ".join(f"{k}: {counts[k]}" for k in sorted(counts)) or "none"))
    return rows


def format_summary(rows: list[tuple[str, str]]) -> str:
    """The rows as an aligned two-column text table."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
