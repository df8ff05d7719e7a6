"""The batched subframe channels (Network.true_channels) against one-by-one evaluation.

The engine evaluates a frame's subframe channels in one batch when every user's mobility can
be evaluated without new random draws (issue 10, per-frame cost). The one-by-one path
(``Network.true_channel`` per subframe) is the oracle: the tables must agree bit for bit,
including frames where a random-waypoint leg ends inside the communication phase (the batch
is refused there), pauses, constant-velocity users, outages and ``sync: none`` (ISI terms),
and the UMi model (large-scale gains per subframe, Rayleigh Gauss-Markov or i.i.d. fading).
"""

from __future__ import annotations

import pandas as pd
import pytest

from netsim.scenario import load_scenario
from netsim.sim.engine import Simulation
from netsim.sim.world import Network

# fast users in a small room: legs of ~0.3 s, so several end inside a frame's subframes
FAST = ["deployment.width_m=6", "deployment.height_m=6", "users.margin_m=0.5",
        "users.mobility.speed_range_mps=[6, 9]", "users.mobility.pause_s=0.004"]
CASES = {
    "fast_waypoint": FAST,
    "constant_velocity": ["users.mobility={model: constant_velocity, speed_mps: 3.0}"],
    "no_sync_outage": ["sync.method=none", "faults=[{at_s: 0.021, ap: 2, duration_s: 0.03}]",
                       "oscillators.initial_time_offset_s=2.0e-6"],
    "pure_los": ["channel.rician_k_db=300"],
}
# the UMi model (seed 004): equal power and DSatur without Tabu keep it cheap; the 42 users
# at 90-100 m/s on the 700 m square: the first leg ends at 0.18 s, inside frame 17
UMI = ["comm.power=equal", "comm.pilot_assignment=dsatur"]
UMI_CASES = {
    "umi_jakes": [*UMI, "users.count=12"],
    "umi_iid_fast": [*UMI, "channel.fading_correlation=iid", "run.frames=20",
                     "users.mobility.speed_range_mps=[90, 100]", "users.mobility.pause_s=0.004"],
}


def _tables(overrides, monkeypatch=None, calls=None, umi=False):
    sc = (load_scenario("scenarios/umi_cellfree.yaml", ["run.frames=6", *overrides]) if umi else
          load_scenario("scenarios/quickstart.yaml", ["run.frames=40", "sync.method=genie",
                                                      "sensing.method=genie", *overrides]))
    if monkeypatch is not None:
        monkeypatch.setattr(Network, "true_channels", lambda self, times, **kw: None)
    elif calls is not None:
        real = Network.true_channels

        def counting(self, times, **kw):
            out = real(self, times, **kw)
            calls.append(out is not None)
            return out

        Network.true_channels = counting
    try:
        return Simulation(sc).run().tables
    finally:
        if calls is not None:
            Network.true_channels = real


@pytest.mark.parametrize("case", sorted(CASES) + sorted(UMI_CASES))
def test_batched_channels_give_identical_tables(case, monkeypatch):
    calls: list[bool] = []
    umi = case in UMI_CASES
    overrides = UMI_CASES[case] if umi else CASES[case]
    batched = _tables(overrides, calls=calls, umi=umi)
    assert any(calls)  # the batch ran on some frames
    if case in ("fast_waypoint", "umi_iid_fast"):
        assert not all(calls)  # and was refused where a leg ended inside a frame
    one_by_one = _tables(overrides, monkeypatch, umi=umi)
    for name in ("frames", "aps", "users", "subframes", "events"):
        cols = [c for c in batched[name].columns if not c.startswith("wall_")]
        pd.testing.assert_frame_equal(batched[name][cols], one_by_one[name][cols],
                                      check_exact=True)
