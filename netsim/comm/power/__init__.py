"""Per-subframe power allocation policies and their registry (seed 004, spec 4.3).

Engine-facing contract
----------------------
Every entry of :data:`POWER_ALLOCATORS` is a callable with ONE signature::

    allocate(ghat, err_var, assoc, noise_w, p_max_w, *, rng=None, config=None) -> PowerAllocation

    ghat    : ndarray [M, K, K] complex   estimated equivalent channels of this subframe,
                                           Ghat[m, k, i] = AN_mk -> UE i (eq. (11); see
                                           netsim.comm.net_se.equivalent_channel_estimated)
    err_var : ndarray [M, K] float        unknown-part variance: c_mk (MMSE error variance
                                           per antenna) where a_mk = 1, beta_mk where a_mk = 0
                                           (netsim.comm.csi_mmse.mmse_estimate returns it)
    assoc   : ndarray [M, K] bool         association A
    noise_w : float                       noise power sigma^2 [W]
    p_max_w : float or ndarray [M]        per-AP power limit [W]
    rng     : numpy.random.Generator      for randomised policies (e.g. a GNN with random
                                           features); deterministic policies ignore it
    config  : policy-specific dataclass or None (defaults)

and returns :class:`PowerAllocation` with ``power_w [M, K]`` (W; >= 0, zero where a_mk = 0,
sum_k p_mk <= P_max exactly) and diagnostics (iterations, objective trace, converged flag).
Policies may ignore ``err_var`` (the GNN of the next issue uses ``ghat`` and ``assoc`` only).

Registered policies: "equal" (P_max / |K_m| on each associated pair), "maxmin" (max-min fair
surrogate SINR with a fixed per-UE power split over the serving APs; exact bisection on the
common SINR target), "wmmse" (spec 4.3, :mod:`netsim.comm.wmmse`, re-exported), "gnn" (the
DTS-Power-GNN, numpy inference, :mod:`netsim.comm.power.gnn`; ``config`` = weights or their
path). The STS-GNN power (once per frame, from LSF) is :func:`netsim.comm.power.gnn.sts_power`.
Add a policy with :func:`register_power_allocator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from netsim.comm.surrogate import surrogate_rate, wmmse_terms

if TYPE_CHECKING:
    from netsim.comm.wmmse import WMMSEConfig

__all__ = [
    "PowerAllocation",
    "PowerAllocator",
    "MaxMinConfig",
    "equal_power",
    "equal_power_w",
    "maxmin_power",
    "wmmse_allocator",
    "wmmse_power",
    "gnn_allocator",
    "POWER_ALLOCATORS",
    "register_power_allocator",
    "get_power_allocator",
]


@dataclass
class PowerAllocation:
    """Result of a power allocator.

    Attributes
    ----------
    power_w : ndarray, shape [M, K], float64, W
    iterations : int
        Iterations of the policy (0 for closed-form policies).
    objective : ndarray, shape [iterations + 1] (or [0]), the policy's objective trace
        (WMMSE: surrogate sum rate Rsur [bit/s/Hz]; maxmin: best feasible common SINR target).
    converged : bool
    info : dict, free-form extras (policy name, ...)
    """

    power_w: np.ndarray
    iterations: int = 0
    objective: np.ndarray = field(default_factory=lambda: np.zeros(0))
    converged: bool = True
    info: dict[str, Any] = field(default_factory=dict)


class PowerAllocator(Protocol):
    """Call signature shared by every registered power policy (see module docstring)."""

    def __call__(
        self,
        ghat: np.ndarray,
        err_var: np.ndarray,
        assoc: np.ndarray,
        noise_w: float,
        p_max_w: float | np.ndarray,
        *,
        rng: np.random.Generator | None = None,
        config: Any = None,
    ) -> PowerAllocation: ...


def _p_max_vec(p_max_w: float | np.ndarray, n_ap: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(p_max_w, dtype=float), (n_ap,)).copy()


def equal_power_w(assoc: np.ndarray, p_max_w: float | np.ndarray) -> np.ndarray:
    """The power matrix [M, K] (W) of :func:`equal_power`, ``P_max,m / |K_m|`` on the
    associated pairs of ``assoc`` [M, K] bool and 0 elsewhere, without its objective trace."""
    n_ap = assoc.shape[0]
    p_max = _p_max_vec(p_max_w, n_ap)  # [M]
    load = np.maximum(assoc.sum(axis=1), 1)  # [M]
    return np.where(assoc, (p_max / load)[:, None], 0.0)  # [M, K]


def equal_power(
    ghat: np.ndarray,
    err_var: np.ndarray,
    assoc: np.ndarray,
    noise_w: float,
    p_max_w: float | np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    config: Any = None,
) -> PowerAllocation:
    """Equal power p_mk = P_max / |K_m| on associated pairs (reference policy)."""
    power = equal_power_w(assoc, p_max_w)  # [M, K]
    rsur = surrogate_rate(ghat, err_var, assoc, power, noise_w)
    return PowerAllocation(power, 0, np.array([rsur]), True, {"policy": "equal"})


@dataclass(frozen=True)
class MaxMinConfig:
    """Parameters of :func:`maxmin_power`.

    Attributes
    ----------
    split : {"gain", "uniform"}
        Per-UE split of its power over its serving APs: alpha_mk proportional to
        |Ghat[m,k,k]|^2 (maximum coherent gain for a fixed total) or uniform.
    steps : int
        Bisection steps on the common SINR target.
    """

    split: str = "gain"
    steps: int = 60


def maxmin_power(
    ghat: np.ndarray,
    err_var: np.ndarray,
    assoc: np.ndarray,
    noise_w: float,
    p_max_w: float | np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    config: MaxMinConfig | None = None,
) -> PowerAllocation:
    """Max-min fair power on the imperfect-CSI surrogate SINR (reference policy).

    With a fixed split p_mk = alpha_mk q_k (sum_m alpha_mk = 1 over the serving APs), the
    surrogate SINR of spec 4.3 is linear-fractional in q:

        SINR_k(q) = D_k q_k / (sum_j I[k, j] q_j + sigma^2),
        D_k = |sum_m a[m,k,k] sqrt(alpha_mk)|^2,
        I[k, j] = 1[j != k] |sum_m a[m,j,k] sqrt(alpha_mj)|^2 + sum_m d[m,j,k] alpha_mj.

    A common target gamma is feasible iff q(gamma) = (I - gamma diag(1/D) I)^{-1} gamma sigma^2/D
    is non-negative (then it is the componentwise smallest solution) and meets every AP's
    limit sum_k alpha_mk q_k <= P_max; bisection on gamma returns the max-min optimum for the
    chosen split (not the joint optimum over splits). APs with P_max = 0 are left out of the
    split; UEs with no powered serving AP get zero power and are left out of the minimum.
    """
    cfg = config or MaxMinConfig()
    n_ap, n_ue = assoc.shape
    p_max = _p_max_vec(p_max_w, n_ap)
    a, d = wmmse_terms(ghat, err_var, assoc)  # [M, K, K]
    served = assoc & (p_max[:, None] > 0)  # [M, K] pairs of powered APs
    diag_gain = np.abs(np.einsum("mkk->mk", a)) ** 2  # [M, K]
    n_srv = np.maximum(served.sum(axis=0), 1)  # [K]
    if cfg.split == "gain":
        wgt = np.where(served, diag_gain, 0.0)
        tot = wgt.sum(axis=0)
        alpha = np.where(tot > 0, wgt / np.where(tot > 0, tot, 1.0), served / n_srv)
    elif cfg.split == "uniform":
        alpha = served / n_srv
    else:
        raise ValueError(f"split={cfg.split!r}; allowed: 'gain', 'uniform'")
    # alpha [M, K]: columns sum to 1 over each UE's powered serving APs
    coh = np.abs(np.einsum("mjk,mj->jk", a, np.sqrt(alpha))) ** 2  # [K(j), K(k)]
    var = np.einsum("mjk,mj->jk", d, alpha)  # [K(j), K(k)]
    sig = np.diagonal(coh).copy()  # [K]
    active = served.any(axis=0) & (sig > 0)  # UEs that can get a positive SINR
    power = np.zeros(assoc.shape)
    if not active.any():
        return PowerAllocation(power, 0, np.zeros(1), True, {"policy": "maxmin", "min_sinr": 0.0})
    idx = np.flatnonzero(active)
    n_act = idx.size
    sig_a = sig[idx]
    interf = (coh * (1.0 - np.eye(n_ue)) + var).T[np.ix_(idx, idx)]  # [A(k), A(j)]
    alpha_a = alpha[:, idx]  # [M, A]
    with np.errstate(divide="ignore"):
        q_cap = np.where(alpha_a > 0, p_max[:, None] / np.where(alpha_a > 0, alpha_a, 1.0), np.inf)
    q_max = q_cap.min(axis=0)  # [A]
    gamma_hi = float(np.min(sig_a * q_max / noise_w))
    gamma_lo = 0.0
    q_best = np.zeros(n_act)
    trace = [0.0]
    b_mat = interf / sig_a[:, None]  # [A, A]
    c_vec = noise_w / sig_a  # [A]
    eye = np.eye(n_act)
    for _ in range(cfg.steps):
        gamma = 0.5 * (gamma_lo + gamma_hi)
        try:
            q = np.linalg.solve(eye - gamma * b_mat, gamma * c_vec)
        except np.linalg.LinAlgError:
            q = None
        ok = (
            q is not None
            and np.all(np.isfinite(q))
            and np.all(q >= 0)
            and np.all(alpha_a @ q <= p_max * (1 + 1e-12))
        )
        if ok:
            gamma_lo, q_best = gamma, q
        else:
            gamma_hi = gamma
        trace.append(gamma_lo)
    power[:, idx] = alpha_a * q_best[None, :]  # [M, A]
    load = power.sum(axis=1)
    scale = np.where(load > p_max, p_max / np.where(load > 0, load, 1.0), 1.0)
    power = power * scale[:, None]
    return PowerAllocation(
        power, cfg.steps, np.asarray(trace), True, {"policy": "maxmin", "min_sinr": gamma_lo}
    )


def wmmse_allocator(
    ghat: np.ndarray,
    err_var: np.ndarray,
    assoc: np.ndarray,
    noise_w: float,
    p_max_w: float | np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    config: WMMSEConfig | None = None,
) -> PowerAllocation:
    """WMMSE policy (spec 4.3); see :func:`netsim.comm.wmmse.wmmse_power`."""
    from netsim.comm.wmmse import wmmse_power

    res = wmmse_power(ghat, err_var, assoc, noise_w, p_max_w, config)
    return PowerAllocation(
        res.power_w, res.iterations, res.objective, res.converged, {"policy": "wmmse"}
    )


def gnn_allocator(
    ghat: np.ndarray,
    err_var: np.ndarray,
    assoc: np.ndarray,
    noise_w: float,
    p_max_w: float | np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    config: Any = None,
) -> PowerAllocation:
    """The DTS-Power-GNN policy: :func:`netsim.comm.power.gnn.gnn_allocator`, imported at the
    first call (a run with another policy never loads the GNN modules)."""
    from netsim.comm.power.gnn import gnn_allocator as allocate

    return allocate(ghat, err_var, assoc, noise_w, p_max_w, rng=rng, config=config)


def __getattr__(name: str) -> Any:
    """``wmmse_power`` (re-exported from :mod:`netsim.comm.wmmse`) and the ``gnn`` submodule,
    loaded on first access."""
    if name == "wmmse_power":
        from netsim.comm.wmmse import wmmse_power

        return wmmse_power
    if name == "gnn":
        import importlib

        return importlib.import_module("netsim.comm.power.gnn")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


POWER_ALLOCATORS: dict[str, Callable[..., PowerAllocation]] = {
    "equal": equal_power,
    "maxmin": maxmin_power,
    "wmmse": wmmse_allocator,
    "gnn": gnn_allocator,
}


def register_power_allocator(name: str, fn: Callable[..., PowerAllocation]) -> None:
    """Add a policy (e.g. the power GNN) under ``name``; refuses to overwrite silently."""
    if name in POWER_ALLOCATORS and POWER_ALLOCATORS[name] is not fn:
        raise ValueError(f"power allocator {name!r} already registered")
    POWER_ALLOCATORS[name] = fn


def get_power_allocator(name: str) -> Callable[..., PowerAllocation]:
    """Look up a policy by name; the error lists the allowed names."""
    try:
        return POWER_ALLOCATORS[name]
    except KeyError:
        raise KeyError(
            f"unknown power allocator {name!r}; allowed: {sorted(POWER_ALLOCATORS)}"
        ) from None
