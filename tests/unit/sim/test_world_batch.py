"""Network.true_channels (one batch per frame) against true_channel() time by time, on its
own: times that repeat (no fading step), both channel models, both UMi fading laws."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from netsim.rng import RandomStreams
from netsim.scenario import load_scenario
from netsim.sim.world import Network


def _network(path, overrides):
    sc = load_scenario(path, ["run.frames=2", *overrides])
    return Network(sc, RandomStreams(11))


@pytest.mark.parametrize("path, overrides", [
    ("scenarios/umi_cellfree.yaml", ["users.count=9"]),
    ("scenarios/umi_cellfree.yaml", ["users.count=9", "channel.fading_correlation=iid"]),
    ("scenarios/quickstart.yaml", []),
])
def test_batch_equals_sequential_with_repeated_times(path, overrides):
    net = _network(path, overrides)
    net.advance_to(0.0123)
    net.true_channel()  # a first evaluation: the next time equal to it takes no fading step
    # off-grid, uneven times; the first equals the last evaluation, one repeats
    times = [0.0123, 0.01291, 0.0137, 0.0137, 0.01452, 0.0190]
    seq = copy.deepcopy(net)
    batch = net.true_channels(times)
    assert batch is not None and batch.shape == (len(times), net.n_users, net.n_aps, net.n_antennas)
    one = []
    for t in times:
        seq.advance_to(t)
        one.append(seq.true_channel())
    np.testing.assert_array_equal(batch, np.stack(one))
    # the fading state continues identically afterwards
    for n in (net, seq):
        n.advance_to(0.025)
    np.testing.assert_array_equal(net.true_channel(), seq.true_channel())
