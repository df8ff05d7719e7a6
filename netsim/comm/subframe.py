"""One communication subframe of the seed-004 pipeline, for the simulation engine.

Chains the kernels of spec 3.5-3.8 in the order the engine needs them:

    prepare_subframe(h, beta, assoc, colour, ...)   -> SubframeCSI (hhat, err_var, w, ghat)
    POWER_ALLOCATORS[name](csi.ghat, csi.err_var, assoc, noise_w, p_max_w, rng=...)
    evaluate_subframe(h_true, csi.w, power_w, noise_w, tau_p, tau_c) -> SubframeRates

``h`` given to :func:`prepare_subframe` is the channel seen by the uplink pilots; ``h_true``
given to :func:`evaluate_subframe` is the downlink channel the data sees. They are the same
array unless the engine applies per-AP residual synchronisation phases to the downlink, i.e.
h_true[m] = exp(j phi_m) h[m] (or a different SSF state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsim.comm.csi_mmse import estimate_channels
from netsim.comm.net_se import equivalent_channel_estimated, net_sum_se, sinr_true
from netsim.comm.rzf import rzf_beamformers, rzf_regularisation

__all__ = ["SubframeCSI", "SubframeRates", "prepare_subframe", "evaluate_subframe"]


@dataclass
class SubframeCSI:
    """CSI-side quantities of one subframe.

    hhat : [M, K, N] complex, MMSE estimates (zero where not associated)
    err_var : [M, K] float, c_mk where associated, beta_mk elsewhere
    w : [M, K, N] complex, unit-norm RZF beamformers (zero where not associated)
    ghat : [M, K, K] complex, estimated equivalent channels (power policy input)
    """

    hhat: np.ndarray
    err_var: np.ndarray
    w: np.ndarray
    ghat: np.ndarray


@dataclass
class SubframeRates:
    """Rates of one subframe on the true channel.

    sinr : [K] linear; rate_bps_hz : [K] net per-user SE (1 - tau_p/tau_c) log2(1 + SINR);
    net_se : float, eq. (4) [bit/s/Hz]
    """

    sinr: np.ndarray
    rate_bps_hz: np.ndarray
    net_se: float


def prepare_subframe(
    h: np.ndarray,
    beta: np.ndarray,
    assoc: np.ndarray,
    colour: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    rng: np.random.Generator,
    *,
    unknown: str = "statistical",
) -> SubframeCSI:
    """Pilots + MMSE estimation + distributed RZF + estimated equivalent channels.

    Parameters
    ----------
    h : [M, K, N] complex true (uplink) channels; beta : [M, K]; assoc : [M, K] bool;
    colour : [K] int pilot indices; p_pilot_w, noise_w : W; rng : pilot-noise generator;
    unknown : value of Ghat for unassociated pairs ("statistical" [C] default or "zero").
    """
    hhat, err = estimate_channels(h, beta, assoc, colour, p_pilot_w, noise_w, rng)
    w = rzf_beamformers(hhat, assoc, rzf_regularisation(err, noise_w, p_pilot_w))
    ghat = equivalent_channel_estimated(hhat, w, beta, assoc, unknown=unknown)  # type: ignore[arg-type]
    return SubframeCSI(hhat, err, w, ghat)


def evaluate_subframe(
    h_true: np.ndarray,
    w: np.ndarray,
    power_w: np.ndarray,
    noise_w: float,
    tau_p: int,
    tau_c: int,
) -> SubframeRates:
    """SINR (3), per-user net SE and net-SE (4) on the TRUE channel ``h_true [M, K, N]``."""
    sinr = sinr_true(h_true, w, power_w, noise_w)
    factor = 1.0 - tau_p / tau_c
    return SubframeRates(sinr, factor * np.log2(1.0 + sinr), float(net_sum_se(sinr, tau_p, tau_c)))
