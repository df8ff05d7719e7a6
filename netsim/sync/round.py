"""One over-the-air synchronization round (seed 000; spec ``sync.md`` 8.17).

Engine entry point: :func:`sync_round`. Given a :class:`~netsim.sync.plan.SyncPlan`, the AP
positions and each AP's clock offsets relative to an ideal network clock (``x_i`` seconds,
``f_c y_i`` Hz), it returns each AP's estimated offset relative to the *reference AP*, so the
engine corrects AP ``a`` by subtracting ``est_time_offset_s[a]`` and ``est_cfo_hz[a]``.

Round structure (overhead ``2 K_C + tau`` slots, as in eq 40b)
---------------------------------------------------------------
1. ``tau`` pilot slots: in slot ``p`` every slave with pilot ``p`` transmits. Each master
   receives the superposition of *all* slaves on ``p`` (its own slave plus the co-pilot slaves
   of other clusters: pilot contamination) and estimates its own slave's TO/CFO.
   Link ``i -> j`` (slave to master) estimates ``x_i - x_j`` and ``f_c (y_i - y_j)``.
2. ``2 K_C`` master slots (our design, not in the paper, which exchanges with the CPU over
   the fronthaul): every non-reference master ``k`` exchanges a pilot two-way with its parent
   master ``p`` in the plan's master tree (two dedicated, interference-free slots). The
   forward burst ``k -> p`` estimates ``x_k - x_p``, the backward burst ``p -> k`` estimates
   ``x_p - x_k``; the link estimate is ``(fwd - bwd) / 2`` (error variance
   ``(v_fwd + v_bwd) / 4``). Offsets then chain slave -> master -> ... -> reference, and the
   composite CRB is the sum of the link CRBs along the path (independent errors).

Signal details
--------------
* The master opens its window ``g = max_to_s / Ts`` chips before its nominal burst time, so the
  normalised TO ``theta1 = g - (x_i - x_j) / Ts`` lies in ``[0, eta = 2 g]`` when
  ``|x_i - x_j| <= max_to_s`` (the ML searches exactly ``[0, eta]``). A larger offset gives an
  estimate at the edge of the window, i.e. a residual of ``|x_i - x_j| - max_to_s`` or more; the
  link is flagged ``out_of_range`` (``crb`` mode clips the same way). Choose ``max_to_s``
  above the largest offset the oscillators can accumulate between rounds.
* Tap delays ``d / (c Ts) + excess`` are known to the master (spec 2.5), so the propagation
  delay ``d / c`` is removed from the TO estimate. Desired links use the random 4-tap model of
  spec 6.2; co-pilot interferers use their main path only (``alpha0 = 1``, spec 2.7).
* CFOs are normalised ``eps = df Ts``; the CFO search covers ``|df| <= max_cfo_hz``.
* ``method="crb"`` draws each link estimate as truth + ``N(0, CRB)`` (CRB with contamination,
  spec 3), with ``D`` computed from the interferer's actual delay (``A`` with a one-chip
  spread), and clips the TO to the window like the ML does. Links with a singular Fisher
  matrix (spec 3.6) get NaN estimates and ``valid = False`` (rare with the 6.2 tap model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from netsim.phy.pilots import bpsk_pilots, zadoff_chu
from netsim.sync.burst import received_burst
from netsim.sync.channel import (
    DEFAULT_NOISE_POWER_W,
    SPEED_OF_LIGHT_M_S,
    PathLossModel,
    draw_link_taps,
)
from netsim.sync.crb import COND_LIMIT, contamination_diag, crb_to_cfo
from netsim.sync.ml import ml_estimate
from netsim.sync.plan_config import SyncPlan

__all__ = [
    "SyncRoundConfig",
    "SyncLinks",
    "SyncRoundResult",
    "sync_round",
    "LINK_SLAVE",
    "LINK_MASTER_FWD",
    "LINK_MASTER_BWD",
]

LINK_SLAVE = 0
LINK_MASTER_FWD = 1
LINK_MASTER_BWD = 2


@dataclass(frozen=True)
class SyncRoundConfig:
    """Parameters of one synchronization round.

    Attributes
    ----------
    pilot_length_chips : int
        ``N`` (256).
    chip_time_s : float
        ``Ts`` (50 ns, B = 20 MHz).
    n_taps : int
        Taps of each desired link (random model of spec 6.2), 4.
    max_to_s : float
        Half-width of the TO search window (s); offsets ``|x_i - x_j|`` beyond it are clipped
        (see module notes). Default 1 us (20 chips).
    max_cfo_hz : float or None
        CFO search range ``|df| <= max_cfo_hz``; None searches the whole ``[-1/(2 Ts), 1/(2 Ts))``.
        Default 100 kHz (about 40 ppm at 2.4 GHz).
    tx_power_w, noise_power_w : float
        ``Pt`` (1 W) and ``sigma^2`` per sample (-92 dBm).
    path_loss : PathLossModel
        eq 60.
    pilot_kind : str
        ``"bpsk"`` (random, fresh every round) or ``"zc"`` (Zadoff-Chu roots 1, 2, ...).
    to_step_chips, n_refine, n_candidates : ML search settings (see :func:`ml_estimate`).
    cond_limit : float
        Fisher-matrix condition limit for the CRB.
    ml_window_sigmas, ml_window_min_chips : float
        With a TO prior (``to_prior`` of :func:`sync_round`), the ML's coarse TO search of a link
        covers the predicted TO +/- ``max(ml_window_min_chips, ml_window_sigmas * std)`` chips
        (clipped to ``[0, eta]``); ``ml_window_sigmas = 0`` ignores the prior. Defaults 8, 2.
    min_sinr_db : float
        Links whose average-power SINR (spec 5.2) is below this are not trusted: the APs whose
        chain contains one get ``valid = False`` (estimates are still reported). Below about
        10-15 dB the ML has threshold outliers (errors of a fraction of a chip up to the window
        size) that the Gaussian ``"crb"`` fidelity does not reproduce. Default 10 dB.
    """

    pilot_length_chips: int = 256
    chip_time_s: float = 50e-9
    n_taps: int = 4
    max_to_s: float = 1e-6
    max_cfo_hz: float | None = 100e3
    tx_power_w: float = 1.0
    noise_power_w: float = DEFAULT_NOISE_POWER_W
    path_loss: PathLossModel = field(default_factory=PathLossModel)
    pilot_kind: str = "bpsk"
    to_step_chips: float = 0.1
    n_refine: int = 3
    n_candidates: int = 2
    cond_limit: float = COND_LIMIT
    min_sinr_db: float = 10.0
    ml_window_sigmas: float = 8.0
    ml_window_min_chips: float = 2.0


@dataclass(frozen=True)
class SyncLinks:
    """Per-link diagnostics of a round (one entry per burst that was estimated).

    All arrays have shape (n_link,). ``kind``: 0 slave->master, 1 master->parent (forward),
    2 parent->master (backward). TO in s, CFO in Hz; ``est_*`` is the estimate of
    ``x_tx - x_rx`` / ``f_c (y_tx - y_rx)``.
    """

    tx_ap: NDArray[np.int64]
    rx_ap: NDArray[np.int64]
    kind: NDArray[np.int64]
    pilot: NDArray[np.int64]
    distance_m: NDArray[np.float64]
    sinr_db: NDArray[np.float64]
    true_to_s: NDArray[np.float64]
    est_to_s: NDArray[np.float64]
    true_cfo_hz: NDArray[np.float64]
    est_cfo_hz: NDArray[np.float64]
    crb_to_s2: NDArray[np.float64]
    crb_cfo_hz2: NDArray[np.float64]
    out_of_range: NDArray[np.bool_]
    singular: NDArray[np.bool_]


@dataclass(frozen=True)
class SyncRoundResult:
    """Outcome of :func:`sync_round`, per AP (shape (n_ap,)).

    Attributes
    ----------
    est_time_offset_s, est_cfo_hz : ndarray, float
        Estimated offset of each AP relative to the reference AP (``x_a - x_ref`` and
        ``f_c (y_a - y_ref)``); 0 for the reference, NaN for offline or invalid APs.
    true_time_offset_s, true_cfo_hz : ndarray, float
        The true values of the same quantities (NaN offline), for residual statistics.
    crb_time_offset_s2, crb_cfo_hz2 : ndarray, float
        CRB of each AP's composite estimate (sum along its chain); 0 for the reference.
    valid : ndarray, bool
        Online, and every link on its chain had a regular Fisher matrix, an in-range TO/CFO
        and an SINR of at least ``min_sinr_db``.
    reference_ap : int
    overhead_slots : int
        ``2 K_C + tau``.
    links : SyncLinks
    """

    est_time_offset_s: NDArray[np.float64]
    est_cfo_hz: NDArray[np.float64]
    true_time_offset_s: NDArray[np.float64]
    true_cfo_hz: NDArray[np.float64]
    crb_time_offset_s2: NDArray[np.float64]
    crb_cfo_hz2: NDArray[np.float64]
    valid: NDArray[np.bool_]
    reference_ap: int
    overhead_slots: int
    links: SyncLinks

    @property
    def residual_time_offset_s(self) -> NDArray[np.float64]:
        """``est - true`` per AP (s)."""
        return self.est_time_offset_s - self.true_time_offset_s

    @property
    def residual_cfo_hz(self) -> NDArray[np.float64]:
        """``est - true`` per AP (Hz)."""
        return self.est_cfo_hz - self.true_cfo_hz



@dataclass(frozen=True)
class _RoundGeometry:
    """What a round needs that only the plan, the AP positions and the config fix: the links,
    their distances and gains, each slave link's co-pilot interferers and the order in which
    the master chain is resolved. Built by :func:`_geometry` once per plan (the engine runs
    hundreds of rounds on one plan); every array is what :func:`sync_round` computed inline
    before, so the rounds are bit-identical.

    Shapes: ``n_link`` links, ``I`` interferers per link (at least 1, padded).
    """

    pos: NDArray[np.float64]  # [n_ap, 2] m, the positions it was built for
    cfg: SyncRoundConfig
    tx: NDArray[np.int64]  # [n_link]
    rx: NDArray[np.int64]  # [n_link]
    kind: NDArray[np.int64]  # [n_link]
    pil: NDArray[np.int64]  # [n_link]
    child: NDArray[np.int64]  # [C] clusters with a parent master
    dist: NDArray[np.float64]  # [n_link] m
    beta: NDArray[np.float64]  # [n_link] path gain
    sqrt_pb: NDArray[np.float64]  # [n_link] sqrt(Pt beta), sqrt(W)
    dist_chips: NDArray[np.float64]  # [n_link] d / (c Ts)
    n_int: int
    int_tx: NDArray[np.int64]  # [n_link, I] interferer AP (0 where padding)
    int_on: NDArray[np.bool_]  # [n_link, I]
    d_int: NDArray[np.float64]  # [n_link, I] m
    d_int_chips: NDArray[np.float64]  # [n_link, I]
    p_int: NDArray[np.float64]  # [n_link, I] W (0 where padding)
    ref_c: int
    chain: tuple[tuple[int, int, int, int], ...]  # (cluster, parent, fwd link, bwd link)
    sl: NDArray[np.intp]  # [S] slave links
    mc: NDArray[np.int64]  # [S] their clusters


def _geometry(plan: SyncPlan, pos: NDArray, cfg: SyncRoundConfig) -> _RoundGeometry:
    """:class:`_RoundGeometry` of ``plan`` at ``pos``, cached on the plan (a plan is immutable;
    the cache is a plain attribute, so it pickles with the plan and is rebuilt if the
    positions or the config differ)."""
    cached = plan.__dict__.get("_round_geometry")
    if cached is not None and cached.cfg == cfg and np.array_equal(cached.pos, pos):
        return cached
    c_ts = SPEED_OF_LIGHT_M_S * cfg.chip_time_s
    slaves = plan.slaves()
    tx = [slaves]
    rx = [plan.masters[plan.cluster_of_ap[slaves]]]
    kind = [np.full(slaves.size, LINK_SLAVE)]
    pil = [plan.pilot_of_ap[slaves]]
    child = np.flatnonzero(plan.master_parent >= 0)  # clusters with a parent
    mk = plan.masters[child]
    mp = plan.masters[plan.master_parent[child]]
    excl = plan.n_pilots + np.arange(child.size)  # one dedicated pilot per exchange
    tx += [mk, mp]
    rx += [mp, mk]
    kind += [np.full(child.size, LINK_MASTER_FWD), np.full(child.size, LINK_MASTER_BWD)]
    pil += [excl, excl]
    tx = np.concatenate(tx).astype(np.int64)
    rx = np.concatenate(rx).astype(np.int64)
    kind = np.concatenate(kind).astype(np.int64)
    pil = np.concatenate(pil).astype(np.int64)
    n_link = tx.size
    dist = np.linalg.norm(pos[tx] - pos[rx], axis=1)  # [n_link]
    beta = cfg.path_loss.gain(dist)

    # co-pilot interferers of each slave link (other slaves on the same pilot)
    slot_of = np.where(kind == LINK_SLAVE, pil, -1)
    n_int = 0
    same = None
    if slaves.size:
        same = (
            (slot_of[:, None] == slot_of[None, :])
            & (slot_of[:, None] >= 0)
            & ~np.eye(n_link, dtype=bool)
        )
        n_int = int(same.sum(1).max())
    int_tx = np.zeros((n_link, max(n_int, 1)), dtype=np.int64)
    int_on = np.zeros((n_link, max(n_int, 1)), dtype=bool)
    if n_int:
        # each link's co-pilot links in ascending order, packed to the left
        order = np.argsort(~same, axis=1, kind="stable")[:, :n_int]  # [n_link, I]
        int_on = np.take_along_axis(same, order, 1)
        int_tx = np.where(int_on, tx[order], 0)
    d_int = np.linalg.norm(pos[int_tx] - pos[rx][:, None], axis=-1)  # [n_link, I]
    p_int = np.where(int_on, cfg.tx_power_w * cfg.path_loss.gain(d_int), 0.0)  # [n_link, I]

    # master chain: the order in which sync_round's passes over `child` resolve it
    ref_c = int(plan.cluster_of_ap[plan.reference_ap]) if plan.reference_ap >= 0 else -1
    fwd = {int(c): i for i, c in zip(np.flatnonzero(kind == LINK_MASTER_FWD), child, strict=True)}
    bwd = {int(c): i for i, c in zip(np.flatnonzero(kind == LINK_MASTER_BWD), child, strict=True)}
    chain: list[tuple[int, int, int, int]] = []
    done = {ref_c}
    kc = plan.n_clusters
    while len(done) < kc:
        progressed = False
        for c in child.tolist():
            p = int(plan.master_parent[c])
            if c in done or p not in done:
                continue
            chain.append((c, p, int(fwd[c]), int(bwd[c])))
            done.add(c)
            progressed = True
        if not progressed:
            break
    sl = np.flatnonzero(kind == LINK_SLAVE)
    geom = _RoundGeometry(
        pos=pos.copy(), cfg=cfg, tx=tx, rx=rx, kind=kind, pil=pil, child=child, dist=dist,
        beta=beta, sqrt_pb=np.sqrt(cfg.tx_power_w * beta), dist_chips=dist / c_ts,
        n_int=n_int, int_tx=int_tx, int_on=int_on, d_int=d_int, d_int_chips=d_int / c_ts,
        p_int=p_int, ref_c=ref_c, chain=tuple(chain), sl=sl, mc=plan.cluster_of_ap[tx[sl]],
    )
    object.__setattr__(plan, "_round_geometry", geom)  # frozen dataclass: a private cache
    return geom


def _pilots(n: int, cfg: SyncRoundConfig, rng: np.random.Generator) -> NDArray:
    if cfg.pilot_kind == "zc":
        roots = [r for r in range(1, 10 * n + 10) if np.gcd(r, cfg.pilot_length_chips) == 1][:n]
        return np.array([zadoff_chu(cfg.pilot_length_chips, r) for r in roots])
    if cfg.pilot_kind != "bpsk":
        raise ValueError(f"pilot_kind must be 'bpsk' or 'zc', got {cfg.pilot_kind!r}")
    return bpsk_pilots(n, cfg.pilot_length_chips, rng)


def _to_windows(
    to_prior: tuple[NDArray, NDArray] | None, tx: NDArray, rx: NDArray, guard: float,
    eta: float, cfg: SyncRoundConfig,
) -> NDArray | None:
    """Coarse TO window of each link from a per-AP TO prior (see :func:`sync_round`).

    to_prior (mean [n_ap] s, std [n_ap] s), tx, rx [n_link] -> [n_link, 2] chips (``[0, eta]``
    for links without a finite prior), or None (no prior, ``ml_window_sigmas = 0``, or no
    link with a prior: the full grid everywhere).
    """
    if to_prior is None or cfg.ml_window_sigmas <= 0.0 or tx.size == 0:
        return None
    mean, std = (np.asarray(a, dtype=float) for a in to_prior)
    ts = cfg.chip_time_s
    centre = guard - (mean[tx] - mean[rx]) / ts  # [n_link] predicted theta1, chips
    half = np.maximum(cfg.ml_window_min_chips,
                      cfg.ml_window_sigmas * np.hypot(std[tx], std[rx]) / ts)  # [n_link] chips
    known = np.isfinite(centre) & np.isfinite(half)  # [n_link]
    if not known.any():
        return None
    lo = np.where(known, np.clip(centre - half, 0.0, eta), 0.0)
    hi = np.where(known, np.clip(centre + half, 0.0, eta), eta)
    return np.stack([lo, np.maximum(hi, lo)], -1)  # [n_link, 2]


def sync_round(
    plan: SyncPlan,
    ap_positions_m: NDArray,
    clock_time_offset_s: NDArray,
    clock_cfo_hz: NDArray,
    cfg: SyncRoundConfig,
    method: Literal["ml", "crb"],
    rng: np.random.Generator,
    to_prior: tuple[NDArray, NDArray] | None = None,
) -> SyncRoundResult:
    """Simulate one synchronization round and return each AP's offset estimate.

    Parameters
    ----------
    plan : SyncPlan
        From :func:`~netsim.sync.plan.plan_network`.
    ap_positions_m : ndarray, shape (n_ap, 2), m
    clock_time_offset_s : ndarray, shape (n_ap,), s
        ``x_i``: each AP's time offset relative to the ideal network clock.
    clock_cfo_hz : ndarray, shape (n_ap,), Hz
        ``f_c y_i``: each AP's frequency offset relative to the ideal clock.
    cfg : SyncRoundConfig
    method : "ml" or "crb"
        ``"ml"``: bursts are generated and estimated by ML (waveform fidelity); ``"crb"``: no
        waveform, estimate = truth + Gaussian error with the CRB as variance.
    rng : numpy.random.Generator
        Pilots (BPSK), channels, noise / CRB errors.
    to_prior : (mean, std), each ndarray shape (n_ap,), s, optional
        A clock tracker's prediction of each AP's time offset relative to the reference AP and
        its std (NaN: no track). ``"ml"`` only: a link whose two APs both have a finite
        prediction searches its TO coarsely on the predicted ``theta1`` +/-
        ``max(ml_window_min_chips, ml_window_sigmas * sqrt(std_tx^2 + std_rx^2) / Ts)``
        chips instead of the whole ``[0, eta]`` (the same grid points: when the best peaks lie
        in the window, the estimate is bit-identical). Draws no random numbers.

    Returns
    -------
    SyncRoundResult
    """
    if method not in ("ml", "crb"):
        raise ValueError(f"method must be 'ml' or 'crb', got {method!r}")
    pos = np.asarray(ap_positions_m, dtype=float)
    x = np.asarray(clock_time_offset_s, dtype=float)
    fo = np.asarray(clock_cfo_hz, dtype=float)
    n_ap = plan.n_ap
    if pos.shape != (n_ap, 2) or x.shape != (n_ap,) or fo.shape != (n_ap,):
        raise ValueError("positions (n_ap, 2) and offsets (n_ap,) must match the plan")
    ts = cfg.chip_time_s
    n = cfg.pilot_length_chips
    c_ts = SPEED_OF_LIGHT_M_S * ts
    guard = cfg.max_to_s / ts  # chips
    eta = 2.0 * guard
    cfo_max = None if cfg.max_cfo_hz is None else cfg.max_cfo_hz * ts

    # ---- links and co-pilot interferers: fixed by the plan and the positions (cached) ----
    g = _geometry(plan, pos, cfg)
    tx, rx, kind, pil, child = g.tx, g.rx, g.kind, g.pil, g.child
    n_link = tx.size
    pilots = _pilots(plan.n_pilots + child.size, cfg, rng)  # [n_pilot, N]

    dist, beta = g.dist, g.beta  # [n_link]
    taps = draw_link_taps((n_link,), cfg.n_taps, rng)
    h = taps.amplitude * g.sqrt_pb[:, None] * taps.fading  # [n_link, L]
    delays = g.dist_chips[:, None] + taps.excess_delay_chips  # [n_link, L]
    true_to = x[tx] - x[rx]  # [n_link] s
    true_cfo = fo[tx] - fo[rx]  # [n_link] Hz
    theta1 = guard - true_to / ts  # chips
    out_of_range = (theta1 < 0) | (theta1 > eta)
    if cfo_max is not None:
        out_of_range |= np.abs(true_cfo * ts) > cfo_max
    eps = true_cfo * ts
    m_win = n + int(np.ceil(eta + (delays.max() if n_link else 0.0))) + 3

    n_int, int_tx, d_int = g.n_int, g.int_tx, g.d_int
    th_int = guard - (x[int_tx] - x[rx][:, None]) / ts  # [n_link, I] chips
    eps_int = (fo[int_tx] - fo[rx][:, None]) * ts
    vs_int = np.maximum(th_int + g.d_int_chips - 0.5, 0.0)  # actual delay, one-chip spread
    # An interferer whose pilot starts after the master's window has closed adds nothing to it:
    # drop it (exact) rather than sizing the band matrices by its delay (time offsets of
    # seconds are 1e7 chips: 20+ GiB before this guard).
    late = vs_int >= m_win  # [n_link, I]
    if late.any():
        p_int = np.where(late, 0.0, g.p_int)
        vs_int = np.where(late, 0.0, vs_int)
    else:  # the usual case: the same values as masking with an all-False `late`
        p_int = g.p_int

    sig_e = cfg.tx_power_w * beta * 2 * n / 3
    sinr = 10 * np.log10(sig_e / (np.sum(p_int, 1) * 2 * n / 3 + m_win * cfg.noise_power_w))

    # ---- CRB of every link (both methods) ------------------------------------------------
    pl_link = pilots[pil]  # [n_link, N]
    # contamination only where a link has a co-pilot interferer (most slaves have a pilot of
    # their own, the master links always do): a zero-power interferer adds exactly 0 W, and
    # each link's diagonal is computed on its own row, so the other rows are the noise alone
    hit = np.flatnonzero((p_int > 0).any(1))  # [n_hit]
    xi = np.zeros((n_link, m_win)) + cfg.noise_power_w  # [n_link, M]
    if hit.size:
        xi[hit] = (contamination_diag(pl_link[hit], vs_int[hit], 1.0, p_int[hit], m_win)
                   + cfg.noise_power_w)
    crb = crb_to_cfo(
        pl_link, np.clip(theta1, 0, eta), delays, h, xi, m_win, cond_limit=cfg.cond_limit,
        exact_cond=False,  # only the CRBs and `singular` are used
    )
    crb_to_s2 = crb.to_chips2 * ts**2
    crb_cfo_hz2 = crb.cfo_norm2 / ts**2

    # ---- estimates --------------------------------------------------------------------
    if method == "ml":
        # bursts: desired link + single-path interferers (zero-padded)
        n_l = 1 + (n_int if n_int else 0)
        lt = cfg.n_taps
        b_to = np.zeros((n_link, n_l))
        b_eps = np.zeros((n_link, n_l))
        b_del = np.zeros((n_link, n_l, lt))
        b_h = np.zeros((n_link, n_l, lt), dtype=complex)
        b_to[:, 0], b_eps[:, 0], b_del[:, 0], b_h[:, 0] = theta1, eps, delays, h
        if n_int:
            psi = (
                rng.standard_normal(p_int.shape) + 1j * rng.standard_normal(p_int.shape)
            ) / np.sqrt(2)
            b_to[:, 1:] = th_int
            b_eps[:, 1:] = eps_int
            b_del[:, 1:, :] = (d_int / c_ts)[..., None]
            b_h[:, 1:, 0] = np.sqrt(p_int) * psi
        b_to_c = np.clip(b_to, -n, eta + n)  # keep far-out bursts representable
        y = received_burst(
            pl_link[:, None, :], b_to_c, b_eps, b_del, b_h, m_win, cfg.noise_power_w, rng
        )  # [n_link, M]
        est = ml_estimate(
            y,
            pl_link,
            delays,
            eta,
            cfo_max_norm=cfo_max,
            to_step_chips=cfg.to_step_chips,
            n_candidates=cfg.n_candidates,
            n_refine=cfg.n_refine,
            to_window_chips=_to_windows(to_prior, tx, rx, guard, eta, cfg),
            need_taps=False,  # only the TO and CFO estimates are used
        )
        th_hat, eps_hat = est.to_chips, est.cfo_norm
        bad = np.zeros(n_link, dtype=bool)
    else:
        bad = crb.singular.copy()
        std_t = np.sqrt(np.where(bad, 0.0, crb.to_chips2))
        std_e = np.sqrt(np.where(bad, 0.0, crb.cfo_norm2))
        th_hat = np.clip(theta1 + std_t * rng.standard_normal(n_link), 0.0, eta)
        eps_hat = eps + std_e * rng.standard_normal(n_link)
        if cfo_max is not None:
            eps_hat = np.clip(eps_hat, -cfo_max, cfo_max)
        th_hat = np.where(bad, np.nan, th_hat)
        eps_hat = np.where(bad, np.nan, eps_hat)
    est_to = (guard - th_hat) * ts  # [n_link] s
    est_cfo = eps_hat / ts  # [n_link] Hz
    link_ok = ~bad & ~out_of_range & (sinr >= cfg.min_sinr_db)

    # ---- chain to the reference (Python floats: the same IEEE arithmetic as numpy scalars) ----
    kc = plan.n_clusters
    m_to = [math.nan] * kc
    m_cfo = [math.nan] * kc
    m_vt = [math.nan] * kc
    m_vf = [math.nan] * kc
    m_ok = [False] * kc
    ref_c = g.ref_c
    if ref_c >= 0:
        m_to[ref_c] = m_cfo[ref_c] = m_vt[ref_c] = m_vf[ref_c] = 0.0
        m_ok[ref_c] = True
    e_to, e_cfo, v_to, v_cfo = (est_to.tolist(), est_cfo.tolist(), crb_to_s2.tolist(),
                                crb_cfo_hz2.tolist())
    l_ok = link_ok.tolist()
    for c, p, f, b in g.chain:  # parents before children
        m_to[c] = m_to[p] + 0.5 * (e_to[f] - e_to[b])
        m_cfo[c] = m_cfo[p] + 0.5 * (e_cfo[f] - e_cfo[b])
        m_vt[c] = m_vt[p] + 0.25 * (v_to[f] + v_to[b])
        m_vf[c] = m_vf[p] + 0.25 * (v_cfo[f] + v_cfo[b])
        m_ok[c] = m_ok[p] and l_ok[f] and l_ok[b]
    m_to, m_cfo, m_vt, m_vf = (np.array(m_to), np.array(m_cfo), np.array(m_vt),
                               np.array(m_vf))
    m_ok = np.array(m_ok, dtype=bool)

    est_t = np.full(n_ap, np.nan)
    est_f = np.full(n_ap, np.nan)
    v_t = np.full(n_ap, np.nan)
    v_f = np.full(n_ap, np.nan)
    ok = np.zeros(n_ap, dtype=bool)
    est_t[plan.masters] = m_to
    est_f[plan.masters] = m_cfo
    v_t[plan.masters] = m_vt
    v_f[plan.masters] = m_vf
    ok[plan.masters] = m_ok
    sl, mc = g.sl, g.mc
    est_t[tx[sl]] = est_to[sl] + m_to[mc]
    est_f[tx[sl]] = est_cfo[sl] + m_cfo[mc]
    v_t[tx[sl]] = crb_to_s2[sl] + m_vt[mc]
    v_f[tx[sl]] = crb_cfo_hz2[sl] + m_vf[mc]
    ok[tx[sl]] = link_ok[sl] & m_ok[mc]
    online = plan.online
    ref = plan.reference_ap
    true_t = np.where(online, x - (x[ref] if ref >= 0 else 0.0), np.nan)
    true_f = np.where(online, fo - (fo[ref] if ref >= 0 else 0.0), np.nan)
    est_t = np.where(online & ~np.isnan(est_t), est_t, np.nan)
    est_f = np.where(online & ~np.isnan(est_f), est_f, np.nan)
    links = SyncLinks(  # copies: the geometry's arrays are shared by the plan's rounds
        tx_ap=tx.copy(),
        rx_ap=rx.copy(),
        kind=kind.copy(),
        pilot=pil.copy(),
        distance_m=dist.copy(),
        sinr_db=sinr,
        true_to_s=true_to,
        est_to_s=est_to,
        true_cfo_hz=true_cfo,
        est_cfo_hz=est_cfo,
        crb_to_s2=crb_to_s2,
        crb_cfo_hz2=crb_cfo_hz2,
        out_of_range=out_of_range,
        singular=crb.singular.copy(),
    )
    return SyncRoundResult(
        est_time_offset_s=est_t,
        est_cfo_hz=est_f,
        true_time_offset_s=true_t,
        true_cfo_hz=true_f,
        crb_time_offset_s2=v_t,
        crb_cfo_hz2=v_f,
        valid=ok & online,
        reference_ap=int(ref),
        overhead_slots=int(plan.overhead_slots),
        links=links,
    )
