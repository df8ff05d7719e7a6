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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["ORACLES", "format_summary", "run_summary"]

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


def _finite_mean(values) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def never_corrected_aps(run) -> list[int]:
    """APs (not the reference) online on at least one sync round and corrected on none.

    A round corrects an AP when its estimate is finite and no ``sync_untrusted`` event names
    it on that frame. Empty when synchronization is off or no round ran.
    """
    f, aps, ev = run.frames, run.aps, run.events
    if not len(f) or not len(aps) or "sync_ran" not in f:
        return []
    rounds = set(f.frame[f.sync_ran.astype(bool)].tolist())
    if not rounds:
        return []
    a = aps[aps.frame.isin(rounds) & aps.online.astype(bool) & ~aps.is_reference.astype(bool)]
    if not len(a):
        return []
    bad = set()
    if len(ev):
        u = ev[ev.kind == "sync_untrusted"]
        bad = set(zip(u.frame.tolist(), u.entity.tolist(), strict=True))
    corrected = np.isfinite(a.est_cfo_hz.to_numpy(float)) & np.array(
        [(fr, ap) not in bad for fr, ap in zip(a.frame.tolist(), a.ap.tolist(), strict=True)],
        dtype=bool)
    per_ap = a.assign(corrected=corrected).groupby("ap").corrected.any()
    return sorted(int(ap) for ap, ok in per_ap.items() if not ok)


def run_summary(run) -> list[tuple[str, str]]:
    """The summary rows ``(label, text)`` of a :class:`netsim.runs.Run`."""
    import yaml

    scenario_path = run.path / "scenario.yaml"
    scenario = yaml.safe_load(scenario_path.read_text()) if scenario_path.exists() else {}
    f, meta = run.frames, run.meta
    sim_s, wall_s = float(meta.get("sim_time_s") or 0.0), float(meta.get("wall_s") or 0.0)
    sync_method = (scenario.get("sync") or {}).get("method")
    sensing_method = (scenario.get("sensing") or {}).get("method")
    rows: list[tuple[str, str]] = [
        ("status", str(meta.get("status")) + (f" ({meta['error']})" if meta.get("error") else "")),
        ("frames", f"{len(f)}"),
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
    if len(f):
        rows += [
            ("sum rate (mean)", _fmt(_finite_mean(f.sum_rate_bps_hz), "bit/s/Hz", 4)),
            ("min user rate (mean)", _fmt(_finite_mean(f.min_rate_bps_hz), "bit/s/Hz", 4)),
            ("residual |TO| max" + tag_sync, _fmt(np.nanmax(np.abs(f.residual_to_max_s))
                                                  if f.residual_to_max_s.notna().any()
                                                  else math.nan, "s")),
            ("residual |CFO| max" + tag_sync, _fmt(np.nanmax(np.abs(f.residual_cfo_max_hz))
                                                   if f.residual_cfo_max_hz.notna().any()
                                                   else math.nan, "Hz")),
            ("sensing RMSE (mean)" + tag_sense, _fmt(_finite_mean(f.sensing_rmse_m), "m")),
            ("sync overhead (mean)", f"{100 * _finite_mean(f.overhead_fraction):.2f} %"),
        ]
    users = run.users
    if len(users):
        if "tracked" in users:  # error within 3 sqrt(CRLB) or 1 cm (the engine's definition)
            tracked = users.tracked.to_numpy(bool)
        else:
            tracked = np.isfinite(users.x_hat_m.to_numpy(float)) & np.isfinite(
                users.y_hat_m.to_numpy(float))
        rows.append(("user-frames tracked" + tag_sense,
                     f"{100 * tracked.mean():.1f} % ({int(tracked.sum())} of {tracked.size})"))
    if sync_method and sync_method != "none":
        never = never_corrected_aps(run)
        rows.append(("APs never corrected", ", ".join(map(str, never)) if never else "none"))
    ev = run.events
    counts = ev.kind.value_counts().sort_index() if len(ev) else {}
    rows.append(("events", ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"))
    return rows


def format_summary(rows: list[tuple[str, str]]) -> str:
    """The rows as an aligned two-column text table."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
