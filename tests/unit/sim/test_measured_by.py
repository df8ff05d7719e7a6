"""``methods._measured_by``: the AP whose receiver measures each AP (vectorised) against the
plain per-AP rule on random plans (offline APs, single clusters, deep master trees)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from netsim.sim.methods import _measured_by


def _by_rule(plan) -> np.ndarray:
    out = np.full(plan.n_ap, -1)
    for ap in np.flatnonzero(plan.cluster_of_ap >= 0):
        k = int(plan.cluster_of_ap[ap])
        master = int(plan.masters[k])
        if ap != master:
            out[ap] = master  # a slave: its master
        elif plan.master_parent[k] >= 0:
            out[ap] = int(plan.masters[plan.master_parent[k]])  # a master: its parent master
    return out


def test_measured_by_matches_per_ap_rule():
    g = np.random.default_rng(77)
    for _ in range(200):
        n = int(g.integers(1, 40))
        kc = int(g.integers(1, n + 1))
        cl = g.integers(0, kc, n)
        cl[g.permutation(n)[:kc]] = np.arange(kc)  # every cluster has a member
        cl = np.where(g.random(n) < 0.2, -1, cl)  # offline APs
        masters = np.array([g.choice(np.flatnonzero(cl == c)) if (cl == c).any() else 0
                            for c in range(kc)])
        parent = np.array([-1 if c == 0 else int(g.integers(0, c)) for c in range(kc)])
        plan = SimpleNamespace(n_ap=n, cluster_of_ap=cl, masters=masters, master_parent=parent)
        got = _measured_by(plan)
        assert np.array_equal(got, _by_rule(plan))
        assert got[masters[0]] == -1 or cl[masters[0]] != 0  # the root master is not measured
