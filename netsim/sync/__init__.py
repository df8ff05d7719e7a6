"""netsim.sync: over-the-air CFO/TO synchronization with pilot sharing (seed 000).

Modules
-------
``channel``  AP-AP path loss (eq 60) and random multipath taps (spec 6.2).
``burst``    received burst at a master: co-pilot superposition, CFO, TO, noise (eq 4-9).
``crb``      A matrix, contamination covariance D, Fisher matrix and CRB (Sec. III).
``ml``       vectorised ML TO/CFO/tap estimator (eq 37-39).
``plan``     dis_max, Algorithms 1-3, comparison schemes; engine entry ``plan_network``
             (code in ``plan_config``, ``plan_clusters``, ``plan_pilots``, ``plan_alloc``).
``round``    one synchronization round for the engine: ``sync_round`` ("ml" or "crb").

Pilot sequences and the chip pulse live in :mod:`netsim.phy.pilots`.
"""


from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from netsim.sync.plan import SyncPlan, SyncPlanConfig, plan_network
    from netsim.sync.round import SyncLinks, SyncRoundConfig, SyncRoundResult, sync_round

# The names below load their module on first use (PEP 562), so importing one kernel
# (e.g. netsim.sync.crb) does not pull in the planner.
_LAZY = {
    "SyncPlan": "netsim.sync.plan_config",
    "SyncPlanConfig": "netsim.sync.plan_config",
    "plan_network": "netsim.sync.plan_alloc",
    "SyncLinks": "netsim.sync.round",
    "SyncRoundConfig": "netsim.sync.round",
    "SyncRoundResult": "netsim.sync.round",
    "sync_round": "netsim.sync.round",
}

__all__ = [
    "SyncPlan",
    "SyncPlanConfig",
    "plan_network",
    "SyncLinks",
    "SyncRoundConfig",
    "SyncRoundResult",
    "sync_round",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'netsim.sync' has no attribute {name!r}")
