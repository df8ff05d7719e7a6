"""The communication phase of a frame: beamformers once per frame, power control per subframe,
every subframe's SINR and rate on the true channel in one batch, the subframes rows."""

from __future__ import annotations

import time

import numpy as np

from netsim.comm.rates import downlink_sinr_batch, rates_bps_hz_batch
from netsim.sim.frame import FrameState

__all__ = ["CommPhase"]


class CommPhase:
    """Mixin of :class:`~netsim.sim.cpu.CentralUnit`: its communication phase."""

    def comm_phase(self, fs: FrameState):
        """Beamformers once per frame; per subframe power control and rates on the TRUE channel."""
        sim = self.sim
        sc, net, env = sim.scenario, sim.net, sim.env
        timing = fs.timing
        w0 = time.perf_counter()
        sim.advance_world()
        comm_start = env.now
        ref = self.reference_ap
        to_s, cfo_hz, phase = net.offsets_to(ref)
        fs.ap_rows = self.ap_rows(fs.meas, to_s, cfo_hz, phase)
        fs.n_gated = self.sync.gated_this_frame
        fs.reused = sim.comm.frame_setup(fs.est_pos, fs.crlb_m2)
        wall_power = 0.0
        not_converged = 0
        users = np.arange(net.n_users)  # [K] shared by the frame's subframe rows (read-only)
        # the subframes' times, as the timeouts below produce them (now + (t_sub - now)), and
        # their true channels in one batch (None: evaluated one by one)
        times, now = [], env.now
        for s in range(sc.frame.subframes):
            t_sub = comm_start + s * timing.subframe_s
            if t_sub > now:
                now = now + (t_sub - now)
            times.append(now)
        h_batch = net.true_channels(times)
        # nothing else acts before the last subframe (no correction arriving, no fault): the
        # oscillators are advanced through the subframe times in one go (bit-identical)
        quiet = h_batch is not None and env.peek() > times[-1]
        if quiet:
            to_hist, phase_hist = net.advance_through(times, ref)  # [S, M] each
        h_all, w_all, phase_all, to_all, t_all, txs = [], [], [], [], [], []
        if quiet:  # no other process acts before times[-1]: no need to wake up per subframe
            # nor to re-check the APs (no fault can act before the last subframe either)
            mask = None if net.online.all() else net.online[None, :, None]  # [1, M, 1]
            for s in range(sc.frame.subframes):
                h_true = h_batch[s]  # [K, M, N]
                if mask is not None:  # offline APs send nothing (x 1 would change no bit)
                    h_true = h_true * mask
                wp = time.perf_counter()
                tx = sim.comm.subframe(h_true)
                wall_power += time.perf_counter() - wp
                h_all.append(h_true)
                w_all.append(tx.w)
                txs.append(tx)
                not_converged += not tx.converged
            t_all = times
        for s in range(0 if quiet else sc.frame.subframes):
            t_sub = comm_start + s * timing.subframe_s
            if t_sub > env.now:
                yield env.timeout(t_sub - env.now)
            sim.advance_world()
            t_all.append(env.now)
            if h_batch is None:
                h_true = net.true_channel()  # [K, M, N]
            elif t_all[-1] != times[s]:  # cannot happen: the batch assumed these times
                raise RuntimeError(f"subframe {s} at {env.now} s, the batch assumed {times[s]} s")
            else:
                h_true = h_batch[s]  # [K, M, N]
            if not net.online.all():  # offline APs send nothing (x 1 would change no bit)
                h_true = h_true * net.online[None, :, None]
            to_s, _, phase = net.offsets_to(ref)
            wp = time.perf_counter()
            tx = sim.comm.subframe(h_true)
            wall_power += time.perf_counter() - wp
            h_all.append(h_true)
            w_all.append(tx.w)
            phase_all.append(phase)
            to_all.append(to_s)
            txs.append(tx)
            not_converged += not tx.converged
        # [S, M] each: the batch's histories when quiet (the rows the loop would have stacked)
        phase_stack = phase_hist if quiet else np.stack(phase_all)
        to_stack = to_hist if quiet else np.stack(to_all)
        if quiet and times[-1] > env.now:  # the time the last subframe's timeout reached
            yield env.timeout_at(times[-1])
        # every subframe's SINR in one batch (the same values as one call per subframe)
        # the batch itself when no subframe masked it (no copy); one w when every subframe
        # sent the same array (location-aware CSI with a per-frame allocation)
        h_stack = (h_batch if h_batch is not None and len(h_all) == len(h_batch)
                   and all(h.base is h_batch for h in h_all) else np.stack(h_all))
        w_stack = (np.broadcast_to(w_all[0], (len(w_all), *w_all[0].shape))
                   if all(w is w_all[0] for w in w_all) else np.stack(w_all))
        sinr = downlink_sinr_batch(h_stack, w_stack, sc.channel.noise_power_w,
                                   phase_stack, to_stack, sim.subcarrier_hz,
                                   sc.comm.cyclic_prefix_s,
                                   sc.comm.symbol_duration_s)  # [S, F, K]
        n_sub, n_user = len(txs), net.n_users
        se = rates_bps_hz_batch(sinr)  # [S, K] bit/s/Hz before the pre-log factor
        rate = np.array([tx.rate_factor for tx in txs])[:, None] * se  # [S, K]
        sinr_eff_db = 10 * np.log10(2.0 ** se - 1.0 + 1e-300)  # [S, K]
        power = np.stack([tx.power_w for tx in txs])  # [S, M, K]
        sim.trace.emit("subframes", frame=sim.frame, subframe=np.repeat(np.arange(n_sub), n_user),
                       t_s=np.repeat(np.asarray(t_all, dtype=float), n_user),
                       user=np.tile(users, n_sub), power_w=power.sum(axis=1).reshape(-1),
                       ap_power_w=power.transpose(0, 2, 1).reshape(n_sub * n_user, -1),
                       sinr_db=sinr_eff_db.reshape(-1), rate_bps_hz=rate.reshape(-1))
        # one array per comm phase (recording.record concatenates them: the same values in the
        # same order as the per-subframe rows)
        fs.rates_sum.append(rate.sum(axis=1))  # [S]
        fs.rates_min.append(rate.min(axis=1))  # [S]
        fs.sinr_all.append(sinr_eff_db)  # [S, K]
        fs.iters.append(np.fromiter((tx.iterations for tx in txs), dtype=np.int64, count=n_sub))
        if not_converged:
            sim.event("power_not_converged", -1,
                      f"{sc.comm.power}: {not_converged} of {sc.frame.subframes} subframes "
                      "hit the iteration cap (last iterate used)")
        end = comm_start + timing.comm_s
        if end > env.now:
            yield env.timeout(end - env.now)
        fs.wall_comm = time.perf_counter() - w0 - wall_power
        fs.wall_power = wall_power
        sim.wall["comm"] += fs.wall_comm
        sim.wall["power"] += wall_power

