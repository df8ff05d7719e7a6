"""Tests of the user mobility models (netsim.phy.mobility)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netsim.phy.mobility import (
    ConstantVelocityMobility,
    RandomWaypointMobility,
    StaticMobility,
    TrajectoryMobility,
    load_trajectories,
    waypoint_peek_times,
)

sizes = st.floats(1.0, 500.0)
fractions = st.floats(0.0, 1.0)
speeds = st.floats(-50.0, 50.0, allow_subnormal=False)


def _reflect_oracle(x0: float, v: float, length: float, t: float) -> tuple[float, float]:
    """Slow oracle: walk the 1-D billiard from wall to wall."""
    x, remaining = x0, t
    while remaining > 0 and abs(v) > 1e-12:  # slower moves stay below the test tolerance
        to_wall = ((length - x) / v) if v > 0 else (x / -v)
        if to_wall >= remaining:
            x += v * remaining
            break
        x = length if v > 0 else 0.0
        remaining -= to_wall
        v = -v
    return x, v


def test_static() -> None:
    m = StaticMobility([3.0, 4.0])
    np.testing.assert_array_equal(m.position(100.0), [3.0, 4.0])
    np.testing.assert_array_equal(m.velocity(1.0), [0.0, 0.0])
    assert m.speed_mps(2.0) == 0.0


def test_constant_velocity_without_walls_moves_exactly_vt() -> None:
    p0, v = np.array([500.0, 400.0]), np.array([1.5, -2.25])
    m = ConstantVelocityMobility(p0, v, 1e4, 1e4)
    for t in (0.0, 0.5, 3.0, 100.0):
        np.testing.assert_allclose(m.position(t), p0 + v * t, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(m.velocity(t), v)
    assert m.speed_mps(7.0) == pytest.approx(np.hypot(1.5, 2.25))


def test_constant_velocity_bounce_example() -> None:
    # x: 1 + 3*5 = 16 unfolded in [0, 10] -> reflected to 4, moving left.
    m = ConstantVelocityMobility([1.0, 2.0], [3.0, 0.0], 10.0, 5.0)
    np.testing.assert_allclose(m.position(5.0), [4.0, 2.0])
    np.testing.assert_allclose(m.velocity(5.0), [-3.0, 0.0])
    # many bounces: 1 + 3*1000 = 3001 -> 3001 mod 20 = 1 -> 1, moving right
    np.testing.assert_allclose(m.position(1000.0), [1.0, 2.0], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(w=sizes, h=sizes, fx=fractions, fy=fractions, vx=speeds, vy=speeds,
       t=st.floats(0.0, 1e4))
def test_constant_velocity_stays_inside_and_matches_billiard_oracle(
    w: float, h: float, fx: float, fy: float, vx: float, vy: float, t: float
) -> None:
    p0 = np.array([fx * w, fy * h])
    m = ConstantVelocityMobility(p0, [vx, vy], w, h)
    p = m.position(t)
    assert 0.0 <= p[0] <= w and 0.0 <= p[1] <= h
    # oracle only where the number of bounces stays small
    if abs(vx) * t < 50 * w and abs(vy) * t < 50 * h:
        ox, ovx = _reflect_oracle(p0[0], vx, w, t)
        oy, ovy = _reflect_oracle(p0[1], vy, h, t)
        np.testing.assert_allclose(p, [ox, oy], atol=1e-7 * (1 + abs(vx * t) + abs(vy * t)))
        vel = m.velocity(t)
        for got, want, pos, length in ((vel[0], ovx, ox, w), (vel[1], ovy, oy, h)):
            # direction is ambiguous only when sitting exactly on a wall
            if 1e-6 < pos < length - 1e-6:
                assert got == pytest.approx(want)


def test_constant_velocity_rejects_start_outside() -> None:
    with pytest.raises(ValueError, match="outside"):
        ConstantVelocityMobility([11.0, 1.0], [0.0, 0.0], 10.0, 10.0)


@settings(max_examples=40, deadline=None)
@given(w=sizes, h=sizes, fx=fractions, fy=fractions, seed=st.integers(0, 2**32 - 1),
       vmin=st.floats(0.1, 5.0), extra=st.floats(0.0, 20.0), pause=st.floats(0.0, 10.0),
       dts=st.lists(st.floats(0.0, 200.0), min_size=1, max_size=30))
def test_random_waypoint_stays_inside(
    w: float, h: float, fx: float, fy: float, seed: int, vmin: float, extra: float,
    pause: float, dts: list[float],
) -> None:
    m = RandomWaypointMobility([fx * w, fy * h], w, h, (vmin, vmin + extra), pause,
                               np.random.default_rng(seed))
    t = 0.0
    for dt in dts:
        t += dt
        p = m.position(t)
        assert 0.0 <= p[0] <= w and 0.0 <= p[1] <= h
        s = m.speed_mps(t)
        assert s == 0.0 or vmin * (1 - 1e-12) <= s <= (vmin + extra) * (1 + 1e-12)


def test_random_waypoint_reproducible_and_continuous() -> None:
    times = np.linspace(0.0, 300.0, 3001)

    def run(seed: int) -> np.ndarray:
        m = RandomWaypointMobility([10.0, 10.0], 50.0, 30.0, (1.0, 3.0), 2.0,
                                   np.random.default_rng(seed))
        return np.array([m.position(t) for t in times])

    a, b, c = run(17), run(17), run(18)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # continuity: no jump larger than max speed * dt
    steps = np.linalg.norm(np.diff(a, axis=0), axis=1)
    assert steps.max() <= 3.0 * 0.1 + 1e-9
    # it actually moves and pauses
    assert steps.max() > 0.05
    assert np.sum(steps == 0.0) > 0


def test_random_waypoint_velocity_integrates_to_position() -> None:
    m = RandomWaypointMobility([5.0, 5.0], 20.0, 20.0, (0.5, 2.0), 1.0, np.random.default_rng(3))
    dt = 0.01
    t = np.arange(0.0, 60.0, dt)
    pos = np.array([m.position(ti) for ti in t])
    m2 = RandomWaypointMobility([5.0, 5.0], 20.0, 20.0, (0.5, 2.0), 1.0, np.random.default_rng(3))
    vel = np.array([m2.velocity(ti) for ti in t])
    integ = pos[0] + np.concatenate([[np.zeros(2)], np.cumsum(vel[:-1] * dt, axis=0)])
    # Riemann-sum error: at most one step of max speed per leg change
    assert np.max(np.linalg.norm(integ - pos, axis=1)) < 0.5


def test_random_waypoint_rejects_going_back_before_leg() -> None:
    m = RandomWaypointMobility([1.0, 1.0], 10.0, 10.0, (1.0, 1.0), 0.0, np.random.default_rng(0))
    m.position(100.0)
    with pytest.raises(ValueError):
        m.position(0.0)
    with pytest.raises(ValueError):
        RandomWaypointMobility([1.0, 1.0], 10.0, 10.0, (0.0, 1.0), 0.0, np.random.default_rng(0))


def test_trajectory_exact_at_knots_and_midpoints_and_clamped() -> None:
    t = np.array([0.0, 1.0, 3.0, 4.0])
    p = np.array([[0.0, 0.0], [2.0, 1.0], [2.0, 5.0], [0.0, 5.0]])
    m = TrajectoryMobility(t, p)
    for ti, pi in zip(t, p, strict=True):
        np.testing.assert_array_equal(m.position(ti), pi)
    for k in range(3):
        np.testing.assert_allclose(m.position(0.5 * (t[k] + t[k + 1])), 0.5 * (p[k] + p[k + 1]))
        np.testing.assert_allclose(m.velocity(0.25 * t[k] + 0.75 * t[k + 1]),
                                   (p[k + 1] - p[k]) / (t[k + 1] - t[k]))
    np.testing.assert_array_equal(m.position(-5.0), p[0])
    np.testing.assert_array_equal(m.position(50.0), p[-1])
    np.testing.assert_array_equal(m.velocity(50.0), [0.0, 0.0])
    assert m.speed_mps(2.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        TrajectoryMobility([0.0, 2.0, 1.0], np.zeros((3, 2)))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "traj.csv"
    path.write_text(text)
    return path


def test_load_trajectories_roundtrip(tmp_path: Path) -> None:
    path = _write(tmp_path, "t_s,user,x_m,y_m\n0,1,0,0\n0,0,5,5\n1,1,1,2\n2,0,6,5\n3,1,2,2\n")
    traj = load_trajectories(path, width_m=10.0, height_m=10.0)
    assert sorted(traj) == [0, 1]
    np.testing.assert_array_equal(traj[1][0], [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(traj[1][1], [[0, 0], [1, 2], [2, 2]])
    np.testing.assert_array_equal(traj[0][1], [[5, 5], [6, 5]])
    m = TrajectoryMobility(*traj[1])
    np.testing.assert_allclose(m.position(2.0), [1.5, 2.0])


def test_load_trajectories_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing column"):
        load_trajectories(_write(tmp_path, "t_s,user,x_m\n0,0,1\n"))
    with pytest.raises(ValueError, match="not strictly increasing"):
        load_trajectories(_write(tmp_path, "t_s,user,x_m,y_m\n0,0,1,1\n2,0,1,1\n1,0,1,1\n"))
    with pytest.raises(ValueError, match="outside the area"):
        load_trajectories(_write(tmp_path, "t_s,user,x_m,y_m\n0,0,1,1\n1,0,11,1\n"), 10.0, 10.0)
    # without an area, the same file loads
    assert 0 in load_trajectories(_write(tmp_path, "t_s,user,x_m,y_m\n0,0,1,1\n1,0,11,1\n"))


def test_random_waypoint_scalar_path_matches_array_formula() -> None:
    """position()/speed_mps() (Python floats per leg) equal the (2,)-array formula bit for bit
    over many legs, pauses included (the array formula is the oracle)."""
    from netsim.phy.mobility import RandomWaypointMobility

    rng = np.random.default_rng(4)
    m = RandomWaypointMobility([3.0, 4.0], 20.0, 10.0, (0.5, 3.0), 0.7, rng)
    for t in np.cumsum(rng.uniform(0, 0.4, 400)):
        p = m.position(t)
        if t >= m._t_arrive:
            want = m._dest
        else:
            want = np.clip(m._start + m._dir * m._speed * (float(t) - m._t_start), 0.0, m._size)
        assert np.array_equal(p, want)
        v = 0.0 if t >= m._t_arrive else float(np.hypot(*(m._dir * m._speed)))
        assert m.speed_mps(t) == v


def test_peek_times_equals_peek_one_by_one() -> None:
    """RandomWaypointMobility.peek_times (the engine's per-frame batch) gives the bits of one
    peek per time, through moving, arrival and pause, and refuses times off the current leg."""
    for seed in range(5):
        model = RandomWaypointMobility([3.0, 4.0], 10.0, 8.0, (2.0, 5.0), 0.3,
                                       np.random.default_rng(seed))
        t = 0.0
        for _ in range(40):
            times = list(t + np.sort(np.random.default_rng(seed).uniform(0, 0.05, 7)))
            many = model.peek_times(times)
            single = [model.peek(x) for x in times]
            if any(v is None for v in single):
                assert many is None
                model.position(times[-1])  # move on to the next leg
            else:
                pos, speed = many
                np.testing.assert_array_equal(pos, np.array([p for p, _ in single]))
                np.testing.assert_array_equal(speed, np.array([v for _, v in single]))
            t = times[-1]
    assert model.peek_times([]) is None


def test_waypoint_peek_times_of_many_users_equals_one_call_per_user() -> None:
    """waypoint_peek_times (all users of a frame in one batch) gives the bits of one
    peek_times per user, in an area small enough that users pause, arrive and start new legs
    within the queried spans, and refuses a span as soon as one user would leave its leg."""
    rng = np.random.default_rng(11)
    for trial in range(4):
        users = [RandomWaypointMobility(rng.uniform([0.5, 0.5], [6.0, 4.5]), 7.0, 5.0,
                                        (0.3, 4.0), 0.2 * trial, np.random.default_rng(100 + k))
                 for k in range(5)]
        t, seen_none, seen_arrived = 0.0, 0, 0
        for _ in range(120):
            times = t + np.sort(rng.uniform(0.0, 0.06, 9))  # off-grid, one repeated below
            times[3] = times[2]
            batch = waypoint_peek_times(users, times)
            each = [u.peek_times(times) for u in users]
            if any(e is None for e in each):
                assert batch is None
                seen_none += 1
                for u in users:
                    u.position(times[-1])  # new legs where needed (draws), as the engine does
            else:
                pos, speed = batch
                assert pos.shape == (9, 5, 2) and speed.shape == (9, 5)
                np.testing.assert_array_equal(pos, np.stack([e[0] for e in each], axis=1))
                np.testing.assert_array_equal(speed, np.stack([e[1] for e in each], axis=1))
                seen_arrived += int((speed == 0.0).any())
            t = float(times[-1])
        assert seen_none and (trial == 0 or seen_arrived)  # both branches were exercised
    assert waypoint_peek_times(users, []) is None and waypoint_peek_times([], [0.0]) is None
