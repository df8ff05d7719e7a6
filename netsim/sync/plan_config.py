"""Synchronization planning: configuration and result types (seed 000, Sec. IV; spec ``sync.md`` 5).

Light module (numpy only): the engine, :mod:`netsim.sync.round` and the scenario layer import
:class:`SyncPlanConfig` and :class:`SyncPlan` from here without loading the planner. The
algorithms live in :mod:`netsim.sync.plan_clusters` (Algorithm 1 and the clustering
benchmarks), :mod:`netsim.sync.plan_pilots` (Algorithm 2) and :mod:`netsim.sync.plan_alloc`
(Algorithm 3, CRB evaluation, master tree, :func:`plan_network`); :mod:`netsim.sync.plan`
re-exports all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from netsim.sync.channel import DEFAULT_NOISE_POWER_W, PathLossModel

__all__ = ["SyncPlanConfig", "SyncPlan", "max_cluster_distance", "rx_energy_factor"]


@dataclass(frozen=True)
class SyncPlanConfig:
    """Parameters of the synchronization planning (defaults: spec 6.1).

    Attributes
    ----------
    sinr_req_db : float
        SINR requirement of every slave (dB), 15.
    overhead_budget_slots : int
        ``L_S``: ``2 K_C + tau <= L_S`` (slots). Default 40 (largest value of Fig 8).
    pilot_length_chips : int
        ``N``, 256.
    to_range_chips : float
        ``eta`` used for the CRB (TO ~ U[0, eta]), 3.
    window_margin_chips : int
        ``M = N + window_margin`` samples in the SINR noise term and the CRB window; 26 gives
        the spec's ``M = 282`` for ``N = 256``. Enlarged automatically when a link needs more.
    n_taps : int
        Taps of the random desired-link channels (spec 6.2), 4.
    tx_power_w : float
        ``Pt``, 1 W.
    noise_power_w : float
        ``sigma^2`` per sample, -92 dBm.
    chip_time_s : float
        ``Ts``, 50 ns.
    path_loss : PathLossModel
        eq 60 constants.
    swap_iterations : int
        ``N_2^max`` per tau value, 1000.
    sa_temperature : float
        ``T`` of eq 55 (1/dB), 0.01.
    kc_start : int
        First ``K_C`` of Algorithm 1, 2.
    kmeans_restarts : int
        K-means++ restarts (lowest inertia kept), 5.
    objective : str
        ``"per_slave"`` (default) or ``"all_or_nothing"`` reading of eq 56 (spec 5.6).
    selection : str
        How Algorithm 3 compares candidate K_C: ``"crb"`` (sum over slaves of full CRBs with
        random channels, as the paper), ``"composite"`` (default: sum over all APs of the CRB
        of their estimate relative to the reference, i.e. the slave link plus the two-way
        master links along the master tree; without this the paper's objective prefers as
        many clusters as the budget allows, because masters contribute nothing), or ``"sinr"``
        (the cheaper objective of eq 56).
    trust_sinr_db : float or None
        Trust check of Algorithm 3 (not in the paper): the SINR below which the sync round
        will not trust a link (``sync.min_sinr_db``, :class:`~netsim.sync.round.SyncRoundConfig`).
        Every candidate's chain links (slave -> master and the two-way master-tree links) get
        the SINR the round predicts for them, and a candidate with fewer APs behind a link
        below it always wins (then the usual key decides). None (default): no check.
    trust_guard_chips : float
        Half-width ``g`` of the round's TO search window (chips, ``sync.max_time_offset_chips``):
        the round's noise window is ``N + ceil(2 g + max delay) + 3`` samples, which the trust
        check uses (the plan's own SINR uses ``M = N + window_margin``). Default 0.
    """

    sinr_req_db: float = 15.0
    overhead_budget_slots: int = 40
    pilot_length_chips: int = 256
    to_range_chips: float = 3.0
    window_margin_chips: int = 26
    n_taps: int = 4
    tx_power_w: float = 1.0
    noise_power_w: float = DEFAULT_NOISE_POWER_W
    chip_time_s: float = 50e-9
    path_loss: PathLossModel = field(default_factory=PathLossModel)
    swap_iterations: int = 1000
    sa_temperature: float = 0.01
    kc_start: int = 2
    kmeans_restarts: int = 5
    objective: str = "per_slave"
    selection: str = "composite"
    trust_sinr_db: float | None = None
    trust_guard_chips: float = 0.0

    @property
    def n_samples(self) -> int:
        """``M`` (samples in the observation window)."""
        return self.pilot_length_chips + self.window_margin_chips


@dataclass(frozen=True)
class SyncPlan:
    """Result of the synchronization planning (what the engine needs).

    Attributes
    ----------
    cluster_of_ap : ndarray, shape (n_ap,), int
        Cluster index of each AP, -1 for offline APs.
    masters : ndarray, shape (n_clusters,), int
        AP index of each cluster's master.
    pilot_of_ap : ndarray, shape (n_ap,), int
        Pilot index (0..n_pilots-1) of each slave, -1 for masters and offline APs.
    n_pilots : int
        ``tau``.
    reference_ap : int
        AP that defines network time and frequency (a master), -1 if no AP is online.
    overhead_slots : int
        ``2 K_C + tau``.
    master_parent : ndarray, shape (n_clusters,), int
        Cluster whose master each master synchronizes to (two-way exchange); -1 for the
        reference cluster.
    within_budget : bool
        ``overhead_slots <= L_S``; False when no allocation fits and the smallest overhead
        allocation was returned instead.
    planned_sinr_db : ndarray, shape (n_ap,), float
        Average-power SINR (spec 5.2) of each slave on its pilot; NaN for others.
    sum_crb : float
        Sum of CRB_TO + CRB_CFO (normalised units) of the chosen allocation (NaN if not computed).
    predicted_untrusted : int
        APs behind a chain link whose predicted SINR is below ``SyncPlanConfig.trust_sinr_db``
        (:func:`netsim.sync.plan_alloc.untrusted_aps`; 0 without the check).
    """

    cluster_of_ap: NDArray[np.int64]
    masters: NDArray[np.int64]
    pilot_of_ap: NDArray[np.int64]
    n_pilots: int
    reference_ap: int
    overhead_slots: int
    master_parent: NDArray[np.int64]
    within_budget: bool = True
    planned_sinr_db: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    sum_crb: float = float("nan")
    predicted_untrusted: int = 0

    @property
    def n_ap(self) -> int:
        return int(self.cluster_of_ap.size)

    @property
    def n_clusters(self) -> int:
        return int(self.masters.size)

    @property
    def online(self) -> NDArray[np.bool_]:
        return self.cluster_of_ap >= 0

    def is_master(self, ap: int) -> bool:
        """True if ``ap`` is a cluster master."""
        return bool(np.any(self.masters == ap))

    def master_of_ap(self, ap: int) -> int:
        """Master AP of ``ap``'s cluster (itself for a master), -1 if offline."""
        k = int(self.cluster_of_ap[ap])
        return -1 if k < 0 else int(self.masters[k])

    def slaves_of(self, cluster: int) -> NDArray[np.int64]:
        """AP indices of the slaves of ``cluster`` (ascending)."""
        idx = np.flatnonzero(self.cluster_of_ap == cluster)
        return idx[idx != self.masters[cluster]]

    def slaves(self) -> NDArray[np.int64]:
        """All slave APs (ascending)."""
        return np.flatnonzero(self.pilot_of_ap >= 0)

    def master_path(self, cluster: int) -> list[int]:
        """Clusters from ``cluster`` up to the reference cluster (inclusive)."""
        path = [int(cluster)]
        while self.master_parent[path[-1]] >= 0:
            path.append(int(self.master_parent[path[-1]]))
        return path


# --------------------------------------------------------------------------------------------
# SINR requirement -> maximum cluster distance (eq 46-47)
# --------------------------------------------------------------------------------------------


def rx_energy_factor(n: int) -> float:
    """``tr(D_ideal) / (Pt beta) ~ 2N/3`` (Theorem 1, random-BPSK average)."""
    return 2.0 * n / 3.0


def max_cluster_distance(cfg: SyncPlanConfig, n_samples: int | None = None) -> float:
    """``dis_max`` (m): the largest master-slave distance meeting ``SINR_req`` with no
    contamination and a single path (eq 46-47, spec 5.3)::

        beta_min = M sigma^2 10^(SINR_req/10) / (Pt 2N/3);   dis_max = PL^-1(-10 log10 beta_min)
    """
    m = cfg.n_samples if n_samples is None else n_samples
    beta_min = (
        m
        * cfg.noise_power_w
        * 10 ** (cfg.sinr_req_db / 10)
        / (cfg.tx_power_w * rx_energy_factor(cfg.pilot_length_chips))
    )
    return cfg.path_loss.distance_for_gain(beta_min)

