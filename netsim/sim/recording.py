"""A frame's records: the users, aps and frames rows the CPU emits at the end of a frame."""

from __future__ import annotations

import math

import numpy as np

from netsim.sim.checks import mean_sinr_db
from netsim.sim.frame import FrameState

__all__ = ["FrameRecorder"]


class FrameRecorder:
    """Mixin of :class:`~netsim.sim.cpu.CentralUnit`: the frame's rows."""

    def record(self, fs: FrameState) -> dict:
        """Emit the frame's users, aps and frames rows; return the frames row."""
        sim = self.sim
        sc, net = sim.scenario, sim.net
        timing, t_frame = fs.timing, fs.t_frame
        true_pos, est_pos, crlb_m2, ap_rows = fs.true_pos, fs.est_pos, fs.crlb_m2, fs.ap_rows
        err = np.linalg.norm(est_pos - true_pos, axis=1)  # [K]
        sqrt_crlb = np.sqrt(crlb_m2)  # [K]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = err / sqrt_crlb  # [K]; NaN with genie sensing (no bound)
        # tracked: within 3 sqrt(CRLB) of the truth, or within 1 cm (issue 9's definition)
        tracked = (err <= 0.01) | (np.isfinite(ratio) & (ratio <= 3.0))
        sim.trace.emit("users", frame=sim.frame, t_s=t_frame, user=np.arange(net.n_users),
                       x_m=true_pos[:, 0], y_m=true_pos[:, 1], x_hat_m=est_pos[:, 0],
                       y_hat_m=est_pos[:, 1], loc_err_m=err, crlb_m=sqrt_crlb,
                       speed_mps=net.user_speeds_mps(), crlb_ratio=ratio, tracked=tracked,
                       crlb_plan_m=np.sqrt(fs.crlb_plan_m2))
        sim.trace.emit("aps", frame=sim.frame, t_s=t_frame, **ap_rows)
        self.check_lost_aps()
        online = net.online
        res_cfo, res_to = ap_rows["residual_cfo_hz"][online], ap_rows["residual_to_s"][online]
        res_phase = ap_rows["residual_phase_rad"][online]
        record = dict(
            frame=sim.frame, t_s=t_frame, sync_ran=fs.sync_due, sync_rounds=fs.sync_rounds,
            replanned=fs.replanned,
            sync_duration_s=timing.sync_s, sense_duration_s=timing.sense_s,
            comm_duration_s=timing.comm_s,
            overhead_fraction=timing.sync_s / (timing.sync_s + sc.frame.sense_comm_duration_s),
            comm_fraction=fs.rho_now, n_online_aps=int(online.sum()),
            n_clusters=len(self.plan.masters) if self.plan is not None else 0,
            n_pilots=int(self.plan.n_pilots) if self.plan is not None else 0,
            residual_cfo_rms_hz=_rms(res_cfo), residual_cfo_max_hz=_absmax(res_cfo),
            residual_to_rms_s=_rms(res_to), residual_to_max_s=_absmax(res_to),
            residual_phase_rms_rad=_rms(res_phase),
            n_measured_aps=int(np.isfinite(fs.meas.est_to_s).sum()) if fs.meas else 0,
            n_gated=fs.n_gated,
            sensing_rmse_m=_rms(err), crlb_rms_m=math.sqrt(_mean(crlb_m2)),
            sensing_ratio_median=float(np.median(ratio)) if np.all(np.isfinite(ratio)) else float("nan"),
            tracked_fraction=_mean(tracked),
            beamformer_reused=fs.reused, comm_pilot_length=int(sim.comm.pilot_length),
            power_iterations_mean=_mean(_flat(fs.iters)),
            sum_rate_bps_hz=_mean(_flat(fs.rates_sum)),
            min_rate_bps_hz=_mean(_flat(fs.rates_min)),
            certified_min_rate_bps_hz=self.certified_rate(),
            mean_sinr_db=mean_sinr_db(fs.sinr_all),  # served users only (dB)
            wall_sync_s=fs.wall_sync, wall_sense_s=fs.wall_sense, wall_comm_s=fs.wall_comm,
            wall_power_s=fs.wall_power,
        )
        sim.trace.emit("frames", **record)
        return record

    def certified_rate(self) -> float:
        """Certified worst-case minimum user rate of this frame's seed-003 design over the error
        balls [bit/s/Hz] (including the pre-log rho); NaN for the other beamformers or when the
        design fell back to equal-power MRT."""
        comm = self.sim.comm
        design = getattr(comm, "last_design", None)
        if design is None or design.status != "ok" or getattr(comm, "robust_w", None) is None:
            return float("nan")
        return float(design.rate_wc)

    def ap_rows(self, meas, to_s, cfo_hz, phase) -> dict[str, np.ndarray]:
        net = self.sim.net
        n = net.n_aps
        nan = np.full(n, np.nan)
        static = self._ap_static_columns()
        online = net.online.copy()
        std = np.where(online[:, None], self.sync.residual_std(self.sim.env.now), np.nan)  # [M, 3]
        return dict(
            **static, online=online,
            true_cfo_hz=meas.true_cfo_hz if meas else nan,
            est_cfo_hz=meas.est_cfo_hz if meas else nan,
            residual_cfo_hz=np.where(online, cfo_hz, np.nan),
            true_to_s=meas.true_to_s if meas else nan,
            est_to_s=meas.est_to_s if meas else nan,
            residual_to_s=np.where(online, to_s, np.nan),
            residual_phase_rad=np.where(online, phase, np.nan),
            crb_cfo_hz2=meas.crb_cfo_hz2 if meas else nan,
            crb_to_s2=meas.crb_to_s2 if meas else nan,
            track_to_std_s=std[:, 0], track_cfo_std_hz=std[:, 1], track_phase_std_rad=std[:, 2],
        )

    def _ap_static_columns(self) -> dict[str, np.ndarray]:
        """The aps columns that change only with the plan or the reference AP: built once per
        (plan, reference AP) and emitted by reference every frame (never modified)."""
        plan, ref = self.plan, self.reference_ap
        cached = getattr(self, "_ap_static", None)  # runtime cache (not checkpointed)
        if cached is not None and cached[0] is plan and cached[1] == ref:
            return cached[2]
        net = self.sim.net
        n = net.n_aps
        if plan is not None:
            cluster = np.asarray(plan.cluster_of_ap)
            is_master = np.zeros(n, dtype=bool)  # [M]
            is_master[np.asarray(plan.masters, dtype=np.intp)] = True
        else:
            cluster, is_master = np.full(n, -1), np.zeros(n, dtype=bool)
        columns = dict(ap=np.arange(n), x_m=net.ap_center_m[:, 0], y_m=net.ap_center_m[:, 1],
                       cluster=cluster, is_master=is_master, is_reference=np.arange(n) == ref)
        self._ap_static = (plan, ref, columns)
        return columns


def _flat(parts: list[np.ndarray]) -> np.ndarray:
    """The comm phases' per-subframe arrays of a frame, end to end (empty: no comm phase)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0)


def _mean(x) -> float:
    """``float(np.mean(x))`` of a 1-D float, int or bool array or list, without np.mean's
    Python-level overhead: the same float64 pairwise sum over the count (the same bits)."""
    x = np.asarray(x)
    if x.size == 0:
        return float(np.mean(x))  # NaN with numpy's warning, as before
    return float(np.add.reduce(x, dtype=np.float64) / x.size)


def _rms(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return math.sqrt(_mean(x**2)) if x.size else math.nan


def _absmax(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(np.max(np.abs(x))) if x.size else math.nan
