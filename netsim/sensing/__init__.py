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

from netsim.sensing.config import IsacConfig, IsacGeometry
from netsim.sensing.covariance import SensingCovarianceCache, design_sensing_covariance
from netsim.sensing.echo import sample_echo_covariance
from netsim.sensing.fim import per_snapshot_crlb, position_crlb
from netsim.sensing.music import MusicGrid, MusicResult, match_estimates, music_localize

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
