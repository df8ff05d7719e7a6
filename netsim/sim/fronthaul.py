"""SimPy plumbing of the engine: an environment with absolute-time events, picklable pending
calls (:class:`Scheduled`) and fronthaul links whose messages arrive ``latency_s`` later."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any

import simpy

if TYPE_CHECKING:
    from netsim.sim.simulation import Simulation

__all__ = ["Environment", "FronthaulLink", "Scheduled"]


class Environment(simpy.Environment):
    """A SimPy environment that can also schedule an event at an absolute time.

    ``timeout(t - now)`` would round ``now + (t - now)``; a resumed run must wake its pending
    calls at exactly the times the uninterrupted run had (``t_s`` saved in the checkpoint).
    """

    def timeout_at(self, t_s: float) -> simpy.events.Event:
        if t_s < self.now:
            raise ValueError(f"cannot schedule at {t_s} s, before now ({self.now} s)")
        event = simpy.events.Event(self)
        event._ok = True  # a triggered event, like a Timeout, processed at t_s
        event._value = None
        # same heap entry as Environment.schedule(), at the absolute time
        heapq.heappush(self._queue, (t_s, simpy.core.NORMAL, next(self._eid), event))
        return event


class Scheduled:
    """A call ``getattr(target, method)(*args)`` due at ``t_s``: plain, picklable data.

    Every future action of the simulation that is pending across a frame boundary (fault
    starts and ends, fronthaul messages in flight) is one of these, so a checkpoint saves it
    and a resumed run re-schedules it at the same time and in the same order.
    """

    __slots__ = ("args", "event", "method", "seq", "t_s", "target")

    def __init__(self, t_s: float, seq: int, target: Any, method: str, args: tuple) -> None:
        self.t_s, self.seq, self.target, self.method, self.args = t_s, seq, target, method, args
        self.event: simpy.events.Event | None = None  # runtime only

    def __getstate__(self):
        return (self.t_s, self.seq, self.target, self.method, self.args)

    def __setstate__(self, state) -> None:
        self.t_s, self.seq, self.target, self.method, self.args = state
        self.event = None


class FronthaulLink:
    """A one-way fronthaul link: messages put now are delivered ``latency_s`` later, in order.

    The receiving process waits on :meth:`receive` (a ``simpy.Store``). A message in flight is
    a :class:`Scheduled` delivery of the simulation, so it survives a checkpoint; the store
    itself is runtime state, rebuilt by :meth:`attach`.
    """

    def __init__(self, sim: Simulation, latency_s: float) -> None:
        self.sim = sim
        self.latency_s = latency_s
        self.env: simpy.Environment | None = None
        self.store: simpy.Store | None = None
        self.attach(sim.env)

    def attach(self, env: simpy.Environment) -> None:
        """Create the store in ``env`` (a new run or a resumed one)."""
        self.env = env
        self.store = simpy.Store(env)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["env"] = state["store"] = None
        return state

    def send(self, message: Any) -> None:
        if self.latency_s == 0:
            self.store.put(message)
            return
        self.sim.call_at(self.env.now + self.latency_s, self, "deliver", message)

    def deliver(self, message: Any) -> None:
        self.store.put(message)

    def receive(self) -> simpy.events.Event:
        return self.store.get()

