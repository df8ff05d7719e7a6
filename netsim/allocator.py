"""glibc heap tuning for a simulation process (``netsim`` CLI, sweep workers, benchmarks)."""

from __future__ import annotations

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "tune_allocator"]

MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def tune_allocator() -> bool:
    """Keep freed arrays of up to 32 MB in the heap (glibc ``mallopt``) for this process.

    A frame allocates and frees dozens of arrays of 0.1-1 MB (a campus frame's channels are
    35 k complex entries). Above glibc's default threshold each one is a fresh ``mmap``
    whose pages fault in on first touch and go back to the system on ``free``: measured
    ~3 of ~12 CPU ms per campus frame. With the thresholds raised, freed blocks are reused.
    Results do not change. No effect (returns False) off glibc. Called by ``netsim`` at
    start-up, by every sweep task on its Dask worker (:func:`netsim.sweep.run_task`) and by
    ``benchmarks/engine.py``; calling it again is harmless.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        # M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1 (malloc.h)
        return bool(libc.mallopt(-3, MMAP_THRESHOLD_BYTES)
                    and libc.mallopt(-1, TRIM_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False
