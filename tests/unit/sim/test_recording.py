"""The frame record's reductions give numpy's bits (same seed, same tables)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netsim.sim.recording import _mean, _rms


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_and_rms_equal_numpys_bit_for_bit(seed):
    """Random lengths (1 to 300, past numpy's pairwise-sum block of 128), floats of mixed
    magnitude, ints, bools and lists of numpy scalars (the engine's per-subframe rates)."""
    rng = np.random.default_rng(seed)
    for _ in range(50):
        n = int(rng.integers(1, 300))
        x = rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 6, n)
        assert _mean(x) == float(np.mean(x))
        assert _mean(list(x)) == float(np.mean(list(x)))
        ints = rng.integers(0, 500, n)
        assert _mean(ints) == float(np.mean(ints))
        assert _mean(list(ints)) == float(np.mean(list(ints)))
        flags = rng.random(n) < 0.3
        assert _mean(flags) == float(np.mean(flags))
        y = np.where(rng.random(n) < 0.2, np.nan, x)
        keep = y[np.isfinite(y)]
        want = float(np.sqrt(np.mean(keep**2))) if keep.size else math.nan
        got = _rms(y)
        assert got == want or (math.isnan(got) and math.isnan(want))
    assert math.isnan(_rms(np.full(3, np.nan)))
