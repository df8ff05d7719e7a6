"""The sensing tracks' two-point velocity (netsim.sim.sensing.MusicSensing._update_tracks): a
difference faster than the user class's top speed plus its noise (3 sigma of two estimates at the
frame's bound) is a jump of an estimate, not motion, and is reset to 0; real motion is kept.
The tracks are plain arrays, so the update is exercised on a bare model with its track state."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from netsim.sim.sensing import MusicSensing


def bare_model(pos: np.ndarray, top_mps: float) -> MusicSensing:
    """A MusicSensing with tracked users at ``pos`` (K, 2) [m], class top speed ``top_mps``."""
    k = pos.shape[0]
    events: list = []
    m = MusicSensing.__new__(MusicSensing)
    m.sim = SimpleNamespace(scenario=SimpleNamespace(deployment=SimpleNamespace(width_m=100.0, height_m=100.0)),
                            event=lambda *a: events.append(a))
    m.events = events
    m.pos, m.vel = pos.astype(float).copy(), np.zeros((k, 2))
    m.halfwidth, m.lost = np.full(k, 0.05), np.zeros(k, dtype=bool)
    m.acquired_frame, m.widen = np.zeros(k, dtype=np.int64), np.zeros(k)
    m.n_frames, m.n_lost_events = 5, 0
    m.top_speed_mps, m.max_speed_mps = top_mps, 2.0 * top_mps + 1.0
    return m


def test_a_jump_of_the_previous_estimate_is_not_a_velocity_but_motion_is():
    rng = np.random.default_rng(3)
    dt, top = 0.05, 0.5  # isac_paper's walkers: 0.5 m/s, 50 ms frames
    sigma = 1e-3  # sqrt(CRLB) of the frame [m]
    for _ in range(20):
        true0 = rng.uniform(10, 90, (4, 2))
        heading = rng.uniform(0, 2 * np.pi, 4)
        v = top * np.stack([np.cos(heading), np.sin(heading)], axis=-1)  # [4, 2] m/s
        prev = true0 + sigma * rng.standard_normal((4, 2))
        prev[1] += 0.078 * np.array([np.cos(heading[1] + 2.0), np.sin(heading[1] + 2.0)])  # 78 mm off
        m = bare_model(prev, top)
        est = true0 + v * dt + sigma * rng.standard_normal((4, 2))
        m._update_tracks(est, np.full(4, sigma ** 2), np.ones(4, dtype=bool), est.copy(), dt)
        # the jump (1.5-2 m/s, under the old 2 top + 1 m/s prior) is reset; real motion is kept
        assert np.all(m.vel[1] == 0.0)
        keep = [0, 2, 3]
        np.testing.assert_allclose(m.vel[keep], v[keep], atol=3 * np.sqrt(2) * sigma / dt + 1e-12)
        np.testing.assert_array_equal(m.pos, est)
        assert not m.events  # no user lost
