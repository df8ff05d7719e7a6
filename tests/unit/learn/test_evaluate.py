"""netsim.learn.evaluate: repeated timing must not change any decision (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.pilot_assignment import TabuConfig
from netsim.learn.data import DropSpec, draw_drops
from netsim.learn.evaluate import _timed, evaluate_frames


@pytest.mark.parametrize("method", ["dts_gnn", "sts_gnn", "dsatur_tabu+wmmse"])
def test_repeats_keep_the_decisions_and_net_se(method):
    # a small off-default size (M = 4, K = 11, N = 3) and a seed of its own: the repeated
    # decisions draw their random features / tabu moves from fresh generators each time
    spec = DropSpec.paper(4, 11, 3)
    drops = draw_drops(spec, 2, np.random.default_rng(913))
    kw = {"seed": 77, "n_sub": 2, "tabu": TabuConfig(max_iter=3, n_candidates=8)}
    one = evaluate_frames(spec, drops, method, repeats=1, **kw)
    three = evaluate_frames(spec, drops, method, repeats=3, **kw)
    assert [(r.net_se, r.tau_p) for r in one] == [(r.net_se, r.tau_p) for r in three]
    assert all(r.pilot_cpu_s >= 0 and r.power_cpu_s >= 0 for r in three)


def test_timed_keeps_the_first_result_and_the_minimum():
    calls = []

    def fn(x, rng=None):
        calls.append(float(rng.uniform()))
        return x + calls[-1]

    from netsim.rng import RandomStreams

    res, w, c = _timed(4, fn, 1.0, rng_key=("k", 3), streams=RandomStreams(5))
    assert len(calls) == 4 and len(set(calls)) == 1  # the same fresh generator state every time
    assert res == 1.0 + calls[0] and 0 <= c and 0 <= w
