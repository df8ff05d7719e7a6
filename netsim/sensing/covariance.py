"""Sensing-covariance design, seed 003 eqs. (7)-(8): minimise the total position CRB.

Problem (7): ``min_{R_1..R_M} tr(S(R)^{-1})`` s.t. ``tr(R_m) <= P_s``, ``R_m >= 0``, where
``S(R)`` is the Schur complement of eq. (2) (see :mod:`netsim.sensing.fim`). ``S`` is the Schur
complement of a matrix affine in R, hence concave, and ``tr(S^{-1})`` is convex in R.

Two solvers:

* :func:`design_sensing_covariance` (default, scalable): L-BFGS on a trace-normalised
  factorisation ``R_m = P_s V V^H / ||V||^2`` of the exact objective
  ``tr([J^{-1}]_{theta theta})`` with the analytic gradient. Full size (3 APs x 21 antennas,
  4 users): about 10-20 s for 150 iterations (within 0.05% of the 3300-iteration optimum). (A projected
  gradient/FISTA variant was tried and stalled at 0.4% above the SDP optimum on small cases
  because of the ill-conditioning; L-BFGS matches the SDP.)
* :func:`design_sensing_covariance_sdp`: the SDP (8) with the CRB slack trick (cvxpy + SCS),
  kept as a reference for small instances (the full-size SDP takes minutes, spec 7.2).

R* does not depend on rho, L or sigma^2, so it is computed once per deployment;
:class:`SensingCovarianceCache` memoises it by a hash of the geometry, positions, power and
options (optionally persisted as ``.npz`` files in a directory).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.config import IsacGeometry
from netsim.sensing.fim import FimModel, isotropic_covariance

__all__ = [
    "CovarianceDesign",
    "SensingCovarianceCache",
    "design_sensing_covariance",
    "design_sensing_covariance_sdp",
    "project_psd_trace",
]


@dataclass(frozen=True)
class CovarianceDesign:
    """Result of a covariance design.

    Attributes
    ----------
    r : ndarray (M, N, N) complex [W]
        Optimised per-AP covariances R_m*.
    objective : float
        ``tr(S(R*)^{-1})`` [m^2 per unit sigma^2/(2L)].
    objective_iso : float
        The same for the isotropic ``R_m = P_s I/N``.
    n_iter : int
    converged : bool
    method : str
    """

    r: NDArray[np.complex128]
    objective: float
    objective_iso: float
    n_iter: int
    converged: bool
    method: str


def project_psd_trace(x: NDArray[np.complex128], power: float) -> NDArray[np.complex128]:
    """Frobenius projection of Hermitian matrices onto ``{R >= 0, tr R <= power}``.

    Parameters
    ----------
    x : ndarray (..., N, N) complex (Hermitian part is used)
    power : float

    Returns
    -------
    ndarray (..., N, N) complex
    """
    xh = 0.5 * (x + np.conj(np.swapaxes(x, -1, -2)))
    w, v = np.linalg.eigh(xh)  # [..., N], [..., N, N]
    wp = np.maximum(w, 0.0)
    over = wp.sum(-1) > power
    if np.any(over):
        # project eigenvalues onto the simplex {w >= 0, sum w = power}
        ws = w[over]
        u = -np.sort(-ws, axis=-1)
        css = np.cumsum(u, axis=-1) - power
        idx = np.arange(1, u.shape[-1] + 1)
        cond = u - css / idx > 0
        rho = cond.shape[-1] - 1 - np.argmax(cond[..., ::-1], axis=-1)
        theta = css[np.arange(u.shape[0]), rho] / (rho + 1)
        wp[over] = np.maximum(ws - theta[:, None], 0.0)
    return np.einsum("...ij,...j,...kj->...ik", v, wp, v.conj())


def design_sensing_covariance(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    power_w: float,
    exact_jbb: bool = True,
    max_iter: int = 150,
    ftol: float = 1e-10,
) -> CovarianceDesign:
    """Minimise ``tr(CRB)`` over per-AP covariances (scalable first-order solver).

    Parametrisation ``R_m = P_s V_m V_m^H / ||V_m||_F^2`` (full N x N factor, so every feasible
    R with ``tr R_m = P_s`` is reachable; the optimum has a tight trace because the CRB falls
    with power) and L-BFGS on the exact objective with the analytic gradient
    ``grad_V = (2 P_s / tau) (G V - tr(G V V^H)/tau V)``, ``G = d f / d R`` (see
    :meth:`FimModel.objective_and_grad`). Starts from the isotropic covariance.

    Parameters
    ----------
    geom : IsacGeometry
    user_pos_m : array_like (K, 2) [m]
        Nominal (or predicted) user positions.
    power_w : float
        Per-AP sensing budget P_s [W].
    exact_jbb : bool
        Exact dense J_bb (default) or the paper's diagonal approximation.
    max_iter : int
        L-BFGS iteration cap (about 70 ms each at 3 x 21 antennas, 4 users).
    ftol : float
        Relative objective-reduction stopping tolerance.

    Returns
    -------
    CovarianceDesign
    """
    from scipy.optimize import minimize

    model = FimModel.build(geom, user_pos_m, power_w=power_w, exact_jbb=exact_jbb)
    m, n = geom.n_aps, geom.n_antennas
    r_iso = isotropic_covariance(geom, power_w)  # [M, N, N]
    f_iso, _ = model.objective_and_grad(r_iso)
    nv = m * n * n

    def to_r(z: NDArray[np.float64]) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.float64]]:
        v = (z[:nv] + 1j * z[nv:]).reshape(m, n, n)  # [M, N, N]
        tau = np.einsum("mij,mij->m", v, v.conj()).real  # [M]
        r = power_w * (v @ np.conj(np.swapaxes(v, 1, 2))) / tau[:, None, None]  # [M, N, N]
        return r, v, tau

    def fun(z: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        r, v, tau = to_r(z)
        f, g = model.objective_and_grad(r)
        if g is None:
            return 1e30, np.zeros_like(z)
        gv = g @ v  # [M, N, N]
        trg = np.einsum("mij,mij->m", np.conj(gv), v).real  # [M]
        grad = (2 * power_w / tau)[:, None, None] * (gv - (trg / tau)[:, None, None] * v)  # [M, N, N]
        return f / f_iso, np.concatenate([grad.real.ravel(), grad.imag.ravel()]) / f_iso

    v0 = np.broadcast_to(np.eye(n, dtype=complex), (m, n, n))
    z0 = np.concatenate([v0.real.ravel(), v0.imag.ravel()])
    res = minimize(fun, z0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": ftol, "gtol": 1e-12, "maxcor": 30})
    r, _, _ = to_r(res.x)
    r = 0.5 * (r + np.conj(np.swapaxes(r, 1, 2)))
    return CovarianceDesign(
        r=r, objective=float(np.trace(model.normalized_crb(r))),
        objective_iso=float(np.trace(model.normalized_crb(r_iso))),
        n_iter=int(res.nit), converged=bool(res.success), method="lbfgs-factor",
    )


def design_sensing_covariance_sdp(
    geom: IsacGeometry,
    user_pos_m: ArrayLike,
    power_w: float,
    exact_jbb: bool = True,
    minmax: bool = False,
    eps: float = 1e-7,
    max_iters: int = 200_000,
) -> CovarianceDesign:
    """SDP (8) with the CRB slack trick of [30], solved by cvxpy + SCS (reference solver).

    ``min sum(t)`` (or ``min s`` with ``t_k + t_{K+k} <= s``, the min-max variant A6) s.t.
    ``[[J_tt - U, J_tb], [J_tb^T, J_bb]] >= 0``, ``[[U, e_i], [e_i^T, t_i]] >= 0``,
    ``tr R_m <= P_s``, ``R_m >= 0`` (on the scaled FIM). A solver failure returns the
    isotropic covariance with ``converged=False``.
    """
    import cvxpy as cp

    model = FimModel.build(geom, user_pos_m, power_w=power_w, exact_jbb=exact_jbb)
    m, n = geom.n_aps, geom.n_antennas
    npar = model.n_par
    nt = 2 * model.n_users
    # J(R) = Re(C @ vec(R)): C[ij, (m,p,q)] = sum_a conj(gd_j[a,m,p]) gd_i[a,m,q]
    gd = model.gd  # [par, MN, M, N]
    coef = np.einsum("jamp,iamq->ijmqp", gd.conj(), gd).reshape(npar * npar, m * n * n)
    if not exact_jbb:
        mask = np.ones((npar, npar), dtype=bool)
        mask[nt:, nt:] = np.eye(npar - nt, dtype=bool)
        coef = coef * mask.reshape(-1, 1)
    rs = [cp.Variable((n, n), hermitian=True) for _ in range(m)]
    vec_r = cp.hstack([cp.vec(rv / power_w, order="C") for rv in rs])
    jr = cp.reshape(cp.real(coef @ vec_r), (npar, npar), order="C")
    jr = 0.5 * (jr + jr.T)
    u = cp.Variable((nt, nt), symmetric=True)
    tv = cp.Variable(nt)
    big = cp.bmat([[jr[:nt, :nt] - u, jr[:nt, nt:]], [jr[nt:, :nt], jr[nt:, nt:]]])
    cons = [big >> 0]
    for i in range(nt):
        e = np.zeros((nt, 1))
        e[i] = 1.0
        cons.append(cp.bmat([[u, e], [e.T, cp.reshape(tv[i], (1, 1), order="C")]]) >> 0)
    for rv in rs:
        cons += [rv >> 0, cp.real(cp.trace(rv)) <= power_w]
    if minmax:
        s = cp.Variable()
        k = model.n_users
        cons += [tv[:k] + tv[k:] <= s]
        obj = cp.Minimize(s)
    else:
        obj = cp.Minimize(cp.sum(tv))
    prob = cp.Problem(obj, cons)
    r_iso = isotropic_covariance(geom, power_w)
    f_iso = float(np.trace(model.normalized_crb(r_iso)))
    try:
        prob.solve(solver="SCS", eps=eps, max_iters=max_iters)
        ok = prob.status in ("optimal", "optimal_inaccurate")
    except BaseException as exc:  # noqa: BLE001 - solver failure (even a Rust panic) is a status
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        ok = False
    if not ok:
        return CovarianceDesign(r=r_iso, objective=f_iso, objective_iso=f_iso, n_iter=0, converged=False, method="sdp-scs")
    r = np.stack([project_psd_trace(np.asarray(rv.value), power_w) for rv in rs])
    return CovarianceDesign(
        r=r, objective=float(np.trace(model.normalized_crb(r))), objective_iso=f_iso,
        n_iter=int(prob.solver_stats.num_iters or 0), converged=prob.status == "optimal", method="sdp-scs",
    )


@dataclass
class SensingCovarianceCache:
    """Memoises :func:`design_sensing_covariance` per deployment (the design is rho-free).

    Parameters
    ----------
    directory : path or None
        If given, designs are also stored as ``<key>.npz`` there and reloaded by later runs.

    The key is a SHA-256 of the geometry, the rounded positions (``pos_round_m``), the power and
    the options. ``hits``/``misses`` count lookups.
    """

    directory: str | Path | None = None
    pos_round_m: float = 1e-6
    store: dict[str, CovarianceDesign] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def key(self, geom: IsacGeometry, user_pos_m: ArrayLike, power_w: float, exact_jbb: bool) -> str:
        h = hashlib.sha256()
        h.update(geom.key().encode())
        p = np.round(np.asarray(user_pos_m, dtype=float) / self.pos_round_m).astype(np.int64)
        h.update(p.tobytes())
        h.update(repr((round(float(power_w), 15), bool(exact_jbb))).encode())
        return h.hexdigest()[:24]

    def get(self, geom: IsacGeometry, user_pos_m: ArrayLike, power_w: float, exact_jbb: bool = True) -> CovarianceDesign:
        """Return the cached design or compute (and store) it."""
        k = self.key(geom, user_pos_m, power_w, exact_jbb)
        if k in self.store:
            self.hits += 1
            return self.store[k]
        if self.directory is not None:
            f = Path(self.directory) / f"{k}.npz"
            if f.exists():
                z = np.load(f)
                d = CovarianceDesign(r=z["r"], objective=float(z["objective"]), objective_iso=float(z["objective_iso"]),
                                     n_iter=int(z["n_iter"]), converged=bool(z["converged"]), method=str(z["method"]))
                self.store[k] = d
                self.hits += 1
                return d
        self.misses += 1
        d = design_sensing_covariance(geom, user_pos_m, power_w, exact_jbb=exact_jbb)
        self.store[k] = d
        if self.directory is not None:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            np.savez(Path(self.directory) / f"{k}.npz", r=d.r, objective=d.objective, objective_iso=d.objective_iso,
                     n_iter=d.n_iter, converged=d.converged, method=d.method)
        return d
