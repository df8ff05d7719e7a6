"""hex_cells user drop: an impossible minimum AP distance is an error, not an endless loop."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy import umi
from netsim.phy.geometry import hexagon_positions


def _cfg(d_min_m: float) -> umi.ChannelConfig:
    return umi.ChannelConfig(scenario="umi", carrier_hz=6e9, bandwidth_hz=20e6,
                             noise_figure_db=9.0, h_ap_m=10.0, h_ue_m=1.5, isd_m=100.0,
                             d_min_m=d_min_m, shadowing_std_db=0.0, p_max_w=1.0, p_pilot_w=0.1)


def test_impossible_min_distance_raises_after_bounded_rounds():
    ap = hexagon_positions(1, 100.0, (500.0, 500.0))  # [7, 2]
    # the farthest point of a cell from every AP is a corner, 100/sqrt(3) = 57.7 m away
    with pytest.raises(ValueError, match="found room"):
        umi.drop_users(ap, 5, _cfg(60.0), np.random.default_rng(3), max_rounds=50)


def test_possible_min_distance_still_drops_everyone_far_enough():
    ap = hexagon_positions(1, 100.0, (500.0, 500.0))
    ue = umi.drop_users(ap, 40, _cfg(45.0), np.random.default_rng(4))  # [40, 2]
    d = np.linalg.norm(ue[:, None] - ap[None], axis=-1)  # [40, 7]
    assert ue.shape == (40, 2) and d.min() >= 45.0
