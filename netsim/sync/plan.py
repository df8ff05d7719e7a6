"""Synchronization network planning (seed 000, Sec. IV; spec ``sync.md`` 5).

The CPU computes a :class:`SyncPlan` from the AP positions: clusters with a master each
(Algorithm 1: K-means plus medoid masters, eq 50), the pilot overhead ``tau`` and the
pilot-sharing groups (Algorithm 2: DSatur start plus swap matching, eq 52-59), jointly under
the overhead budget ``2 K_C + tau <= L_S`` (Algorithm 3). The paper's comparison schemes
(Benchmarks 1-3, Schemes 1-4) are exposed as building blocks for the reproduction.

Engine entry point: :func:`plan_network`.

Besides the paper's content, the plan says how masters stay on the network reference:
the *reference AP* is the medoid of the masters, and every other master is linked to it by a
shortest-path tree over the masters (edge weight ``1 / beta(d)``, i.e. proportional to the
link's error variance). In the ``2 K_C`` master slots each non-reference master exchanges a
pilot two-way with its parent (``master_parent``), so offsets chain
slave -> master -> ... -> reference (see :mod:`netsim.sync.round`).

This module gathers the planner's public names; the code lives in one module per algorithm:

* :mod:`netsim.sync.plan_config`: :class:`SyncPlanConfig`, :class:`SyncPlan`,
  :func:`max_cluster_distance` (numpy only; what the engine needs without planning);
* :mod:`netsim.sync.plan_clusters`: Algorithm 1 and the clustering benchmarks;
* :mod:`netsim.sync.plan_pilots`: Algorithm 2 (SINR, objective, DSatur, swap matching);
* :mod:`netsim.sync.plan_alloc`: Algorithm 3, CRB evaluation, master tree, :func:`plan_network`.
"""

from __future__ import annotations

from netsim.sync.plan_alloc import (
    ChannelBank,
    alg3_allocation,
    evaluate_crb,
    master_tree,
    plan_network,
)
from netsim.sync.plan_clusters import (
    alg1_clusters,
    cluster_distances,
    kmeans,
    medoid_masters,
    random_masters,
    ward_clusters,
)
from netsim.sync.plan_config import SyncPlan, SyncPlanConfig, max_cluster_distance
from netsim.sync.plan_pilots import (
    alg2_pilot_sharing,
    dsatur_capacity,
    dsatur_min_contamination,
    improving_swaps,
    objective,
    received_power_matrix,
    sinr_db,
    swap_matching,
)

__all__ = [
    "SyncPlanConfig",
    "SyncPlan",
    "max_cluster_distance",
    "kmeans",
    "medoid_masters",
    "random_masters",
    "cluster_distances",
    "alg1_clusters",
    "ward_clusters",
    "received_power_matrix",
    "sinr_db",
    "objective",
    "dsatur_capacity",
    "dsatur_min_contamination",
    "swap_matching",
    "improving_swaps",
    "alg2_pilot_sharing",
    "ChannelBank",
    "evaluate_crb",
    "alg3_allocation",
    "master_tree",
    "plan_network",
]
