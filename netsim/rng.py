"""Random streams for reproducible simulations.

Every random draw in netsim comes from a :class:`numpy.random.Generator` that is
derived from one root :class:`numpy.random.SeedSequence` (the scenario seed).
Streams are addressed by a *name* (the subsystem, e.g. ``"mobility"``) and an
optional tuple of integer indices (the entity, e.g. user 3). The derivation does
not depend on the order in which streams are requested, so adding a new consumer
of randomness, or changing the power-control algorithm, never changes the draws
of the channel or of the users' mobility.

Independent replications use the same seed and a different ``replication``
number (a sub-stream), as in ns-3's run numbers.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["RandomStreams", "stream_key"]


def stream_key(name: str) -> int:
    """Stable 32-bit integer for a stream name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(name.encode("utf-8")) & 0xFFFFFFFF


class RandomStreams:
    """Factory of independent, order-independent random generators.

    Parameters
    ----------
    seed : int
        Root seed of the run (the scenario's ``run.seed``).
    replication : int, default 0
        Replication number; different replications give independent streams.

    Examples
    --------
    >>> streams = RandomStreams(7)
    >>> g_user3 = streams.generator("mobility", 3)
    >>> g_user3_again = RandomStreams(7).generator("mobility", 3)
    >>> bool(g_user3.random() == g_user3_again.random())
    True
    """

    def __init__(self, seed: int, replication: int = 0) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if replication < 0:
            raise ValueError(f"replication must be >= 0, got {replication}")
        self.seed = int(seed)
        self.replication = int(replication)

    def seed_sequence(self, name: str, *index: int) -> np.random.SeedSequence:
        """Seed sequence of stream ``name`` for entity ``index``."""
        key = (self.replication, stream_key(name), *(int(i) for i in index))
        return np.random.SeedSequence(entropy=self.seed, spawn_key=key)

    def generator(self, name: str, *index: int) -> np.random.Generator:
        """A fresh generator of stream ``name`` for entity ``index`` (PCG64)."""
        return np.random.Generator(np.random.PCG64(self.seed_sequence(name, *index)))

    def __repr__(self) -> str:
        return f"RandomStreams(seed={self.seed}, replication={self.replication})"
