"""The simulated world: geometry, users, oscillators and small-scale fading.

:class:`Network` is built from a validated scenario and a :class:`RandomStreams`
factory. It owns the continuous-time state (oscillators, user positions, NLOS
fading) and advances it *exactly* to any requested time. It knows nothing of
SimPy: the processes in :mod:`netsim.sim.engine` call :meth:`Network.advance_to`
at their event times.

Random streams used here (name, index): ``("deployment",)`` AP and user drops,
``("orientation",)``, ``("mobility", k)`` per user, ``("oscillator-init",)``,
``("oscillator",)`` noise, ``("fading",)`` NLOS small-scale fading.
"""

from __future__ import annotations

import numpy as np

from netsim.phy import umi
from netsim.phy.channel import (
    LosChannel,
    fading_steps_polar,
    jakes_correlation,
    nlos_initial,
    nlos_step,
    nlos_steps,
    rician_fading_polar,
    rician_polar,
)
from netsim.phy.geometry import (
    grid_positions,
    hexagon_positions,
    random_positions,
    ula_element_positions,
)
from netsim.phy.mobility import (
    ConstantVelocityMobility,
    MobilityModel,
    RandomWaypointMobility,
    StaticMobility,
    TrajectoryMobility,
    load_trajectories,
    waypoint_peek_times,
)
from netsim.phy.oscillator import ClockNoise, OscillatorBank
from netsim.rng import RandomStreams
from netsim.scenario.models import Scenario
from netsim.units import dbm_to_w

__all__ = ["Network", "ap_positions", "initial_user_positions"]

SECONDS_PER_DAY = 86_400.0


def ap_positions(scenario: Scenario, rng: np.random.Generator) -> np.ndarray:
    """AP centre positions (M, 2) in metres, from ``deployment.aps``."""
    dep = scenario.deployment
    aps = dep.aps
    if aps.layout == "list":
        return np.asarray(aps.positions_m, dtype=float)
    if aps.layout == "grid":
        return grid_positions(aps.count, dep.width_m, dep.height_m)
    if aps.layout == "hexagon":
        pos = hexagon_positions(1, aps.isd_m, (dep.width_m / 2, dep.height_m / 2))
        inside = (pos >= 0).all(axis=1) & (pos[:, 0] <= dep.width_m) & (pos[:, 1] <= dep.height_m)
        if not inside.all():
            raise ValueError(
                f"deployment: a hexagon with isd_m={aps.isd_m} does not fit in the "
                f"{dep.width_m} x {dep.height_m} m area"
            )
        return pos
    return random_positions(aps.count, dep.width_m, dep.height_m, aps.min_distance_m, rng)


def umi_config(scenario: Scenario) -> umi.ChannelConfig:
    """The seed-004 large-scale channel parameters of a scenario."""
    ch, dep = scenario.channel, scenario.deployment
    return umi.ChannelConfig(
        scenario="umi", carrier_hz=ch.carrier_hz, bandwidth_hz=ch.bandwidth_hz,
        noise_figure_db=ch.noise_figure_db, h_ap_m=ch.ap_height_m, h_ue_m=ch.user_height_m,
        isd_m=dep.aps.isd_m, d_min_m=scenario.users.min_ap_distance_m,
        shadowing_std_db=ch.shadowing_std_db,
        p_max_w=dbm_to_w(scenario.frame.ap_power_dbm),
        p_pilot_w=dbm_to_w(scenario.comm.pilot_power_dbm),
    )


def initial_user_positions(
    scenario: Scenario, rng: np.random.Generator, ap_center_m: np.ndarray | None = None
) -> np.ndarray:
    """Initial user positions (K, 2): explicit, uniform inside the area minus a margin, or
    uniform in the APs' hexagonal cells (``users.placement: hex_cells``)."""
    users, dep = scenario.users, scenario.deployment
    if users.positions_m:
        return np.asarray(users.positions_m, dtype=float)
    if users.placement == "hex_cells":
        pos = umi.drop_users(ap_center_m, users.count, umi_config(scenario), rng)  # [K, 2]
        inside = (pos >= 0).all(axis=1) & (pos[:, 0] <= dep.width_m) & (pos[:, 1] <= dep.height_m)
        if not inside.all():
            raise ValueError("users.placement hex_cells: the APs' cells do not fit in the area; "
                             "enlarge deployment.width_m/height_m")
        return pos
    margin = min(users.margin_m, 0.49 * dep.width_m, 0.49 * dep.height_m)
    lo = np.array([margin, margin])
    hi = np.array([dep.width_m - margin, dep.height_m - margin])
    return lo + rng.random((users.count, 2)) * (hi - lo)  # [K, 2]


def _mobility_models(scenario: Scenario, start_m: np.ndarray, streams: RandomStreams):
    dep, mob = scenario.deployment, scenario.users.mobility
    models: list[MobilityModel] = []
    trajectories = None
    if mob.model == "trajectory":
        trajectories = load_trajectories(mob.trajectory_file, dep.width_m, dep.height_m)
        missing = [k for k in range(len(start_m)) if k not in trajectories]
        if missing:
            raise ValueError(f"{mob.trajectory_file}: no trajectory for user(s) {missing}")
    for k, p0 in enumerate(start_m):
        rng = streams.generator("mobility", k)
        if mob.model == "static":
            models.append(StaticMobility(p0))
        elif mob.model == "constant_velocity":
            heading = rng.uniform(0, 2 * np.pi)
            v = mob.speed_mps * np.array([np.cos(heading), np.sin(heading)])
            models.append(ConstantVelocityMobility(p0, v, dep.width_m, dep.height_m))
        elif mob.model == "random_waypoint":
            models.append(RandomWaypointMobility(
                p0, dep.width_m, dep.height_m, mob.speed_range_mps, mob.pause_s, rng))
        else:
            times, pos = trajectories[k]
            models.append(TrajectoryMobility(times, pos))
    return models


class Network:
    """Continuous-time state of the network, advanced exactly to event times.

    Attributes
    ----------
    ap_center_m : ndarray (M, 2)
    ap_axis_rad : ndarray (M,)
        ULA axis angle of each AP.
    element_pos_m : ndarray (M, N, 2)
    oscillators : OscillatorBank
        One oscillator per AP (index = AP index).
    online : ndarray (M,), bool
    """

    def __init__(self, scenario: Scenario, streams: RandomStreams) -> None:
        self.scenario = scenario
        dep, ch = scenario.deployment, scenario.channel
        self.wavelength_m = ch.wavelength_m
        self.ap_center_m = ap_positions(scenario, streams.generator("deployment"))  # [M, 2]
        n_ap = len(self.ap_center_m)
        o = dep.orientation
        if o.mode == "fixed":
            axis = np.full(n_ap, np.deg2rad(o.angle_deg))
        elif o.mode == "list":
            axis = np.deg2rad(np.asarray(o.angles_deg, dtype=float))
        else:
            axis = streams.generator("orientation").uniform(0, np.pi, n_ap)
        self.ap_axis_rad = axis  # [M]
        self.spacing_m = dep.antenna_spacing_wavelengths * self.wavelength_m
        self.element_pos_m = ula_element_positions(
            self.ap_center_m, axis, dep.antennas_per_ap, self.spacing_m)  # [M, N, 2]
        self.online = np.ones(n_ap, dtype=bool)  # [M]
        # the fixed arrays' geometry, split once for the per-subframe LOS channel
        self._los = LosChannel(self.element_pos_m, self.ap_center_m, self.wavelength_m,
                               ch.path_loss_exponent)

        start = initial_user_positions(
            scenario, streams.generator("deployment", 1), self.ap_center_m)  # [K, 2]
        self.mobility = _mobility_models(scenario, start, streams)

        osc = scenario.oscillators
        noise = ClockNoise.from_allan(
            osc.adev_white_fm_at_1s, osc.adev_random_walk_fm_at_1s,
            aging_per_s=osc.aging_ppm_per_day * 1e-6 / SECONDS_PER_DAY,
            phase_noise_rad2_per_s=osc.phase_noise_rad2_per_s,
        )
        g = streams.generator("oscillator-init")
        y0 = osc.initial_offset_ppm * 1e-6 * g.standard_normal(n_ap)  # [M]
        x0 = osc.initial_time_offset_s * g.standard_normal(n_ap)  # [M]
        self.oscillators = OscillatorBank(
            x0, y0, noise, ch.carrier_hz, streams.generator("oscillator"))

        self.model = ch.model
        if ch.model == "umi":
            self.umi = umi_config(scenario)
            self._shadow_db = ch.shadowing_std_db * streams.generator("shadowing").standard_normal(
                (n_ap, self.n_users))  # [M, K], fixed per link
            self.k_factor = 0.0  # Rayleigh: no LOS part
        else:
            self.k_factor = np.inf if ch.rician_k_db >= 300 else 10 ** (ch.rician_k_db / 10)
        self._fading_rng = streams.generator("fading")
        self._nlos = nlos_initial((self.n_users, n_ap, dep.antennas_per_ap), self._fading_rng)
        self.t_s = 0.0
        self._fading_t = 0.0
        self._rho_key: tuple | None = None  # (dt, Doppler bytes) of the cached correlation
        self._rho: np.ndarray | None = None  # [K, 1, 1]
        self._pos: np.ndarray | None = self._positions(0.0)  # [K, 2]; None: not yet at t_s

    # ------------------------------------------------------------------ sizes
    @property
    def n_aps(self) -> int:
        return len(self.ap_center_m)

    @property
    def n_users(self) -> int:
        return len(self.mobility)

    @property
    def n_antennas(self) -> int:
        return self.element_pos_m.shape[1]

    # ------------------------------------------------------------------ time
    def _positions(self, t_s: float) -> np.ndarray:
        return np.array([m.position(t_s) for m in self.mobility])  # [K, 2]

    def user_speeds_mps(self) -> np.ndarray:
        return np.array([m.speed_mps(self.t_s) for m in self.mobility])  # [K]

    def advance_to(self, t_s: float) -> None:
        """Move oscillators and users exactly to time ``t_s`` (never backwards)."""
        dt = t_s - self.t_s
        if dt < 0:
            raise ValueError(f"network time must not go backwards ({t_s} < {self.t_s})")
        if dt == 0:
            return
        self.oscillators.advance_to(t_s)
        self.t_s = t_s
        self._pos = None  # evaluated when asked for (mobility is path-independent in time)

    def advance_through(self, times_s: list[float], reference_ap: int
                        ) -> tuple[np.ndarray, np.ndarray]:
        """``advance_to(t); offsets_to(reference_ap)`` for each of the non-decreasing
        ``times_s`` (S,) in one go (bit-identical to the sequence; see
        :meth:`OscillatorBank.advance_through`). For a stretch in which nothing else acts
        on the oscillators (no correction, no fault).

        Returns
        -------
        to_s : ndarray (S, M), float64, [s]
            Time offset of every AP relative to ``reference_ap`` at each time.
        phase_rad : ndarray (S, M), float64, [rad]
            Carrier phase relative to ``reference_ap``, wrapped to (-pi, pi].
        """
        if len(times_s) and times_s[0] < self.t_s:
            raise ValueError(f"network time must not go backwards ({times_s[0]} < {self.t_s})")
        x, phase = self.oscillators.advance_through(times_s)  # [S, M] each
        if len(times_s) and times_s[-1] > self.t_s:
            self.t_s = times_s[-1]
            self._pos = None
        ref = reference_ap
        dphi = np.angle(np.exp(1j * (phase - phase[:, ref, None])))  # [S, M]
        return x - x[:, ref, None], dphi

    @property
    def _user_pos(self) -> np.ndarray:
        """True user positions now, (K, 2) m (computed at the first use after a move)."""
        if self._pos is None:
            self._pos = self._positions(self.t_s)
        return self._pos

    def user_positions_now(self) -> np.ndarray:
        """True user positions now, (K, 2) m, without a copy: read-only (do not modify)."""
        return self._user_pos

    def user_position_m(self, k: int) -> np.ndarray:
        """True position of user ``k`` now, (2,) m (a copy)."""
        return self._user_pos[k].copy()

    @property
    def user_pos_m(self) -> np.ndarray:
        """True user positions at the current time, (K, 2) m (a copy)."""
        return self._user_pos.copy()

    # ------------------------------------------------------------------ channels
    def geometric_channel(self, user_pos_m: np.ndarray) -> np.ndarray:
        """Near-field LOS channel (K, M, N) for the given positions (the location-aware model;
        :meth:`LosChannel.fast`: phases within 1e-6 rad of :func:`los_channel`)."""
        return self._los.fast(user_pos_m)

    def large_scale_gain(self, user_pos_m: np.ndarray | None = None) -> np.ndarray:
        """Large-scale power gain beta (M, K) at the given (default: true) positions.

        ``nearfield``: the LOS path gain |beta_mk|^2 of :func:`los_channel`; ``umi``: the
        38.901 UMi path loss of the 3-D distance plus the link's fixed shadowing (spec
        power.md 3.1).
        """
        p = self._user_pos if user_pos_m is None else user_pos_m  # [K, 2]
        if self.model == "umi":
            return self._umi_gain(np.asarray(p, dtype=float))  # [M, K]
        d2 = np.linalg.norm(self.ap_center_m[:, None, :] - p[None, :, :], axis=-1)  # [M, K]
        ple = self.scenario.channel.path_loss_exponent
        return (self.wavelength_m / (4 * np.pi)) ** 2 * np.maximum(d2, 1e-3) ** (-ple)

    def true_channel(self) -> np.ndarray:
        """True channel (K, M, N) now.

        ``nearfield``: LOS at the true positions plus the Rician NLOS part; ``umi``:
        ``sqrt(beta_mk) g_mk`` with Rayleigh ``g`` (spec power.md 3.3).
        """
        if self.model == "umi":
            self._advance_fading()
            return np.sqrt(self.large_scale_gain().T)[:, :, None] * self._nlos  # [K, M, N]
        if not np.isfinite(self.k_factor):
            return self.geometric_channel(self._user_pos)  # [K, M, N]
        amp, cos, sin = self._los.polar(self._user_pos)  # [K, M], [K, M, N] x 2
        self._advance_fading()
        return rician_polar(amp, cos, sin, self._nlos, self.k_factor)  # [K, M, N]

    def true_channels(self, times_s: list[float], max_elements: int = 2_000_000
                      ) -> np.ndarray | None:
        """The channels ``true_channel()`` would return at ``times_s`` (S,), in one batch.

        For the subframes of a frame: evaluating at the non-decreasing times ``times_s``
        (the first one now) gives exactly the arrays, fading state and draws of ``S``
        successive ``advance_to(t); true_channel()`` calls, with the per-call overhead paid
        once (near-field and UMi models). Returns (S, K, M, N), or None where the batch does
        not apply (a user whose mobility would need new random draws within the span, more
        than ``max_elements`` channel entries): then call :meth:`true_channel` per time.
        """
        n_t = len(times_s)
        if n_t == 0 or times_s[0] < self._fading_t:
            return None
        if n_t * self.n_users * self.n_aps * self.n_antennas > max_elements:
            return None
        if all(type(m) is RandomWaypointMobility for m in self.mobility):
            # every user at every time in one go (the same bits as per user)
            got = waypoint_peek_times(self.mobility, times_s)
            if got is None:
                return None
            pos, speed = got  # [S, K, 2], [S, K]
        else:
            pos = np.empty((n_t, self.n_users, 2))  # [S, K, 2]
            speed = np.empty((n_t, self.n_users))  # [S, K]
            for k, model in enumerate(self.mobility):
                many = getattr(model, "peek_times", None)
                if many is not None:  # random waypoint: all times at once (same bits)
                    got = many(times_s)
                    if got is None:
                        return None
                    pos[:, k], speed[:, k] = got
                    continue
                for s, t in enumerate(times_s):
                    got = model.peek(t)
                    if got is None:
                        return None
                    pos[s, k], speed[s, k] = got
        shape = (n_t, self.n_users, self.n_aps, self.n_antennas)
        if self.model == "umi":
            return self._umi_channels(times_s, pos, speed)
        if not np.isfinite(self.k_factor):
            return self.geometric_channel(pos.reshape(-1, 2)).reshape(shape)  # [S, K, M, N]
        amp, cos, sin = self._los.polar(pos.reshape(-1, 2))
        amp = amp.reshape(shape[:3])  # [S, K, M]
        cos, sin = cos.reshape(shape), sin.reshape(shape)  # [S, K, M, N]
        # the fading steps of the sequential calls: one per time later than the last one
        steps, t_last, rhos = self._batch_steps(times_s, speed)
        stepped = [False] * n_t
        for s in steps:
            stepped[s] = True
        h, self._nlos = rician_fading_polar(amp, cos, sin, self._nlos, rhos, stepped,
                                            self.k_factor, self._fading_rng)  # [S, K, M, N]
        self._fading_t = t_last
        return h

    def _batch_steps(self, times_s: list[float], speed: np.ndarray
                     ) -> tuple[list[int], float, np.ndarray]:
        """The fading steps of the sequential calls at ``times_s`` (S,): one per time later
        than the last evaluation. Returns the stepped indices, the last evaluation time and
        the steps' correlations (steps, K, 1, 1) (``speed`` (S, K) m/s at each time); updates
        the one-by-one path's correlation cache as the sequential calls would."""
        steps, dts, t_last = [], [], self._fading_t
        for s, t in enumerate(times_s):
            dt = t - t_last
            if dt <= 0:
                continue
            steps.append(s)
            dts.append(dt)
            t_last = t
        rhos = np.zeros((0, self.n_users, 1, 1))
        if steps:
            doppler = np.maximum(speed[steps] / self.wavelength_m,
                                 self.scenario.channel.min_doppler_hz)  # [steps, K]
            # J0 is evaluated element by element (netsim.phy.bessel): one call for all steps
            # gives the values of one call per step
            rho = jakes_correlation(doppler, np.asarray(dts)[:, None])  # [steps, K]
            self._rho_key = (dts[-1], doppler[-1].tobytes())
            self._rho = rho[-1][:, None, None]  # [K, 1, 1] (the one-by-one path's cache)
            rhos = rho[:, :, None, None]  # [steps, K, 1, 1]
        return steps, t_last, rhos

    def _umi_channels(self, times_s: list[float], pos: np.ndarray, speed: np.ndarray
                      ) -> np.ndarray:
        """:meth:`true_channels` of the UMi model: ``sqrt(beta_mk(t)) g_mk(t)`` at each time,
        with the users' positions ``pos`` (S, K, 2) and speeds ``speed`` (S, K) there.

        The same operations as ``true_channel()`` per time, batched over the times: the
        large-scale gains element by element (:meth:`large_scale_gain` on (S, M, K)), the
        Gauss-Markov steps by :func:`nlos_steps` (the same draws and products as one
        :func:`nlos_step` per time), hence the same bits.
        """
        steps, t_last, rhos = self._batch_steps(times_s, speed)
        if steps and self.scenario.channel.fading_correlation == "iid":
            rhos = np.zeros_like(rhos)
        g0 = self._nlos  # [K, M, N] the state before the first time
        if not steps:
            nlos = np.broadcast_to(g0, (len(times_s), *g0.shape))  # [S, K, M, N]
        else:
            states = nlos_steps(g0, rhos, self._fading_rng)  # [steps, K, M, N]
            self._nlos = states[-1]
            if len(steps) == len(times_s):
                nlos = states
            else:  # a time that repeats the previous one sees the state before it
                done = np.cumsum([s in steps for s in range(len(times_s))])  # [S] steps so far
                nlos = np.concatenate([g0[None], states])[done]  # [S, K, M, N]
        self._fading_t = t_last
        beta = self._umi_gain(pos)  # [S, M, K]
        return np.sqrt(beta.transpose(0, 2, 1))[:, :, :, None] * nlos  # [S, K, M, N]

    def umi_path_loss_db(self, p: np.ndarray) -> np.ndarray:
        """UMi median path loss (..., M, K) [dB] of points ``p`` (..., K, 2) [m] to every AP: the
        38.901 path loss of the 3-D distance, without the links' shadowing (element-wise)."""
        diff = self.ap_center_m[:, None, :] - p[..., None, :, :]  # [..., M, K, 2]
        d2 = np.linalg.norm(diff, axis=-1)  # [..., M, K]
        d3 = np.hypot(d2, self.umi.h_ap_m - self.umi.h_ue_m)  # [..., M, K]
        return umi.path_loss_db(d3, self.umi)

    def _umi_gain(self, p: np.ndarray) -> np.ndarray:
        """UMi large-scale gains (..., M, K) of users at ``p`` (..., K, 2): the median path loss
        (:meth:`umi_path_loss_db`) plus the links' fixed shadowing (element-wise, so a batch of
        position sets gets the bits of one call per set)."""
        return 10.0 ** ((self.umi_path_loss_db(p) + self._shadow_db) / 10.0)

    def _advance_fading(self) -> None:
        """Step the NLOS Gauss-Markov fading from its last evaluation to now.

        The fading moves only when a channel is evaluated, so its draws depend on the
        evaluation times alone (the subframes), not on other events such as corrections
        arriving over the fronthaul: changing an unrelated algorithm leaves them unchanged.
        """
        dt = self.t_s - self._fading_t
        if dt <= 0:
            return
        speeds = self.user_speeds_mps()  # [K]
        doppler = np.maximum(speeds / self.wavelength_m, self.scenario.channel.min_doppler_hz)
        key = (dt, doppler.tobytes())  # speeds are constant over a leg, dt over a frame
        if self._rho_key != key:
            self._rho = jakes_correlation(doppler, dt)[:, None, None]  # [K, 1, 1]
            self._rho_key = key
        rho = self._rho
        if self.model == "umi":
            if self.scenario.channel.fading_correlation == "iid":
                rho = np.zeros_like(rho)
            self._nlos = nlos_step(self._nlos, rho, self._fading_rng)
        else:  # the near-field Rician model: polar draws (as in true_channels)
            self._nlos = fading_steps_polar(self._nlos, rho[None], self._fading_rng)[0]
        self._fading_t = self.t_s

    # ------------------------------------------------------------------ sync state
    def offsets_to(self, reference_ap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each AP's (time offset s, CFO Hz, carrier phase rad) relative to ``reference_ap``."""
        osc = self.oscillators
        phase = osc.phase_rad
        dphi = np.angle(np.exp(1j * (phase - phase[reference_ap])))  # wrapped to (-pi, pi]
        to_s, cfo_hz = osc.relative_to(reference_ap)  # [M], [M]
        return to_s, cfo_hz, dphi
