"""netsim.sync: over-the-air CFO/TO synchronization with pilot sharing (seed 000).

Modules
-------
``channel``  AP-AP path loss (eq 60) and random multipath taps (spec 6.2).
``burst``    received burst at a master: co-pilot superposition, CFO, TO, noise (eq 4-9).
``crb``      A matrix, contamination covariance D, Fisher matrix and CRB (Sec. III).
``ml``       vectorised ML TO/CFO/tap estimator (eq 37-39).
``plan``     dis_max, Algorithms 1-3, comparison schemes; engine entry ``plan_network``.
``round``    one synchronization round for the engine: ``sync_round`` ("ml" or "crb").

Pilot sequences and the chip pulse live in :mod:`netsim.phy.pilots`.
"""

from netsim.sync.plan import SyncPlan, SyncPlanConfig, plan_network
from netsim.sync.round import SyncLinks, SyncRoundConfig, SyncRoundResult, sync_round

__all__ = [
    "SyncPlan",
    "SyncPlanConfig",
    "plan_network",
    "SyncLinks",
    "SyncRoundConfig",
    "SyncRoundResult",
    "sync_round",
]
