"""Random sensing scenes shared by the sensing unit tests: geometries of our own, not the bundled ones."""

from __future__ import annotations

import numpy as np

from netsim.sensing.config import IsacGeometry

LAM = 299_792_458.0 / 28e9  # m, 28 GHz carrier
NOISE = 4e-13  # W, about a 20 MHz receiver


def three_ap_cluster(rng: np.random.Generator, spacing_wl: float) -> IsacGeometry:
    """Three APs about 25 m apart with random orientations, 16-element ULAs at ``spacing_wl``
    wavelengths (campus-like cluster)."""
    c = np.array([[0.0, 0.0], [25.0, 0.0], [0.0, 25.0]]) + rng.uniform(-2, 2, (3, 2))
    return IsacGeometry(ap_centers_m=c, ap_axis_rad=rng.uniform(0, np.pi, 3), n_antennas=16,
                        spacing_m=spacing_wl * LAM, wavelength_m=LAM, kappa0=LAM / (4 * np.pi) ** 1.5)


def rcs(rng: np.random.Generator, k: int, m: int = 3) -> np.ndarray:
    """CN(0, 1) reflection coefficients of ``k`` users on ``m`` x ``m`` AP pairs, ``[k, m, m]``."""
    return (rng.standard_normal((k, m, m)) + 1j * rng.standard_normal((k, m, m))) / np.sqrt(2)
