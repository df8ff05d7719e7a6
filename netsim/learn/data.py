"""Training/test drops of the seed-004 deployment, drawn with the simulator's own kernels.

:class:`DropSpec` fixes a deployment (AP positions, K, N, the UMi/UMa channel configuration,
association threshold, tau_c, T); :func:`draw_drops` draws large-scale drops (positions,
shadowing, association) through :mod:`netsim.phy.umi` and :func:`netsim.comm.association.associate`,
exactly the kernels the engine uses; :func:`draw_ssf` draws the i.i.d. Rayleigh subframes.
No torch here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np

from netsim.comm.association import associate
from netsim.phy import umi

__all__ = ["DropSpec", "Drops", "draw_drops", "draw_ssf", "scenario_hash"]


@dataclass(frozen=True)
class DropSpec:
    """One deployment of the seed-004 study.

    ap_xy : [M, 2] m; n_ue : K; n_ant : N; channel : umi.ChannelConfig (noise, P_max, p_u);
    eta_db : association threshold; tau_c : slots per coherence block; n_sub : T subframes.
    name / source_hash : provenance (scenario name and hash) written into trained weights.
    """

    ap_xy: np.ndarray
    n_ue: int
    n_ant: int
    channel: umi.ChannelConfig
    eta_db: float = -10.0
    tau_c: int = 200
    n_sub: int = 10
    name: str = "spec_defaults"
    source_hash: str = ""

    @property
    def n_ap(self) -> int:
        return int(self.ap_xy.shape[0])

    @property
    def noise_w(self) -> float:
        return umi.noise_power_w(self.channel)

    @classmethod
    def paper(cls, n_ap: int = 7, n_ue: int = 42, n_ant: int = 16, *, scenario: str = "umi",
              **kw) -> DropSpec:
        """Spec power.md Table I defaults (UMi) or the Table V UMa variant."""
        ch = umi.ChannelConfig.umi() if scenario == "umi" else umi.ChannelConfig.uma()
        return cls(umi.hex_ap_positions(n_ap, ch.isd_m), n_ue, n_ant, ch,
                   name=f"paper_{scenario}_M{n_ap}_K{n_ue}_N{n_ant}", **kw)

    @classmethod
    def from_scenario(cls, scenario) -> DropSpec:
        """The deployment, channel and association models of a loaded netsim Scenario."""
        from netsim.sim.world import ap_positions, umi_config

        if scenario.channel.model != "umi":
            raise ValueError("train-gnn needs a seed-004 scenario (channel.model: umi)")
        rng = np.random.default_rng(0)  # only used by random AP layouts: fixed, documented
        ap = ap_positions(scenario, rng)
        return cls(ap, scenario.users.count, scenario.deployment.antennas_per_ap,
                   umi_config(scenario), scenario.comm.association_eta_db,
                   scenario.comm.coherence_slots, scenario.frame.subframes,
                   scenario.name, scenario_hash(scenario))

    def with_(self, **kw) -> DropSpec:
        return replace(self, **kw)


def scenario_hash(scenario) -> str:
    """sha256 (first 16 hex digits) of the scenario's canonical JSON."""
    text = json.dumps(scenario.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Drops:
    """A set of large-scale drops: beta [D, M, K] (linear), assoc [D, M, K] bool."""

    beta: np.ndarray
    assoc: np.ndarray

    def __len__(self) -> int:
        return int(self.beta.shape[0])

    def subset(self, idx) -> Drops:
        return Drops(self.beta[idx], self.assoc[idx])


def draw_drops(spec: DropSpec, n: int, rng: np.random.Generator) -> Drops:
    """``n`` LSF drops: users in the APs' cells, 38.901 gains with shadowing, association."""
    betas, assocs = [], []
    for _ in range(n):
        ue = umi.drop_users(spec.ap_xy, spec.n_ue, spec.channel, rng)  # [K, 2]
        beta = umi.large_scale_fading(spec.ap_xy, ue, spec.channel, rng)  # [M, K]
        betas.append(beta)
        assocs.append(associate(beta, spec.eta_db))
    return Drops(np.stack(betas), np.stack(assocs))


def draw_ssf(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """i.i.d. CN(0, 1) small-scale fading of the given shape (e.g. [D, T, M, K, N])."""
    return umi.draw_small_scale_fading(shape, rng)
