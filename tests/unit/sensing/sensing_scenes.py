"""Random sensing scenes shared by the sensing unit tests: geometries of our own, not the bundled ones."""

from __future__ import annotations

import numpy as np

from netsim.sensing.config import IsacGeometry, dbm_to_w
from netsim.sensing.echo import sample_echo_statistics
from netsim.sensing.fim import fast_position_crb, isotropic_covariance

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


def echo_frame(g: IsacGeometry, users_m: np.ndarray, rng: np.random.Generator, snapshots: int = 2000):
    """One frame's echo statistics of ``users_m`` ``[K, 2]`` (m) at 30 dBm isotropic excitation with
    fresh CN(0, 1) reflection coefficients, and each user's CRLB trace ``[K]`` (m^2) for those
    coefficients. Returns (echo statistics, CRLB trace)."""
    r = isotropic_covariance(g, dbm_to_w(30.0))
    alpha = rcs(rng, len(users_m), g.n_aps)
    st = sample_echo_statistics(g, users_m, r, snapshots, NOISE, rng, alpha)
    crlb = np.trace(fast_position_crb(g, users_m, r, snapshots, NOISE, alpha=alpha), axis1=1, axis2=2)
    return st, crlb


MIRROR_USER_M = np.array([[30.84, 38.71]])  # 0.84 m from the line x = 30 that two of the APs share
MIRROR_APS = ([[30, 10], [10, 30], [30, 30]], [[30, 10], [10, 30], [30, 30], [10, 10]])


def mirror_ghost_scene(centers, seed: int, snapshots: int):
    """The end-fire mirror geometry of the quickstart ghost: 8-element half-wavelength ULAs, all
    parallel (axis at 90 degrees), at ``centers``; the user at ``MIRROR_USER_M``; one frame's echo
    statistics at 30 dBm isotropic excitation. Returns (geometry, echo statistics, per-AP
    covariance ``[M, N, N]``, reflection coefficients ``[1, M, M]``)."""
    c = np.array(centers, dtype=float)
    g = IsacGeometry(ap_centers_m=c, ap_axis_rad=np.full(len(c), np.pi / 2), n_antennas=8,
                     spacing_m=0.5 * LAM, wavelength_m=LAM, kappa0=LAM / (4 * np.pi) ** 1.5)
    rng = np.random.default_rng(seed)
    alpha = rcs(rng, 1, g.n_aps)
    r = isotropic_covariance(g, dbm_to_w(30.0))
    return g, sample_echo_statistics(g, MIRROR_USER_M, r, snapshots, NOISE, rng, alpha), r, alpha
