"""Greedy local refinement of a GNN pilot assignment by the statistical net-SE J~ (seed 004).

The Pilot-GNN's rounded assignment (spec 5.2/5.5) is a point of a discrete search space; this
module moves it, one user at a time, to the neighbouring assignment with the largest
large-scale-only net-SE estimate J~ of :mod:`netsim.comm.pilot_screen` (the tabu pre-screen's
model, equal power ``P_max / |K_m|``), until no single move improves J~ or ``max_moves`` moves
were made. It is a documented post-processing step of the GNN decision, not part of the GNN:
the network picks the starting point, the refinement only climbs from it (opt-in, see
``pilot_refine`` in the weights metadata, :func:`netsim.comm.power.gnn.gnn_pilot_assignment`).

Candidate moves of user u (pilot a = c_u) per step, with t = tau_p p_u:

* to another used pilot b (tau_p kept, or tau_p - 1 when u was alone on a);
* to a new pilot (tau_p + 1; only when ``new_pilots`` and u is not alone on a).

J~ is a sum over pilot groups, J~ = (1 - tau_p / tau_c) sum_g T_g(t), where T_g depends on the
users of group g and on t only (psi_mk, the MMSE gain and the coherent co-pilot amplitude are
per-group, the residual term per user; module docstring of :mod:`netsim.comm.pilot_screen`):

    psi_m      = t sum_{i in g} beta_mi + sigma^2
    gamma_mk   = t beta_mk^2 / psi_m,  err_mk = beta_mk - gamma_mk if a_mk else beta_mk
    A[k, i]    = sum_m beta_mk a_mi sqrt(p_mi N t / psi_m)                 (k, i in g)
    T_g        = sum_{k in g} log2(1 + A[k, k]^2 / (sum_{i != k} A[k, i]^2 + sum_m P_m err_mk + sigma^2))

so every candidate's J~ is the current sum with at most two group terms replaced (or, when
tau_p changes, the group terms at the other t). All group terms of one step are ONE padded,
batched evaluation (:func:`group_terms`); the result equals
:func:`netsim.comm.pilot_screen.screen_dense` on the moved assignments (tested to 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["PilotRefineConfig", "group_terms", "refine_pilots", "refine_decision", "net_se_tilde"]


@dataclass(frozen=True)
class PilotRefineConfig:
    """Greedy J~ refinement of a pilot assignment.

    max_moves : int, at most this many single-user moves (each the best of its step)
    new_pilots : bool, also consider moving a user to a new pilot (tau_p + 1)
    min_n : int, no refinement when the APs have fewer antennas than this
    new_pilots_min_n : int, new pilots only when N >= this (J~ rates an extra pilot too highly
        at small N: its residual term assumes RZF nulls every known served channel, which
        N < |K_m| antennas cannot do)
    rtol : float, a move is taken only if it raises J~ by more than this (relative)
    """

    max_moves: int = 10
    new_pilots: bool = True
    min_n: int = 1
    new_pilots_min_n: int = 1
    rtol: float = 1e-9

    def __post_init__(self) -> None:
        if int(self.max_moves) < 0 or int(self.min_n) < 1 or int(self.new_pilots_min_n) < 1:
            raise ValueError(f"pilot refinement: max_moves >= 0 and min_n, new_pilots_min_n >= 1 needed, got "
                             f"{self.max_moves}, {self.min_n}, {self.new_pilots_min_n}")
        if not self.rtol >= 0:
            raise ValueError(f"pilot refinement rtol must be >= 0, got {self.rtol}")

    @classmethod
    def from_meta(cls, meta: dict | None) -> PilotRefineConfig | None:
        """From a weights file's ``pilot_refine`` entry (None / absent: no refinement)."""
        if meta is None:
            return None
        if not isinstance(meta, dict):
            raise ValueError(f"pilot_refine must be a mapping, got {type(meta).__name__}")
        unknown = set(meta) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"pilot_refine: unknown keys {sorted(unknown)}")
        return cls(**meta)

    def to_meta(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Model:
    """The drop's constants: beta^T, a^T, p^T as [K, M], P_m, N, p_u, sigma^2."""

    def __init__(self, beta, assoc, n_ant, p_pilot_w, p_max_w, noise_w):
        beta = np.asarray(beta, float)
        a = np.asarray(assoc, bool)
        if beta.ndim != 2 or a.shape != beta.shape:
            raise ValueError(f"beta {beta.shape} and assoc {a.shape} must be equal [M, K]")
        n_serv = a.sum(axis=1, keepdims=True)  # [M, 1] |K_m|
        power = np.where(a, p_max_w / np.maximum(n_serv, 1), 0.0)  # [M, K] W, equal power
        self.bt = np.ascontiguousarray(beta.T)  # [K, M]
        self.at = np.ascontiguousarray(a.T)  # [K, M]
        self.pnt = np.ascontiguousarray(power.T) * float(n_ant)  # [K, M] p_mk N
        self.p_ap = power.sum(axis=1)  # [M] P_m
        self.p_u = float(p_pilot_w)
        self.s2 = float(noise_w)


def group_terms(model: _Model, idx: np.ndarray, valid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """T_g (module docstring) of B padded groups.

    idx : [B, G] int user indices (any value where not valid); valid : [B, G] bool;
    t : [B] float, tau_p p_u of each group's assignment (W). Returns T [B] (bit/s/Hz, without
    the (1 - tau_p / tau_c) factor).
    """
    v = valid[:, :, None]  # [B, G, 1]
    bt = np.where(v, model.bt[idx], 0.0)  # [B, G, M]
    tt = t[:, None, None]  # [B, 1, 1]
    psi = tt * bt.sum(axis=1, keepdims=True) + model.s2  # [B, 1, M]
    gamma = tt * bt * bt / psi  # [B, G, M]
    at = model.at[idx] & v  # [B, G, M]
    err = np.where(at, bt - gamma, bt)  # [B, G, M]
    res = err @ model.p_ap  # [B, G] sum_m P_m err_mk
    coef = np.where(at, np.sqrt(model.pnt[idx] * tt / psi), 0.0)  # [B, G, M]
    amp = bt @ np.swapaxes(coef, 1, 2)  # [B, G(k), G(i)] A[k, i]
    a2 = amp * amp
    sig = np.diagonal(a2, axis1=1, axis2=2)  # [B, G]
    contam = a2.sum(axis=2) - sig  # [B, G]
    term = np.log2(1.0 + sig / (contam + res + model.s2))  # [B, G]
    return np.where(valid, term, 0.0).sum(axis=1)  # [B]


def _groups(c: np.ndarray, tau: int) -> tuple[np.ndarray, np.ndarray]:
    """Padded pilot groups of the relabelled assignment c [K]: idx, valid [tau, G]."""
    order = np.argsort(c, kind="stable")  # [K] users by pilot
    size = np.bincount(c, minlength=tau)  # [tau]
    start = np.cumsum(size) - size  # [tau]
    width = int(size.max())
    col = np.arange(c.size) - start[c[order]]  # [K] position inside its group
    idx = np.zeros((tau, width), dtype=np.int64)
    valid = np.zeros((tau, width), dtype=bool)
    idx[c[order], col] = order
    valid[c[order], col] = True
    return idx, valid


def net_se_tilde(beta, assoc, colour, n_ant, *, p_pilot_w, p_max_w, noise_w, tau_c) -> float:
    """J~ of one assignment ``colour [K]`` (any labels): (1 - tau_p / tau_c) sum_g T_g."""
    model = _Model(beta, assoc, n_ant, p_pilot_w, p_max_w, noise_w)
    c = np.unique(np.asarray(colour), return_inverse=True)[1].ravel()
    tau = int(c.max()) + 1
    idx, valid = _groups(c, tau)
    return float((1.0 - tau / tau_c) * group_terms(model, idx, valid, np.full(tau, tau * model.p_u)).sum())


def _step(model: _Model, c: np.ndarray, tau: int, tau_c: int, new_pilots: bool):
    """(J~ of c, best J~ of a single move, its user, its pilot) for the relabelled c [K]; all
    changed group terms of all candidates in one :func:`group_terms` call."""
    n_ue = c.size
    users = np.arange(n_ue)
    gidx, gval = _groups(c, tau)  # [tau, G]
    size = gval.sum(axis=1)  # [tau]
    width = gidx.shape[1] + 1  # room for one added user
    pad_i = lambda i: np.concatenate([i, np.zeros(i.shape[:-1] + (width - i.shape[-1],), np.int64)], -1)  # noqa: E731
    pad_v = lambda v: np.concatenate([v, np.zeros(v.shape[:-1] + (width - v.shape[-1],), bool)], -1)  # noqa: E731
    mi = gidx[c]  # [K, G] own group
    mv = gval[c] & (mi != users[:, None])  # [K, G] own group without u
    pi = np.concatenate([np.broadcast_to(gidx[None], (n_ue, tau, width - 1)),
                         np.broadcast_to(users[:, None, None], (n_ue, tau, 1))], 2)  # [K, tau, G+1]
    pv = np.concatenate([np.broadcast_to(gval[None], (n_ue, tau, width - 1)),
                         np.ones((n_ue, tau, 1), bool)], 2)
    blocks_i = [pad_i(gidx), pad_i(mi), pi.reshape(-1, width)]
    blocks_v = [pad_v(gval), pad_v(mv), pv.reshape(-1, width)]
    ts = [np.full(tau + n_ue + n_ue * tau, tau * model.p_u)]
    single = np.nonzero(size[c] == 1)[0] if tau > 1 else np.zeros(0, np.int64)  # alone: tau - 1
    if single.size:
        blocks_i += [pad_i(gidx), pi[single].reshape(-1, width)]
        blocks_v += [pad_v(gval), pv[single].reshape(-1, width)]
        ts.append(np.full(tau + single.size * tau, (tau - 1) * model.p_u))
    up = new_pilots and tau + 1 < tau_c
    if up:
        alone = np.zeros((n_ue, width), np.int64)
        alone[:, 0] = users
        alone_v = np.zeros((n_ue, width), bool)
        alone_v[:, 0] = True
        blocks_i += [pad_i(gidx), pad_i(mi), alone]
        blocks_v += [pad_v(gval), pad_v(mv), alone_v]
        ts.append(np.full(tau + 2 * n_ue, (tau + 1) * model.p_u))
    term = group_terms(model, np.concatenate(blocks_i), np.concatenate(blocks_v), np.concatenate(ts))
    o = 0
    t_cur, t_minus = term[:tau], term[tau:tau + n_ue]  # [tau], [K]
    t_plus = term[tau + n_ue:tau + n_ue + n_ue * tau].reshape(n_ue, tau)  # [K, tau]
    o = tau + n_ue + n_ue * tau
    j_now = (1.0 - tau / tau_c) * t_cur.sum()
    cand = [(1.0 - tau / tau_c) * (t_cur.sum() - t_cur[c][:, None] - t_cur[None, :]
                                   + t_minus[:, None] + t_plus)]  # [K, tau] same-length moves
    cand[0][size[c] == 1] = -np.inf
    cand[0][users, c] = -np.inf
    who = [np.broadcast_to(users[:, None], (n_ue, tau))]
    where = [np.broadcast_to(np.arange(tau)[None], (n_ue, tau))]
    if single.size:
        t_dn = term[o:o + tau]
        t_pl = term[o + tau:o + tau + single.size * tau].reshape(single.size, tau)  # [S1, tau]
        o += tau + single.size * tau
        j = (1.0 - (tau - 1) / tau_c) * (t_dn.sum() - t_dn[c[single]][:, None] - t_dn[None, :] + t_pl)
        j[np.arange(single.size), c[single]] = -np.inf
        cand.append(j)
        who.append(np.broadcast_to(single[:, None], j.shape))
        where.append(np.broadcast_to(np.arange(tau)[None], j.shape))
    if up:
        t_up, t_mu, t_al = term[o:o + tau], term[o + tau:o + tau + n_ue], term[o + tau + n_ue:o + tau + 2 * n_ue]
        j = (1.0 - (tau + 1) / tau_c) * (t_up.sum() - t_up[c] + t_mu + t_al)  # [K]
        j[size[c] == 1] = -np.inf
        cand.append(j)
        who.append(users)
        where.append(np.full(n_ue, tau))
    jc = np.concatenate([x.ravel() for x in cand])
    f = int(np.argmax(jc))
    if not np.isfinite(jc[f]):
        return j_now, -np.inf, -1, -1
    return (j_now, float(jc[f]), int(np.concatenate([x.ravel() for x in who])[f]),
            int(np.concatenate([x.ravel() for x in where])[f]))


def refine_pilots(
    beta: np.ndarray,
    assoc: np.ndarray,
    colour: np.ndarray,
    n_ant: int,
    *,
    p_pilot_w: float,
    p_max_w: float,
    noise_w: float,
    tau_c: int,
    config: PilotRefineConfig | None = None,
) -> tuple[np.ndarray, dict]:
    """Greedy single-user J~ moves from ``colour`` (module docstring).

    Parameters
    ----------
    beta : [M, K] float, linear LSF gains; assoc : [M, K] bool; colour : [K] int (any labels)
    n_ant : antennas per AP N; p_pilot_w, p_max_w, noise_w : W; tau_c : slots per block
    config : PilotRefineConfig (default: 10 moves, new pilots allowed)

    Returns
    -------
    colour [K] int relabelled 0..tau_p-1, and info {"moves", "j_start", "j_end"} (J~ is
    non-decreasing: a move is taken only when it raises J~).
    """
    cfg = config or PilotRefineConfig()
    model = _Model(beta, assoc, n_ant, p_pilot_w, p_max_w, noise_w)
    c = np.unique(np.asarray(colour), return_inverse=True)[1].ravel().astype(np.int64)
    if c.size != model.bt.shape[0]:
        raise ValueError(f"colour has {c.size} users, beta {model.bt.shape[0]}")
    j_now, best_j, u, s = _step(model, c, int(c.max()) + 1, tau_c, cfg.new_pilots)
    j_start = j_now
    moves = 0
    while moves < int(cfg.max_moves) and u >= 0 and best_j > j_now + cfg.rtol * abs(j_now):
        c[u] = s
        c = np.unique(c, return_inverse=True)[1].ravel().astype(np.int64)
        moves += 1
        j_now = best_j
        if moves < int(cfg.max_moves):
            j_now, best_j, u, s = _step(model, c, int(c.max()) + 1, tau_c, cfg.new_pilots)
    return c, {"moves": moves, "j_start": float(j_start), "j_end": float(j_now)}


def refine_decision(dec, beta: np.ndarray, assoc: np.ndarray, n_ant: int, *, p_pilot_w: float,
                    p_max_w: float, noise_w: float, tau_c: int, config: PilotRefineConfig | None):
    """A GNN :class:`~netsim.comm.power.gnn.PilotDecision` with its colour refined by
    :func:`refine_pilots` (soft X and logits kept: they are the network's output). Returns
    ``dec`` itself when ``config`` is None or N < ``config.min_n``."""
    if config is None or n_ant < config.min_n:
        return dec
    from netsim.comm.power.gnn import PilotDecision

    cfg = config if n_ant >= config.new_pilots_min_n else replace(config, new_pilots=False)
    colour, _ = refine_pilots(beta, assoc, dec.colour, n_ant, p_pilot_w=p_pilot_w, p_max_w=p_max_w,
                              noise_w=noise_w, tau_c=tau_c, config=cfg)
    return PilotDecision(colour, int(colour.max()) + 1, dec.x_soft, dec.logits)
