"""Kalman tracking of each AP's clock relative to the reference AP (issue 14).

Per AP ``i`` and reference ``r`` the tracked state is the relative clock

    s = [x, c, phi] = [x_i - x_r  (s),  f_c (y_i - y_r)  (Hz),  phi_i - phi_r  (rad)]

with ``x`` the time offset, ``y`` the fractional frequency and ``phi`` the carrier phase of the
two-state oscillator model (:mod:`netsim.phy.oscillator`), ``phi = 2 pi f_c (x - x_ref) + phi_w``.
Over an interval ``dt`` the relative state moves exactly as (aging is common to both clocks and
cancels)::

    x'   = x + c dt / f_c                 + w_x
    c'   = c                              + f_c w_y
    phi' = phi + 2 pi c dt + 2 pi f_c w_x + w_phi

where ``(w_x, w_y)`` is the two-state process noise of *each* clock, so for the difference of
two independent clocks ``Cov(w_x, w_y) = 2 Q(dt)`` with ``Q`` of
:func:`netsim.phy.oscillator.clock_transition`, and ``Var(w_phi) = 2 q_phi dt``. In matrix form
``s' = F s + G w``, ``F = [[1, dt/f_c, 0], [0, 1, 0], [0, 2 pi dt, 1]]``,
``G = [[1, 0], [0, f_c], [2 pi f_c, 0]]`` and the process covariance is
``Q3 = 2 (G Q G^T + diag(0, 0, q_phi dt))`` (eq. T1 of docs/models.md). Note that the same
white-FM increment ``w_x`` moves both the time offset and the carrier phase: the model ties
them, and the filter uses that tie.

A sync round measures ``z = s + v``, ``v ~ N(0, R)``, ``R = diag(CRB_TO, CRB_CFO, var_phi)``
(the per-round bounds of :mod:`netsim.sync.round`; the phase variance of
:func:`netsim.sim.methods.over_the_air_sync`). The phase is measured modulo ``2 pi``: the true
innovation is ``nu + 2 pi n e_3`` for an unknown integer ``n`` (integer ambiguity, as in
carrier-phase GNSS). Under the Gaussian prediction each hypothesis has the weight
``p_n ~ exp(-q(n)/2)``, ``q(n) = (nu + 2 pi n e_3)^T S^-1 (nu + 2 pi n e_3)`` (eq. T4): the TO
and CFO innovations of the same round take part, since they are correlated with the predicted
phase. The phase is used once the std of its innovation given the TO and CFO innovations,
``1/sqrt((S^-1)_33)``, is below ``phase_lock_std_rad`` (a decision on ``S`` alone, so it does
not select on the measured values); the update then takes the most likely integer and the
mixture's spread over the others (weights below ``1 - phase_lock_probability`` pruned) is
added to its mean and covariance (exact first two moments). Otherwise (acquisition: the CFO is
not yet known well enough to predict the phase since the last round) the update uses the
time offset and CFO only, and the phase component is re-initialised from the measurement
(its prior is uniform on the circle). A round a short ``tau`` after the previous one
(``acquisition=True``, the engine's ``sync.acquisition_round``) makes the phase predictable
with a CFO known only to a fraction of ``1/tau``; it may use the phase up to
``acquisition_lock_std_rad``.

Innovation gate: the normalised innovation squared ``NIS = nu^T S^-1 nu``, ``S = P + R``, is
chi-square with as many degrees of freedom as measured components; a measurement with NIS
above the ``gate_probability`` quantile is rejected (the track coasts on its prediction).
``max_rejections`` rejections in a row re-initialise the track from the last measurement (the
track, not the measurements, is then the likely outlier).

Corrections: :meth:`ClockTracker.correct` predicts the state to the instant the correction
takes effect at the AP (after the fronthaul latency) and returns it; the caller subtracts it
from the AP's oscillator, and the tracker subtracts the same known control input from its mean
(covariance unchanged), so after a correction the tracked mean is zero and the covariance is
the residual's.

Internally the state is kept in (ns, Hz, rad) so the covariance is well scaled; every public
array is in SI units (s, Hz, rad).

State is plain numpy arrays (picklable for checkpoint/resume).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.phy.oscillator import ClockNoise

__all__ = [
    "ClockTracker",
    "TrackUpdate",
    "TrackerConfig",
    "chi2_quantile",
    "phase_floor_rad",
    "tracking_transition",
    "wrap_phase",
]

_NS = 1e-9  # internal unit of the time offset
_SCALE = np.array([_NS, 1.0, 1.0])  # internal -> SI, per state component


def wrap_phase(phi: ArrayLike) -> NDArray[np.float64]:
    """Wrap phases to ``(-pi, pi]`` (rad), any shape."""
    p = np.asarray(phi, dtype=float)
    return np.pi - np.mod(np.pi - p, 2.0 * np.pi)


def _chi2_sf(x: float, dof: int) -> float:
    """Survival function ``P(X > x)`` of a chi-square variable with ``dof`` in {1, 2, 3}.

    Closed forms (Abramowitz & Stegun 26.4.4-26.4.5): ``erfc(sqrt(x/2))`` (1),
    ``exp(-x/2)`` (2), ``erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2)`` (3).
    """
    if dof == 2:
        return math.exp(-0.5 * x)
    r = math.erfc(math.sqrt(0.5 * x))
    if dof == 3:
        r += math.sqrt(2.0 * x / math.pi) * math.exp(-0.5 * x)
    return r


def chi2_quantile(p: float, dof: int) -> float:
    """Quantile ``x`` with ``P(X <= x) = p`` of a chi-square variable, ``dof`` in {1, 2, 3}.

    The innovation gate of :class:`ClockTracker` (numpy and ``math`` only, so building a tracker
    does not import ``scipy.stats``, ~1 CPU-s). ``dof = 2`` is exact (``-2 ln(1 - p)``); 1 and 3
    solve ``sf(x) = 1 - p`` on the closed-form survival function by bisection to the last bit
    (agrees with ``scipy.stats.chi2.ppf`` to ~1e-14 relative for ``p >= 0.01``, tested; below,
    the rounding of ``1 - p`` limits it to ~1e-10).

    Parameters
    ----------
    p : float
        Probability in (0, 1).
    dof : int
        Degrees of freedom, 1, 2 or 3.

    Returns
    -------
    float
        The quantile (dimensionless, >= 0).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if dof not in (1, 2, 3):
        raise ValueError(f"dof must be 1, 2 or 3, got {dof}")
    if dof == 2:
        return -2.0 * math.log1p(-p)
    q = 1.0 - p  # sf target; sf decreases in x
    lo, hi = 0.0, 1.0
    while _chi2_sf(hi, dof) > q:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _chi2_sf(mid, dof) > q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tracking_transition(
    dt_s: ArrayLike, noise: ClockNoise, carrier_hz: float, relative: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact transition ``F`` and process covariance ``Q3`` of the (x, CFO, phase) state.

    Parameters
    ----------
    dt_s : array_like, float, shape (...,), [s], >= 0
        Intervals.
    noise : ClockNoise
        Noise of one oscillator.
    carrier_hz : float, [Hz]
    relative : bool, default True
        Difference of two independent clocks (process noise doubled), as tracked by
        :class:`ClockTracker`; False gives the model of one clock against an ideal reference.

    Returns
    -------
    F : ndarray, (..., 3, 3), float64
        In internal units (ns, Hz, rad): ``[[1, 1e9 dt/f_c, 0], [0, 1, 0], [0, 2 pi dt, 1]]``.
    Q3 : ndarray, (..., 3, 3), float64
        Process covariance in (ns^2, Hz^2, rad^2) units (eq. T1 of docs/models.md).
    """
    dt = np.asarray(dt_s, dtype=float)  # [...]
    if np.any(~np.isfinite(dt)) or np.any(dt < 0):
        raise ValueError("dt_s must be finite and >= 0")
    fc = float(carrier_hz)
    q1, q2, qphi = noise.white_fm_s2_per_s, noise.random_walk_fm_per_s, noise.phase_noise_rad2_per_s
    k = 2.0 if relative else 1.0
    f = np.zeros((*dt.shape, 3, 3))  # [..., 3, 3]
    f[..., 0, 0] = f[..., 1, 1] = f[..., 2, 2] = 1.0
    f[..., 0, 1] = dt / fc / _NS
    f[..., 2, 1] = 2.0 * np.pi * dt
    qxx = q1 * dt + q2 * dt**3 / 3.0  # [...] s^2
    qxy = q2 * dt**2 / 2.0  # [...] s
    qyy = q2 * dt  # [...]
    # Q3 = G Q2 G^T with G = [[1/ns, 0], [0, f_c], [2 pi f_c, 0]] (3, 2): every G row has one
    # non-zero, so each entry is one product (G_i q) G_l, written out in the order the
    # matrix product evaluates it (bit-identical to it, without the stacking)
    ga, gb, gc = 1.0 / _NS, fc, 2.0 * np.pi * fc
    q3 = np.empty((*dt.shape, 3, 3))  # [..., 3, 3]
    q3[..., 0, 0] = ga * qxx * ga
    q3[..., 0, 1] = ga * qxy * gb
    q3[..., 0, 2] = ga * qxx * gc
    q3[..., 1, 0] = gb * qxy * ga
    q3[..., 1, 1] = gb * qyy * gb
    q3[..., 1, 2] = gb * qxy * gc
    q3[..., 2, 0] = gc * qxx * ga
    q3[..., 2, 1] = gc * qxy * gb
    q3[..., 2, 2] = gc * qxx * gc + qphi * dt
    return f, k * q3


def phase_floor_rad(
    interval_s: ArrayLike, noise: ClockNoise, carrier_hz: float, relative: bool = True
) -> NDArray[np.float64]:
    """Carrier-phase std that the oscillator noise alone adds over ``interval_s``.

    ``sqrt(k ((2 pi f_c)^2 (q1 dt + q2 dt^3/3) + q_phi dt))`` with ``k = 2`` for the phase of
    one AP relative to the (equally noisy) reference AP: even a perfect estimate at the start
    of the interval leaves this much phase error at its end.

    Parameters
    ----------
    interval_s : array_like, float, any shape, [s]
    noise : ClockNoise
    carrier_hz : float, [Hz]
    relative : bool, default True

    Returns
    -------
    ndarray, float64, same shape as ``interval_s``, [rad]
    """
    _, q3 = tracking_transition(interval_s, noise, carrier_hz, relative)
    return np.sqrt(q3[..., 2, 2])


@dataclass(frozen=True)
class TrackerConfig:
    """Parameters of :class:`ClockTracker`.

    Attributes
    ----------
    noise : ClockNoise
        Oscillator noise of each AP (all APs share it, as in the oscillator bank).
    carrier_hz : float, [Hz]
    gate_probability : float, default 0.9999
        Innovation gate: a measurement whose NIS exceeds this chi-square quantile is rejected.
    phase_lock_std_rad : float, default 1.0
        Phase innovations are used only while their std given the round's TO and CFO
        innovations is below this (rad): the wrong integer then has a probability below
        ``2 Phi(-pi)`` ~ 2e-3, and it matters, since a wrong integer at a regular round spacing
        ``T`` is a CFO error of exactly ``1/T`` that the phase of the following rounds cannot see
        (aliasing).
    acquisition_lock_std_rad : float, default 2.0
        The same for an acquisition round (``update(..., acquisition=True)``), a short ``tau``
        after the previous one: a wrong integer there is a CFO error of ``1/tau``, which the
        next regular round's phase innovation shows (unless ``T/tau`` is close to an integer)
        and the gate rejects, so a looser threshold is safe.
    phase_lock_probability : float, default 0.999
        Integer hypotheses with a posterior probability below ``1 -`` this are pruned from the
        mixture; ``TrackUpdate.phase_used`` reports the updates whose best integer had at least
        this probability (eq. T4 of docs/models.md).
    phase_gate_std_rad : float, default 0.5
        The gate includes the phase innovation when its conditional std is below this (rad);
        above, the gate tests the TO and CFO innovations only.
    max_rejections : int, default 3
        Consecutive gate rejections that re-initialise a track from the measurement.
    """

    noise: ClockNoise
    carrier_hz: float
    gate_probability: float = 0.9999
    phase_lock_std_rad: float = 1.0
    acquisition_lock_std_rad: float = 2.0
    phase_lock_probability: float = 0.999
    phase_gate_std_rad: float = 0.5
    max_rejections: int = 3

    def __post_init__(self) -> None:
        if not (np.isfinite(self.carrier_hz) and self.carrier_hz > 0):
            raise ValueError(f"carrier_hz must be > 0, got {self.carrier_hz}")
        if not 0.0 < self.gate_probability < 1.0:
            raise ValueError(f"gate_probability must be in (0, 1), got {self.gate_probability}")
        if not (self.phase_lock_std_rad > 0):
            raise ValueError("phase_lock_std_rad must be > 0")
        if not 0.5 <= self.phase_lock_probability < 1.0:
            raise ValueError("phase_lock_probability must be in [0.5, 1), got "
                             f"{self.phase_lock_probability}")
        if self.max_rejections < 1:
            raise ValueError("max_rejections must be >= 1")


@dataclass(frozen=True)
class TrackUpdate:
    """Outcome of :meth:`ClockTracker.update` for the ``k`` measured APs.

    Attributes
    ----------
    accepted : ndarray (k,), bool
        The measurement updated the track (False: gated out, or it (re)initialised the track).
    initialized : ndarray (k,), bool
        The track was (re)started from this measurement (first measurement, after a reset, or
        after ``max_rejections`` rejections in a row).
    gated : ndarray (k,), bool
        Rejected by the innovation gate (includes the rejections that re-initialised).
    nis : ndarray (k,), float
        Normalised innovation squared (NaN where the track was not active).
    dof : ndarray (k,), int
        Degrees of freedom of the NIS: 3 with the phase, 2 without (acquisition), 0 if none.
    phase_used : ndarray (k,), bool
        The phase innovation was used and its integer ambiguity resolved (posterior probability
        of the best integer at least ``phase_lock_probability``): the track is phase-locked.
    integer_probability : ndarray (k,), float
        Posterior probability of the best integer (NaN where the phase was not used).
    integer : ndarray (k,), float
        The best integer ``n`` added to the wrapped phase innovation, in cycles (NaN where the
        phase was not used).
    """

    accepted: NDArray[np.bool_]
    initialized: NDArray[np.bool_]
    gated: NDArray[np.bool_]
    nis: NDArray[np.float64]
    dof: NDArray[np.int64]
    phase_used: NDArray[np.bool_]
    integer_probability: NDArray[np.float64]
    integer: NDArray[np.float64]


class ClockTracker:
    """Bank of Kalman filters, one per AP, on the relative clock state (x, CFO, phase).

    Parameters
    ----------
    n : int
        Number of APs.
    config : TrackerConfig
    reference : int, default 0
        The reference AP: its relative state is zero by definition (never measured).

    Attributes (plain arrays; picklable)
    ------------------------------------
    reference : int
    t_s : ndarray (n,), float, [s]
        Time of each track's state.
    mean : ndarray (n, 3), float
        State mean in internal units (ns, Hz, rad).
    cov : ndarray (n, 3, 3), float
        State covariance in internal units.
    active : ndarray (n,), bool
        Track initialised.
    rejections : ndarray (n,), int
        Consecutive gate rejections.
    meas_var : ndarray (n, 3), float
        Last measurement variances (internal units); inf before the first one.
    """

    def __init__(self, n: int, config: TrackerConfig, reference: int = 0) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not 0 <= reference < n:
            raise IndexError(f"reference {reference} out of range for {n} tracks")
        self.config = config
        self.reference = int(reference)
        self.t_s = np.zeros(n)  # [n]
        self.mean = np.zeros((n, 3))  # [n, 3]
        self.cov = np.zeros((n, 3, 3))  # [n, 3, 3]
        self.active = np.zeros(n, dtype=bool)  # [n]
        self.rejections = np.zeros(n, dtype=np.int64)  # [n]
        self.meas_var = np.full((n, 3), np.inf)  # [n, 3]
        self._gate = {d: chi2_quantile(config.gate_probability, d) for d in (1, 2, 3)}
        self.active[self.reference] = True

    @property
    def n(self) -> int:
        return int(self.t_s.shape[0])

    # ------------------------------------------------------------------ helpers
    def _idx(self, idx: ArrayLike | None) -> NDArray[np.intp]:
        if idx is None:
            return np.arange(self.n)
        out = np.asarray(idx, dtype=np.intp).reshape(-1)  # [k]
        if out.size and (out.min() < 0 or out.max() >= self.n):
            raise IndexError(f"AP index out of range for {self.n} tracks")
        if np.unique(out).size != out.size:
            raise ValueError("AP indices must be distinct")
        return out

    def _predicted(self, idx: NDArray[np.intp], t_s: float) -> tuple[NDArray, NDArray]:
        """Predicted (mean, cov) of tracks ``idx`` at ``t_s`` (internal units), no mutation."""
        dt = float(t_s) - self.t_s[idx]  # [k]
        if np.any(dt < -1e-12):
            raise ValueError(f"cannot predict backwards (t_s={t_s} < track time {self.t_s[idx].max()})")
        f, q = tracking_transition(np.maximum(dt, 0.0), self.config.noise, self.config.carrier_hz)
        m = np.einsum("kij,kj->ki", f, self.mean[idx])  # [k, 3]
        p = f @ self.cov[idx] @ np.swapaxes(f, -1, -2) + q  # [k, 3, 3]
        is_ref = idx == self.reference  # [k]: relative to itself: zero, exactly
        m[is_ref], p[is_ref] = 0.0, 0.0
        return m, p

    def _advance(self, idx: NDArray[np.intp], t_s: float) -> None:
        m, p = self._predicted(idx, t_s)
        self.mean[idx], self.cov[idx], self.t_s[idx] = m, p, float(t_s)

    # ------------------------------------------------------------------ queries
    def predict(self, t_s: float, idx: ArrayLike | None = None
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Predicted mean and covariance at ``t_s`` in SI units (no state change).

        Returns
        -------
        mean : ndarray (k, 3), float, (s, Hz, rad)
        cov : ndarray (k, 3, 3), float, (s^2, s Hz, ...)
            NaN rows for inactive tracks.
        """
        i = self._idx(idx)
        m, p = self._predicted(i, t_s)
        m = m * _SCALE  # [k, 3]
        p = p * _SCALE[:, None] * _SCALE[None, :]  # [k, 3, 3]
        m[~self.active[i]] = np.nan
        p[~self.active[i]] = np.nan
        return m, p

    def residual_std(self, t_s: float, idx: ArrayLike | None = None) -> NDArray[np.float64]:
        """Predicted std of (TO s, CFO Hz, phase rad) at ``t_s``, (k, 3); NaN if inactive."""
        _, p = self.predict(t_s, idx)
        return np.sqrt(np.diagonal(p, axis1=-2, axis2=-1))

    def phase_std_given_rest(self, t_s: float, idx: ArrayLike | None = None,
                             var: ArrayLike | None = None) -> NDArray[np.float64]:
        """Std of a round's phase innovation at ``t_s`` given its TO and CFO innovations (rad).

        ``1/sqrt((S^-1)_33)`` with ``S = P(t_s) + diag(var)``; it does not depend on the
        measured values, so it tells beforehand whether a round at ``t_s`` can resolve the
        phase ambiguity (it can when this is well below ``pi``).

        Parameters
        ----------
        t_s : float, [s]
        idx : array_like (k,), int, optional (all tracks)
        var : array_like (k, 3), float, optional
            Measurement variances (s^2, Hz^2, rad^2); default each track's last ones.

        Returns
        -------
        ndarray (k,), float, [rad]; inf for inactive tracks (or without variances), 0 for the
        reference.
        """
        i = self._idx(idx)
        _, p = self._predicted(i, t_s)  # [k, 3, 3]
        r = (self.meas_var[i] if var is None
             else np.asarray(var, dtype=float).reshape(i.size, 3) / _SCALE**2)  # [k, 3]
        out = np.full(i.size, np.inf)  # [k]
        ok = self.active[i] & np.isfinite(r).all(axis=1) & (i != self.reference)  # [k]
        if ok.any():
            s = p[ok] + np.einsum("ji,ik->jik", r[ok], np.eye(3))  # [j, 3, 3]
            sr = s[:, :2, :2]  # [j, 2, 2]
            c = s[:, :2, 2]  # [j, 2]
            cond = s[:, 2, 2] - np.einsum("ji,ji->j", c, np.linalg.solve(sr, c[..., None])[..., 0])
            out[ok] = np.sqrt(np.maximum(cond, 0.0))
        out[i == self.reference] = 0.0
        return out

    def phase_std_bound(self, t_s: float, idx: ArrayLike | None = None) -> NDArray[np.float64]:
        """Cheap upper bound of :meth:`phase_std_given_rest` (no 3x3 prediction, no solve).

        The conditional variance is a Schur complement, ``S_33 - c^T S_r^-1 c <= S_33``, and
        ``S_33 = P_33(t_s) + r_3`` with ``P_33(t_s) = P_33 + 2 b P_23 + b^2 P_22 + Q_33``
        (``b = 2 pi dt``, the only non-zero entries of the transition's phase row, eq. T1).
        The sum is padded by ``1e-9`` times the sum of the terms' magnitudes, far above the
        rounding of either evaluation, so ``bound >= phase_std_given_rest`` wherever the
        latter's 2x2 solve keeps any accuracy. Lets a caller that only asks "is every std below
        a threshold" skip the exact evaluation when the bound already is well below it.

        Returns
        -------
        ndarray (k,), float, [rad]; inf for inactive tracks (or without variances), 0 for the
        reference.
        """
        i = self._idx(idx)
        dt = float(t_s) - self.t_s[i]  # [k]
        if np.any(dt < -1e-12):
            raise ValueError(f"cannot predict backwards (t_s={t_s} < track time {self.t_s[i].max()})")
        dt = np.maximum(dt, 0.0)
        nz = self.config.noise
        fc = float(self.config.carrier_hz)
        gc = 2.0 * np.pi * fc
        qxx = nz.white_fm_s2_per_s * dt + nz.random_walk_fm_per_s * dt**3 / 3.0  # [k] s^2
        q33 = 2.0 * (gc * qxx * gc + nz.phase_noise_rad2_per_s * dt)  # [k] rad^2 (relative)
        p = self.cov[i]  # [k, 3, 3]
        b = 2.0 * np.pi * dt  # [k]
        t1, t2, t3 = p[:, 2, 2], 2.0 * b * p[:, 1, 2], b * b * p[:, 1, 1]  # [k] rad^2
        r3 = self.meas_var[i, 2]  # [k]
        with np.errstate(invalid="ignore", over="ignore"):
            var = (t1 + t2 + t3 + q33 + r3
                   + 1e-9 * (np.abs(t1) + np.abs(t2) + np.abs(t3) + q33 + np.abs(r3)))  # [k]
            out = np.sqrt(np.maximum(var, 0.0))
        ok = self.active[i] & np.isfinite(self.meas_var[i]).all(axis=1) & np.isfinite(out)
        out = np.where(ok, out, np.inf)
        out[i == self.reference] = 0.0
        return out

    def _phase_hypothesis(self, nu: NDArray, s: NDArray, w: NDArray | None = None
                          ) -> tuple[NDArray, ...]:
        """Integer phase ambiguity of innovations ``nu`` (j, 3) with covariance ``s`` (j, 3, 3)
        (``w``: ``inv(s)`` if the caller has it).

        Returns, per row (j,): the most likely integer ``n_b``, its posterior probability among
        the hypotheses ``nu + 2 pi n e_3`` (eq. T4), the posterior mean and variance of
        ``n - n_b``, and the std of the phase innovation given the other two components.
        """
        w = np.linalg.inv(s) if w is None else w  # [j, 3, 3]
        w33 = w[:, 2, 2]  # [j]
        b = np.einsum("ji,ji->j", w[:, 2, :], nu)  # [j]: (S^-1 nu)_3
        n_star = -b / (2.0 * np.pi * w33)  # [j] continuous minimiser of q(n)
        cand = np.round(n_star)[:, None] + np.arange(-6, 7)[None, :]  # [j, 13]
        # q(n) - q(0) = 4 pi n b + 4 pi^2 n^2 w33
        dq = 4.0 * np.pi * cand * b[:, None] + 4.0 * np.pi**2 * cand**2 * w33[:, None]  # [j, 13]
        pw = np.exp(-0.5 * (dq - dq.min(axis=1, keepdims=True)))  # [j, 13]
        pw /= pw.sum(axis=1, keepdims=True)
        best = np.argmax(pw, axis=1)  # [j]
        rows = np.arange(cand.shape[0])
        p_b = pw[rows, best].copy()  # [j]
        # prune hypotheses below 1 - phase_lock_probability (a Gaussian-sum filter's pruning):
        # a 1e-4 weight 1/gap away would otherwise inflate the CFO variance tenfold; the rare
        # wrong integer this leaves is caught by the gate at the next rounds
        pw = np.where(pw >= 1.0 - self.config.phase_lock_probability, pw, 0.0)
        pw[rows, best] = np.maximum(pw[rows, best], 1e-300)
        pw /= pw.sum(axis=1, keepdims=True)
        n_b = cand[rows, best]  # [j]
        d = cand - n_b[:, None]  # [j, 13]
        d_mean = np.sum(pw * d, axis=1)  # [j]
        d_var = np.maximum(np.sum(pw * d**2, axis=1) - d_mean**2, 0.0)  # [j]
        return n_b, p_b, d_mean, d_var, 1.0 / np.sqrt(w33)

    # ------------------------------------------------------------------ mutation
    def reset(self, idx: ArrayLike | None = None) -> None:
        """Forget tracks (outage, recovery): the next measurement re-initialises them."""
        i = self._idx(idx)
        self.active[i] = False
        self.mean[i] = 0.0
        self.cov[i] = 0.0
        self.rejections[i] = 0
        self.meas_var[i] = np.inf
        self.active[self.reference] = True

    def update(self, idx: ArrayLike, t_s: float, z: ArrayLike, var: ArrayLike,
               acquisition: bool = False) -> TrackUpdate:
        """Fuse one round's measurements of tracks ``idx`` taken at ``t_s``.

        Parameters
        ----------
        idx : array_like (k,), int
            Distinct AP indices.
        t_s : float, [s]
            Measurement time (not earlier than any of the tracks' times).
        z : array_like (k, 3), float
            Measured (TO s, CFO Hz, phase rad) relative to the reference.
        var : array_like (k, 3), float
            Measurement variances (s^2, Hz^2, rad^2), > 0 and finite.
        acquisition : bool, default False
            An acquisition round (shortly after the previous one): the phase is used up to
            ``acquisition_lock_std_rad`` instead of ``phase_lock_std_rad``.

        Returns
        -------
        TrackUpdate
        """
        i = self._idx(idx)
        if np.any(i == self.reference):
            raise ValueError(f"AP {self.reference} is the reference: it is not measured")
        k = i.size
        zz = np.asarray(z, dtype=float).reshape(k, 3) / _SCALE  # [k, 3]
        rr = np.asarray(var, dtype=float).reshape(k, 3) / _SCALE**2  # [k, 3]
        if not (np.all(np.isfinite(zz)) and np.all(np.isfinite(rr)) and np.all(rr > 0)):
            raise ValueError("measurements must be finite with finite variances > 0")
        out = dict(accepted=np.zeros(k, bool), initialized=np.zeros(k, bool),
                   gated=np.zeros(k, bool), nis=np.full(k, np.nan),
                   dof=np.zeros(k, np.int64), phase_used=np.zeros(k, bool),
                   integer_probability=np.full(k, np.nan), integer=np.full(k, np.nan))
        new = ~self.active[i]  # [k]
        old = ~new
        if old.any():
            io = i[old]
            m, p = self._predicted(io, t_s)  # [j, 3], [j, 3, 3]
            r = rr[old]  # [j, 3]
            nu = zz[old] - m  # [j, 3]
            nu[:, 2] = wrap_phase(nu[:, 2])
            rmat = np.einsum("ji,ik->jik", r, np.eye(3))  # [j, 3, 3] diag(r), exact
            s = p + rmat  # [j, 3, 3]
            w = np.linalg.inv(s)  # [j, 3, 3]
            # integer phase ambiguity (eq. T4): the wrapped phase gives a mixture over the
            # hypotheses nu + 2 pi n e_3; it is collapsed to its exact mean and covariance
            n_best, p_best, dn_mean, dn_var, std_c = self._phase_hypothesis(nu, s, w)  # [j] x 5
            lock_std = (self.config.acquisition_lock_std_rad if acquisition
                        else self.config.phase_lock_std_rad)
            use = std_c < lock_std  # [j]: deterministic given S (no selection on nu)
            nu[use, 2] += 2.0 * np.pi * n_best[use]
            # NIS with the phase where its conditional std is small (no selection on nu), else
            # on (TO, CFO) alone
            gph = use & (std_c < self.config.phase_gate_std_rad)  # [j]
            dof = np.where(gph, 3, 2)  # [j]
            nis3 = np.einsum("ji,jik,jk->j", nu, w, nu)
            nu2 = nu[:, :2]
            if gph.all():  # the usual case: the (TO, CFO) NIS would not be used
                nis = nis3  # [j]
            else:
                nis2 = np.einsum("ji,ji->j", nu2,
                                 np.linalg.solve(s[:, :2, :2], nu2[..., None])[..., 0])
                nis = np.where(gph, nis3, nis2)  # [j]
            thr = np.where(gph, self._gate[3], self._gate[2])  # [j]
            ok = nis <= thr  # [j]
            # phase used: full 3-component update K = P S^-1 (Joseph form) of the best
            # hypothesis, plus the spread of the other hypotheses along K e_3 - e_3 (a 2 pi
            # phase shift is the same phase, so only the TO and CFO means move by 2 pi K e_3)
            gain = p @ w  # [j, 3, 3]
            ikh = np.eye(3) - gain  # [j, 3, 3]
            p_full = ikh @ p @ np.swapaxes(ikh, -1, -2) + gain @ rmat @ np.swapaxes(gain, -1, -2)
            k3 = gain[:, :, 2].copy()  # [j, 3]
            k3[:, 2] -= 1.0
            m_full = m + np.einsum("jik,jk->ji", gain, nu) + 2.0 * np.pi * dn_mean[:, None] * k3
            p_full += (2.0 * np.pi) ** 2 * dn_var[:, None, None] * np.einsum("ji,jk->jik", k3, k3)
            if use.all():  # the usual case once locked: no row takes the two-component update
                m_new, p_new = m_full, p_full
            else:
                # phase not used (conditional std too large: the circle carries no information
                # on the CFO): TO and CFO update, phase restarted from the measurement
                g2 = np.swapaxes(np.linalg.solve(s[:, :2, :2], np.swapaxes(p[:, :, :2], -1, -2)),
                                 -1, -2)  # [j, 3, 2]
                m_two = m + np.einsum("jik,jk->ji", g2, nu2)  # [j, 3]
                ikh2 = np.eye(3) - np.concatenate([g2, np.zeros((io.size, 3, 1))], axis=2)
                p_two = (ikh2 @ p @ np.swapaxes(ikh2, -1, -2)
                         + g2 @ rmat[:, :2, :2] @ np.swapaxes(g2, -1, -2))  # [j, 3, 3]
                m_two[:, 2] = zz[old][:, 2]
                p_two[:, 2, :] = 0.0
                p_two[:, :, 2] = 0.0
                p_two[:, 2, 2] = r[:, 2]
                m_new = np.where(use[:, None], m_full, m_two)  # [j, 3]
                p_new = np.where(use[:, None, None], p_full, p_two)  # [j, 3, 3]
            m_new[:, 2] = wrap_phase(m_new[:, 2])
            lock = use & (p_best >= self.config.phase_lock_probability)  # [j] (diagnostic)
            # gated measurements: coast on the prediction
            rej = ~ok
            m_new[rej], p_new[rej] = m[rej], p[rej]
            self.mean[io] = m_new
            self.cov[io] = 0.5 * (p_new + np.swapaxes(p_new, -1, -2))
            self.t_s[io] = float(t_s)
            self.meas_var[io] = r
            self.rejections[io] = np.where(ok, 0, self.rejections[io] + 1)
            out["accepted"][old] = ok
            out["gated"][old] = rej
            out["nis"][old] = nis
            out["dof"][old] = dof
            out["phase_used"][old] = lock & ok
            out["integer_probability"][old] = np.where(use, p_best, np.nan)
            out["integer"][old] = np.where(use, n_best, np.nan)
            # too many rejections in a row: the track is the outlier, restart it
            restart = np.zeros(k, bool)
            restart[np.flatnonzero(old)[self.rejections[io] >= self.config.max_rejections]] = True
            new = new | restart
            out["accepted"][restart] = False
        if new.any():
            ini = i[new]
            self.mean[ini] = zz[new]
            self.mean[ini, 2] = wrap_phase(self.mean[ini, 2])
            self.cov[ini] = np.einsum("ji,ik->jik", rr[new], np.eye(3))
            self.meas_var[ini] = rr[new]
            self.t_s[ini] = float(t_s)
            self.active[ini] = True
            self.rejections[ini] = 0
            out["initialized"][new] = True
        return TrackUpdate(**out)

    def correct(self, idx: ArrayLike, t_s: float) -> NDArray[np.float64]:
        """Correction to apply at ``t_s`` (when it reaches the AP): the predicted state.

        The tracks are advanced to ``t_s`` and their mean set to zero (the known control input
        is removed from the state); their covariance becomes that of the residual.

        Parameters
        ----------
        idx : array_like (k,), int
            Active tracks to correct.
        t_s : float, [s]

        Returns
        -------
        ndarray (k, 3), float, (TO s, CFO Hz, phase rad)
            The offsets to subtract from the APs' oscillators at ``t_s``.
        """
        i = self._idx(idx)
        if not self.active[i].all():
            raise ValueError("correct() needs active tracks")
        self._advance(i, t_s)
        u = self.mean[i] * _SCALE  # [k, 3]
        self.mean[i] = 0.0
        return u

    def rereference(self, new_ref: int) -> None:
        """Express every track relative to AP ``new_ref`` (a re-plan changed the reference).

        ``s_i <- s_i - s_ref``; the covariance becomes ``P_i + P_ref`` (the cross-covariance
        through the old reference's noise is positive, so this over-bounds). The new reference's
        own track becomes exactly zero. If ``new_ref`` has no active track every track is reset.
        """
        r = int(new_ref)
        if not 0 <= r < self.n:
            raise IndexError(f"reference {r} out of range for {self.n} tracks")
        if r == self.reference:
            return
        if not self.active[r]:
            self.reference = r
            self.reset()
            return
        act = np.flatnonzero(self.active)
        t = float(self.t_s[act].max())
        self._advance(act, t)
        m_r, p_r = self.mean[r].copy(), self.cov[r].copy()
        self.mean[act] -= m_r
        self.mean[act, 2] = wrap_phase(self.mean[act, 2])
        self.cov[act] += p_r
        self.mean[r] = 0.0
        self.cov[r] = 0.0
        self.reference = r
