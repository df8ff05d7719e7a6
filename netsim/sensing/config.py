"""Configuration and deployment geometry of the cell-free near-field ISAC model (seed 003).

Every calibrated placeholder ("[C]" in ``/work/shared/spec/isac.md``) lives in
:class:`IsacConfig`; the kernels never hard-code them. :class:`IsacGeometry` is the small,
immutable description of the AP arrays that all sensing/communication kernels take.

Conventions (spec 2.1): AP ``m`` is a ULA of ``N`` (odd) elements centred at ``c_m`` with unit
axis ``u_m = (cos phi_m, sin phi_m)``; element ``n`` sits at ``c_m + delta_n u_m`` with
``delta_n = (n - (N+1)/2) d``. The reference path amplitude is ``sqrt(kappa0) / r`` with
``kappa0 = lambda / (4 pi)`` by default (spec A2, the convention of [29]).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from netsim.phy.geometry import ula_element_offsets, ula_element_positions
from netsim.units import dbm_to_w

__all__ = ["IsacConfig", "IsacGeometry", "SPEED_OF_LIGHT_M_S", "dbm_to_w"]

SPEED_OF_LIGHT_M_S = 299_792_458.0


@dataclass(frozen=True)
class IsacConfig:
    """All [C] (calibrated placeholder) and [R] defaults of spec/isac.md section 1.

    Attributes
    ----------
    carrier_hz : float
        Carrier frequency f_c [Hz] (28 GHz, [C]).
    aperture_m : float
        ULA aperture D [m]; element spacing is D/(N-1) ([C]/[R]).
    n_antennas : int
        Antennas per AP N (odd; 21 in the paper, [S]).
    ap_centers_m : tuple
        AP array centres c_m, (M, 2) [m] ([C]).
    ap_axis_rad : tuple
        Array axis angle phi_m of each AP, (M,) [rad] ([C]).
    user_positions_m : tuple
        Nominal user positions p_k, (K, 2) [m] ([C]).
    area_m : tuple
        Service area (x_min, x_max, y_min, y_max) [m] ([C]).
    noise_dbm : float
        Receiver noise power sigma^2 [dBm] (-60 dBm, [C]).
    frame_s : float
        Transmission block duration T [s] (10 ms, [C]).
    snapshot_s : float
        Sensing snapshot duration T_u [s] (1 us, [C]).
    sensing_power_dbm : float
        Per-AP sensing budget P_s [dBm] (30 dBm, [C]).
    comm_power_dbm : float
        Per-AP communication budget P_c [dBm] (20 dBm, [C]).
    crlb_threshold_m2 : float
        Per-user CRLB threshold eps_th [m^2] (1e-6, [C]).
    delta_factor : float
        Channel-error constant delta = delta_factor / lambda [1/m] in eq. (4) (4, [R] Fig. 3).
    kappa0_mode : str
        Reference gain convention: "code29" (kappa0 = lambda/(4 pi), amplitude sqrt(kappa0)/r)
        or "friis" (amplitude lambda/(4 pi r)) (spec A2).
    delta_rho : float
        Step of the 1-D search over rho (0.01, [C]).
    zeta_bps_hz : float
        Bisection tolerance on the rate threshold t [bit/s/Hz] (1e-2, [C]).
    max_ao_iter : int
        AO outer iterations I_max (10, [C]).
    rho_init : tuple
        Initial rho^(0) values of Fig. 8 (0.2, 0.5, 0.8, [C]).
    rho_update : str
        AO rho step: "margin" (the paper's constraint margin (15)-(16) with W and lam fixed) or
        "certificate" (default: W fixed, lam re-optimised; the rho among the candidates
        ``rho +- {1,2,4,...,32} Delta_rho`` with the largest certified rate). With lam fixed the
        margin is maximal at the current rho in our regime, so the paper's update never moves.
    rho_polish_steps : tuple of int
        netsim addition after the AO and the projection (18): a compass search over rho on the
        ``Delta_rho`` grid in ``(0, rho_bar]`` with the step sizes ``s Delta_rho`` for s in this
        tuple (coarse to fine); each probe re-solves Bi-RBO at the neighbouring rho and is taken
        only if it certifies ``t + rho_polish_tol_bps_hz`` or more (one SDP when it fails). The AO alone is local
        and stops at different rho from different rho^(0); the polish makes the end point a
        grid-local maximum of the relaxation's t(rho). ``()`` switches it off (paper's AO only).
    rho_polish_tol_bps_hz : float
        Resolution of t in the polish (1e-3 bit/s/Hz, finer than zeta): near the optimum t(rho)
        varies by less than zeta over several Delta_rho, so a zeta-resolution search would stop
        anywhere on that plateau.
    rank_one_repower : bool
        After the rank-one step, re-optimise the per-user powers of the extracted directions with
        the robust LMI (Bi-RBO over ``W_k = p_k b_k b_k^H``) and keep it if it certifies a higher
        rate (True, netsim addition). The SDR solution at the last feasible t is rank one but,
        solved close to infeasibility, its per-user powers are inaccurate (measured at full
        size: certified 2.70 instead of 3.09 bit/s/Hz; 3.09 after re-powering).
    exact_jbb : bool
        Exact dense J_bb (True, default) or the paper's diagonal approximation (spec A5).
    music_step_m : float
        MUSIC x-y grid step [m] (0.05, spec 5.4).
    music_exclusion_m : float or None
        Grid points closer than this to an AP centre are skipped (None: use the aperture D).
    music_threshold_factor : float
        Signal-subspace dimension = number of eigenvalues above factor * sigma^2 (2, spec 5.2).
    music_track_halfwidth_m : float
        Half width of the tracking search window around a predicted position [m].
    music_refine_step_m : float
        Final step of the local refinement around each peak [m] (1 mm, spec 5.5).
    to_pulse_s : float or None
        Pulse duration used for the residual-TO delay loss (None: the snapshot duration T_u).
    """

    carrier_hz: float = 28e9
    aperture_m: float = 0.5
    n_antennas: int = 21
    ap_centers_m: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 0.0), (20.0, 10.0))
    ap_axis_rad: tuple[float, ...] = (np.pi / 2, 0.0, np.pi / 2)
    user_positions_m: tuple[tuple[float, float], ...] = ((5.0, 5.0), (6.0, 14.0), (14.0, 6.0), (15.0, 15.0))
    area_m: tuple[float, float, float, float] = (0.0, 20.0, 0.0, 20.0)
    noise_dbm: float = -60.0
    frame_s: float = 10e-3
    snapshot_s: float = 1e-6
    sensing_power_dbm: float = 30.0
    comm_power_dbm: float = 20.0
    crlb_threshold_m2: float = 1e-6
    delta_factor: float = 4.0
    kappa0_mode: str = "code29"
    delta_rho: float = 0.01
    zeta_bps_hz: float = 1e-2
    max_ao_iter: int = 10
    rho_init: tuple[float, ...] = (0.2, 0.5, 0.8)
    rho_update: str = "certificate"
    rho_polish_steps: tuple[int, ...] = (8, 4, 2, 1)
    rho_polish_tol_bps_hz: float = 1e-3
    rank_one_repower: bool = True
    exact_jbb: bool = True
    music_step_m: float = 0.05
    music_exclusion_m: float | None = None
    music_threshold_factor: float = 2.0
    music_track_halfwidth_m: float = 0.5
    music_refine_step_m: float = 1e-3
    to_pulse_s: float | None = None

    def __post_init__(self) -> None:
        if self.n_antennas < 2:
            raise ValueError("n_antennas must be >= 2")
        if len(self.ap_centers_m) != len(self.ap_axis_rad):
            raise ValueError("ap_centers_m and ap_axis_rad must have the same length")
        if self.kappa0_mode not in ("code29", "friis"):
            raise ValueError(f"kappa0_mode must be 'code29' or 'friis', got {self.kappa0_mode!r}")
        if not 0 < self.snapshot_s < self.frame_s:
            raise ValueError("need 0 < snapshot_s < frame_s")

    # ---- derived quantities -------------------------------------------------------------
    @property
    def wavelength_m(self) -> float:
        """lambda = c / f_c [m]."""
        return SPEED_OF_LIGHT_M_S / self.carrier_hz

    @property
    def noise_w(self) -> float:
        """sigma^2 [W]."""
        return float(dbm_to_w(self.noise_dbm))

    @property
    def sensing_power_w(self) -> float:
        """P_s per AP [W]."""
        return float(dbm_to_w(self.sensing_power_dbm))

    @property
    def comm_power_w(self) -> float:
        """P_c per AP [W]."""
        return float(dbm_to_w(self.comm_power_dbm))

    @property
    def delta_per_m(self) -> float:
        """delta of eq. (4) [1/m]."""
        return self.delta_factor / self.wavelength_m

    @property
    def max_snapshots(self) -> int:
        """T / T_u."""
        return int(np.floor(self.frame_s / self.snapshot_s + 1e-9))

    @property
    def user_positions(self) -> NDArray[np.float64]:
        """Nominal user positions, (K, 2) [m]."""
        return np.asarray(self.user_positions_m, dtype=float)

    def n_snapshots(self, rho: float | NDArray[np.float64]) -> NDArray[np.int64]:
        """L(rho) = floor((1 - rho) T / T_u) (spec 1)."""
        return np.floor((1.0 - np.asarray(rho, dtype=float)) * self.frame_s / self.snapshot_s + 1e-9).astype(np.int64)

    def geometry(self, n_antennas: int | None = None, n_aps: int | None = None) -> IsacGeometry:
        """Build the :class:`IsacGeometry` (optionally with another N or the first n_aps APs)."""
        n = self.n_antennas if n_antennas is None else int(n_antennas)
        m = len(self.ap_centers_m) if n_aps is None else int(n_aps)
        lam = self.wavelength_m
        kappa0 = lam / (4 * np.pi) if self.kappa0_mode == "code29" else (lam / (4 * np.pi)) ** 2
        return IsacGeometry(
            ap_centers_m=np.asarray(self.ap_centers_m[:m], dtype=float),
            ap_axis_rad=np.asarray(self.ap_axis_rad[:m], dtype=float),
            n_antennas=n,
            spacing_m=self.aperture_m / (n - 1),
            wavelength_m=lam,
            kappa0=float(kappa0),
        )

    def with_(self, **kw: object) -> IsacConfig:
        """Copy with some fields replaced."""
        return replace(self, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class IsacGeometry:
    """AP array geometry shared by the sensing and communication kernels.

    Attributes
    ----------
    ap_centers_m : ndarray (M, 2), float [m]
    ap_axis_rad : ndarray (M,), float [rad]
    n_antennas : int
        N elements per AP.
    spacing_m : float
        Element spacing d [m].
    wavelength_m : float
        lambda [m].
    kappa0 : float
        Reference power gain: the path amplitude is ``sqrt(kappa0) / r``.
    """

    ap_centers_m: NDArray[np.float64]
    ap_axis_rad: NDArray[np.float64]
    n_antennas: int
    spacing_m: float
    wavelength_m: float
    kappa0: float
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_aps(self) -> int:
        return int(self.ap_centers_m.shape[0])

    @property
    def wavenumber(self) -> float:
        """2 pi / lambda [rad/m]."""
        return 2 * np.pi / self.wavelength_m

    @property
    def aperture_m(self) -> float:
        return self.spacing_m * (self.n_antennas - 1)

    @property
    def axis_unit(self) -> NDArray[np.float64]:
        """u_m, (M, 2)."""
        return np.stack([np.cos(self.ap_axis_rad), np.sin(self.ap_axis_rad)], axis=-1)

    @property
    def element_offsets_m(self) -> NDArray[np.float64]:
        """delta_n, (N,) [m]."""
        return ula_element_offsets(self.n_antennas, self.spacing_m)

    @property
    def element_positions_m(self) -> NDArray[np.float64]:
        """q_{m,n}, (M, N, 2) [m]."""
        if "q" not in self._cache:
            self._cache["q"] = ula_element_positions(self.ap_centers_m, self.ap_axis_rad, self.n_antennas, self.spacing_m)
        return self._cache["q"]

    def key(self) -> str:
        """Stable hash of the geometry (used as a cache key)."""
        h = hashlib.sha256()
        for arr in (self.ap_centers_m, self.ap_axis_rad):
            h.update(np.ascontiguousarray(np.round(arr, 12)).tobytes())
        h.update(repr((self.n_antennas, round(self.spacing_m, 15), round(self.wavelength_m, 15), round(self.kappa0, 18))).encode())
        return h.hexdigest()[:16]
