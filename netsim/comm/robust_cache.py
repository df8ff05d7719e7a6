"""Compiled cvxpy problems reused across robust designs (seed 003; :mod:`netsim.comm.robust`).

Compiling a parametrised (DPP) cvxpy problem costs more than solving it at the paper's size
(the certificate SDP of :func:`netsim.comm.robust.worst_case_sinr`: ~0.2-0.5 CPU-s to compile,
~0.03 CPU-s per solve). A :class:`ProblemCache` held by the caller (the engine keeps one per run)
keeps such problems by their structure (dimensions), so a later design with the same structure
only sets new parameter values. Every solve through the cache starts a fresh solver
(``warm_start=False``), so results are identical with and without the cache. The cache is
dropped when pickled (checkpoints) and rebuilt on demand, which gives the same results.
"""

from __future__ import annotations

__all__ = ["ProblemCache"]


class ProblemCache:
    """Compiled problems by key (a tuple naming the problem and its dimensions)."""

    def __init__(self) -> None:
        self._items: dict[tuple, object] = {}

    def get(self, key: tuple) -> object | None:
        return self._items.get(key)

    def put(self, key: tuple, value: object) -> object:
        self._items[key] = value
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __getstate__(self) -> dict:
        return {}  # cvxpy problems (and their solver objects) are not part of a checkpoint

    def __setstate__(self, state: dict) -> None:
        self._items = {}
