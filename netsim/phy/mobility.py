"""User mobility models in a rectangular area ``[0, width] x [0, height]`` (metres).

Every model answers ``position(t_s)``, ``velocity(t_s)`` and ``speed_mps(t_s)``. Models
are meant to be queried at non-decreasing times (the simulator's clock); the
closed-form ones (static, constant velocity, trajectory) accept any time. Random
models own their own :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "ConstantVelocityMobility",
    "MobilityModel",
    "RandomWaypointMobility",
    "StaticMobility",
    "TrajectoryMobility",
    "load_trajectories",
    "waypoint_peek_times",
]


class MobilityModel(Protocol):
    """Common interface of the mobility models."""

    def position(self, t_s: float) -> NDArray[np.float64]: ...

    def velocity(self, t_s: float) -> NDArray[np.float64]: ...

    def speed_mps(self, t_s: float) -> float: ...

    def peek(self, t_s: float) -> tuple[NDArray[np.float64], float] | None:
        """``(position(t_s), speed_mps(t_s))`` without changing the model's state, or None
        when that would need new random draws (a random waypoint's next leg)."""
        ...


def _point(p: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.array(p, dtype=float).reshape(-1)
    if a.shape != (2,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a finite 2-vector, got {p!r}")
    return a


def _check_inside(p: NDArray[np.float64], width_m: float, height_m: float, name: str) -> None:
    if not (np.isfinite(width_m) and np.isfinite(height_m)) or width_m <= 0 or height_m <= 0:
        raise ValueError(f"area must have width_m > 0 and height_m > 0, got {width_m} x {height_m}")
    if not (0 <= p[0] <= width_m and 0 <= p[1] <= height_m):
        raise ValueError(f"{name} {p.tolist()} is outside the area [0,{width_m}]x[0,{height_m}]")


class StaticMobility:
    """A user that does not move.

    Parameters
    ----------
    position_m : array_like (2,), [m]
    """

    def __init__(self, position_m: ArrayLike) -> None:
        self._p = _point(position_m, "position_m")

    def position(self, t_s: float) -> NDArray[np.float64]:
        return self._p.copy()

    def velocity(self, t_s: float) -> NDArray[np.float64]:
        return np.zeros(2)

    def speed_mps(self, t_s: float) -> float:
        return 0.0

    def peek(self, t_s: float) -> tuple[NDArray[np.float64], float]:
        return self._p.copy(), 0.0


class ConstantVelocityMobility:
    """Straight-line motion with specular reflection at the area's walls.

    Closed form over any time: each coordinate is the free motion ``s = s0 + v (t - t0)``
    folded into ``[0, L]`` with period ``2 L`` (``u = s mod 2L``; position ``u`` if
    ``u <= L`` else ``2L - u``), which is exactly the billiard path for any number of
    bounces. The velocity component flips sign on the reflected half-period.

    Parameters
    ----------
    position_m : array_like (2,), [m], inside the area
        Position at ``t0_s``.
    velocity_mps : array_like (2,), [m/s]
        Velocity at ``t0_s``.
    width_m, height_m : float, [m]
    t0_s : float, default 0
    """

    def __init__(
        self,
        position_m: ArrayLike,
        velocity_mps: ArrayLike,
        width_m: float,
        height_m: float,
        t0_s: float = 0.0,
    ) -> None:
        self._p0 = _point(position_m, "position_m")
        self._v = _point(velocity_mps, "velocity_mps")
        _check_inside(self._p0, width_m, height_m, "position_m")
        self._size = np.array([width_m, height_m], dtype=float)
        self._t0 = float(t0_s)

    def _fold(self, t_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        s = self._p0 + self._v * (float(t_s) - self._t0)  # [2] unfolded
        period = 2.0 * self._size
        u = np.mod(s, period)  # [2] in [0, 2L)
        forward = u <= self._size  # [2]
        pos = np.where(forward, u, period - u)
        return np.clip(pos, 0.0, self._size), np.where(forward, 1.0, -1.0)

    def position(self, t_s: float) -> NDArray[np.float64]:
        return self._fold(t_s)[0]

    def velocity(self, t_s: float) -> NDArray[np.float64]:
        return self._fold(t_s)[1] * self._v

    def speed_mps(self, t_s: float) -> float:
        return float(np.hypot(*self._v))

    def peek(self, t_s: float) -> tuple[NDArray[np.float64], float]:
        return self.position(t_s), self.speed_mps(t_s)  # closed form: no state


class RandomWaypointMobility:
    """Random waypoint: move at a uniform random speed to a uniform random waypoint,
    pause, repeat.

    Each leg draws the waypoint uniformly in the area and the speed uniformly in
    ``speed_range_mps``; after arriving the user rests ``pause_s`` seconds. Queries must
    not go back before the start of the current leg (ValueError).

    Parameters
    ----------
    position_m : array_like (2,), [m], inside the area
        Start position at ``t0_s``.
    width_m, height_m : float, [m]
    speed_range_mps : (float, float), [m/s], 0 < min <= max
    pause_s : float, [s], >= 0
    rng : numpy.random.Generator
    t0_s : float, default 0
    """

    def __init__(
        self,
        position_m: ArrayLike,
        width_m: float,
        height_m: float,
        speed_range_mps: tuple[float, float],
        pause_s: float,
        rng: np.random.Generator,
        t0_s: float = 0.0,
    ) -> None:
        p0 = _point(position_m, "position_m")
        _check_inside(p0, width_m, height_m, "position_m")
        vmin, vmax = (float(v) for v in speed_range_mps)
        if not (0 < vmin <= vmax < np.inf):
            raise ValueError(f"speed_range_mps must satisfy 0 < min <= max, got {speed_range_mps}")
        if not (0 <= pause_s < np.inf):
            raise ValueError(f"pause_s must be finite and >= 0, got {pause_s}")
        self._size = np.array([width_m, height_m], dtype=float)
        self._vrange = (vmin, vmax)
        self._pause = float(pause_s)
        self._rng = rng
        self._new_leg(p0, float(t0_s))

    def _new_leg(self, start: NDArray[np.float64], t_start: float) -> None:
        dest = self._rng.random(2) * self._size  # [2]
        speed = float(self._rng.uniform(*self._vrange))
        dist = float(np.hypot(*(dest - start)))
        self._start, self._dest, self._speed = start, dest, speed
        self._t_start = t_start
        self._t_arrive = t_start + dist / speed
        self._t_end = self._t_arrive + self._pause
        self._dir = (dest - start) / dist if dist > 0 else np.zeros(2)
        # the same quantities as Python floats: position() is called every subframe, and
        # scalar arithmetic (the same operations, in the same order) is bit-identical and
        # several times cheaper than on (2,) arrays
        self._leg = (float(start[0]), float(start[1]), float(self._dir[0] * speed),
                     float(self._dir[1] * speed), float(self._size[0]), float(self._size[1]))
        self._leg_speed = float(np.hypot(*(self._dir * speed)))

    def _advance(self, t_s: float) -> None:
        t = float(t_s)
        if t < self._t_start:
            raise ValueError(
                f"RandomWaypointMobility queried at t={t} before the current leg ({self._t_start})"
            )
        while t >= self._t_end:
            t_prev = self._t_end
            self._new_leg(self._dest.copy(), self._t_end)
            if self._t_end <= t_prev:  # a leg shorter than the float resolution of t
                raise RuntimeError(
                    f"random waypoint legs no longer advance time at t={t_prev} s; "
                    "use a larger area, lower speeds or a pause"
                )

    def position(self, t_s: float) -> NDArray[np.float64]:
        if t_s >= self._t_end or t_s < self._t_start:
            self._advance(t_s)
        if t_s >= self._t_arrive:
            return self._dest.copy()
        x0, y0, vx, vy, w, h = self._leg
        dt = float(t_s) - self._t_start
        # start + (dir speed) dt, clipped to the area
        return np.array([min(max(x0 + vx * dt, 0.0), w), min(max(y0 + vy * dt, 0.0), h)])

    def velocity(self, t_s: float) -> NDArray[np.float64]:
        self._advance(t_s)
        if t_s >= self._t_arrive:
            return np.zeros(2)
        return self._dir * self._speed

    def speed_mps(self, t_s: float) -> float:
        if t_s >= self._t_end or t_s < self._t_start:
            self._advance(t_s)
        return 0.0 if t_s >= self._t_arrive else self._leg_speed

    def peek(self, t_s: float) -> tuple[NDArray[np.float64], float] | None:
        if t_s >= self._t_end or t_s < self._t_start:
            return None  # another leg (new draws) or before this one
        return self.position(t_s), self.speed_mps(t_s)  # within the leg: no state change

    def peek_times(self, times_s: ArrayLike
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """:meth:`peek` at several times (T,) at once: positions (T, 2) and speeds (T,), or
        None when one of them is outside the current leg. The same operations as
        :meth:`position` element by element, hence the same bits."""
        t = np.asarray(times_s, dtype=float)  # [T]
        if t.size == 0 or t.max() >= self._t_end or t.min() < self._t_start:
            return None
        x0, y0, vx, vy, w, h = self._leg
        dt = t - self._t_start  # [T]
        pos = np.empty((t.size, 2))  # [T, 2]
        pos[:, 0] = np.minimum(np.maximum(x0 + vx * dt, 0.0), w)
        pos[:, 1] = np.minimum(np.maximum(y0 + vy * dt, 0.0), h)
        arrived = t >= self._t_arrive  # [T]
        pos[arrived] = self._dest
        return pos, np.where(arrived, 0.0, self._leg_speed)


def waypoint_peek_times(models: list[RandomWaypointMobility], times_s: ArrayLike
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """:meth:`RandomWaypointMobility.peek_times` of several users at once.

    Parameters
    ----------
    models : list of RandomWaypointMobility (K,)
    times_s : array_like (T,), [s]

    Returns
    -------
    positions : ndarray (T, K, 2), float64, [m]
    speeds : ndarray (T, K), float64, [m/s]
        Or None when a time lies outside some user's current leg (its next leg needs new
        random draws: query that user with :meth:`~RandomWaypointMobility.position`).

    The legs' constants are gathered into (K,) arrays and every entry gets the operations of
    :meth:`~RandomWaypointMobility.peek_times` (hence of ``position``) in the same order, so the
    values are bit-identical to one ``peek_times`` call per user; the per-user calls cost a
    dozen small numpy operations each.
    """
    t = np.asarray(times_s, dtype=float)  # [T]
    if t.size == 0 or not models:
        return None
    # per user: x0, y0, vx, vy, width, height, leg start, arrival, leg end, dest x, dest y, speed
    leg = np.array([(*m._leg, m._t_start, m._t_arrive, m._t_end, m._dest[0], m._dest[1],
                     m._leg_speed) for m in models]).T  # [12, K]
    x0, y0, vx, vy, w, h, t_start, t_arrive, t_end, dest_x, dest_y, speed = leg  # [K] each
    if t.max() >= t_end.min() or t.min() < t_start.max():
        return None
    dt = t[:, None] - t_start  # [T, K]
    pos = np.empty((t.size, len(models), 2))  # [T, K, 2]
    pos[..., 0] = np.minimum(np.maximum(x0 + vx * dt, 0.0), w)
    pos[..., 1] = np.minimum(np.maximum(y0 + vy * dt, 0.0), h)
    arrived = t[:, None] >= t_arrive  # [T, K]
    if arrived.any():
        pos[..., 0] = np.where(arrived, dest_x, pos[..., 0])
        pos[..., 1] = np.where(arrived, dest_y, pos[..., 1])
    return pos, np.where(arrived, 0.0, speed)


class TrajectoryMobility:
    """Piecewise-linear trajectory through given knots, clamped outside its time span.

    Parameters
    ----------
    times_s : array_like (T,), [s], strictly increasing
    positions_m : array_like (T, 2), [m]
    """

    def __init__(self, times_s: ArrayLike, positions_m: ArrayLike) -> None:
        t = np.array(times_s, dtype=float).reshape(-1)  # [T]
        p = np.array(positions_m, dtype=float)  # [T, 2]
        if t.size == 0 or p.shape != (t.size, 2):
            raise ValueError(f"need T >= 1 times and (T, 2) positions, got {t.shape}, {p.shape}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
            raise ValueError("times and positions must be finite")
        if np.any(np.diff(t) <= 0):
            k = int(np.argmax(np.diff(t) <= 0))
            raise ValueError(f"times_s must be strictly increasing (t[{k}]={t[k]}, t[{k + 1}]={t[k + 1]})")
        self._t, self._p = t, p

    @property
    def times_s(self) -> NDArray[np.float64]:
        return self._t.copy()

    @property
    def positions_m(self) -> NDArray[np.float64]:
        return self._p.copy()

    def position(self, t_s: float) -> NDArray[np.float64]:
        t = float(t_s)
        return np.array([np.interp(t, self._t, self._p[:, 0]), np.interp(t, self._t, self._p[:, 1])])

    def velocity(self, t_s: float) -> NDArray[np.float64]:
        """Slope of the segment containing ``t_s`` (right-continuous); 0 outside the span."""
        t = float(t_s)
        if self._t.size < 2 or t < self._t[0] or t >= self._t[-1]:
            return np.zeros(2)
        k = int(np.searchsorted(self._t, t, side="right")) - 1
        return (self._p[k + 1] - self._p[k]) / (self._t[k + 1] - self._t[k])

    def speed_mps(self, t_s: float) -> float:
        return float(np.hypot(*self.velocity(t_s)))

    def peek(self, t_s: float) -> tuple[NDArray[np.float64], float]:
        return self.position(t_s), self.speed_mps(t_s)  # closed form: no state


def load_trajectories(
    path: str | os.PathLike[str],
    width_m: float | None = None,
    height_m: float | None = None,
) -> dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Read user trajectories from a CSV with header ``t_s,user,x_m,y_m``.

    Rows of one user must have strictly increasing ``t_s`` in file order. If both
    ``width_m`` and ``height_m`` are given, every point must lie in the area.

    Returns
    -------
    dict user -> (times_s (T,) [s], positions_m (T, 2) [m]), users in ascending order.

    Raises
    ------
    ValueError
        Missing columns, non-numeric values, non-monotone times or points outside the area
        (the message names the file, the user and the row).
    """
    import pandas as pd

    df = pd.read_csv(path, skipinitialspace=True)
    df.columns = [str(c).strip() for c in df.columns]
    required = ["t_s", "user", "x_m", "y_m"]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected header t_s,user,x_m,y_m, got {list(df.columns)}"
        )
    try:
        t = df["t_s"].to_numpy(dtype=float)
        x = df["x_m"].to_numpy(dtype=float)
        y = df["y_m"].to_numpy(dtype=float)
        u_f = df["user"].to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: non-numeric value ({exc})") from exc
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"{path}: t_s, x_m and y_m must be finite numbers")
    if np.any(u_f != np.round(u_f)):
        raise ValueError(f"{path}: user ids must be integers")
    users = u_f.astype(int)
    if width_m is not None and height_m is not None:
        bad = (x < 0) | (x > width_m) | (y < 0) | (y > height_m)
        if np.any(bad):
            k = int(np.argmax(bad))
            raise ValueError(
                f"{path}: row {k + 2} (user {users[k]}, t_s={t[k]}) point ({x[k]}, {y[k]}) is "
                f"outside the area [0,{width_m}]x[0,{height_m}]"
            )
    out: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for uid in np.unique(users):
        rows = np.flatnonzero(users == uid)
        tu = t[rows]
        dec = np.diff(tu) <= 0
        if np.any(dec):
            k = int(np.argmax(dec))
            raise ValueError(
                f"{path}: time of user {uid} is not strictly increasing at row {rows[k + 1] + 2} "
                f"(t_s={tu[k + 1]} after {tu[k]})"
            )
        out[int(uid)] = (tu.copy(), np.stack([x[rows], y[rows]], axis=-1))
    return out
