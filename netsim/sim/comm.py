"""Communication-phase pipelines of the engine (which CSI, which beamformer, which power).

Two pipelines share one interface (``frame_setup`` once per frame, ``subframe`` per
subframe); the engine then evaluates the SINR on the TRUE channel with every AP's residual
synchronization error (:func:`netsim.comm.rates.downlink_sinr`).

* :class:`LocationAwareComm` (seed 003 / foundation): CSI rebuilt from the estimated user
  positions (``comm.csi: location``) or the true LOS channel (``perfect``); beamformer
  directions designed once per frame (re-used when nobody moved far); power per subframe.
* :class:`PilotComm` (seed 004, ``comm.csi: pilots``): user-centric association and
  DSatur(+Tabu) pilot assignment at frame start; per subframe uplink pilots, MMSE estimates,
  distributed RZF and the power policy; the rate carries the pilot overhead 1 - tau_p/tau_c.

Power policies come from :data:`netsim.comm.power.POWER_ALLOCATORS` (one signature on the
estimated equivalent channels ``Ghat [M, K, K]``). Array layout inside the engine is
``[K, M, N]`` (user, AP, antenna); the seed-004 kernels use ``[M, K, N]``, so this module
transposes at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from netsim.comm.association import associate
from netsim.comm.location_csi import channel_error_radius
from netsim.comm.power import POWER_ALLOCATORS, PowerAllocation, equal_power_w
from netsim.sim import methods
from netsim.units import dbm_to_w

__all__ = ["LocationAwareComm", "PilotComm", "ROBUST_SCHEMES", "SubframeTx", "make_comm"]

ROBUST_SCHEMES = ("main", "ei", "mrt")  # seed 003 (netsim.comm.robust.design_beamformers)
# power policies that are deterministic functions of (ghat, err_var, assoc): with estimates
# fixed for a frame (location-aware CSI) one call per frame gives every subframe's allocation
DETERMINISTIC_POWER = ("equal", "maxmin", "wmmse")


@dataclass
class SubframeTx:
    """What one subframe transmits.

    w : (K, M, N) complex beamformers including power (sum_k ||w[k, m]||^2 = AP m's power, W)
    power_w : (M, K) power per AP-user pair (W)
    rate_factor : pre-log factor of the rate (pilot overhead), 1 without uplink pilots
    iterations, converged : the power policy's diagnostics
    """

    w: np.ndarray
    power_w: np.ndarray
    rate_factor: float
    iterations: int
    converged: bool


def _power(sim, ghat, err_var, assoc, prev_w: np.ndarray | None = None,
           prev_step: float | None = None) -> PowerAllocation:
    """The scenario's power policy on this subframe's estimates. WMMSE (``comm.power: wmmse``)
    follows ``comm.wmmse_stop`` and, with ``comm.power_warm_start``, starts from ``prev_w``
    [M, K] (the previous subframe's powers, W; channels move little in 1 ms) and its
    refinement from ``prev_step`` (the previous call's last spectral step, ``info["spg_step"]``)."""
    sc = sim.scenario
    p_max = sim.p_max_w * sim.net.online
    if sc.comm.power == "wmmse":
        from netsim.comm.wmmse import WMMSE_SPEC_RULE, WMMSEConfig, wmmse_power

        cfg = WMMSE_SPEC_RULE if sc.comm.wmmse_stop == "spec" else WMMSEConfig()
        warm = sc.comm.power_warm_start and prev_w is not None and prev_w.shape == assoc.shape
        if warm:
            cfg = replace(cfg, init="given")
        res = wmmse_power(ghat, err_var, assoc, sc.channel.noise_power_w, p_max, cfg,
                          v0=np.sqrt(prev_w) if warm else None,
                          step0=prev_step if warm else None)
        return PowerAllocation(res.power_w, res.iterations, res.objective, res.converged,
                               {"policy": "wmmse", **res.info})
    if sc.comm.power == "equal":  # the engine reads no objective trace: the powers alone
        return PowerAllocation(equal_power_w(assoc, p_max), 0, np.zeros(0), True,
                               {"policy": "equal"})
    cfg = sc.comm.gnn_weights if sc.comm.power == "gnn" else None  # None: shipped weights
    return POWER_ALLOCATORS[sc.comm.power](
        ghat, err_var, assoc, sc.channel.noise_power_w, p_max, rng=sim.rngs["power"], config=cfg)


class LocationAwareComm:
    """Per-frame beamformer directions from location-aware (or perfect) CSI, per-subframe power."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.directions: np.ndarray | None = None  # [K, M, N]
        self.robust_w: np.ndarray | None = None  # [K, M, N] seed-003 designs (power included)
        self.last_design = None  # BeamformingResult of the last seed-003 design
        self.robust_cache = None  # netsim.comm.robust_cache.ProblemCache (compiled cvxpy problems; not pickled)
        self.pilot_length = 0
        self.power_w: np.ndarray | None = None  # [M, K] last allocation (warm start), W
        self.power_step: float | None = None  # WMMSE refinement's last spectral step
        self.alloc_fresh = False  # power_w was computed on this frame's (unchanged) estimates
        self.alloc_converged = True
        self._w_cache: tuple | None = None  # (power_w, directions, w) of the last subframe

    def frame_setup(self, est_pos: np.ndarray, crlb_m2: np.ndarray) -> bool:
        """Design the frame's beamformers; True when the last ones were re-used."""
        sim = self.sim
        sc, net = sim.scenario, sim.net
        moved = max(u.moved_m for u in sim.users)
        if (self.directions is not None and sc.comm.reuse_distance_m > 0
                and moved <= sc.comm.reuse_distance_m
                and np.array_equal(self._designed_online, net.online)):
            return True
        pos = net.user_pos_m if sc.comm.csi == "perfect" else est_pos  # [K, 2]
        h_est = net.geometric_channel(pos) * net.online[None, :, None]  # [K, M, N]
        self.h_est = h_est
        self._designed_online = net.online.copy()
        for user in sim.users:
            user.reset_anchor()
        if sc.comm.beamforming in ROBUST_SCHEMES:
            self._design_robust(h_est, crlb_m2)
            return False
        self.directions = methods.BEAMFORMERS[sc.comm.beamforming](h_est, net.online)
        # inputs of the power policy: estimated equivalent channels and the variance of the
        # part the estimate misses (the Rician NLOS share of each link's power)
        self.assoc = (np.linalg.norm(self.directions, axis=2) > 0).T  # [M, K]
        if sc.comm.power == "equal":  # its powers need the association alone (see _power)
            self.ghat = self.err_var = None
        else:
            beta = net.large_scale_gain(pos).T  # [K, M]
            u = self.directions.transpose(1, 0, 2)  # [M, K, N]
            self.ghat = u @ np.conj(h_est.transpose(1, 2, 0))  # [M, K, K]  Ghat[m,k,i] = h_im^H u_mk
            self.err_var = (beta / (net.k_factor + 1.0)).T  # [M, K] (0 for pure LOS)
        self.robust_w = None
        self.last_design = None
        self.alloc_fresh = False
        return False

    def _design_robust(self, h_est: np.ndarray, crlb_m2: np.ndarray) -> None:
        """Seed-003 beamformers (TD-ISAC-Main / -EI / -MRT) at this frame's rho, against error
        balls (4) grown from this frame's position CRLB. A solver failure or an infeasible
        design falls back to equal-power MRT (logged)."""
        from netsim.comm.robust import design_beamformers  # cvxpy: only runs that use it
        from netsim.comm.robust_cache import ProblemCache
        from netsim.scenario.checks import SDP_DIM_GUARD, max_robust_dim

        sim = self.sim
        sc, net = sim.scenario, sim.net
        k_users, n_aps, n_ant = h_est.shape
        h_hat = h_est.reshape(k_users, n_aps * n_ant)  # [K, MN]
        crlb = np.where(np.isfinite(crlb_m2), crlb_m2, 0.0)  # genie sensing: exact positions
        eps = channel_error_radius(h_hat, n_aps, crlb, 4.0 / net.wavelength_m)  # [M, K]
        serving = None
        if sc.comm.serving_aps > 0:  # user-centric clusters: the strongest online APs per user
            gain = np.linalg.norm(h_est, axis=2)  # [K, M]
            n_srv = min(sc.comm.serving_aps, int(net.online.sum()))
            top = np.argsort(-gain, axis=1, kind="stable")[:, :n_srv]  # [K, L]
            serving = np.zeros((n_aps, k_users), dtype=bool)
            serving[top, np.arange(k_users)[:, None]] = True
        # resource guard (netsim.scenario.checks): the largest dimension whose estimated memory
        # and time are within the limits; above it the design is refused before cvxpy allocates
        max_dim = min(SDP_DIM_GUARD, max_robust_dim(sc.comm.beamforming, k_users))
        if self.robust_cache is None:  # compiled certificate problems, reused by later frames
            self.robust_cache = ProblemCache()
        # no hint=self.last_design: in isac_paper the SDR threshold moves by up to 1 bit/s/Hz
        # between frames, so the previous frame's guess cost more solves than it saved (14 vs 11)
        res = design_beamformers(
            sc.comm.beamforming, h_hat, eps, float(sim.p_max_w.max()), sc.channel.noise_power_w,
            sim.comm_fraction, n_aps, serving=serving, max_sdp_dim=max_dim,
            cache=self.robust_cache)
        self.last_design = res
        if res.status != "ok":
            sim.event("beamformer_fallback", -1,
                      f"{sc.comm.beamforming}: {res.status}"
                      + (f" (d = {res.extra['dim']}; {res.extra['hint']})" if "hint" in res.extra else "")
                      + "; equal-power MRT used this frame")
            res = design_beamformers("mrt_plain", h_hat, eps, float(sim.p_max_w.max()),
                                     sc.channel.noise_power_w, sim.comm_fraction, n_aps, serving=serving,
                                     cache=self.robust_cache)
        self.robust_w = res.w.reshape(k_users, n_aps, n_ant) * net.online[None, :, None]
        self.directions = self.robust_w

    def subframe(self, h_true: np.ndarray) -> SubframeTx:
        if self.robust_w is not None:  # power is part of the robust design
            power = (np.abs(self.robust_w) ** 2).sum(axis=2).T  # [M, K]
            return SubframeTx(self.robust_w, power, 1.0, 0, True)
        if self.alloc_fresh and self.sim.scenario.comm.power in DETERMINISTIC_POWER:
            # the estimates (ghat, err_var, assoc) are fixed for the frame and the policy is a
            # deterministic function of them: the allocation of the first subframe stands
            power = self.power_w
            iterations, converged = 0, self.alloc_converged
        else:
            alloc = _power(self.sim, self.ghat, self.err_var, self.assoc, self.power_w,
                           getattr(self, "power_step", None))
            self.power_step = alloc.info.get("spg_step")
            power, iterations, converged = alloc.power_w, alloc.iterations, alloc.converged
            self.power_w, self.alloc_converged, self.alloc_fresh = power, converged, True
        if self._w_cache is not None and self._w_cache[0] is power and self._w_cache[1] is self.directions:
            w = self._w_cache[2]  # the same allocation on the same directions: the same w
        else:
            w = self.directions * np.sqrt(power).T[:, :, None]  # [K, M, N]
            self._w_cache = (power, self.directions, w)
        return SubframeTx(w, power, 1.0, iterations, converged)


class PilotComm:
    """Seed-004 chain: association and pilots per frame; MMSE + RZF + power per subframe."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.pilot_length = 0
        self.power_w: np.ndarray | None = None  # [M, K] previous subframe's powers (warm start)
        self.power_step: float | None = None  # WMMSE refinement's last spectral step
        self.colour: np.ndarray | None = None  # [K] pilot assignment in use
        self.planned_assoc: np.ndarray | None = None  # [M, K] association it was made for
        self.planned_beta_db: np.ndarray | None = None  # [M, K] large-scale gains then (dB)
        self.n_assignments = 0  # DSatur(+Tabu) runs so far
        self.frame_power: np.ndarray | None = None  # [M, K] STS-GNN power of this frame

    def assignment_stale(self, beta: np.ndarray, assoc: np.ndarray) -> str | None:
        """Why the pilot assignment must be recomputed (None: reuse it).

        It is stale when there is none yet, when the association changed (the colouring may
        no longer be proper), or when some link that is associated now or was then has a
        large-scale gain more than ``comm.pilot_replan_db`` dB away from its value at the
        last assignment (0: recompute every frame, the seed's per-frame policy).
        """
        thr = self.sim.scenario.comm.pilot_replan_db
        if self.colour is None or thr <= 0.0:
            return "first assignment" if self.colour is None else "every frame"
        if not np.array_equal(assoc, self.planned_assoc):
            n = int((assoc != self.planned_assoc).sum())
            return f"association changed ({n} AP-user pairs)"
        links = assoc | self.planned_assoc  # [M, K]
        with np.errstate(divide="ignore"):
            beta_db = 10.0 * np.log10(beta)  # [M, K]
        with np.errstate(invalid="ignore"):  # -inf - -inf on an offline AP: dropped below
            shift = np.abs(beta_db - self.planned_beta_db)[links]
        shift = shift[np.isfinite(shift)]
        if shift.size and shift.max() > thr:
            return f"large-scale gain moved {shift.max():.2f} dB > {thr:g} dB"
        return None

    def frame_setup(self, est_pos: np.ndarray, crlb_m2: np.ndarray) -> bool:
        sim = self.sim
        sc, net = sim.scenario, sim.net
        beta = net.large_scale_gain()  # [M, K] (long-term statistics known to the CPU)
        beta = beta * net.online[:, None]
        self.beta = beta
        self.assoc = associate(beta, sc.comm.association_eta_db) & net.online[:, None]  # [M, K]
        if sc.comm.power == "sts_gnn" or sc.comm.pilot_assignment == "gnn":
            return self._gnn_frame_setup(beta)
        reason = self.assignment_stale(beta, self.assoc)
        if reason is None:
            return False  # reuse: estimation, RZF and power still run per subframe
        if self.colour is not None and sc.comm.pilot_replan_db > 0.0:
            sim.event("pilots_reassigned", -1, f"{sc.comm.pilot_assignment}: {reason}")
        from netsim.comm.pilot_assignment import TabuConfig, dsatur_tabu

        res = dsatur_tabu(
            beta, self.assoc, net.n_antennas, p_pilot_w=self.p_pilot_w,
            p_max_w=float(sim.p_max_w.max()), noise_w=sc.channel.noise_power_w,
            tau_c=sc.comm.coherence_slots, rng=sim.rngs["pilots"],
            config=TabuConfig(n_exact=sc.comm.pilot_tabu_exact),
            use_tabu=sc.comm.pilot_assignment == "dsatur_tabu")
        self.colour = res.colour
        self.planned_assoc = self.assoc.copy()
        with np.errstate(divide="ignore"):
            self.planned_beta_db = 10.0 * np.log10(beta)
        self.n_assignments += 1
        self.pilot_length = int(res.tau_p)
        if self.pilot_length >= sc.comm.coherence_slots:
            raise ValueError(f"pilot length {self.pilot_length} >= comm.coherence_slots")
        return False

    def _gnn_frame_setup(self, beta: np.ndarray) -> bool:
        """STS-GNN power (every frame) and Pilot-GNN / STS pilot head at frame start, with
        random features from ``sim.rngs``; pilots follow the same re-planning rule as DSatur."""
        from netsim.comm.power import gnn

        sim = self.sim
        sc = sim.scenario
        noise, p_max = sc.channel.noise_power_w, sim.p_max_w * sim.net.online
        self.frame_power, dec = None, None
        if sc.comm.power == "sts_gnn":
            self.frame_power, dec = gnn.sts_power(
                sc.comm.sts_gnn_weights, beta, self.assoc, self.p_pilot_w, noise, p_max,
                sim.rngs["pilots"], dtype=gnn.FAST_DTYPE, n_ant=sim.net.n_antennas)
        reason = self.assignment_stale(beta, self.assoc)
        if reason is None:
            return False
        if self.colour is not None and sc.comm.pilot_replan_db > 0.0:
            sim.event("pilots_reassigned", -1, f"{sc.comm.pilot_assignment}: {reason}")
        if sc.comm.pilot_assignment == "gnn":
            if dec is None:
                dec = gnn.gnn_pilot_assignment(sc.comm.gnn_weights, beta, self.assoc,
                                               self.p_pilot_w, noise, sim.rngs["pilots"],
                                               dtype=gnn.FAST_DTYPE, n_ant=sim.net.n_antennas)
            if sc.comm.gnn_pilot_refine:  # the opt-in J~ refinement (deterministic)
                from netsim.comm.power.gnn_refine import engine_config, refine_decision

                dec = refine_decision(dec, beta, self.assoc, sim.net.n_antennas, p_pilot_w=self.p_pilot_w,
                                      p_max_w=float(sim.p_max_w.max()), noise_w=noise,
                                      tau_c=sc.comm.coherence_slots,
                                      config=engine_config(sc.comm.gnn_pilot_refine))
            colour, tau_p = dec.colour, dec.tau_p
        else:
            from netsim.comm.pilot_assignment import TabuConfig, dsatur_tabu

            res = dsatur_tabu(
                beta, self.assoc, sim.net.n_antennas, p_pilot_w=self.p_pilot_w,
                p_max_w=float(sim.p_max_w.max()), noise_w=noise, tau_c=sc.comm.coherence_slots,
                rng=sim.rngs["pilots"], config=TabuConfig(n_exact=sc.comm.pilot_tabu_exact),
                use_tabu=sc.comm.pilot_assignment == "dsatur_tabu")
            colour, tau_p = res.colour, int(res.tau_p)
        self.colour, self.pilot_length = colour, int(tau_p)
        self.planned_assoc = self.assoc.copy()
        with np.errstate(divide="ignore"):
            self.planned_beta_db = 10.0 * np.log10(beta)
        self.n_assignments += 1
        if self.pilot_length >= sc.comm.coherence_slots:
            raise ValueError(f"pilot length {self.pilot_length} >= comm.coherence_slots")
        return False

    @property
    def p_pilot_w(self) -> float:
        return dbm_to_w(self.sim.scenario.comm.pilot_power_dbm)

    def subframe(self, h_true: np.ndarray) -> SubframeTx:
        from netsim.comm.subframe import pilot_statics, prepare_subframe

        sim = self.sim
        sc = sim.scenario
        h_ul = h_true.transpose(1, 0, 2)  # [M, K, N] channel seen by the uplink pilots
        key = (self.beta, self.assoc, self.colour)
        cached = getattr(self, "_statics", None)
        if cached is None or any(a is not b for a, b in zip(cached[0], key, strict=True)):
            # what the pilot chain keeps fixed while this frame's beta, assoc and pilots do
            cached = (key, pilot_statics(self.beta, self.assoc, self.colour, self.p_pilot_w,
                                         sc.channel.noise_power_w, h_ul.shape[-1]))
            self._statics = cached
        csi = prepare_subframe(h_ul, self.beta, self.assoc, self.colour, self.p_pilot_w,
                               sc.channel.noise_power_w, sim.rngs["pilots"], statics=cached[1])
        if self.frame_power is not None:  # STS-GNN: one power matrix for the whole frame
            alloc = PowerAllocation(self.frame_power, 0, np.zeros(0), True, {"policy": "sts_gnn"})
        else:
            alloc = _power(sim, csi.ghat, csi.err_var, self.assoc, self.power_w,
                           getattr(self, "power_step", None))
            self.power_step = alloc.info.get("spg_step")
        self.power_w = alloc.power_w
        w = csi.w * np.sqrt(alloc.power_w)[:, :, None]  # [M, K, N]
        factor = 1.0 - self.pilot_length / sc.comm.coherence_slots
        return SubframeTx(w.transpose(1, 0, 2), alloc.power_w, factor, alloc.iterations,
                          alloc.converged)


def make_comm(sim):
    """The pipeline of the scenario's ``comm.csi``."""
    return PilotComm(sim) if sim.scenario.comm.csi == "pilots" else LocationAwareComm(sim)

