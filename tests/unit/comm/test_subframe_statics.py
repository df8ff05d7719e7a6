"""Per-frame statics of the seed-004 subframe chain (netsim.comm.subframe.pilot_statics).

The engine computes the pilot-dependent quantities (co-pilot matrix, MMSE coefficients,
unknown-part variances, RZF regulariser) once per frame; the subframe must then be
bit-identical to the chain that recomputes everything (the tables must not change).
"""

from __future__ import annotations

import numpy as np
import pytest

from netsim.comm.csi_mmse import mmse_estimate, pilot_observation
from netsim.comm.subframe import pilot_statics, prepare_subframe

P_PILOT, NOISE = 0.2, 6.3e-13


@pytest.mark.parametrize(("seed", "m", "k", "n"), [(0, 3, 5, 1), (1, 7, 12, 4), (2, 4, 9, 8)])
def test_statics_give_bit_identical_subframes(seed, m, k, n):
    # own geometry: random gains over five decades, random association (one AP serving
    # nobody, one user served by all), pilots shared at random, several subframes
    rng = np.random.default_rng(300 + seed)
    beta = 10 ** rng.uniform(-13, -8, size=(m, k))
    assoc = rng.random((m, k)) < 0.5
    assoc[0] = False
    assoc[1:, 0] = True
    colour = rng.integers(0, max(k // 2, 1), size=k)
    st = pilot_statics(beta, assoc, colour, P_PILOT, NOISE, n)
    for sub in range(3):
        g = (rng.standard_normal((m, k, n)) + 1j * rng.standard_normal((m, k, n))) / np.sqrt(2)
        h = np.sqrt(beta)[..., None] * g  # [M, K, N]
        a = prepare_subframe(h, beta, assoc, colour, P_PILOT, NOISE, np.random.default_rng(sub))
        b = prepare_subframe(h, beta, assoc, colour, P_PILOT, NOISE, np.random.default_rng(sub),
                             statics=st)
        for name in ("hhat", "err_var", "w", "ghat"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        # and both are the documented MMSE estimate of spec 3.5
        y = pilot_observation(h, colour, P_PILOT, NOISE, rng=np.random.default_rng(sub))
        hhat, err = mmse_estimate(y, beta, colour, P_PILOT, NOISE, assoc)
        assert np.array_equal(hhat, b.hhat) and np.array_equal(err, b.err_var)
        assert not b.hhat[~assoc].any()
