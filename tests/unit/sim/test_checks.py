"""Finiteness checks of logged records and the frame's mean SINR (netsim.sim.checks)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.sim.checks import SINR_FLOOR_DB, NonFiniteValue, check_record, mean_sinr_db
from netsim.trace import TraceWriter


def test_mean_sinr_excludes_unserved_users():
    # 3 served users at 10, 12, 14 dB and one unserved user at the floor, two subframes
    sub = np.array([10.0, 12.0, 14.0, SINR_FLOOR_DB])
    assert mean_sinr_db([sub, sub]) == pytest.approx(12.0)
    # the old mean of dB values: (36 - 3000) / 4 = -741 dB
    assert np.mean(sub) < -700
    assert mean_sinr_db([np.full(3, SINR_FLOOR_DB)]) == SINR_FLOOR_DB
    assert mean_sinr_db([]) == SINR_FLOOR_DB


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rate_names_frame_table_column_and_user(bad):
    rate = np.array([1.0, 2.0, bad])
    cols = dict(frame=7, subframe=0, t_s=0.1, user=np.arange(3), power_w=np.ones(3),
                ap_power_w=np.ones((3, 2)), sinr_db=np.zeros(3), rate_bps_hz=rate)
    with pytest.raises(NonFiniteValue, match=r"frame 7: subframes.rate_bps_hz = .* \(user 2\)"):
        check_record("subframes", cols)
    cols["rate_bps_hz"] = np.ones(3)
    cols["ap_power_w"] = np.array([[1.0, 1.0], [1.0, bad], [1.0, 1.0]])
    with pytest.raises(NonFiniteValue, match=r"subframes.ap_power_w .*\(user 1\)"):
        check_record("subframes", cols)


def test_estimates_may_be_missing_but_not_infinite():
    cols = dict(frame=0, t_s=0.0, user=np.arange(2), x_m=np.ones(2), y_m=np.ones(2),
                x_hat_m=np.array([np.nan, 1.0]), y_hat_m=np.array([np.nan, 1.0]),
                loc_err_m=np.array([np.nan, 0.0]), crlb_m=np.full(2, np.nan), speed_mps=np.zeros(2))
    check_record("users", cols)  # NaN estimate: documented "no estimate" (no AP online)
    cols["x_hat_m"] = np.array([np.inf, 1.0])
    with pytest.raises(NonFiniteValue, match="users.x_hat_m"):
        check_record("users", cols)
    cols["x_hat_m"], cols["x_m"] = np.ones(2), np.array([1.0, np.nan])
    with pytest.raises(NonFiniteValue, match=r"users.x_m = nan \(user 1\)"):
        check_record("users", cols)


def test_trace_writer_refuses_a_record_when_checked():
    from netsim.trace import SCHEMAS

    w = TraceWriter(None)
    w.check = check_record
    cols = {name: np.zeros(2) for name in SCHEMAS["aps"].names}  # every column, 2 APs
    cols["frame"], cols["ap"] = 0, np.arange(2)
    w.emit("aps", **cols)
    cols["x_m"] = np.array([0.0, np.nan])
    with pytest.raises(NonFiniteValue, match=r"frame 0: aps.x_m = nan \(ap 1\)"):
        w.emit("aps", **cols)
