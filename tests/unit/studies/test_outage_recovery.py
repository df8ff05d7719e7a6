"""netsim.studies.outage_recovery on tables whose answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from netsim.studies import outage_recovery


def tables(run_id="a", t_out=0.5, t_back=0.8, jump_until=0.7):
    t = np.round(np.arange(0, 1.0, 0.1), 10)
    # residual TO 1 ns before; 50 ns from the outage until jump_until; rate 10 -> 6 during
    to = np.where((t >= t_out) & (t < jump_until), 50e-9, 1e-9)
    rate = np.where((t >= t_out) & (t < t_back), 6.0, 10.0)
    f = pd.DataFrame({"run_id": run_id, "t_s": t, "residual_to_rms_s": to,
                      "sum_rate_bps_hz": rate})
    ev = pd.DataFrame({"run_id": run_id, "t_s": [t_out, t_back], "kind": ["outage", "recovery"],
                       "entity": [13, 13]})
    return f, ev


def test_recovery_time_and_rate_loss():
    f, ev = tables()
    r = outage_recovery(f, ev).iloc[0]
    assert r.ap == 13 and r.outage_s == 0.5 and r.back_s == 0.8
    assert r.rate_before_bps_hz == 10.0 and r.rate_during_bps_hz == 6.0
    assert r.rate_loss == pytest.approx(0.4)
    assert r.sync_recovery_s == pytest.approx(0.2)  # back to 1 ns at t = 0.7


def test_per_run_in_a_sweep_and_runs_without_outage_are_left_out():
    f1, e1 = tables("a")
    f2, e2 = tables("b", jump_until=2.0)  # never recovers within the run
    f3 = f1.assign(run_id="c")
    out = outage_recovery(pd.concat([f1, f2, f3]), pd.concat([e1, e2]))
    assert list(out.run_id) == ["a", "b"]
    assert math.isnan(out.sync_recovery_s.iloc[1])
