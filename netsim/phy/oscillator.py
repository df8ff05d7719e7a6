"""Two-state oscillator (clock) model of the access points.

Each AP's local oscillator is described by its time offset ``x(t)`` [s] and its
fractional frequency offset ``y(t)`` [-] with respect to the network reference,
driven by the standard two-state stochastic clock model (white FM + random-walk FM,
plus a deterministic aging term)::

    dx = y dt + sqrt(q1) dW1          (white frequency modulation)
    dy = a dt + sqrt(q2) dW2          (random-walk frequency modulation, aging a [1/s])

and an extra carrier-phase noise ``phi_w`` which is a Wiener process with diffusion
``q_phi`` [rad^2/s] (independent of W1, W2).

Over any interval ``dt`` the state propagates exactly in one Gaussian step::

    [x, y]' = Phi [x, y] + drift + w,    w ~ N(0, Q)
    Phi   = [[1, dt], [0, 1]]
    drift = [a dt^2 / 2, a dt]
    Q     = [[q1 dt + q2 dt^3 / 3, q2 dt^2 / 2],
             [q2 dt^2 / 2,          q2 dt     ]]

The Allan variance of ``y`` for this model is
``sigma_y^2(tau) = q1 / tau + q2 tau / 3 + a^2 tau^2 / 2``.

Reference: the two-state clock model of Zucca and Tavella (IEEE T-UFFC 2005), as used
for the oscillator drift between synchronization rounds of seed 000 (``spec/sync.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ClockNoise",
    "OscillatorBank",
    "allan_deviation_model",
    "clock_transition",
]

_SQRT12 = math.sqrt(12.0)


@dataclass(frozen=True)
class ClockNoise:
    """Noise parameters of the two-state clock model (shared by an oscillator bank).

    Attributes
    ----------
    white_fm_s2_per_s : float
        q1, diffusion of the time offset (white FM) [s^2/s]. ``sigma_y^2(1 s) = q1``.
    random_walk_fm_per_s : float
        q2, diffusion of the fractional frequency offset (random-walk FM) [1/s].
    aging_per_s : float, default 0
        a, deterministic linear frequency drift [1/s].
    phase_noise_rad2_per_s : float, default 0
        q_phi, diffusion of the extra carrier-phase Wiener process [rad^2/s].
    """

    white_fm_s2_per_s: float
    random_walk_fm_per_s: float
    aging_per_s: float = 0.0
    phase_noise_rad2_per_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("white_fm_s2_per_s", "random_walk_fm_per_s", "phase_noise_rad2_per_s"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0.0:
                raise ValueError(f"ClockNoise.{name} must be finite and >= 0, got {value}")
        if not np.isfinite(self.aging_per_s):
            raise ValueError(f"ClockNoise.aging_per_s must be finite, got {self.aging_per_s}")

    @classmethod
    def from_allan(
        cls,
        adev_white_fm_at_1s: float,
        adev_random_walk_fm_at_1s: float,
        aging_per_s: float = 0.0,
        phase_noise_rad2_per_s: float = 0.0,
    ) -> ClockNoise:
        """Build from the Allan deviations of each noise type at tau = 1 s.

        Uses ``sigma_y^2(tau) = q1/tau + q2 tau/3 (+ a^2 tau^2/2)``, so
        ``q1 = adev_wfm(1 s)^2`` and ``q2 = 3 adev_rwfm(1 s)^2``.

        Parameters
        ----------
        adev_white_fm_at_1s : float
            Allan deviation [-] of the white-FM part at tau = 1 s.
        adev_random_walk_fm_at_1s : float
            Allan deviation [-] of the random-walk-FM part at tau = 1 s.
        aging_per_s : float, default 0
            Linear frequency drift [1/s].
        phase_noise_rad2_per_s : float, default 0
            Extra carrier-phase diffusion [rad^2/s].
        """
        return cls(
            white_fm_s2_per_s=float(adev_white_fm_at_1s) ** 2,
            random_walk_fm_per_s=3.0 * float(adev_random_walk_fm_at_1s) ** 2,
            aging_per_s=float(aging_per_s),
            phase_noise_rad2_per_s=float(phase_noise_rad2_per_s),
        )


def allan_deviation_model(tau_s: ArrayLike, noise: ClockNoise) -> NDArray[np.float64]:
    """Theoretical Allan deviation of the two-state clock model.

    ``sigma_y(tau) = sqrt(q1/tau + q2 tau/3 + a^2 tau^2/2)``.

    Parameters
    ----------
    tau_s : array_like, float, any shape, [s]
        Averaging times (> 0).
    noise : ClockNoise

    Returns
    -------
    ndarray, float64, same shape as ``tau_s``, [-]
    """
    tau = np.asarray(tau_s, dtype=float)  # [...]
    if np.any(tau <= 0):
        raise ValueError("tau_s must be > 0")
    avar = (
        noise.white_fm_s2_per_s / tau
        + noise.random_walk_fm_per_s * tau / 3.0
        + 0.5 * noise.aging_per_s**2 * tau**2
    )  # [...]
    return np.sqrt(avar)


def clock_transition(
    dt_s: float, noise: ClockNoise
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Exact discrete-time transition of the clock state ``[x, y]`` over ``dt_s``.

    Parameters
    ----------
    dt_s : float, [s], >= 0
    noise : ClockNoise

    Returns
    -------
    Phi : ndarray (2, 2), float64
        ``[[1, dt], [0, 1]]``.
    drift : ndarray (2,), float64
        ``[a dt^2/2, a dt]`` ([s], [-]).
    Q : ndarray (2, 2), float64
        Process-noise covariance ``[[q1 dt + q2 dt^3/3, q2 dt^2/2], [q2 dt^2/2, q2 dt]]``.
    """
    dt = float(dt_s)
    if not np.isfinite(dt) or dt < 0:
        raise ValueError(f"dt_s must be finite and >= 0, got {dt_s}")
    q1, q2, a = noise.white_fm_s2_per_s, noise.random_walk_fm_per_s, noise.aging_per_s
    phi = np.array([[1.0, dt], [0.0, 1.0]])  # [2, 2]
    drift = np.array([0.5 * a * dt**2, a * dt])  # [2]
    q = np.array(
        [[q1 * dt + q2 * dt**3 / 3.0, q2 * dt**2 / 2.0], [q2 * dt**2 / 2.0, q2 * dt]]
    )  # [2, 2]
    return phi, drift, q


def _as_shape(value: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """``np.broadcast_to(np.asarray(value, dtype=float), shape)``, skipped when the array
    already has that shape (the same values; broadcast_to's overhead is most of a small
    correction)."""
    a = np.asarray(value, dtype=float)
    return a if a.shape == shape else np.broadcast_to(a, shape)


class OscillatorBank:
    """A bank of ``n`` independent oscillators with the same noise parameters.

    State per oscillator: time offset ``x`` [s], fractional frequency offset ``y`` [-],
    the time offset at the last correction ``x_ref`` [s] and the extra phase-noise
    Wiener term ``phi_w`` [rad]. The carrier phase accumulated since the last
    correction is ``phase = 2 pi f_c (x - x_ref) + phi_w``.

    Parameters
    ----------
    time_offset_s : array_like (n,), float, [s]
        Initial time offsets x(t0).
    freq_offset : array_like (n,), float, [-]
        Initial fractional frequency offsets y(t0) (1 ppm = 1e-6).
    noise : ClockNoise
    carrier_hz : float, [Hz]
    rng : numpy.random.Generator
        Owned by the bank; every draw of ``advance_to`` comes from it.
    t0_s : float, default 0, [s]
        Time of the initial state.
    """

    def __init__(
        self,
        time_offset_s: ArrayLike,
        freq_offset: ArrayLike,
        noise: ClockNoise,
        carrier_hz: float,
        rng: np.random.Generator,
        t0_s: float = 0.0,
    ) -> None:
        x = np.array(time_offset_s, dtype=float, copy=True).reshape(-1)  # [n]
        y = np.array(freq_offset, dtype=float, copy=True).reshape(-1)  # [n]
        if x.shape != y.shape:
            raise ValueError(f"time_offset_s {x.shape} and freq_offset {y.shape} differ in shape")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError("initial offsets must be finite")
        if not np.isfinite(carrier_hz) or carrier_hz <= 0:
            raise ValueError(f"carrier_hz must be > 0, got {carrier_hz}")
        if not np.isfinite(t0_s):
            raise ValueError(f"t0_s must be finite, got {t0_s}")
        self._noise = noise
        self._carrier_hz = float(carrier_hz)
        self._rng = rng
        self._t_s = float(t0_s)
        self._x = x  # [n] s
        self._y = y  # [n] -
        self._x_ref = x.copy()  # [n] s, time offset at the last correction
        self._phi_w = np.zeros_like(x)  # [n] rad, extra phase-noise Wiener term

    # ------------------------------------------------------------------ properties
    @property
    def n(self) -> int:
        """Number of oscillators."""
        return int(self._x.shape[0])

    @property
    def noise(self) -> ClockNoise:
        return self._noise

    @property
    def carrier_hz(self) -> float:
        return self._carrier_hz

    @property
    def t_s(self) -> float:
        """Current time of the state [s]."""
        return self._t_s

    @property
    def time_offset_s(self) -> NDArray[np.float64]:
        """Time offsets x(t), (n,) float64 [s] (a copy)."""
        return self._x.copy()

    @property
    def freq_offset(self) -> NDArray[np.float64]:
        """Fractional frequency offsets y(t), (n,) float64 [-] (a copy)."""
        return self._y.copy()

    @property
    def phase_rad(self) -> NDArray[np.float64]:
        """Carrier phase since the last correction, (n,) float64 [rad] (not wrapped).

        ``2 pi f_c (x(t) - x(t_corr)) + phi_w(t)``.
        """
        return 2.0 * np.pi * self._carrier_hz * (self._x - self._x_ref) + self._phi_w

    # ------------------------------------------------------------------ dynamics
    def advance_to(self, t_s: float) -> None:
        """Propagate every oscillator exactly to time ``t_s`` (one joint Gaussian step).

        Raises
        ------
        ValueError
            If ``t_s`` is earlier than the current time or not finite.
        """
        t_new = float(t_s)
        if not np.isfinite(t_new):
            raise ValueError(f"t_s must be finite, got {t_s}")
        dt = t_new - self._t_s
        if dt < 0.0:
            raise ValueError(f"time must not go backwards: t_s={t_new} < current {self._t_s}")
        if dt == 0.0:
            return
        qphi = self._noise.phase_noise_rad2_per_s
        z = self._rng.standard_normal((4 if qphi > 0.0 else 3, self.n))  # [3 or 4, n]
        self._step(dt, z)
        self._t_s = t_new

    def _step(self, dt: float, z: NDArray[np.float64]) -> None:
        """The state update of one ``advance_to`` over ``dt`` > 0 with its draws ``z``."""
        q1 = self._noise.white_fm_s2_per_s
        q2 = self._noise.random_walk_fm_per_s
        a = self._noise.aging_per_s
        qphi = self._noise.phase_noise_rad2_per_s
        # Noise of (x, y) with covariance Q, written without cancellation:
        # w_y = sqrt(q2 dt) z1;  w_x = sqrt(q1 dt) z0 + sqrt(q2) dt^1.5 (z1/2 + z2/sqrt(12)).
        # scalar factors with math.sqrt (correctly rounded, the same values as np.sqrt)
        sq2 = math.sqrt(q2)
        w_y = sq2 * math.sqrt(dt) * z[1]  # [n]
        w_x = math.sqrt(q1 * dt) * z[0] + sq2 * dt**1.5 * (0.5 * z[1] + z[2] / _SQRT12)  # [n]
        self._x += self._y * dt + 0.5 * a * dt * dt + w_x
        self._y += a * dt + w_y
        if qphi > 0.0:
            self._phi_w += math.sqrt(qphi * dt) * z[3]

    def advance_through(self, times_s: list[float]
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``advance_to(t)`` for each of the non-decreasing ``times_s`` (S,), in one go.

        The draws of all steps are taken in one block (the same numbers in the same order as
        the single calls) and each step does the same operations, so the final state and the
        returned history are bit-identical to ``S`` successive :meth:`advance_to` calls.

        Returns
        -------
        time_offset_s : ndarray (S, n), float64, [s]
            ``x`` after each step.
        phase_rad : ndarray (S, n), float64, [rad]
            :attr:`phase_rad` after each step.
        """
        n_t = len(times_s)
        x_hist = np.empty((n_t, self.n))  # [S, n]
        phase_hist = np.empty((n_t, self.n))  # [S, n]
        t_prev, dts = self._t_s, []
        for t in times_s:
            t_new = float(t)
            if not np.isfinite(t_new):
                raise ValueError(f"t_s must be finite, got {t}")
            if t_new < t_prev:
                raise ValueError(f"time must not go backwards: t_s={t_new} < current {t_prev}")
            dts.append(t_new - t_prev)
            t_prev = t_new
        moving = [s for s, dt in enumerate(dts) if dt > 0.0]  # the steps that draw
        n_steps = len(moving)
        qphi = self._noise.phase_noise_rad2_per_s
        if n_steps == 0:
            x_hist[:] = self._x
            phase_hist[:] = self.phase_rad
            return x_hist, phase_hist
        z = self._rng.standard_normal((n_steps, 4 if qphi > 0.0 else 3, self.n))  # [steps, 3|4, n]
        # The steps of _step, all at once: the per-step scalars as Python floats (the same
        # values), each increment with the same operations in the same order, and the
        # sequential sums ``x += inc`` as one accumulate along the steps (add.accumulate adds
        # row by row), so every state is bit-identical to the loop of advance_to calls.
        q1, q2 = self._noise.white_fm_s2_per_s, self._noise.random_walk_fm_per_s
        a = self._noise.aging_per_s
        sq2 = math.sqrt(q2)
        step_dt = [dts[s] for s in moving]
        dt_col = np.array(step_dt)[:, None]  # [steps, 1]
        c_wy = np.array([sq2 * math.sqrt(dt) for dt in step_dt])[:, None]  # [steps, 1]
        c_x0 = np.array([math.sqrt(q1 * dt) for dt in step_dt])[:, None]  # [steps, 1]
        c_x1 = np.array([sq2 * dt**1.5 for dt in step_dt])[:, None]  # [steps, 1]
        c_drift_x = np.array([0.5 * a * dt * dt for dt in step_dt])[:, None]  # [steps, 1]
        c_drift_y = np.array([a * dt for dt in step_dt])[:, None]  # [steps, 1]
        w_y = c_wy * z[:, 1]  # [steps, n]
        w_x = c_x0 * z[:, 0] + c_x1 * (0.5 * z[:, 1] + z[:, 2] / _SQRT12)  # [steps, n]
        y = np.empty((n_steps + 1, self.n))  # [steps + 1, n] y before the first step, after each
        y[0] = self._y
        y[1:] = c_drift_y + w_y
        np.add.accumulate(y, axis=0, out=y)
        x = np.empty((n_steps + 1, self.n))  # [steps + 1, n]
        x[0] = self._x
        x[1:] = y[:-1] * dt_col + c_drift_x + w_x
        np.add.accumulate(x, axis=0, out=x)
        self._x[:] = x[-1]
        self._y[:] = y[-1]
        if qphi > 0.0:
            phi = np.empty((n_steps + 1, self.n))  # [steps + 1, n]
            phi[0] = self._phi_w
            phi[1:] = np.array([math.sqrt(qphi * dt) for dt in step_dt])[:, None] * z[:, 3]
            np.add.accumulate(phi, axis=0, out=phi)
            self._phi_w[:] = phi[-1]
        self._t_s = float(times_s[moving[-1]])
        # row of each time: the state after the last step at or before it
        row = np.cumsum([dt > 0.0 for dt in dts])  # [S]
        x_hist[:] = x[row]
        phi_rows = phi[row] if qphi > 0.0 else self._phi_w
        phase_hist[:] = 2.0 * np.pi * self._carrier_hz * (x_hist - self._x_ref) + phi_rows
        return x_hist, phase_hist

    def correct(
        self,
        indices: ArrayLike,
        time_offset_s: ArrayLike,
        freq_offset: ArrayLike,
        phase_rad: ArrayLike | None = None,
    ) -> None:
        """Apply estimated corrections to some oscillators.

        Subtracts the estimates from ``x`` and ``y`` of ``indices``. Without ``phase_rad``
        their carrier-phase reference is reset (``phase_rad`` becomes 0 for them); with it,
        the given phase estimate is subtracted from their carrier phase instead (a timing
        correction does not itself rotate the carrier).

        Parameters
        ----------
        indices : array_like (k,), int
            Distinct oscillator indices.
        time_offset_s : array_like (k,) or scalar, float, [s]
            Estimated time offsets to remove.
        freq_offset : array_like (k,) or scalar, float, [-]
            Estimated fractional frequency offsets to remove.
        phase_rad : array_like (k,) or scalar, float, [rad], optional
            Estimated carrier-phase offsets to remove.
        """
        idx = np.asarray(indices, dtype=np.intp).reshape(-1)  # [k]
        if idx.size > 1 and not np.all(np.diff(np.sort(idx))):  # (np.unique imports numpy.ma)
            raise ValueError("indices must be distinct")
        if idx.size and (idx.min() < -self.n or idx.max() >= self.n):
            raise IndexError(f"indices out of range for {self.n} oscillators")
        dx = _as_shape(time_offset_s, idx.shape)  # [k]
        dy = _as_shape(freq_offset, idx.shape)  # [k]
        if phase_rad is None:
            new_phase = np.zeros(idx.shape)  # [k]
        else:
            dphi = _as_shape(phase_rad, idx.shape)  # [k]
            new_phase = self.phase_rad[idx] - dphi  # [k]
        self._x[idx] -= dx
        self._y[idx] -= dy
        # choose the phase reference so that 2 pi f_c (x - x_ref) + phi_w = new_phase
        self._phi_w[idx] = 0.0
        self._x_ref[idx] = self._x[idx] - new_phase / (2.0 * np.pi * self._carrier_hz)

    # ------------------------------------------------------------------ pairwise
    def cfo_hz(self, i: ArrayLike, j: ArrayLike) -> NDArray[np.float64]:
        """Carrier frequency offset of oscillator i relative to j: ``f_c (y_i - y_j)`` [Hz].

        ``i`` and ``j`` are int indices or index arrays (broadcast together).
        """
        ii = np.asarray(i, dtype=np.intp)
        jj = np.asarray(j, dtype=np.intp)
        return self._carrier_hz * (self._y[ii] - self._y[jj])

    def to_s(self, i: ArrayLike, j: ArrayLike) -> NDArray[np.float64]:
        """Time offset of oscillator i relative to j: ``x_i - x_j`` [s] (broadcast)."""
        ii = np.asarray(i, dtype=np.intp)
        jj = np.asarray(j, dtype=np.intp)
        return self._x[ii] - self._x[jj]

    def relative_to(self, j: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Every oscillator's time offset [s] and CFO [Hz] relative to oscillator ``j``:
        ``to_s(arange(n), j)`` and ``cfo_hz(arange(n), j)`` (the same values), (n,) each."""
        return self._x - self._x[j], self._carrier_hz * (self._y - self._y[j])

    def snapshot(self) -> dict[str, NDArray[np.float64] | float]:
        """Copies of the state: ``t_s`` (float), ``time_offset_s``, ``freq_offset``,
        ``phase_rad``, ``cfo_hz`` (= f_c y, relative to the reference) as (n,) arrays."""
        return {
            "t_s": self._t_s,
            "time_offset_s": self._x.copy(),
            "freq_offset": self._y.copy(),
            "phase_rad": self.phase_rad,
            "cfo_hz": self._carrier_hz * self._y,
        }
