"""Pilot assignment: DSatur colouring and tabu reassignment (seed 004, spec 3.4, 4.1-4.2).

A pilot assignment is a colour vector ``colour [K]`` (int PS index per UE, values < K = K_max).
tau_p = number of distinct colours (eq. (6)); :func:`colour_to_matrix` gives the oversized
one-hot matrix X~ [K_max, K] (7b) and :func:`phi_matrix` the compact Phi [tau_p, K].

DSatur (Brelaz 1979, spec 4.1 [C] conflict graph): vertices = UEs, edge (k, i) iff they share
an AP ((A^T A)[k, i] > 0). Pick the uncoloured UE with the largest saturation, ties by larger
degree, then larger sum_m beta_mk, then lower index; give it the smallest colour not used by
its neighbours. The pilot length follows from the colouring: no two UEs served by a common AP
share a PS, so tau_p >= max_m |K_m|.

Tabu (after Liu et al., IEEE TVT 2020, spec 4.2 [C]): with tau_p fixed to the DSatur value,
move one UE at a time to another PS to maximise the net-SE proxy J (equal power, S_eval small-
scale draws, common random numbers), with a FIFO tabu list of (UE, old PS) attributes and
aspiration. J_best never decreases; tau_p can only shrink (when a colour empties). An
improvement (aspiration, a new J_best) must exceed J_best by 1e-12 relative: revisiting the best
assignment gives back J_best only to rounding, and the search must not depend on that.

Pre-screen (``TabuConfig.n_exact``, default 8, an algorithm choice beyond the spec): each
iteration ranks its random candidates by a large-scale-only estimate J~ of the net SE
(:mod:`netsim.comm.pilot_screen`) and evaluates J exactly for the best 8 non-tabu moves (and any
tabu move ranked above them); the move is still chosen on the exact J. ``n_exact=None`` is the
search as spec 4.2 states it (every candidate exactly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netsim.comm.csi_mmse import (
    draw_pilot_noise,
    mmse_estimate,
    pilot_length,
    pilot_observation,
)
from netsim.comm.net_se import net_sum_se, sinr_true
from netsim.comm.pilot_screen import screen_moves
from netsim.comm.rzf import rzf_beamformers, rzf_regularisation
from netsim.phy.umi import channel_from_fading, draw_small_scale_fading

_MOVE_CHUNK = 32  # candidate moves per batch in NetSEProxy._moves_same_length
_IMPROVE_RTOL = 1e-12  # tabu: a J gain below this (relative) is rounding, not an improvement

__all__ = [
    "ConflictGraph",
    "conflict_graph",
    "dsatur",
    "is_proper_colouring",
    "relabel",
    "colour_to_matrix",
    "phi_matrix",
    "TabuConfig",
    "TabuResult",
    "NetSEProxy",
    "tabu_reassign",
    "dsatur_tabu",
]


@dataclass(frozen=True)
class ConflictGraph:
    """UE conflict graph of spec 4.1 as a dense adjacency matrix (no networkx needed).

    Attributes
    ----------
    adjacency : ndarray [K, K] bool, symmetric, False on the diagonal; True = the two UEs
        must not share a PS
    strength : ndarray [K] float, sum_m beta_mk (DSatur's third tie-break; zeros without beta)

    The few read-only methods of a networkx graph that callers use (``number_of_nodes``,
    ``number_of_edges``, ``edges``, ``neighbors``) are provided; :func:`dsatur` also accepts
    any networkx graph on nodes 0..K-1.
    """

    adjacency: np.ndarray
    strength: np.ndarray

    def number_of_nodes(self) -> int:
        return int(self.adjacency.shape[0])

    def number_of_edges(self) -> int:
        return int(np.triu(self.adjacency, 1).sum())

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Edges (i, j) with i < j, in row-major order."""
        ii, jj = np.nonzero(np.triu(self.adjacency, 1))
        return list(zip(ii.tolist(), jj.tolist(), strict=True))

    def neighbors(self, k: int) -> list[int]:
        return np.flatnonzero(self.adjacency[k]).tolist()


def conflict_graph(
    assoc: np.ndarray, beta: np.ndarray | None = None, theta: float | None = None
) -> ConflictGraph:
    """UE conflict graph (spec 4.1).

    Parameters
    ----------
    assoc : ndarray, shape [M, K], bool
    beta : ndarray, shape [M, K], optional; needed with ``theta``
    theta : float, optional
        If given, keep only edges whose contamination weight
        w_ki = sum_m a_mk beta_mi / beta_mk + a_mi beta_mk / beta_mi exceeds ``theta``
        (the optional pilot-length sweep of spec 4.1). None = all shared-AP edges ([C] default).

    Returns
    -------
    ConflictGraph on nodes 0..K-1; ``strength`` = sum_m beta_mk if beta given (else zeros).
    """
    a = assoc.astype(float)
    n_ue = assoc.shape[1]
    share = (a.T @ a) > 0  # [K, K]
    np.fill_diagonal(share, False)
    if theta is not None:
        if beta is None:
            raise ValueError("theta needs beta")
        ratio = beta[:, None, :] / beta[:, :, None]  # [M, K(k), K(i)] beta_mi / beta_mk
        w = np.einsum("mk,mki->ki", a, ratio)
        w = w + w.T
        share &= w > theta
    strength = beta.sum(axis=0).astype(float) if beta is not None else np.zeros(n_ue)  # [K]
    return ConflictGraph(share, strength)


def _as_adjacency(graph) -> tuple[np.ndarray, np.ndarray]:
    """(adjacency [K, K] bool, strength [K]) of a ConflictGraph or a networkx graph."""
    if isinstance(graph, ConflictGraph):
        return graph.adjacency, graph.strength
    n = graph.number_of_nodes()  # networkx graph on nodes 0..n-1 (duck-typed, no import)
    adj = np.zeros((n, n), dtype=bool)
    for u, v in graph.edges:
        if u != v:
            adj[u, v] = adj[v, u] = True
    strength = np.array([graph.nodes[k].get("strength", 0.0) for k in range(n)], dtype=float)
    return adj, strength


def dsatur(graph) -> np.ndarray:
    """DSatur colouring with the spec 4.1 tie-breaking (deterministic).

    Parameters
    ----------
    graph : ConflictGraph (:func:`conflict_graph`) or a networkx graph with nodes 0..K-1
        (optional node attribute ``strength``)

    Returns
    -------
    colour : ndarray, shape [K], int64, colours 0..tau_p-1

    Each step picks the uncoloured UE with the most distinct colours among its neighbours,
    then the larger degree, then the larger strength, then the lower index, and gives it the
    smallest colour no neighbour has.
    """
    adj, strength = _as_adjacency(graph)
    n = adj.shape[0]
    colour = -np.ones(n, dtype=np.int64)
    if n == 0:
        return colour
    deg = adj.sum(axis=1)  # [K]
    seen = np.zeros((n, n + 1), dtype=bool)  # [K, colours] colour c used by a neighbour
    # lexicographic key (saturation, degree, strength, -index): rank the static part once
    order = np.lexsort((-np.arange(n), strength, deg))  # ascending static key
    static_rank = np.empty(n, dtype=np.int64)
    static_rank[order] = np.arange(n)  # [K] larger = preferred among equal saturation
    sat = np.zeros(n, dtype=np.int64)  # [K]
    uncoloured = np.ones(n, dtype=bool)
    for _ in range(n):
        key = np.where(uncoloured, sat * n + static_rank, -1)  # [K]
        best = int(np.argmax(key))
        free = np.flatnonzero(~seen[best])
        c = int(free[0])
        colour[best] = c
        uncoloured[best] = False
        nb = adj[best]  # [K]
        new = nb & ~seen[:, c]
        seen[new, c] = True
        sat[new] += 1
    return colour


def is_proper_colouring(colour: np.ndarray, assoc: np.ndarray) -> bool:
    """True iff no two UEs sharing an AP have the same colour."""
    a = assoc.astype(float)
    share = (a.T @ a) > 0
    np.fill_diagonal(share, False)
    same = colour[:, None] == colour[None, :]
    return not bool(np.any(share & same))


def relabel(colour: np.ndarray) -> np.ndarray:
    """Map used colours to 0..tau_p-1 in order of first use (removes empty rows of X~)."""
    _, first = np.unique(colour, return_index=True)
    order = np.argsort(first)
    used = np.unique(colour)[order]
    lut = {int(c): i for i, c in enumerate(used)}
    return np.array([lut[int(c)] for c in colour], dtype=np.int64)


def colour_to_matrix(colour: np.ndarray, k_max: int | None = None) -> np.ndarray:
    """Oversized pilot matrix X~ [K_max, K] in {0, 1}: X~[colour[k], k] = 1 (eq. (7b))."""
    n = colour.shape[0]
    k_max = n if k_max is None else k_max
    x = np.zeros((k_max, n))
    x[colour, np.arange(n)] = 1.0
    return x


def phi_matrix(x_tilde: np.ndarray) -> np.ndarray:
    """Phi [tau_p, K] = X~ with its empty rows removed (spec 3.4)."""
    return x_tilde[x_tilde.sum(axis=1) > 0]


@dataclass(frozen=True)
class TabuConfig:
    """Tabu search parameters (spec 4.2, all [C]: the seed's values are lost).

    Attributes
    ----------
    tabu_length : int       FIFO length L_tabu (5)
    max_iter : int          iteration cap I_max (30)
    n_candidates : int|None random subset of moves per iteration (64); None = all moves
    n_eval_draws : int      small-scale draws S_eval in the proxy J (2)
    patience : int          stop after this many iterations without improving J_best (10)
    conflict_theta : float|None  DSatur conflict-graph weight threshold (None = every pair
                            sharing an AP conflicts, [C] default; see :func:`conflict_graph`)
    n_exact : int|None      pre-screen (8): per iteration, rank the candidates by the
                            statistical net-SE J~ (:func:`netsim.comm.pilot_screen.screen_moves`)
                            and evaluate J exactly for the best ``n_exact`` non-tabu moves only
                            (and for the tabu moves J~ ranks above the last of them, which may
                            still win by aspiration); None = every candidate exactly (the
                            search as spec 4.2 states it, and as before this option)
    """

    tabu_length: int = 5
    max_iter: int = 30
    n_candidates: int | None = 64
    n_eval_draws: int = 2
    patience: int = 10
    conflict_theta: float | None = None
    n_exact: int | None = 8

    def __post_init__(self) -> None:
        if self.n_exact is not None and int(self.n_exact) < 1:
            raise ValueError(f"TabuConfig.n_exact={self.n_exact}: must be >= 1 or None")


@dataclass
class TabuResult:
    """Output of :func:`tabu_reassign`.

    colour : [K] int, best assignment found (relabelled to 0..tau_p-1)
    tau_p : int
    j_best_trace : [iterations + 1] J_best after each iteration (non-decreasing)
    j_trace : [iterations + 1] J of the current assignment
    n_evaluations : int, number of exact J evaluations of candidate moves
    info : dict, ``tau_p_initial``; ``n_screened`` (candidates ranked by J~)
    """

    colour: np.ndarray
    tau_p: int
    j_best_trace: np.ndarray
    j_trace: np.ndarray
    n_evaluations: int
    info: dict = field(default_factory=dict)


class NetSEProxy:
    """Net-SE proxy J(colour) of spec 4.2, vectorised over candidate assignments.

    J = mean over S_eval fixed small-scale draws of eq. (4) with equal power P_max/|K_m|, MMSE
    estimation (3.5) and distributed RZF (3.6); the draws (fading and pilot noise) are drawn
    once, so every candidate sees the same randomness (common random numbers).

    Evaluation works on the served pairs only (each AP's |K_m| <= n_max users, zero-padded),
    which is exact: estimates, beamformers and transmitted streams are zero off the
    association. Per candidate b and draw s, with idx[m, j] the j-th user AP m serves:

        y[m, j]   = sqrt(tau_p p_u) sum_{i: c_i = c_idx[m,j]} h[m, i] + sigma n[m, c_idx[m,j]]
        hhat[m,j] = sqrt(tau_p p_u) beta / psi * y[m, j]                        (spec 3.5)
        Wbar_m    = H_m (H_m^H H_m + a_m I_n)^{-1}   (= (H_m H_m^H + a_m I_N)^{-1} H_m, 3.6)
        G[m,j,i]  = sqrt(p_m,idx) w[m, j] . conj(h[m, i]);  S[k, i] = sum_{(m,j): idx = k} G

    and the SINR of eq. (3) from S. :meth:`evaluate_dense` is the full-size [M, K] form
    (the test oracle); both agree to rounding. :meth:`evaluate_moves` gives the same J for a
    batch of single moves from one assignment (what tabu evaluates): the pilot sums are the
    current ones plus or minus the moved user's channel, and the streams of all candidates
    come from one product per draw; :func:`tabu_reassign` uses it when the objective has it.
    """

    def __init__(
        self,
        beta: np.ndarray,
        assoc: np.ndarray,
        n_ant: int,
        *,
        p_pilot_w: float,
        p_max_w: float,
        noise_w: float,
        tau_c: int,
        n_draws: int,
        rng: np.random.Generator,
    ) -> None:
        n_ap, n_ue = beta.shape
        self.beta, self.assoc = beta, assoc
        self.p_pilot_w, self.noise_w, self.tau_c = p_pilot_w, noise_w, tau_c
        g = draw_small_scale_fading((n_draws, n_ap, n_ue, n_ant), rng)
        self.h = channel_from_fading(beta, g)  # [S, M, K, N]
        self.noise = draw_pilot_noise((n_draws, n_ap, n_ue, n_ant), rng)  # [S, M, K_max, N]
        load = np.maximum(assoc.sum(axis=1), 1)
        self.power = np.where(assoc, (p_max_w / load)[:, None], 0.0)  # [M, K]
        # served-pair layout: idx[m, j] = j-th user of AP m (padding: user 0, mask False)
        n_max = max(int(assoc.sum(axis=1).max()), 1)
        self.idx = np.zeros((n_ap, n_max), dtype=np.int64)  # [M, n_max]
        self.mask = np.zeros((n_ap, n_max), dtype=bool)  # [M, n_max]
        for m in range(n_ap):
            served = np.flatnonzero(assoc[m])
            self.idx[m, : served.size] = served
            self.mask[m, : served.size] = True
        rows = np.arange(n_ap)[:, None]
        self.beta_c = np.where(self.mask, beta[rows, self.idx], 0.0)  # [M, n_max]
        amp = np.where(self.mask, np.sqrt(self.power[rows, self.idx]), 0.0)  # [M, n_max]
        self.amp_c = amp[None, :, :, None]  # [1, M, n_max, 1]
        # scatter (m, j) -> stream idx[m, j]: S = E @ G over the flattened (m, j) axis
        self.scatter = np.zeros((n_ue, n_ap * n_max))  # [K, M*n_max]
        flat = np.flatnonzero(self.mask.ravel())
        self.scatter[self.idx.ravel()[flat], flat] = 1.0
        self.h_herm = np.ascontiguousarray(np.conj(np.swapaxes(self.h, -1, -2)))  # [S, M, N, K]
        self.h_view = np.ascontiguousarray(self.h).view(float)  # [S, M, K, 2N] (re, im)
        self.noise_sd = np.sqrt(noise_w)

    def __call__(self, colours: np.ndarray) -> np.ndarray:
        """J for each row of ``colours [B, K]`` (or one [K]); returns [B] (or scalar)."""
        colours = np.asarray(colours)
        single = colours.ndim == 1
        c = colours[None] if single else colours  # [B, K]
        n_b = c.shape[0]
        n_s, n_ap, n_ue, n_ant = self.h.shape
        n_max = self.idx.shape[1]
        tau_p = np.asarray(pilot_length(c), dtype=float).reshape(n_b)  # [B]
        tpp = tau_p * self.p_pilot_w  # [B]
        cp = (c[:, :, None] == c[:, None, :]).astype(float)  # [B, K, K] co-pilot matrix
        # statistics on the full [M, K] grid (cheap: no antenna or draw axis)
        psi = tpp[:, None, None] * (self.beta @ cp) + self.noise_w  # [B, M, K]
        cvar = self.beta - tpp[:, None, None] * self.beta**2 / psi  # [B, M, K]
        err = np.where(self.assoc, cvar, self.beta)  # [B, M, K]
        reg = err.sum(axis=-1) + self.noise_w / self.p_pilot_w  # [B, M]  a_m
        # served pairs: co-pilot rows, observations, estimates
        rows = np.arange(n_ap)[:, None]
        cp_c = cp[:, self.idx, :]  # [B, M, n_max, K]
        # real x complex products on the float view (re, im interleaved): half the flops of
        # numpy's complex cast
        y = (cp_c[:, None] @ self.h_view[None]).view(complex)  # [B, S, M, n_max, N]
        y *= np.sqrt(tpp)[:, None, None, None, None]
        col_c = c[:, self.idx]  # [B, M, n_max] pilot of each served pair
        nz = self.noise[np.arange(n_s)[None, :, None, None], rows[None, None], col_c[:, None]]
        y = y + self.noise_sd * nz  # [B, S, M, n_max, N]
        psi_c = np.take_along_axis(psi, self.idx[None], axis=2)  # [B, M, n_max]
        coef = np.where(self.mask, np.sqrt(tpp)[:, None, None] * self.beta_c / psi_c, 0.0)
        hhat = coef[:, None, :, :, None] * y  # [B, S, M, n_max, N]
        # distributed RZF in the push-through form (n_max x n_max systems)
        # H = hhat[m]^T (N x n): H^H H = conj(hhat) hhat^T
        gram = np.conj(hhat) @ np.swapaxes(hhat, -1, -2)  # [B, S, M, n, n]
        eye = np.eye(n_max)
        mat = gram + reg[:, None, :, None, None] * eye  # [B, S, M, n, n]
        # Wbar^T = (H^H H + a I)^{-T} H^T ; rows of Wbar^T are the users' beamformers
        wbar_t = np.linalg.solve(np.swapaxes(mat, -1, -2), hhat)  # [B, S, M, n, N]
        norm2 = (wbar_t.view(float) ** 2).sum(axis=-1, keepdims=True)  # [B, S, M, n, 1]
        ok = self.mask[:, :, None] & (norm2 > 0)
        scale = np.where(ok, self.amp_c / np.sqrt(np.where(ok, norm2, 1.0)), 0.0)
        w = wbar_t * scale  # [B, S, M, n, N] unit-norm RZF times sqrt(p)
        g = w @ self.h_herm[None]  # [B, S, M, n, K]  G[m, j, i]
        g_view = g.reshape(n_b, n_s, n_ap * n_max, n_ue).view(float)  # [B, S, M*n, 2K]
        amp = (self.scatter @ g_view).view(complex)  # [B, S, K, K]
        pw = amp.real**2 + amp.imag**2
        sig = np.diagonal(pw, axis1=-2, axis2=-1)  # [B, S, K]
        sinr = sig / (pw.sum(axis=-2) - sig + self.noise_w)  # [B, S, K]
        j = net_sum_se(sinr, tau_p[:, None], self.tau_c).mean(axis=-1)  # [B]
        return float(j[0]) if single else j

    def screen_moves(self, colour: np.ndarray, users: np.ndarray,
                     pilots: np.ndarray) -> np.ndarray:
        """Statistical net-SE J~ [B] of single moves from ``colour`` (large-scale gains and
        this proxy's equal powers only; the tabu pre-screen, see :mod:`netsim.comm.pilot_screen`)."""
        return screen_moves(self.beta, self.assoc, self.power, self.h.shape[-1], colour, users,
                            pilots, p_pilot_w=self.p_pilot_w, noise_w=self.noise_w,
                            tau_c=self.tau_c)

    def _move_layout(self) -> None:
        """Index tables of :meth:`evaluate_moves`, built once per proxy."""
        self._pair_m, self._pair_j = np.nonzero(self.mask)  # [n_AN] served pairs (m, j)
        self._pair_u = self.idx[self._pair_m, self._pair_j]  # [n_AN] user of each pair
        self._pair_amp = self.amp_c[0, self._pair_m, self._pair_j, 0][:, None, None]  # sqrt(p)
        n_s, n_ap, n_ant, n_ue = self.h_herm.shape
        self._h_stack = np.ascontiguousarray(self.h_herm.reshape(n_s, n_ap * n_ant, n_ue))
        self._w_user: dict[int, np.ndarray] = {}  # work arrays by batch size

    def evaluate_moves(self, colour: np.ndarray, users: np.ndarray,
                       pilots: np.ndarray) -> np.ndarray:
        """J of the single moves (user ``users[b]`` to pilot ``pilots[b]``) from ``colour``.

        Parameters
        ----------
        colour : ndarray [K] int, the current assignment
        users, pilots : ndarray [B] int, the moves (pilots[b] != colour[users[b]])

        Returns
        -------
        j : ndarray [B], the proxy J of each moved assignment; equals ``self(cands)`` (the
        same formula; rounding aside, ~1e-13 relative)

        A move that keeps tau_p (the user's old pilot keeps another user, the new one is in
        use) changes only the rows of the users on the two pilots involved, at every AP:
        :meth:`_moves_same_length` reuses the current estimates and Gram matrices and
        recomputes those rows only (about 2 of an AP's ~13). Moves that change tau_p change
        every estimate (tau_p p_u scales them all) and go through :meth:`_moves_general`.
        """
        colour = np.asarray(colour)
        users = np.asarray(users, dtype=np.int64)
        pilots = np.asarray(pilots, dtype=np.int64)
        if users.shape != pilots.shape or users.ndim != 1:
            raise ValueError(f"users {users.shape} and pilots {pilots.shape} must be equal 1-d")
        old = colour[users]  # [B]
        if np.any(pilots == old):
            raise ValueError("evaluate_moves: a move must change the user's pilot")
        n_p = int(max(colour.max(), pilots.max(initial=0))) + 1
        counts = np.bincount(colour, minlength=n_p)  # [P] users per pilot
        same = (counts[old] > 1) & (counts[pilots] > 0)  # [B] tau_p unchanged
        j = np.empty(users.shape[0])
        if not same.all():
            j[~same] = self._moves_general(colour, users[~same], pilots[~same])
        pick = np.flatnonzero(same)
        if pick.size:
            cur = self._current_rows(colour, n_p, int((counts > 0).sum()))
            for lo in range(0, pick.size, _MOVE_CHUNK):  # chunks keep the work arrays in cache
                sel = pick[lo:lo + _MOVE_CHUNK]
                j[sel] = self._moves_same_length(cur, users[sel], pilots[sel])
        return j

    def _moves_general(self, colour: np.ndarray, users: np.ndarray,
                       pilots: np.ndarray) -> np.ndarray:
        """:meth:`evaluate_moves` for any moves (also those changing tau_p): every served
        row of every candidate is rebuilt from the current pilot sums, [B]."""
        if not hasattr(self, "_pair_m"):
            self._move_layout()
        n_b = users.shape[0]
        n_s, n_ap, n_ue, n_ant = self.h.shape
        n_max = self.idx.shape[1]
        c = np.repeat(colour[None], n_b, axis=0)  # [B, K]
        old = colour[users]  # [B] pilot the moved user leaves
        c[np.arange(n_b), users] = pilots
        tau_p = np.asarray(pilot_length(c), dtype=float).reshape(n_b)  # [B]
        tpp = tau_p * self.p_pilot_w  # [B]
        cp = (c[:, :, None] == c[:, None, :]).astype(float)  # [B, K, K]
        psi = tpp[:, None, None] * (self.beta @ cp) + self.noise_w  # [B, M, K]
        cvar = self.beta - tpp[:, None, None] * self.beta**2 / psi  # [B, M, K]
        err = np.where(self.assoc, cvar, self.beta)  # [B, M, K]
        reg = err.sum(axis=-1) + self.noise_w / self.p_pilot_w  # [B, M]  a_m
        # observations of the current assignment on the served pairs (one gather per call):
        # y0[s, m, j] = sum_{i: c_i = c_idx} h[s, m, i], n0[s, m, j] = noise[s, m, c_idx]
        n_p = int(max(colour.max(), pilots.max())) + 1
        onehot = (np.arange(n_p)[:, None] == colour[None, :]).astype(float)  # [P, K]
        ysum = (onehot @ self.h_view).view(complex)  # [S, M, P, N]
        rows = np.arange(n_ap)[:, None]
        col0 = colour[self.idx]  # [M, n_max]
        y0 = ysum[:, rows, col0]  # [S, M, n_max, N]
        n0 = self.noise[:, rows, col0]  # [S, M, n_max, N]
        # a move takes h[k] out of the old pilot's sum and into the new one's; the moved
        # user's own pairs also see the new pilot's noise
        col_c = c[:, self.idx].transpose(1, 0, 2)  # [M, B, n_max] pilot after the move
        delta = (col_c == pilots[None, :, None]) * 1.0 - (col_c == old[None, :, None])  # [M,B,n]
        hk = self.h[:, :, users]  # [S, M, B, N]
        y = y0[:, :, None] + delta[None, :, :, :, None] * hk[:, :, :, None, :]  # [S,M,B,n,N]
        # the moved user's own pairs: the new pilot's sum (with itself) and the new noise
        own = self.mask[:, None, :] & (self.idx[:, None, :] == users[None, :, None])  # [M, B, n]
        mb, bb, jb = np.nonzero(own)
        y_own = ysum[:, mb, pilots[bb]] + self.h[:, mb, users[bb]]  # [S, n_own, N]
        y *= np.sqrt(tpp)[None, None, :, None, None]
        y += self.noise_sd * n0[:, :, None]
        y[:, mb, bb, jb] = (np.sqrt(tpp)[bb][None, :, None] * y_own
                            + self.noise_sd * self.noise[:, mb, pilots[bb]])
        psi_c = np.take_along_axis(psi, self.idx[None], axis=2)  # [B, M, n_max]
        coef = np.where(self.mask, np.sqrt(tpp)[:, None, None] * self.beta_c / psi_c, 0.0)
        hhat = coef.transpose(1, 0, 2)[None, :, :, :, None] * y  # [S, M, B, n_max, N]
        mat = np.conj(hhat) @ np.swapaxes(hhat, -1, -2)  # [S, M, B, n, n] gram
        diag = mat.reshape(n_s, n_ap, n_b, n_max * n_max)[..., :: n_max + 1]  # [S, M, B, n]
        diag += reg.T[None, :, :, None]  # + a_m I
        wbar_t = np.linalg.solve(np.swapaxes(mat, -1, -2), hhat)  # [S, M, B, n, N]
        wp = wbar_t[:, self._pair_m, :, self._pair_j]  # [n_AN, S, B, N] served pairs only
        norm2 = (wp.view(float) ** 2) @ np.ones(2 * n_ant)  # [n_AN, S, B]
        ok = norm2 > 0
        scale = np.where(ok, self._pair_amp / np.sqrt(np.where(ok, norm2, 1.0)), 0.0)
        # each user's beamformers over all APs side by side (zero where not served), unit-norm
        # RZF times sqrt(p); S[k, i] = sum_m w[m, k] . conj(h[m, i]) as one product per draw
        w_user = self._w_user.get(n_b)  # [S, B, K, M, N], zero off the served pairs
        if w_user is None:  # the served entries are overwritten by every call
            w_user = self._w_user[n_b] = np.zeros((n_s, n_b, n_ue, n_ap, n_ant), dtype=complex)
        w_user[:, :, self._pair_u, self._pair_m] = (wp * scale[..., None]).transpose(1, 2, 0, 3)
        amp = w_user.reshape(n_s, n_b * n_ue, n_ap * n_ant) @ self._h_stack  # [S, B*K, K]
        amp = amp.reshape(n_s, n_b, n_ue, n_ue)  # [S, B, K, K] S[k, i]
        pw = amp.real**2 + amp.imag**2
        sig = np.diagonal(pw, axis1=-2, axis2=-1)  # [S, B, K]
        sinr = sig / (pw.sum(axis=-2) - sig + self.noise_w)  # [S, B, K]
        j = net_sum_se(sinr, tau_p[None, :], self.tau_c).mean(axis=0)  # [B]
        return j

    def _row_layout(self) -> None:
        """Index tables of :meth:`_moves_same_length`, built once per proxy: the served
        pairs in layer-major order (layer l holds every user's l-th serving pair, users
        ascending), so that a stream's amplitude is layer 0 plus the later layers' rows."""
        pm, pj = np.nonzero(self.mask)  # [n_AN] AP-major
        pu = self.idx[pm, pj]  # [n_AN]
        rank = np.zeros(pu.size, dtype=np.int64)  # [n_AN] how many pairs of pu came before
        seen: dict[int, int] = {}
        for p, u in enumerate(pu.tolist()):
            rank[p] = seen.get(u, 0)
            seen[u] = rank[p] + 1
        order = np.lexsort((pu, rank))
        self._q_m, self._q_j, self._q_u = pm[order], pj[order], pu[order]  # [n_AN]
        rk = rank[order]
        n_layers = int(rk.max()) + 1 if rk.size else 0
        self._q_layers = [(int(np.searchsorted(rk, lay)), int(np.searchsorted(rk, lay, "right")))
                          for lay in range(n_layers)]
        self._q_amp = self.amp_c[0, self._q_m, self._q_j, 0][:, None]  # [n_AN, 1]
        self._n_served = self.mask.sum(axis=1)  # [M] n_m (served users fill j < n_m)
        self._n_pairs = int(self._n_served.sum())
        self._pair_off = np.r_[0, np.cumsum(self._n_served)[:-1]]  # [M] AP-major offsets
        self._q_from_ap = self._pair_off[self._q_m] + self._q_j  # [n_AN] layer -> AP-major
        self._q_hherm = np.ascontiguousarray(self.h_herm[:, self._q_m])  # [S, n_AN, N, K]
        self._q_full = bool(self._q_layers) and self._q_layers[0][1] == self.h.shape[2]

    def _current_rows(self, colour: np.ndarray, n_p: int, tau_p: int) -> dict:
        """Estimates and Gram matrices of the served rows under ``colour`` (pilot length
        ``tau_p``, pilots < ``n_p``), the base that :meth:`_moves_same_length` edits."""
        n_s, n_ap = self.h.shape[:2]
        tpp = tau_p * self.p_pilot_w
        sq = np.sqrt(tpp)
        rows = np.arange(n_ap)[:, None]
        onehot = (np.arange(n_p)[:, None] == colour[None, :]).astype(float)  # [P, K]
        ysum = (onehot @ self.h_view).view(complex)  # [S, M, P, N] pilot sums
        col0 = colour[self.idx]  # [M, n_max] pilot of each served pair
        y0 = ysum[:, rows, col0]  # [S, M, n_max, N]
        n0 = self.noise[:, rows, col0]  # [S, M, n_max, N]
        cp0 = (colour[:, None] == colour[None, :]).astype(float)  # [K, K]
        psi0 = tpp * (self.beta @ cp0) + self.noise_w  # [M, K]
        psi0_c = np.take_along_axis(psi0, self.idx, axis=1)  # [M, n_max]
        coef0 = np.where(self.mask, sq * self.beta_c / psi0_c, 0.0)  # [M, n_max]
        hh0 = coef0[None, :, :, None] * (y0 * sq + self.noise_sd * n0)  # [S, M, n_max, N]
        hh0_h = np.conj(np.swapaxes(hh0, -1, -2))  # [S, M, N, n_max]
        return {"colour": colour, "tau_p": tau_p, "tpp": tpp, "sq": sq, "ysum": ysum,
                "col0": col0, "y0": y0, "n0": n0, "hh0": hh0, "hh0_h": hh0_h,
                "gram0": hh0 @ hh0_h}  # [S, M, n_max, n_max] H H^H of the estimates

    def _moves_same_length(self, cur: dict, users: np.ndarray, pilots: np.ndarray) -> np.ndarray:
        """J [B] of moves that keep tau_p, from :meth:`_current_rows` ``cur``.

        Only the served rows on the user's old or new pilot change (observation y -+ h_k, the
        moved user's own rows take the new pilot's sum and noise, and psi of those users);
        every AP's regulariser a_m changes too. Each AP solves its full n x n system
        (H H^H + a_m I) Wbar^T = H^T at its own size n_m, with the Gram matrix edited in the changed rows and
        columns only; the streams come from one product per served pair,
        G[(m, j), i] = sqrt(p) w[m, j] . conj(h[m, i]), summed over a user's serving APs.
        """
        if not hasattr(self, "_q_m"):
            self._row_layout()
        colour = cur["colour"]
        n_b = users.shape[0]
        n_s, n_ap, n_ue, n_ant = self.h.shape
        tpp, sq = cur["tpp"], cur["sq"]
        old = colour[users]  # [B]
        c = np.repeat(colour[None], n_b, axis=0)  # [B, K]
        c[np.arange(n_b), users] = pilots
        cp = (c[:, :, None] == c[:, None, :]).astype(float)  # [B, K, K]
        psi = tpp * (self.beta @ cp) + self.noise_w  # [B, M, K]
        cvar = self.beta - tpp * self.beta**2 / psi  # [B, M, K]
        err = np.where(self.assoc, cvar, self.beta)  # [B, M, K]
        reg = err.sum(axis=-1) + self.noise_w / self.p_pilot_w  # [B, M]  a_m
        col0, y0, n0, ysum = cur["col0"], cur["y0"], cur["n0"], cur["ysum"]
        chg = self.mask[None] & ((col0[None] == old[:, None, None])
                                 | (col0[None] == pilots[:, None, None]))  # [B, M, n_max]
        bb, mb, jb = np.nonzero(chg)  # [R] changed rows, sorted by (b, m, j)
        own = self.idx[mb, jb] == users[bb]  # [R] the moved user's own rows
        sign = np.where(col0[mb, jb] == pilots[bb], 1.0, -1.0)  # [R] gains / loses h_k
        hk = self.h[:, mb, users[bb]]  # [S, R, N]
        yr = np.where(own[None, :, None], ysum[:, mb, pilots[bb]] + hk,
                      y0[:, mb, jb] + sign[None, :, None] * hk)  # [S, R, N]
        nr = np.where(own[None, :, None], self.noise[:, mb, pilots[bb]], n0[:, mb, jb])
        coef_r = sq * self.beta_c[mb, jb] / psi[bb, mb, self.idx[mb, jb]]  # [R]
        hr = coef_r[None, :, None] * (yr * sq + self.noise_sd * nr)  # [S, R, N] new rows
        # entries between two changed rows of the same block (b, m): both rows are new
        blk = bb * n_ap + mb  # [R] block id, non-decreasing
        first = np.flatnonzero(np.r_[True, blk[1:] != blk[:-1]])  # block starts
        cnt = np.diff(np.r_[first, blk.size])  # changed rows per block
        per_r = np.repeat(cnt, cnt)  # [R] its block's count
        r1 = np.repeat(np.arange(blk.size), per_r)  # [Q] ordered pairs (r1, r2)
        base = np.repeat(np.repeat(first, cnt), per_r)
        r2 = base + (np.arange(r1.size) - np.repeat(np.cumsum(per_r) - per_r, per_r))
        both = (hr[:, r1] * np.conj(hr[:, r2])).sum(axis=-1)  # [S, Q]
        # per AP, at its own size n_m: estimates with the changed rows replaced, the Gram
        # matrix H H^H edited in the changed rows and columns only, + a_m I, and the solve
        # (H H^H + a_m I) Wbar^T = H^T; rows land in the AP-major pair array
        hh0, gram0, hh0_h = cur["hh0"], cur["gram0"], cur["hh0_h"]
        w_pairs = np.empty((n_s, self._n_pairs, n_b, n_ant), dtype=complex)  # [S, n_AN, B, N]
        by_ap = np.argsort(mb, kind="stable")  # changed rows grouped by AP, (b, j) order kept
        bounds = np.searchsorted(mb[by_ap], np.arange(n_ap + 1))
        q_ap = mb[r1]  # [Q]
        q_by_ap = np.argsort(q_ap, kind="stable")
        q_bounds = np.searchsorted(q_ap[q_by_ap], np.arange(n_ap + 1))
        for m in range(n_ap):
            n_m = int(self._n_served[m])
            if n_m == 0:
                continue
            sel = by_ap[bounds[m]:bounds[m + 1]]  # [R_m]
            hh_m = np.repeat(hh0[:, m, None, :n_m], n_b, axis=1)  # [S, B, n_m, N]
            gram_m = np.repeat(gram0[:, m, None, :n_m, :n_m], n_b, axis=1)  # [S, B, n_m, n_m]
            if sel.size:
                b_m, j_m = bb[sel], jb[sel]
                hh_m[:, b_m, j_m] = hr[:, sel]
                x = hr[:, sel] @ hh0_h[:, m, :, :n_m]  # [S, R_m, n_m] new row . old rows
                gram_m[:, b_m, j_m, :] = x
                gram_m[:, b_m, :, j_m] = np.conj(x).transpose(1, 0, 2)
                qs = q_by_ap[q_bounds[m]:q_bounds[m + 1]]
                gram_m[:, bb[r1[qs]], jb[r1[qs]], jb[r2[qs]]] = both[:, qs]
            diag = gram_m.reshape(n_s, n_b, n_m * n_m)[..., :: n_m + 1]  # [S, B, n_m]
            diag += reg[None, :, m, None]  # + a_m I
            off = int(self._pair_off[m])
            w_pairs[:, off:off + n_m] = np.linalg.solve(gram_m, hh_m).transpose(0, 2, 1, 3)
        wp = w_pairs[:, self._q_from_ap]  # [S, n_AN, B, N] served pairs, layer order
        norm2 = (wp.view(float) ** 2) @ np.ones(2 * n_ant)  # [S, n_AN, B]
        ok = norm2 > 0
        wp *= np.where(ok, self._q_amp / np.sqrt(np.where(ok, norm2, 1.0)), 0.0)[..., None]
        g = wp @ self._q_hherm  # [S, n_AN, B, K] sqrt(p) w . conj(h_i)
        if self._q_full:  # layer 0 holds every user once, in order
            amp = g[:, :n_ue]  # [S, K(stream), B, K(receiver)] (a view: later layers lie beyond)
            layers = self._q_layers[1:]
        else:  # a user nobody serves has no stream
            amp = np.zeros((n_s, n_ue, n_b, n_ue), dtype=complex)
            layers = self._q_layers
        for lo, hi in layers:
            amp[:, self._q_u[lo:hi]] += g[:, lo:hi]
        pw = amp.real**2 + amp.imag**2  # [S, K(i), B, K(k)]
        k_idx = np.arange(n_ue)
        sig = np.moveaxis(pw[:, k_idx, :, k_idx], 0, -1)  # [S, B, K]
        sinr = sig / (pw.sum(axis=1) - sig + self.noise_w)  # [S, B, K]
        return net_sum_se(sinr, cur["tau_p"], self.tau_c).mean(axis=0)  # [B]

    def evaluate_dense(self, colours: np.ndarray) -> np.ndarray:
        """J on the full [M, K, N] grid with the engine's kernels (test oracle), [B]."""
        c = np.atleast_2d(np.asarray(colours))  # [B, K]
        tau_p = pilot_length(c)  # [B]
        cb = c[:, None, :]  # [B, 1, K]
        tp = np.asarray(tau_p)[:, None]  # [B, 1]
        y = pilot_observation(
            self.h, cb, self.p_pilot_w, self.noise_w, noise=self.noise, tau_p=tp
        )  # [B, S, M, K, N]
        hhat, err = mmse_estimate(
            y, self.beta, cb, self.p_pilot_w, self.noise_w, self.assoc, tau_p=tp
        )
        w = rzf_beamformers(hhat, self.assoc, rzf_regularisation(err, self.noise_w, self.p_pilot_w))
        sinr = sinr_true(self.h, w, self.power, self.noise_w)  # [B, S, K]
        return net_sum_se(sinr, tp, self.tau_c).mean(axis=-1)  # [B]


def tabu_reassign(
    colour0: np.ndarray,
    objective: NetSEProxy,
    rng: np.random.Generator,
    config: TabuConfig | None = None,
) -> TabuResult:
    """Tabu pilot reassignment with tau_p fixed to that of ``colour0`` (spec 4.2).

    Parameters
    ----------
    colour0 : ndarray [K] int, initial (DSatur) assignment, colours 0..tau_p0-1
    objective : callable [B, K] -> [B], e.g. :class:`NetSEProxy`
    rng : numpy.random.Generator, for the candidate subsets
    config : TabuConfig

    Returns
    -------
    TabuResult (colour relabelled, tau_p <= tau_p0, J_best non-decreasing)
    """
    cfg = config or TabuConfig()
    cur = relabel(np.asarray(colour0))
    tau0 = int(cur.max()) + 1
    n_ue = cur.shape[0]
    j_cur = float(objective(cur[None])[0])
    best, j_best = cur.copy(), j_cur
    tabu: list[tuple[int, int]] = []
    j_trace, jb_trace = [j_cur], [j_best]
    n_eval = n_screened = 0
    stall = 0
    screen = getattr(objective, "screen_moves", None) if cfg.n_exact is not None else None
    if tau0 > 1:
        # every (user, pilot) pair, user-major; a move is a pair off the user's current pilot
        grid = np.stack([np.repeat(np.arange(n_ue), tau0), np.tile(np.arange(tau0), n_ue)],
                        axis=1)  # [K * tau0, 2]
        for _ in range(cfg.max_iter):
            moves = grid[grid[:, 1] != cur[grid[:, 0]]]  # [n_moves, 2]
            if cfg.n_candidates is not None and cfg.n_candidates < moves.shape[0]:
                pick = rng.choice(moves.shape[0], size=cfg.n_candidates, replace=False)
                moves = moves[np.sort(pick)]
            codes = {k * tau0 + s for k, s in tabu}  # (user, pilot) as one integer
            is_tabu = np.array([c in codes for c in (moves[:, 0] * tau0 + moves[:, 1]).tolist()],
                               dtype=bool)  # [B]
            if screen is not None and cfg.n_exact < moves.shape[0]:
                keep = _prescreen(np.asarray(screen(cur, moves[:, 0], moves[:, 1])), is_tabu,
                                  int(cfg.n_exact))
                n_screened += moves.shape[0]
                moves, is_tabu = moves[keep], is_tabu[keep]
            cands = np.repeat(cur[None], moves.shape[0], axis=0)  # [B, K]
            cands[np.arange(moves.shape[0]), moves[:, 0]] = moves[:, 1]
            by_moves = getattr(objective, "evaluate_moves", None)
            if by_moves is not None:  # single moves from cur, batched per AP (NetSEProxy)
                j_c = np.asarray(by_moves(cur, moves[:, 0], moves[:, 1]))  # [B]
            else:
                j_c = np.asarray(objective(cands))  # [B]
            n_eval += moves.shape[0]
            # aspiration: a tabu move must beat J_best by more than rounding (a move back to
            # the best assignment reproduces J_best only to ~1e-14, which must not count)
            better = j_c > j_best + _IMPROVE_RTOL * abs(j_best)  # [B]
            allowed = ~is_tabu | better
            if not allowed.any():
                break
            idx = int(np.argmax(np.where(allowed, j_c, -np.inf)))
            k = int(moves[idx, 0])
            tabu.append((k, int(cur[k])))
            if len(tabu) > cfg.tabu_length:
                tabu.pop(0)
            cur = cands[idx].copy()
            j_cur = float(j_c[idx])
            if bool(better[idx]):
                best, j_best, stall = cur.copy(), j_cur, 0
            else:
                stall += 1
            j_trace.append(j_cur)
            jb_trace.append(j_best)
            if stall >= cfg.patience:
                break
    out = relabel(best)
    return TabuResult(
        colour=out,
        tau_p=int(out.max()) + 1,
        j_best_trace=np.asarray(jb_trace),
        j_trace=np.asarray(j_trace),
        n_evaluations=n_eval,
        info={"tau_p_initial": tau0, "n_screened": n_screened},
    )


def _prescreen(j_tilde: np.ndarray, is_tabu: np.ndarray, n_exact: int) -> np.ndarray:
    """Indices (ascending) of the candidates to evaluate exactly: the ``n_exact`` non-tabu
    moves with the largest J~ (``j_tilde [B]``; ties by lower index) and every tabu move whose
    J~ is at least that of the last one kept (aspiration may still admit it)."""
    order = np.argsort(-j_tilde, kind="stable")  # [B] best first
    free = order[~is_tabu[order]][:n_exact]
    floor = j_tilde[free[-1]] if free.size else -np.inf
    tabu = order[is_tabu[order] & (j_tilde[order] >= floor)]
    return np.sort(np.concatenate([free, tabu]))


def dsatur_tabu(
    beta: np.ndarray,
    assoc: np.ndarray,
    n_ant: int,
    *,
    p_pilot_w: float,
    p_max_w: float,
    noise_w: float,
    tau_c: int,
    rng: np.random.Generator,
    config: TabuConfig | None = None,
    use_tabu: bool = True,
) -> TabuResult:
    """Frame-start pilot policy of the numerical baseline: DSatur, then tabu (spec 4.1-4.2).

    Parameters
    ----------
    beta : ndarray [M, K], linear large-scale gains
    assoc : ndarray [M, K], bool
    n_ant : int, antennas per AP N (the proxy J uses N-antenna draws)
    p_pilot_w, p_max_w, noise_w : float, W
    tau_c : int, slots per coherence block
    rng : numpy.random.Generator (proxy draws and candidate subsets)
    config : TabuConfig
    use_tabu : bool, False returns the DSatur colouring only

    Returns
    -------
    TabuResult; ``colour [K]`` is the frame's pilot assignment, ``tau_p`` its pilot length.
    """
    cfg = config or TabuConfig()
    colour0 = dsatur(conflict_graph(assoc, beta, cfg.conflict_theta))
    if not use_tabu:
        c = relabel(colour0)
        return TabuResult(c, int(c.max()) + 1, np.zeros(0), np.zeros(0), 0,
                          {"tau_p_initial": int(c.max()) + 1})
    proxy = NetSEProxy(
        beta, assoc, n_ant, p_pilot_w=p_pilot_w, p_max_w=p_max_w, noise_w=noise_w,
        tau_c=tau_c, n_draws=cfg.n_eval_draws, rng=rng,
    )
    return tabu_reassign(colour0, proxy, rng, cfg)
