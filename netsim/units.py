"""Unit conversions shared by every layer (SI inside, dB only at the edges)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["dbm_to_w"]


def dbm_to_w(p_dbm: ArrayLike) -> float | np.ndarray:
    """Convert dBm to W: ``10**((p_dbm - 30) / 10)`` (a float for a scalar input)."""
    out = 10.0 ** ((np.asarray(p_dbm, dtype=float) - 30.0) / 10.0)
    return float(out) if out.ndim == 0 else out
