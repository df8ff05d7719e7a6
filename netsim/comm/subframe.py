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

from netsim.comm.csi_mmse import (
    copilot_matrix,
    draw_pilot_noise,
    estimate_channels,
    pilot_length,
    unknown_variance,
)
from netsim.comm.net_se import equivalent_channel_estimated, net_sum_se, sinr_true
from netsim.comm.rzf import rzf_beamformers, rzf_regularisation

__all__ = ["SubframeCSI", "SubframeRates", "PilotStatics", "pilot_statics", "prepare_subframe",
           "evaluate_subframe"]


@dataclass(frozen=True)
class PilotStatics:
    """The parts of the pilot chain that stay fixed while (beta, assoc, colour) do, i.e. for a
    whole frame in the engine (spec 2: LSF, association and pilots are per frame).

    cp : [K, K] complex, co-pilot matrix Cp (complex so that Cp @ h needs no cast)
    gain : [1, 1, 1] float, sqrt(tau_p p_u)
    noise_idx : [K] int, PS of each UE (which pilot-noise row each (AP, UE) pair sees)
    noise_sd : float, sqrt(sigma^2) [sqrt(W)]
    coef : [M, K] float, sqrt(tau_p p_u) beta_mk / psi_mk on associated pairs, else 0 (3.5)
    err_var : [M, K] float, c_mk where associated, beta_mk elsewhere
    reg : [M] float, RZF regulariser a_m (3.6)
    """

    cp: np.ndarray
    gain: np.ndarray
    noise_idx: np.ndarray
    noise_sd: float
    coef: np.ndarray
    err_var: np.ndarray
    reg: np.ndarray


def pilot_statics(
    beta: np.ndarray,
    assoc: np.ndarray,
    colour: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    n_ant: int,
) -> PilotStatics:
    """:class:`PilotStatics` of ``beta [M, K]``, ``assoc [M, K]``, ``colour [K]`` (W, N).

    Computed with the very operations of :func:`netsim.comm.csi_mmse.pilot_observation`,
    :func:`~netsim.comm.csi_mmse.mmse_estimate` and :func:`~netsim.comm.rzf.rzf_regularisation`,
    so :func:`prepare_subframe` gives bit-identical results with or without them.
    (``n_ant`` is no longer needed: the pilot-noise rows are gathered along the UE axis.)
    """
    colour = np.asarray(colour)
    tau_p = np.asarray(pilot_length(colour), dtype=float)  # 0-d
    cp = copilot_matrix(colour)  # [K, K]
    gain = np.sqrt(tau_p * p_pilot_w)[..., None, None, None]  # [1, 1, 1]
    noise_idx = colour.astype(np.intp)  # [K] (a gather along the UE axis)
    contam = beta @ cp  # [M, K]
    psi = tau_p[..., None, None] * p_pilot_w * contam + noise_w  # [M, K]
    tp = tau_p[..., None, None]
    coef = np.sqrt(tp * p_pilot_w) * beta / psi * assoc  # [M, K]
    c = beta - tp * p_pilot_w * beta**2 / psi  # [M, K]
    err = unknown_variance(beta, c, assoc)  # [M, K]
    return PilotStatics(cp.astype(complex), gain, noise_idx, float(np.sqrt(noise_w)), coef, err,
                        rzf_regularisation(err, noise_w, p_pilot_w))


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
    statics: PilotStatics | None = None,
) -> SubframeCSI:
    """Pilots + MMSE estimation + distributed RZF + estimated equivalent channels.

    Parameters
    ----------
    h : [M, K, N] complex true (uplink) channels; beta : [M, K]; assoc : [M, K] bool;
    colour : [K] int pilot indices; p_pilot_w, noise_w : W; rng : pilot-noise generator;
    unknown : value of Ghat for unassociated pairs ("statistical" [C] default or "zero");
    statics : :func:`pilot_statics` of the same (beta, assoc, colour), optional: skips
        recomputing them (the result is bit-identical).
    """
    if statics is None:
        hhat, err = estimate_channels(h, beta, assoc, colour, p_pilot_w, noise_w, rng)
        reg = rzf_regularisation(err, noise_w, p_pilot_w)  # [M]
    else:
        y = statics.gain * (statics.cp @ h)  # [M, K, N] sum_i Cp[k,i] h[m,i,:]
        noise = draw_pilot_noise(h.shape, rng)  # [M, K_max = K, N]
        # the rows of each UE's pilot: a plain gather along the UE axis (the values of
        # take_along_axis with the index broadcast to [M, K, N], without building it)
        y = y + statics.noise_sd * noise[..., statics.noise_idx, :]
        hhat = statics.coef[..., None] * y  # [M, K, N]
        err, reg = statics.err_var, statics.reg
    w = rzf_beamformers(hhat, assoc, reg)
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
