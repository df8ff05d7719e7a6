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

from netsim.comm.pilot_screen import group_terms as screen_group_terms

__all__ = ["PilotRefineConfig", "engine_config", "group_terms", "refine_pilots", "refine_decision",
           "net_se_tilde"]


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
    """The drop's constants in the layout of :func:`netsim.comm.pilot_screen.group_terms`:
    beta^T, a^T, p^T as [K, M] (equal power), P_m, N, p_u, sigma^2."""

    def __init__(self, beta, assoc, n_ant, p_pilot_w, p_max_w, noise_w):
        beta = np.asarray(beta, float)
        a = np.asarray(assoc, bool)
        if beta.ndim != 2 or a.shape != beta.shape:
            raise ValueError(f"beta {beta.shape} and assoc {a.shape} must be equal [M, K]")
        n_serv = a.sum(axis=1, keepdims=True)  # [M, 1] |K_m|
        power = np.where(a, p_max_w / np.maximum(n_serv, 1), 0.0)  # [M, K] W, equal power
        self.bt = np.ascontiguousarray(beta.T)  # [K, M]
        self.served = np.ascontiguousarray(a.T)  # [K, M] bool
        self.pt = np.ascontiguousarray(power.T)  # [K, M] W p_mk
        self.n_ant = int(n_ant)
        self.p_ap = power.sum(axis=1)  # [M] P_m
        self.p_u = float(p_pilot_w)
        self.s2 = float(noise_w)


def group_terms(model: _Model, idx: np.ndarray, valid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """T_g (module docstring) of B padded groups: the per-member terms of
    :func:`netsim.comm.pilot_screen.group_terms` (the tabu pre-screen's, with one t per row)
    summed over each group.

    idx : [B, G] int user indices (any value where not valid); valid : [B, G] bool;
    t : [B] float, tau_p p_u of each group's assignment (W). Returns T [B] (bit/s/Hz, without
    the (1 - tau_p / tau_c) factor).
    """
    grp = np.where(valid, idx, -1)  # [B, G]
    terms = screen_group_terms(model.bt, model.served, model.pt, model.n_ant, model.p_ap, grp, t,
                               model.s2)  # [B, G]
    return terms.sum(axis=1)  # [B]


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


class _Search:
    """Cached group terms of one assignment and its single-move neighbourhood.

    At t = tau_p p_u: ``t_cur [tau]`` T_g, ``t_minus [K]`` T(own group without u), ``t_plus
    [K, tau]`` T(group b with u); at (tau_p + 1) p_u (new pilots): ``u_cur``, ``u_minus``,
    ``u_alone [K]`` T({u}); at (tau_p - 1) p_u: ``d_cur [tau]`` and ``d_plus {u: [tau]}`` for
    the users alone on their pilot. A move that keeps tau_p changes two groups only, so
    :meth:`move` recomputes the rows of those two (about 2K + 2|g| of ~K tau_p); a move that
    changes tau_p changes t and recomputes everything (:meth:`_full`).
    """

    def __init__(self, model: _Model, c: np.ndarray, tau_c: int, new_pilots: bool):
        self.m, self.tau_c, self.new_pilots = model, tau_c, new_pilots
        self.c = c
        self._full()

    # ---------------------------------------------------------------- group bookkeeping
    def _regroup(self) -> None:
        self.tau = int(self.c.max()) + 1
        self.gidx, self.gval = _groups(self.c, self.tau)  # [tau, G]
        self.size = self.gval.sum(axis=1)  # [tau]
        self.up = self.new_pilots and self.tau + 1 < self.tau_c

    def _plus_rows(self, users: np.ndarray, pilots: np.ndarray):
        """Padded rows of (group b) + u for every u in ``users`` and b in ``pilots``: [U * P, G + 1]."""
        gi, gv = self.gidx[pilots], self.gval[pilots]  # [P, G]
        n_u, n_p, g = users.size, pilots.size, gi.shape[1]
        ri = np.concatenate([np.broadcast_to(gi[None], (n_u, n_p, g)),
                             np.broadcast_to(users[:, None, None], (n_u, n_p, 1))], 2)
        rv = np.concatenate([np.broadcast_to(gv[None], (n_u, n_p, g)), np.ones((n_u, n_p, 1), bool)], 2)
        return ri.reshape(-1, g + 1), rv.reshape(-1, g + 1)

    def _minus_rows(self, users: np.ndarray):
        gi = self.gidx[self.c[users]]  # [U, G]
        return gi, self.gval[self.c[users]] & (gi != users[:, None])

    def _alone_rows(self, users: np.ndarray):
        return users[:, None], np.ones((users.size, 1), bool)

    def _terms(self, blocks: list[tuple[np.ndarray, np.ndarray, float]]) -> list[np.ndarray]:
        """group_terms of several blocks of rows (idx, valid, t) in ONE call; per-block results."""
        width = max(b[0].shape[1] for b in blocks)
        n_rows = [b[0].shape[0] for b in blocks]
        idx = np.zeros((sum(n_rows), width), np.int64)
        val = np.zeros((sum(n_rows), width), bool)
        t = np.empty(sum(n_rows))
        r = 0
        for (i, v, tt), n in zip(blocks, n_rows, strict=True):
            idx[r:r + n, :i.shape[1]] = i
            val[r:r + n, :i.shape[1]] = v
            t[r:r + n] = tt
            r += n
        out = group_terms(self.m, idx, val, t)
        ends = np.cumsum([b[0].shape[0] for b in blocks])
        return np.split(out, ends[:-1])

    def _singles(self) -> np.ndarray:
        if self.tau <= 1:
            return np.zeros(0, np.int64)
        return np.nonzero(self.size[self.c] == 1)[0]

    def _full(self) -> None:
        self._regroup()
        n_ue, tau, pu = self.c.size, self.tau, self.m.p_u
        users, pil = np.arange(n_ue), np.arange(tau)
        t0, t_up, t_dn = tau * pu, (tau + 1) * pu, (tau - 1) * pu
        single = self._singles()
        blocks = [(self.gidx, self.gval, t0), (*self._minus_rows(users), t0),
                  (*self._plus_rows(users, pil), t0)]
        if tau > 1:
            blocks += [(self.gidx, self.gval, t_dn)]
            if single.size:
                blocks += [(*self._plus_rows(single, pil), t_dn)]
        if self.up:
            blocks += [(self.gidx, self.gval, t_up), (*self._minus_rows(users), t_up),
                       (*self._alone_rows(users), t_up)]
        res = iter(self._terms(blocks))
        self.t_cur, self.t_minus = next(res), next(res)
        self.t_plus = next(res).reshape(n_ue, tau)
        self.d_cur, self.d_plus = None, {}
        if tau > 1:
            self.d_cur = next(res)
            if single.size:
                self.d_plus = dict(zip(single.tolist(), next(res).reshape(single.size, tau), strict=True))
        if self.up:
            self.u_cur, self.u_minus, self.u_alone = next(res), next(res), next(res)

    def move(self, u: int, s: int) -> None:
        """Apply user u -> pilot s and update the caches."""
        a = int(self.c[u])
        tau_before = self.tau
        self.c[u] = s
        if s >= tau_before or self.size[a] == 1:  # tau_p changes: new t, new labels
            self.c = np.unique(self.c, return_inverse=True)[1].ravel().astype(np.int64)
            self._full()
            return
        old_single = set(self.d_plus)
        self._regroup()
        n_ue, tau, pu = self.c.size, self.tau, self.m.p_u
        t0, t_up, t_dn = tau * pu, (tau + 1) * pu, (tau - 1) * pu
        users, ab = np.arange(n_ue), np.array([a, s])
        touched = np.nonzero((self.c == a) | (self.c == s))[0]  # the users of the two groups
        single = self._singles()
        fresh = np.array([x for x in single.tolist() if x not in old_single], np.int64)
        kept = np.array([x for x in single.tolist() if x in old_single], np.int64)
        blocks = [(self.gidx[ab], self.gval[ab], t0), (*self._minus_rows(touched), t0),
                  (*self._plus_rows(users, ab), t0), (self.gidx[ab], self.gval[ab], t_dn)]
        if fresh.size:
            blocks += [(*self._plus_rows(fresh, np.arange(tau)), t_dn)]
        if kept.size:
            blocks += [(*self._plus_rows(kept, ab), t_dn)]
        if self.up:
            blocks += [(self.gidx[ab], self.gval[ab], t_up), (*self._minus_rows(touched), t_up)]
        res = iter(self._terms(blocks))
        self.t_cur[ab] = next(res)
        self.t_minus[touched] = next(res)
        self.t_plus[:, ab] = next(res).reshape(n_ue, 2)
        self.d_cur[ab] = next(res)
        d_plus = {}
        if fresh.size:
            d_plus.update(zip(fresh.tolist(), next(res).reshape(fresh.size, tau), strict=True))
        if kept.size:
            for x, row in zip(kept.tolist(), next(res).reshape(kept.size, 2), strict=True):
                d_plus[x] = self.d_plus[x]
                d_plus[x][ab] = row
        self.d_plus = d_plus
        if self.up:
            self.u_cur[ab] = next(res)
            self.u_minus[touched] = next(res)

    def best(self):
        """(J~ now, best single-move J~, its user, its pilot); user -1 when no move exists."""
        c, tau, tau_c = self.c, self.tau, self.tau_c
        n_ue = c.size
        users = np.arange(n_ue)
        tot = self.t_cur.sum()
        j_now = (1.0 - tau / tau_c) * tot
        j = (1.0 - tau / tau_c) * (tot - self.t_cur[c][:, None] - self.t_cur[None, :]
                                   + self.t_minus[:, None] + self.t_plus)  # [K, tau]
        j[self.size[c] == 1] = -np.inf
        j[users, c] = -np.inf
        f = int(np.argmax(j))
        best_j, best_u, best_s = float(j.flat[f]), f // tau, f % tau
        if self.d_plus:
            single = np.fromiter(self.d_plus, np.int64)
            dp = np.stack([self.d_plus[x] for x in single.tolist()])  # [S1, tau]
            jd = (1.0 - (tau - 1) / tau_c) * (self.d_cur.sum() - self.d_cur[c[single]][:, None]
                                              - self.d_cur[None, :] + dp)
            jd[np.arange(single.size), c[single]] = -np.inf
            f = int(np.argmax(jd))
            if jd.flat[f] > best_j:
                best_j, best_u, best_s = float(jd.flat[f]), int(single[f // tau]), f % tau
        if self.up:
            ju = (1.0 - (tau + 1) / tau_c) * (self.u_cur.sum() - self.u_cur[c] + self.u_minus
                                              + self.u_alone)  # [K]
            ju[self.size[c] == 1] = -np.inf
            f = int(np.argmax(ju))
            if ju[f] > best_j:
                best_j, best_u, best_s = float(ju[f]), f, tau
        if not np.isfinite(best_j):
            return j_now, -np.inf, -1, -1
        return j_now, best_j, best_u, best_s


def _step(model: _Model, c: np.ndarray, tau: int, tau_c: int, new_pilots: bool):
    """(J~ of c, best J~ of a single move, its user, its pilot) for the relabelled c [K]
    (one full :class:`_Search` evaluation)."""
    return _Search(model, np.array(c, dtype=np.int64), tau_c, new_pilots).best()


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
    search = _Search(model, c, tau_c, cfg.new_pilots)
    j_now, best_j, u, s = search.best()
    j_start = j_now
    moves = 0
    while moves < int(cfg.max_moves) and u >= 0 and best_j > j_now + cfg.rtol * abs(j_now):
        search.move(u, s)
        moves += 1
        j_now, best_j, u, s = search.best()
    c = search.c
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


def engine_config(max_moves: int) -> PilotRefineConfig:
    """The refinement of ``comm.gnn_pilot_refine`` (the simulator's option): the reproduction's
    thresholds (new pilots at N >= 16, none below N = 4) with ``max_moves`` moves."""
    return PilotRefineConfig(max_moves=int(max_moves), new_pilots=True, min_n=4, new_pilots_min_n=16)
