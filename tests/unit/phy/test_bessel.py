"""netsim.phy.bessel.bessel_j0 against scipy.special.j0 (independent: Cephes rational
approximations) and known values."""

from __future__ import annotations

import numpy as np
import pytest

from netsim.phy.bessel import bessel_j0


@pytest.mark.parametrize("hi", [1.2, 5.0, 30.0, 300.0, 3000.0])
def test_j0_matches_scipy(hi: float) -> None:
    special = pytest.importorskip("scipy.special")
    x = np.random.default_rng(int(hi)).uniform(-hi, hi, 4000)  # [n], negative too (J0 even)
    err = np.abs(bessel_j0(x) - special.j0(x))
    assert err.max() < 1e-12 * max(1.0, hi / 100)  # rounding of cos(x sin t) grows with |x|


def test_j0_known_values_and_shapes() -> None:
    assert bessel_j0(0.0) == 1.0
    # first zero of J0 (Abramowitz & Stegun table 9.5): 2.404825557695773
    assert abs(bessel_j0(2.404825557695773)) < 1e-15
    # J0(1) = 0.7651976865579666 (A&S table 9.1)
    assert bessel_j0(1.0) == pytest.approx(0.7651976865579666, abs=2e-16)
    assert bessel_j0(np.ones((3, 4))).shape == (3, 4)
    assert bessel_j0(np.zeros((2, 0))).shape == (2, 0)
    big = np.random.default_rng(0).uniform(0, 500, 20_000)  # blocked path (n x nodes > 2^20)
    one = bessel_j0(big[:100])  # one block
    np.testing.assert_allclose(bessel_j0(big)[:100], one, rtol=0, atol=1e-14)
    np.testing.assert_allclose(bessel_j0(big.reshape(100, 200)).ravel()[:100], one, atol=1e-14)


def test_j0_rejects_non_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        bessel_j0([0.1, np.nan])
    with pytest.raises(ValueError, match="finite"):
        bessel_j0(np.inf)


def test_j0_value_does_not_depend_on_the_batch() -> None:
    """Each value depends on its argument alone (node count per argument), so one-by-one and
    batched evaluation agree bit for bit, across the small/octave boundary too."""
    x = np.random.default_rng(3).uniform(-40, 40, 300)  # [n]
    x[:3] = [16.0, 16.000000001, 0.0]
    batch = bessel_j0(x)
    assert all(bessel_j0(v) == batch[i] for i, v in enumerate(x))
