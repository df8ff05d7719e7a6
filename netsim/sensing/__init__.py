"""netsim.sensing: near-field multi-static sensing of seed 003 (spec/isac.md).

Engine-facing entry points (all pure functions; randomness only through ``rng``):

* :class:`~netsim.sensing.config.IsacConfig` (every [C] value) and
  :class:`~netsim.sensing.config.IsacGeometry` (``cfg.geometry()``);
* :func:`~netsim.sensing.covariance.design_sensing_covariance` (R* [M, N, N], run once per
  deployment) and :class:`~netsim.sensing.covariance.SensingCovarianceCache`;
* :func:`~netsim.sensing.fim.position_crlb` / :func:`~netsim.sensing.fim.per_snapshot_crlb`;
* :func:`~netsim.sensing.echo.sample_echo_covariance` (fidelity "wishart" | "snapshots",
  residual CFO/TO coupling);
* :func:`~netsim.sensing.music.music_localize` (full grid or tracking) and
  :func:`~netsim.sensing.music.match_estimates`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from netsim.sensing.config import IsacConfig, IsacGeometry
    from netsim.sensing.covariance import SensingCovarianceCache, design_sensing_covariance
    from netsim.sensing.echo import sample_echo_covariance
    from netsim.sensing.fim import per_snapshot_crlb, position_crlb
    from netsim.sensing.music import MusicGrid, MusicResult, match_estimates, music_localize

# Names load their module on first use (PEP 562): importing one module of the package
# (e.g. netsim.sensing.config from the location-aware CSI) does not load MUSIC and scipy.
_LAZY = {
    "IsacConfig": "config",
    "IsacGeometry": "config",
    "SensingCovarianceCache": "covariance",
    "design_sensing_covariance": "covariance",
    "sample_echo_covariance": "echo",
    "per_snapshot_crlb": "fim",
    "position_crlb": "fim",
    "MusicGrid": "music",
    "MusicResult": "music",
    "match_estimates": "music",
    "music_localize": "music",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"netsim.sensing.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'netsim.sensing' has no attribute {name!r}")


__all__ = [
    "IsacConfig",
    "IsacGeometry",
    "MusicGrid",
    "MusicResult",
    "SensingCovarianceCache",
    "design_sensing_covariance",
    "match_estimates",
    "music_localize",
    "per_snapshot_crlb",
    "position_crlb",
    "sample_echo_covariance",
]
