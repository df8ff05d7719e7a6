"""Interior-point solves of the robust model with fixed beam bases (seed 003 (26), Bi-RPO-MRT;
the re-powering of extracted directions; spec 3.5-3.6).

Model (normalised reduced units): ``W_k = B_k P_k B_k^H`` with fixed bases ``B_k`` (d, r_k)
(the MRT bases of (26), or one extracted direction per user, r_k = 1) and Hermitian
``P_k >= 0`` (r_k, r_k). The LMI (13) of user k is, with ``C_kj = [B_j; g_k^H B_j]`` (d+1, r_j),

``sum_j a_kj C_kj P_j C_kj^H + blkdiag(sum_m lam_mk D_m, -gamma - sum_m lam_mk eps_mk^2) >= 0``,
``a_kk = 1``, ``a_kj = -gamma``                                                       (13)/(26)

(a user without error balls has the scalar SINR constraint instead), with the per-AP budgets
``sum_k Re tr(B_k^H D_m B_k P_k) <= pbar`` and ``lam >= 0``. Unlike the SDR (14), each P_j
enters user k's block through its own C_kj, so the unknowns are the real coordinates of the
P_j (:class:`~netsim.comm.robust_ipm_core.HermBasis`), the multipliers and (phase 1) tau, all
as scalar variables of the primal-dual core :mod:`netsim.comm.robust_ipm_core`; ``P_j >= 0``
are small blocks of their own. At the paper's size this is 4 blocks of 13 x 13 and a few dozen
variables: milliseconds per iteration, where cvxpy compiles the model anew for every set of
directions (~2-3 CPU-s) before Clarabel solves it.

:func:`decide_dir` (phase 1, as :func:`netsim.comm.robust_ipm.decide`) and
:func:`min_power_dir` (the minimum total power at the final threshold, as Clarabel's solve of
the cvxpy model gives) return None where they do not apply or converge; callers then use
Clarabel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from netsim.comm.robust_ipm import Decision, phase1
from netsim.comm.robust_ipm_core import HermBasis, _Block, _Conic, _herm, _ipm

__all__ = ["DirStructure", "decide_dir", "dir_structure", "min_power_dir"]


@dataclass
class DirStructure:
    """Gamma-independent data of the model: bases (d, r_k) per user, the reduced channels g
    (K, d), indicator (d, M), eps2 (M, K), exact users (K,), pbar."""

    bases: list[NDArray[np.complex128]]
    g: NDArray[np.complex128]
    indicator: NDArray[np.float64]
    eps2: NDArray[np.float64]
    exact: NDArray[np.bool_]
    pbar: float

    @property
    def n_users(self) -> int:
        return self.g.shape[0]


def dir_structure(bases: list[NDArray[np.complex128]], g: NDArray[np.complex128], indicator: NDArray[np.float64],
                  eps2: NDArray[np.float64], pbar: float) -> DirStructure | None:
    """The model's data, or None where the method does not apply (a user with some but not all
    radii zero: its multiplier is unbounded; an empty or rank-deficient basis)."""
    e2 = np.asarray(eps2, dtype=float)
    exact = np.all(e2 <= 0.0, axis=0)  # [K]
    if np.any(~exact & np.any(e2 <= 0.0, axis=0)):
        return None
    bs = [np.asarray(b, dtype=complex).reshape(g.shape[1], -1) for b in bases]
    for b in bs:
        if b.shape[1] == 0 or np.linalg.matrix_rank(b) < b.shape[1]:
            return None
    return DirStructure(bs, np.asarray(g, dtype=complex), np.asarray(indicator, dtype=float), e2, exact, float(pbar))


class _Layout:
    """Variable layout: x = [coords of P_1 .. P_K, lam of the uncertain users, (tau)]."""

    def __init__(self, data: DirStructure, with_tau: bool) -> None:
        self.hbs = [HermBasis(b.shape[1]) for b in data.bases]
        sizes = [hb.d * hb.d for hb in self.hbs]
        self.p_off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # [K+1]
        m = data.indicator.shape[1]
        unc = np.nonzero(~data.exact)[0]
        base = int(self.p_off[-1])
        self.lam_col = {int(k): base + i * m + np.arange(m) for i, k in enumerate(unc)}
        self.n_lam = m * unc.size
        self.tau = base + self.n_lam if with_tau else -1
        self.n = base + self.n_lam + (1 if with_tau else 0)

    def p_cols(self, j: int) -> NDArray[np.int64]:
        return np.arange(self.p_off[j], self.p_off[j + 1])


def _basis_mats(hb: HermBasis) -> NDArray[np.complex128]:
    """The basis matrices B_i of a HermBasis, (r^2, r, r)."""
    return hb.unpack(np.eye(hb.d * hb.d))


def _problem(data: DirStructure, gamma: float, with_tau: bool) -> tuple[_Conic, _Layout]:
    k_users, d = data.g.shape
    m = data.indicator.shape[1]
    lay = _Layout(data, with_tau)
    bmats = [_basis_mats(hb) for hb in lay.hbs]  # [r^2, r, r] per user
    blocks: list[_Block] = []
    for j, hb in enumerate(lay.hbs):  # P_j >= 0
        r = hb.d
        blocks.append(_Block(np.zeros((r, 0), dtype=complex), np.zeros(0), lay.p_cols(j), bmats[j].astype(complex),
                             np.zeros((r, r), dtype=complex)))
    dm = np.zeros((m, d + 1, d + 1), dtype=complex)
    dm[:, np.arange(d), np.arange(d)] = data.indicator.T  # blkdiag(D_m, 0)
    for k in range(k_users):
        g = data.g[k]
        idx, mats = [], []
        for j, bj in enumerate(data.bases):
            coef = 1.0 if j == k else -gamma
            if data.exact[k]:
                u = (g.conj() @ bj)[None, :]  # [1, r_j]
            else:
                u = np.vstack([bj, (g.conj() @ bj)[None, :]])  # [d+1, r_j]
            idx.append(lay.p_cols(j))
            mats.append(coef * (u[None] @ bmats[j] @ u.conj().T[None]))  # [r_j^2, n_b, n_b]
        if data.exact[k]:
            f0 = np.array([[-gamma]], dtype=complex)
        else:
            lm = dm.copy()
            lm[:, d, d] = -data.eps2[:, k]
            idx.append(lay.lam_col[k])
            mats.append(lm)
            f0 = np.zeros((d + 1, d + 1), dtype=complex)
            f0[d, d] = -gamma
        nb = f0.shape[0]
        if with_tau:
            idx.append(np.array([lay.tau]))
            mats.append(np.eye(nb, dtype=complex)[None])
        blocks.append(_Block(np.zeros((nb, 0), dtype=complex), np.zeros(0), np.concatenate(idx).astype(np.int64),
                             np.concatenate(mats, axis=0), f0))
    # linear rows: sum_j Re tr(G_mj P_j) <= pbar (G_mj = B_j^H D_m B_j), lam >= 0
    g_rows = np.zeros((m + lay.n_lam, lay.n))
    for j, (bj, hb) in enumerate(zip(data.bases, lay.hbs, strict=True)):
        gmj = np.einsum("ia,im,ib->mab", bj.conj(), data.indicator, bj)  # [M, r, r]
        g_rows[:m, lay.p_cols(j)] = hb.dual(gmj)
    lam_cols = np.concatenate([lay.lam_col[k] for k in sorted(lay.lam_col)]) if lay.lam_col else np.zeros(0, dtype=np.int64)
    g_rows[m + np.arange(lay.n_lam), lam_cols] = -1.0
    h = np.concatenate([np.full(m, data.pbar), np.zeros(lay.n_lam)])
    return _Conic(HermBasis(0), 0, lay.n, blocks, g_rows, h), lay


def _power_cost(data: DirStructure, lay: _Layout) -> NDArray[np.float64]:
    """c with ``c^T x = sum_j Re tr(B_j^H B_j P_j)`` (total normalised power)."""
    c = np.zeros(lay.n)
    for j, (bj, hb) in enumerate(zip(data.bases, lay.hbs, strict=True)):
        c[lay.p_cols(j)] = hb.dual(bj.conj().T @ bj)
    return c


def _unpack(data: DirStructure, lay: _Layout, x: NDArray[np.float64]):  # noqa: ANN202
    """x -> (W (K, d, d) = B P B^H, lam (M, K), P list)."""
    k_users, d = data.g.shape
    m = data.indicator.shape[1]
    ps = [_herm(hb.unpack(x[lay.p_cols(j)])) for j, hb in enumerate(lay.hbs)]
    w = np.stack([bj @ pj @ bj.conj().T for bj, pj in zip(data.bases, ps, strict=True)])  # [K, d, d]
    w = 0.5 * (w + np.conj(np.swapaxes(w, 1, 2)))
    lam = np.zeros((m, k_users))
    for k, cols in lay.lam_col.items():
        lam[:, k] = np.maximum(x[cols], 0.0)
    return w, lam, ps


def _start(data: DirStructure, prob: _Conic, lay: _Layout) -> NDArray[np.float64]:
    """Strictly feasible phase-1 point: P_j = a I at half the budget, lam = 1, tau above the deficit."""
    x = np.zeros(lay.n)
    load = np.zeros(data.indicator.shape[1])
    for bj in data.bases:
        load += np.real(np.einsum("ia,im,ia->m", bj.conj(), data.indicator, bj))  # tr(G_mj)
    a0 = 0.5 * data.pbar / max(float(load.max()), 1e-300)
    for j, hb in enumerate(lay.hbs):
        x[lay.p_cols(j)] = hb.pack(a0 * np.eye(hb.d, dtype=complex))
    for cols in lay.lam_col.values():
        x[cols] = 1.0
    fs = [f + b.f0 for f, b in zip(prob.lin(x), prob.blocks, strict=True)]
    deficit = max(-float(np.linalg.eigvalsh(f)[0]) for f in fs[data.n_users:])
    x[lay.tau] = max(deficit, 0.0) + max(1.0, abs(deficit))
    return x


def _dual_start(data: DirStructure, prob: _Conic, lay: _Layout, cvec: NDArray[np.float64]):  # noqa: ANN202
    """A dual point strictly inside the cones with zero dual residual.

    LMI multipliers ``Z_k = zeta blkdiag(delta I_d, 1)`` (``zeta`` for a scalar block) with
    ``delta`` below every ``eps2_mk / tr D_m`` (the lam rows' multipliers are then positive) and
    zeta from tau's equation ``sum_k tr Z_k = 1`` (phase 1; any zeta otherwise); equal budget
    multipliers omega large enough that every ``Z_Pj = c_j - sum_k a_kj C_kj^H Z_k C_kj +
    omega sum_m G_mj`` (the dual of ``P_j >= 0``) is positive definite.
    """
    k_users, d = data.g.shape
    m = data.indicator.shape[1]
    tr_d = data.indicator.sum(axis=0)  # [M]
    unc = ~data.exact
    if np.any(unc):
        ratio = np.where(tr_d[:, None] > 0, data.eps2[:, unc] / np.maximum(tr_d[:, None], 1e-300), np.inf)
        delta = 0.5 * float(np.min(ratio)) if np.isfinite(np.min(ratio)) else 1.0
    else:
        delta = 1.0
    lmi = prob.blocks[k_users:]
    trace_unit = np.array([d * delta + 1.0 if b.f0.shape[0] > 1 else 1.0 for b in lmi])
    zeta = 1.0 / float(trace_unit.sum())
    zl_blocks = []
    for b in lmi:
        nb = b.f0.shape[0]
        z = np.eye(nb, dtype=complex) * (zeta * delta if nb > 1 else zeta)
        z[nb - 1, nb - 1] = zeta
        zl_blocks.append(z)
    zeros_p = [np.zeros((hb.d, hb.d), dtype=complex) for hb in lay.hbs]
    a = prob.adj(zeros_p + zl_blocks)  # [n]: LMI part of lin^*(Z)
    lam_cols = np.concatenate([lay.lam_col[k] for k in sorted(lay.lam_col)]) if lay.lam_col else np.zeros(0, dtype=np.int64)
    z_lam = -a[lam_cols]  # [n_lam] > 0 by the choice of delta
    # Z_Pj from the P coordinates' equations: c_i - a_i - Re tr(B_i Z_Pj) + omega Re tr(B_i sum_m G_mj) = 0
    need, gsum, rest = 0.0, [], []
    for j, (bj, hb) in enumerate(zip(data.bases, lay.hbs, strict=True)):
        cols = lay.p_cols(j)
        res_mat = _herm(hb.unpack(np.linalg.solve(_gram(hb), cvec[cols] - a[cols])))  # c_j - M_j as a matrix
        gs = _herm(np.einsum("ia,i,ib->ab", bj.conj(), data.indicator.sum(axis=1), bj))  # sum_m G_mj
        ev_g = float(np.linalg.eigvalsh(gs)[0])
        if ev_g <= 0:
            return None
        need = max(need, float(-np.linalg.eigvalsh(np.linalg.inv(np.linalg.cholesky(gs)) @ res_mat
                                                     @ np.linalg.inv(np.linalg.cholesky(gs)).conj().T)[0]))
        gsum.append(gs)
        rest.append(res_mat)
    scale = max(max(float(np.abs(np.linalg.eigvalsh(r_)).max()) for r_ in rest), 1e-300)
    omega = max(need, 0.0) + 0.1 * scale / max(min(float(np.linalg.eigvalsh(gs)[0]) for gs in gsum), 1e-300) + 1e-300
    z_p = [_herm(r_ + omega * gs) for r_, gs in zip(rest, gsum, strict=True)]
    return z_p + zl_blocks, np.concatenate([np.full(m, omega), z_lam])


def _gram(hb: HermBasis) -> NDArray[np.float64]:
    """``[Re tr(B_i B_j)]`` of a HermBasis (diagonal: 1 on the diagonal coordinates, 2 off it)."""
    bm = _basis_mats(hb)
    return np.real(np.einsum("iab,jba->ij", bm, bm))


def decide_dir(data: DirStructure, gamma: float, verify, interior: bool = False, max_iter: int = 80) -> Decision:  # noqa: ANN001
    """Is the model feasible at gamma? Phase 1 as :func:`netsim.comm.robust_ipm.decide`
    (``verify(w, lam)``: the caller's numerical check of (13)); the Decision's w is B P B^H."""
    prob, lay = _problem(data, gamma, True)
    cvec = np.zeros(lay.n)
    cvec[lay.tau] = 1.0
    z0 = _dual_start(data, prob, lay, cvec)
    if z0 is None:
        return Decision(None, None, None, None, 0)
    x0 = _start(data, prob, lay)
    return phase1(prob, lay.tau, x0, z0, lambda x: _unpack(data, lay, x)[:2], verify, interior, max_iter)


def min_power_dir(data: DirStructure, gamma: float, x_phase1: NDArray[np.float64], verify,  # noqa: ANN001
                  max_iter: int = 80, tol: float = 1e-8):  # noqa: ANN201
    """Minimum total power at gamma from a strictly feasible phase-1 point (tau < 0).

    Returns (W (K, d, d), lam (M, K), P list (r_k, r_k)), or None (not converged / not verified)."""
    prob, lay = _problem(data, gamma, False)
    cvec = _power_cost(data, lay)
    z0 = _dual_start(data, prob, lay, cvec)
    if z0 is None:
        return None
    res = _ipm(prob, cvec, x_phase1[: lay.n].copy(), z0, max_iter=max_iter, tol=tol)
    if res.status not in ("optimal", "optimal_inaccurate"):
        return None
    w, lam, ps = _unpack(data, lay, res.x)
    if not verify(w, lam):
        return None
    return w, lam, ps
