"""3GPP UMi/UMa large-scale fading, hexagonal AP layout and Rayleigh small-scale fading.

Kernels for the channel model of seed 004 (Peng, Liu, Yang, "Joint optimization of pilot
length, pilot assignment, and power allocation for cell-free MIMO systems with GNNs",
arXiv:2511.23128), spec ``shared/spec/power.md`` sections 1 and 3.1-3.3.

Public functions (engine-facing)
--------------------------------
``noise_power_w(cfg)``                      -> float, noise power sigma^2 [W]
``hex_ap_positions(n_ap, isd_m)``           -> [M, 2] AP positions [m]
``drop_users(ap_xy, n_ue, cfg, rng)``       -> [K, 2] user positions [m]
``path_loss_db(d3_m, cfg)``                 -> [...] median path gain [dB] (negative)
``large_scale_fading(ap_xy, ue_xy, cfg, rng)`` -> [M, K] linear gains beta_mk
``draw_small_scale_fading(shape, rng)``     -> CN(0, 1) array
``evolve_small_scale_fading(g, rho, rng)``  -> Gauss-Markov step of the same shape
``jakes_correlation(doppler_hz, dt_s)``     -> rho = J0(2 pi f_d dt)
``channel_from_fading(beta, g)``            -> [..., M, K, N] true channel h = sqrt(beta) g

Every [C] reconstruction of the spec is the default of :class:`ChannelConfig` and can be
switched (scenario, shadowing, heights, layout constants).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from netsim.phy.channel import jakes_correlation, nlos_initial, nlos_step
from netsim.units import dbm_to_w

__all__ = [
    "ChannelConfig",
    "noise_power_w",
    "hex_ap_positions",
    "drop_users",
    "path_loss_db",
    "large_scale_fading",
    "draw_small_scale_fading",
    "evolve_small_scale_fading",
    "jakes_correlation",
    "channel_from_fading",
    "dbm_to_w",
]


@dataclass(frozen=True)
class ChannelConfig:
    """Large-scale channel parameters (spec Table I and section 3.1).

    Attributes
    ----------
    scenario : {"umi", "uma"}
        Path-loss law: 38.901 UMi street-canyon NLOS (PL') [C] or UMa NLOS [C].
    carrier_hz : float
        Carrier frequency f_c [Hz] (6 GHz, [R]).
    bandwidth_hz : float
        Bandwidth B_w [Hz] (20 MHz, [R]).
    noise_psd_dbm_hz : float
        Noise spectral density N_0 [dBm/Hz] (-174, [R]).
    noise_figure_db : float
        Noise figure NF [dB] (9, [R]); the same noise power at APs and UEs [C].
    h_ap_m, h_ue_m : float
        Antenna heights [m] (10 / 1.5 UMi, [R]).
    isd_m : float
        Inter-site distance of the hexagonal AP lattice [m] (200 UMi, [R]).
    d_min_m : float
        Minimum 2-D AP-UE distance [m] (10 UMi, [R] value, [I] meaning).
    shadowing_std_db : float
        Log-normal shadowing standard deviation [dB] (7.82 UMi, 6 UMa; [C]).
    p_max_w : float
        Per-AP maximum downlink power [W] (44 dBm UMi, 49 dBm UMa; [I]/[C]).
    p_pilot_w : float
        Uplink pilot power per UE p_u [W] (23 dBm, [R]).
    """

    scenario: Literal["umi", "uma"] = "umi"
    carrier_hz: float = 6e9
    bandwidth_hz: float = 20e6
    noise_psd_dbm_hz: float = -174.0
    noise_figure_db: float = 9.0
    h_ap_m: float = 10.0
    h_ue_m: float = 1.5
    isd_m: float = 200.0
    d_min_m: float = 10.0
    shadowing_std_db: float = 7.82
    p_max_w: float = float(dbm_to_w(44.0))
    p_pilot_w: float = float(dbm_to_w(23.0))

    @classmethod
    def umi(cls, **overrides: object) -> ChannelConfig:
        """Default UMi configuration of Table I, with optional field overrides."""
        return replace(cls(), **overrides)  # type: ignore[arg-type]

    @classmethod
    def uma(cls, **overrides: object) -> ChannelConfig:
        """UMa variant of the Table V generalisation test (spec section 1, [R]/[C])."""
        base = cls(
            scenario="uma",
            h_ap_m=25.0,
            isd_m=500.0,
            d_min_m=35.0,
            shadowing_std_db=6.0,
            p_max_w=float(dbm_to_w(49.0)),
        )
        return replace(base, **overrides)  # type: ignore[arg-type]


def noise_power_w(cfg: ChannelConfig | None = None) -> float:
    """Thermal noise power sigma^2 = N_0 + 10 log10(B_w) + NF  [W].

    With the defaults this is -91.99 dBm = 6.32e-13 W (spec Table I, acceptance check 1).
    """
    cfg = cfg or ChannelConfig()
    p_dbm = cfg.noise_psd_dbm_hz + 10.0 * np.log10(cfg.bandwidth_hz) + cfg.noise_figure_db
    return float(dbm_to_w(p_dbm))


def hex_ap_positions(n_ap: int, isd_m: float) -> np.ndarray:
    """First ``n_ap`` points of a hexagonal lattice with spacing ``isd_m`` (spec 3.1 [C]).

    Points are ordered by distance from the origin, ties broken by angle in [0, 2 pi).
    For n_ap = 7 this is the centre plus the ring of six neighbours.

    Returns
    -------
    ap_xy : ndarray, shape [M, 2], float64, metres
    """
    if n_ap < 1:
        raise ValueError(f"n_ap must be >= 1, got {n_ap}")
    r = int(np.ceil(np.sqrt(n_ap))) + 2
    i, j = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1), indexing="ij")
    # lattice basis (1, 0) and (1/2, sqrt(3)/2), scaled by the ISD
    x = isd_m * (i + 0.5 * j).ravel()  # [P]
    y = isd_m * (np.sqrt(3.0) / 2.0 * j).ravel()  # [P]
    dist = np.round(np.hypot(x, y) / isd_m, 9)
    ang = np.round(np.mod(np.arctan2(y, x), 2 * np.pi), 9)
    order = np.lexsort((ang, dist))[:n_ap]
    return np.stack([x[order], y[order]], axis=-1)  # [M, 2]


def _in_hexagon(p_xy: np.ndarray, centre_xy: np.ndarray, circumradius: float) -> np.ndarray:
    """True where points lie in the pointy-top hexagon (Voronoi cell of a lattice point)."""
    d = p_xy[:, None, :] - centre_xy[None, :, :]  # [P, M, 2]
    inradius = circumradius * np.sqrt(3.0) / 2.0
    # the lattice of hex_ap_positions has neighbours at angles 0, 60, ..., 300 deg, so
    # the Voronoi cell is bounded by the perpendicular bisectors in those directions
    angles = np.arange(6) * np.pi / 3.0
    normals = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # [6, 2]
    proj = d @ normals.T  # [P, M, 6]
    return np.all(proj <= inradius + 1e-9, axis=-1)  # [P, M]


def drop_users(
    ap_xy: np.ndarray, n_ue: int, cfg: ChannelConfig, rng: np.random.Generator,
    max_rounds: int = 1000,
) -> np.ndarray:
    """Drop users uniformly in the union of the APs' hexagonal cells (spec 3.1 [C]).

    Points closer than ``cfg.d_min_m`` (2-D) to any AP are rejected; no wrap-around.

    Parameters
    ----------
    ap_xy : ndarray, shape [M, 2], metres
    n_ue : int
        Number of users K.
    cfg : ChannelConfig
    rng : numpy.random.Generator
    max_rounds : int
        Rejection rounds of ``4 K`` candidates before giving up.

    Returns
    -------
    ue_xy : ndarray, shape [K, 2], float64, metres

    Raises
    ------
    ValueError
        When ``max_rounds`` rounds do not find room for K users (``d_min_m`` close to or
        beyond the cell's corner distance ``isd_m / sqrt(3)``).
    """
    circ = cfg.isd_m / np.sqrt(3.0)
    lo = ap_xy.min(axis=0) - circ
    hi = ap_xy.max(axis=0) + circ
    out = np.empty((0, 2))
    for _ in range(max_rounds):
        if out.shape[0] >= n_ue:
            return out[:n_ue]
        cand = rng.uniform(lo, hi, size=(4 * n_ue, 2))  # [P, 2]
        inside = _in_hexagon(cand, ap_xy, circ).any(axis=1)
        d2 = np.linalg.norm(cand[:, None, :] - ap_xy[None, :, :], axis=-1)  # [P, M]
        keep = inside & (d2.min(axis=1) >= cfg.d_min_m)
        out = np.concatenate([out, cand[keep]], axis=0)
    if out.shape[0] >= n_ue:
        return out[:n_ue]
    raise ValueError(
        f"drop_users: only {out.shape[0]} of {n_ue} users found room in {max_rounds} rounds of "
        f"{4 * n_ue} candidates: d_min_m = {cfg.d_min_m} m leaves (almost) no area in cells "
        f"whose corners are isd_m / sqrt(3) = {circ:.4g} m from their AP")


def path_loss_db(d3_m: np.ndarray, cfg: ChannelConfig) -> np.ndarray:
    """Median large-scale gain (negative path loss) [dB] for 3-D distance ``d3_m`` [m].

    UMi (38.901 street-canyon NLOS, PL'):  -22.4 - 35.3 log10(d) - 21.3 log10(f_c/GHz)
    UMa (38.901 NLOS, PL'):               -13.54 - 39.08 log10(d) - 20 log10(f_c/GHz)
    (spec 3.1 [C]). At 6 GHz UMi gives -38.97 - 35.3 log10(d).
    """
    d = np.asarray(d3_m, dtype=float)
    f_ghz = cfg.carrier_hz / 1e9
    if cfg.scenario == "umi":
        return -22.4 - 35.3 * np.log10(d) - 21.3 * np.log10(f_ghz)
    if cfg.scenario == "uma":
        return -13.54 - 39.08 * np.log10(d) - 20.0 * np.log10(f_ghz)
    raise ValueError(f"unknown scenario {cfg.scenario!r}; allowed: 'umi', 'uma'")


def large_scale_fading(
    ap_xy: np.ndarray,
    ue_xy: np.ndarray,
    cfg: ChannelConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the large-scale fading gains beta_mk (spec 3.1).

    beta_mk [dB] = path_loss_db(d_mk) + z_mk,  z_mk ~ N(0, shadowing_std_db^2) i.i.d.,
    with d_mk the 3-D distance (AP height minus UE height included).

    Parameters
    ----------
    ap_xy : ndarray, shape [M, 2], metres
    ue_xy : ndarray, shape [K, 2], metres
    cfg : ChannelConfig
    rng : numpy.random.Generator

    Returns
    -------
    beta : ndarray, shape [M, K], float64, linear power gain (dimensionless)
    """
    d2 = np.linalg.norm(ap_xy[:, None, :] - ue_xy[None, :, :], axis=-1)  # [M, K]
    d3 = np.hypot(d2, cfg.h_ap_m - cfg.h_ue_m)  # [M, K]
    z = cfg.shadowing_std_db * rng.standard_normal(d3.shape)  # [M, K]
    return 10.0 ** ((path_loss_db(d3, cfg) + z) / 10.0)  # [M, K]


# Small-scale fading (spec 3.3) is the same Gauss-Markov Rayleigh process as the NLOS part of
# the near-field channel: one implementation serves both (``rho = 0`` gives i.i.d. subframes).
draw_small_scale_fading = nlos_initial
evolve_small_scale_fading = nlos_step


def channel_from_fading(beta: np.ndarray, g: np.ndarray) -> np.ndarray:
    """True channel h[..., m, k, :] = sqrt(beta_mk) g[..., m, k, :] (spec 3.3).

    Parameters
    ----------
    beta : ndarray, shape [M, K] (or broadcastable [..., M, K]), linear gains
    g : ndarray, shape [..., M, K, N], complex CN(0, 1)

    Returns
    -------
    h : ndarray, shape [..., M, K, N], complex128
    """
    return np.sqrt(beta)[..., None] * g  # [..., M, K, N]
