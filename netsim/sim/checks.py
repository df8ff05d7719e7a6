"""Honest results: finiteness checks on what the engine logs, and the frame's mean SINR.

Every record the engine emits passes :func:`check_record` (hooked into the run's
:class:`netsim.trace.TraceWriter`). A rate, SINR, power or position that is NaN or infinite
raises :class:`NonFiniteValue`, which stops the run with ``meta.json`` ``status: failed`` and
an error naming the frame, the table, the column and the entity (user / AP / row). A quiet
NaN never reaches a finished run.

Columns that may legitimately be missing are NaN by documented convention and are not
checked: estimated positions when no AP is online (no estimate), residual offsets of
offline APs, sync columns of frames without a round, certified rates of non-robust designs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["FINITE", "FINITE_OR_NAN", "NonFiniteValue", "check_record", "mean_sinr_db"]

FINITE: dict[str, tuple[str, ...]] = {
    "frames": ("t_s", "sync_duration_s", "sense_duration_s", "comm_duration_s",
               "overhead_fraction", "comm_fraction", "sum_rate_bps_hz", "min_rate_bps_hz",
               "mean_sinr_db"),
    "subframes": ("t_s", "power_w", "ap_power_w", "sinr_db", "rate_bps_hz"),
    "users": ("t_s", "x_m", "y_m", "speed_mps"),
    "aps": ("t_s", "x_m", "y_m"),
}
"""Columns that must be finite in every row."""
FINITE_OR_NAN: dict[str, tuple[str, ...]] = {
    "users": ("x_hat_m", "y_hat_m", "loc_err_m"),
    "aps": ("residual_cfo_hz", "residual_to_s", "residual_phase_rad"),
}
"""Columns that may be NaN (documented: no estimate / AP offline) but never infinite."""

SINR_FLOOR_DB = -3000.0
"""``subframes.sinr_db`` of a user that receives nothing (SINR exactly 0): 10 log10(1e-300)."""


class NonFiniteValue(FloatingPointError):
    """A logged value that must be finite is NaN or infinite."""

    def __init__(self, table: str, column: str, frame: int, row: int, entity: str,
                 value: float) -> None:
        self.table, self.column, self.frame, self.row = table, column, frame, row
        super().__init__(f"frame {frame}: {table}.{column} = {value} ({entity}); a kernel "
                         "produced a non-finite value, the run is stopped rather than logging it")


def _entity(table: str, columns: Mapping[str, Any], row: int) -> str:
    for key in ("user", "ap"):
        if key in columns:
            ids = np.atleast_1d(columns[key])
            return f"{key} {int(ids[row if ids.size > row else 0])}"
    return f"row {row}"


def check_record(table: str, columns: Mapping[str, Any]) -> None:
    """Raise :class:`NonFiniteValue` if a checked column of one ``emit`` holds NaN/inf.

    Parameters
    ----------
    table : str
        Trace table name.
    columns : mapping
        The keyword arguments of :meth:`TraceWriter.emit` (scalars or arrays; list columns
        2-D).
    """
    for name, allow_nan in _PLAN.get(table, ()):
        v = columns.get(name, _MISSING)
        if v is _MISSING:
            continue
        # fast path: a finite sum (or scalar) means every value is finite; a sum that is
        # not finite (a NaN/inf, or an overflow) gets the element-wise check below
        t = type(v)
        if t is np.ndarray:
            if v.size == 0 or (v.dtype.kind in "fiub"
                               and math.isfinite(np.add.reduce(v, axis=None))):
                continue
        elif t is float or t is int or t is bool or t is np.float64:
            if math.isfinite(v):
                continue
        elif isinstance(v, float | int | np.floating | np.integer) and math.isfinite(v):
            continue
        _check_column(table, columns, name, allow_nan)


_MISSING = object()
_PLAN: dict[str, tuple[tuple[str, bool], ...]] = {
    t: tuple((n, False) for n in FINITE.get(t, ())) + tuple((n, True) for n in FINITE_OR_NAN.get(t, ()))
    for t in set(FINITE) | set(FINITE_OR_NAN)
}


def _check_column(table: str, columns: Mapping[str, Any], name: str, allow_nan: bool) -> None:
    """Element-wise check of one column (raises :class:`NonFiniteValue` on a bad value)."""
    v = np.asarray(columns[name], dtype=float)
    bad = np.isinf(v) if allow_nan else ~np.isfinite(v)
    if bad.any():
        flat = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1)
                              if bad.ndim > 1 else bad.ravel())
        row = int(flat[0]) if flat.size else 0
        frame = int(np.atleast_1d(columns.get("frame", -1))[0])
        raise NonFiniteValue(table, name, frame, row, _entity(table, columns, row),
                             float(v.ravel()[np.flatnonzero(bad.ravel())[0]]))


def mean_sinr_db(sinr_db: Sequence[np.ndarray] | np.ndarray) -> float:
    """Mean SINR of a frame in dB over the SERVED users (``frames.mean_sinr_db``).

    The mean of the per-user, per-subframe effective SINR in dB, over the entries above the
    floor :data:`SINR_FLOOR_DB` (a user that receives nothing has SINR exactly 0, logged at the
    floor in ``subframes.sinr_db``). Unserved users are excluded rather than averaged as
    -3000 dB placeholders (which made the bundled UMi scenario report -33.6 dB against a
    median of +12 dB); they show as ``min_rate_bps_hz = 0``. A frame in which nobody is
    served gives :data:`SINR_FLOOR_DB`.

    Parameters
    ----------
    sinr_db : array or list of arrays, [S][K] float, dB
        Effective SINR per subframe and user.
    """
    x = np.concatenate([np.ravel(a) for a in sinr_db]) if len(sinr_db) else np.zeros(0)
    served = x[x > SINR_FLOOR_DB + 1.0]  # [n]
    return float(np.mean(served)) if served.size else SINR_FLOOR_DB
