"""Post-processing of the bundled studies (``scenarios/sweeps/``).

:func:`outage_recovery` turns the frames and events of the outage study (any run or sweep
with ``faults``) into one row per run: when the first outage started and ended, the sum rate
before and during it, the relative rate loss, and the recovery time of the synchronization.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["outage_recovery"]


def outage_recovery(frames, events, tolerance: float = 2.0):
    """Recovery time and rate loss of the first outage of every run.

    Parameters
    ----------
    frames, events : pandas.DataFrame
        The ``frames`` and ``events`` tables of a run (``load_run``) or a sweep
        (``load_sweep``; grouped by ``run_id``).
    tolerance : float
        The sync is recovered at the first frame at or after the outage start whose
        ``residual_to_rms_s`` is at most ``tolerance`` times the median over the frames
        before the outage.

    Returns
    -------
    pandas.DataFrame
        One row per run with an outage event: ``run_id`` (when present), ``ap``, ``outage_s``
        (start, s), ``back_s`` (recovery event, NaN if permanent), ``rate_before_bps_hz`` and
        ``rate_during_bps_hz`` (mean ``sum_rate_bps_hz``), ``rate_loss`` (``1 - during/before``),
        ``sync_recovery_s`` (time from the outage start to the recovered frame; NaN when the
        residual never returns within the run or no frame precedes the outage).
    """
    import pandas as pd

    key = "run_id" if "run_id" in frames else None
    groups = frames.groupby(key, sort=False) if key else [(None, frames)]
    rows = []
    for run_id, f in groups:
        ev = events[events[key] == run_id] if key else events
        out = ev[ev.kind == "outage"].sort_values("t_s")
        if not len(out):
            continue
        t0, ap = float(out.t_s.iloc[0]), int(out.entity.iloc[0])
        rec = ev[(ev.kind == "recovery") & (ev.entity == ap) & (ev.t_s >= t0)]
        t1 = float(rec.t_s.min()) if len(rec) else math.nan
        f = f.sort_values("t_s")
        before = f[f.t_s < t0]
        during = f[(f.t_s >= t0) & ((f.t_s < t1) if math.isfinite(t1) else True)]
        rate_b = float(before.sum_rate_bps_hz.mean()) if len(before) else math.nan
        rate_d = float(during.sum_rate_bps_hz.mean()) if len(during) else math.nan
        recovery = math.nan
        if len(before):
            level = float(np.nanmedian(before.residual_to_rms_s.to_numpy(float)))
            after = f[(f.t_s >= t0) & (f.residual_to_rms_s <= tolerance * level)]
            if len(after):
                recovery = float(after.t_s.iloc[0]) - t0
        row = {"ap": ap, "outage_s": t0, "back_s": t1, "rate_before_bps_hz": rate_b,
               "rate_during_bps_hz": rate_d,
               "rate_loss": 1.0 - rate_d / rate_b if rate_b else math.nan,
               "sync_recovery_s": recovery}
        rows.append({"run_id": run_id, **row} if key else row)
    return pd.DataFrame(rows)
