"""netsim: discrete-event simulator of cell-free massive-MIMO ISAC networks."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_run", "load_sweep"]


def load_run(run_dir):  # noqa: D401 - thin re-export, imported lazily (pandas is heavy)
    """Load a run directory's tables as pandas DataFrames (see :func:`netsim.runs.load_run`)."""
    from netsim.runs import load_run as _load_run

    return _load_run(run_dir)


def load_sweep(sweep_dir, **kwargs):
    """Load a sweep folder's tables as tidy DataFrames (see :func:`netsim.sweep.load_sweep`)."""
    from netsim.sweep import load_sweep as _load_sweep

    return _load_sweep(sweep_dir, **kwargs)
