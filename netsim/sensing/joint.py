"""The ML step of a cluster: monotone per-user sweeps, then a joint step for coupled users.

Monotone sweeps
---------------
:func:`ml_step` runs the per-user (Jacobi) sweeps of :func:`netsim.sensing.ml.ml_refine` one at
a time and checks the joint concentrated log-likelihood ``f(P)`` after each: a Jacobi sweep
moves every user against the others' *previous* positions and is not an ascent method when the
users interact (weak users of a neighbouring cluster, visible here, can then jump metres from
sweep to sweep and drag a member with them: random family, seed 13). A sweep that lowers ``f`` is
replaced by a Gauss-Seidel sweep (users one at a time, each against the others' newest
positions), which cannot lower it (``f_k`` is ``f`` up to a constant, Schur complement).

Coupled users
-------------
:func:`netsim.sensing.ml.ml_refine` maximises the concentrated log-likelihood
``f(P) = sum_paths c^H H^{-1} c`` (module :mod:`netsim.sensing.ml`) one user at a time, the others
held fixed (Jacobi sweeps). That is exact for users whose path responses are orthogonal, but two
users inside one resolution cell of the cluster's arrays (0.3-0.6 m apart at 10-20 m from
16-element arrays) have nearly collinear responses on every path: each one's optimum with the
other held fixed moves with the other's error, and a few sweeps from a start a few centimetres
off stop 1-2 cm from the joint maximum (measured on the random family, seeds 13 and 19: the
joint likelihood at the truth was 180-1400 nats above the swept estimate, error 14-20 x
sqrt(CRLB)). Such users are refined together here.

Coupling
--------
Per path (rx s, tx t) the Gram matrix of the users' echo signatures is ``H_ij`` (module
:mod:`netsim.sensing.ml`); its normalised modulus summed over the paths,
``kappa_ij = sum_{s,t} |H_ij| / sqrt(sum_{s,t} H_ii sum_{s,t} H_jj)``, is 1 for identical
signatures on every path and about the sidelobe level for users that are resolved (a user on
the same bearing from one AP is correlated on that AP's paths only; the other paths separate
it). Users linked by
``kappa > COUPLED`` form a group (connected components), and each group's positions are
maximised jointly (:func:`netsim.sensing.optimize.maximize_nd`, 2 x group size dimensions) on
the joint criterion ``f`` of the whole set, the other users held at their estimates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from netsim.sensing.ml import ML_FOLLOW, MlProblem, boxed, ml_refine, near_response
from netsim.sensing.optimize import maximize_2d, maximize_nd

__all__ = ["COUPLED", "coupled_groups", "coupling", "joint_refine", "joint_value", "ml_step"]

COUPLED = 0.5  # kappa above which two users are refined jointly
MONOTONE_RTOL = 1e-10  # a sweep lowering f by more than this (relative) is redone Gauss-Seidel


def _path_gram(prob: MlProblem, pos: NDArray[np.float64]):  # noqa: ANN202
    """``c`` (..., J, M, M) and ``H`` (..., M(s), M(t), J, J) of sets of users (..., J, 2)."""
    a = near_response(prob.geom, pos)  # [..., J, M, N]
    c, rv, _ = prob._path_terms(a)  # [..., J, M, M], [..., J, M, N]
    u = np.einsum("...isn,...jsn->...sij", a.conj(), a)  # [..., M(s), J, J]
    v = np.einsum("...jtn,...itn->...tij", a, rv)  # [..., M(t), J, J]
    h = u[..., :, None, :, :] * v[..., None, :, :, :]  # [..., M(s), M(t), J, J]
    return c, h


def coupling(prob: MlProblem, pos_m: ArrayLike) -> NDArray[np.float64]:
    """Normalised signature coupling ``kappa`` of users at ``pos_m`` (J, 2) -> (J, J), 1 on the diagonal."""
    pos = np.asarray(pos_m, dtype=float).reshape(-1, 2)
    _, h = _path_gram(prob, pos)  # [M, M, J, J]
    hd = np.maximum(np.abs(np.einsum("stii->i", h)), 1e-300)  # [J]: sum over paths of H_ii
    return np.sum(np.abs(h), axis=(0, 1)) / np.sqrt(hd[:, None] * hd[None, :])  # [J, J]


def coupled_groups(kappa: ArrayLike, threshold: float = COUPLED) -> list[list[int]]:
    """Connected components (size >= 2) of the graph ``kappa_ij > threshold``."""
    k = np.asarray(kappa, dtype=float)
    n = k.shape[0]
    label = list(range(n))

    def root(i: int) -> int:
        while label[i] != i:
            i = label[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if k[i, j] > threshold:
                ri, rj = root(i), root(j)
                label[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return [g for g in groups.values() if len(g) >= 2]


def joint_value(prob: MlProblem, sets_m: ArrayLike) -> NDArray[np.float64]:
    """Concentrated log-likelihood gain ``f(P) = sum_paths c^H H^{-1} c`` of sets (..., J, 2) -> (...).

    In units of ``sigma^2 / L`` (times ``L / sigma^2`` it is nats). A set with a member outside
    the problem's admissible region (``lo``/``hi``, AP exclusion) is ``-inf``.
    """
    pos = np.asarray(sets_m, dtype=float)
    c, h = _path_gram(prob, pos)  # [..., J, M, M], [..., M, M, J, J]
    j = pos.shape[-2]
    cs = np.moveaxis(c, -3, -1)  # [..., M, M, J]
    reg = 1e-9 * np.abs(np.trace(h, axis1=-2, axis2=-1))[..., None, None] * np.eye(j)
    x = np.linalg.solve(h + reg, cs[..., None])[..., 0]  # [..., M, M, J]
    val = np.sum(np.real(np.sum(cs.conj() * x, axis=-1)), axis=(-2, -1))  # [...]
    ok = np.ones(val.shape, dtype=bool)
    if prob.lo is not None and prob.hi is not None:
        ok &= np.all((pos >= prob.lo) & (pos <= prob.hi), axis=(-2, -1))
    if prob.exclusion_m > 0:
        dc = pos[..., None, :] - prob.geom.ap_centers_m  # [..., J, M, 2]
        ok &= np.all(np.einsum("...i,...i->...", dc, dc) > prob.exclusion_m ** 2, axis=(-2, -1))
    return np.where(ok, val, -np.inf)


def joint_refine(
    prob: MlProblem,
    pos_m: ArrayLike,
    h0_m: float,
    tol_m: float,
    threshold: float = COUPLED,
    free: ArrayLike | None = None,
    want: ArrayLike | None = None,
    nat: float | None = None,
) -> tuple[NDArray[np.float64], list[list[int]]]:
    """Refine each coupled group of users jointly, the others held at their estimates.

    Parameters
    ----------
    prob : MlProblem
    pos_m : array_like (J, 2) [m]
        Estimates (after the per-user sweeps).
    h0_m : float [m]
        Initial stencil half width (about the distance to the joint peak).
    tol_m : float [m]
        Final stencil half width.
    threshold : float
        Coupling ``kappa`` above which users are grouped.
    free : array_like (J,) bool or None
        Users that may move (None: all); a group's fixed users stay where they are, and a group
        with fewer than two free users is left to the per-user sweeps.
    want : array_like (J,) bool or None
        Users whose estimates the caller needs (None: all); a group without one is left to the
        per-user sweeps (its users are only there so that the wanted users' fit sees their
        echoes: a pair inside one resolution cell explains the same echo wherever it sits
        along its ridge, and its joint step is the costly part of a dense cluster).
    nat : float or None
        One nat in the criterion's unit: a climb may end inside its quadratic zone
        (:func:`netsim.sensing.optimize.maximize_nd`).

    Returns
    -------
    pos : ndarray (J, 2) [m]
        Estimates; a group moves only when its joint likelihood increases.
    groups : list of list of int
        The coupled groups (indices into ``pos_m``); empty when none.
    """
    pos = np.array(pos_m, dtype=float).reshape(-1, 2)
    mov = None if free is None else np.asarray(free, dtype=bool).reshape(pos.shape[0])
    if pos.shape[0] < 2 or (mov is not None and mov.sum() < 2):
        return pos, []
    groups = coupled_groups(coupling(prob, pos), threshold)
    need = None if want is None else np.asarray(want, dtype=bool).reshape(pos.shape[0])
    for g in groups:
        gi = np.asarray(g)
        if need is not None and not np.any(need[gi]):
            continue
        if mov is not None:
            gi = gi[mov[gi]]
            if gi.size < 2:
                continue

        def fun(idx, pts, gi=gi):  # noqa: ANN001, ANN202
            s = np.broadcast_to(pos, pts.shape[:2] + pos.shape).copy()  # [b, S, J, 2]
            s[:, :, gi] = pts.reshape(pts.shape[:2] + (gi.size, 2))
            return joint_value(prob, s)

        x, _ = maximize_nd(fun, pos[gi].reshape(1, -1), h0_m, tol_m, nat=nat)
        pos[gi] = x.reshape(-1, 2)
    return pos, groups


def _gauss_seidel(prob: MlProblem, pos: NDArray[np.float64], h: NDArray[np.float64],
                  tol_m: float, rows: NDArray[np.int64] | None = None,
                  box: NDArray[np.float64] | None = None, nat: float | None = None) -> NDArray[np.float64]:
    """One sweep of per-user maximisation, each user (of ``rows``; None: all) against the
    others' newest positions (each confined to its ``box`` row, (K, 2, 2), when given)."""
    pos = pos.copy()
    for k in (range(pos.shape[0]) if rows is None else rows):
        a_est, w, minv = prob.others_terms(pos, [k])  # user k's row only

        def fun(idx, pts, a_est=a_est, w=w, minv=minv, k=k):  # noqa: ANN001, ANN202
            return boxed(prob.criterion(pts, a_est, w, minv), pts, box, np.array([k]))

        p, _ = maximize_2d(fun, pos[k:k + 1], h[k], tol_m, follow=ML_FOLLOW, nat=nat)
        pos[k] = p[0]
    return pos


def _joint_group_users(prob: MlProblem, pos: NDArray[np.float64], threshold: float,
                       free: ArrayLike | None, want: ArrayLike | None) -> NDArray[np.bool_]:
    """(J,) bool: the users of the coupled groups that :func:`joint_refine` would refine jointly
    at ``pos`` (a group with a wanted user and at least two free ones: its free users)."""
    j = pos.shape[0]
    mov = np.ones(j, dtype=bool) if free is None else np.asarray(free, dtype=bool).reshape(j)
    need = np.ones(j, dtype=bool) if want is None else np.asarray(want, dtype=bool).reshape(j)
    out = np.zeros(j, dtype=bool)
    for g in coupled_groups(coupling(prob, pos), threshold):
        gi = np.asarray(g)
        gi = gi[mov[gi]]
        if np.any(need[np.asarray(g)]) and gi.size >= 2:
            out[gi] = True
    return out


def ml_step(
    prob: MlProblem,
    start_m: ArrayLike,
    h0_m: float | ArrayLike,
    tol_m: float,
    sweeps: int,
    threshold: float = COUPLED,
    free: ArrayLike | None = None,
    stop_m: float | ArrayLike | None = None,
    sweep_tol_m: float | None = None,
    want: ArrayLike | None = None,
    box_m: ArrayLike | None = None,
    group_stop: bool = False,
    nat: float | None = None,
    stop_users: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], list[list[int]], int]:
    """ML positions of a cluster's users: monotone sweeps, then coupled groups jointly.

    The sweep schedule is that of :func:`netsim.sensing.ml.ml_refine` (first stencil ``h0``,
    then a tenth of each user's last move, at least ``10 tol``; stop when no user moved by
    ``100 tol`` after the second sweep), with every sweep that lowers the joint likelihood
    redone Gauss-Seidel (module docstring); then :func:`joint_refine`.

    Parameters
    ----------
    prob : MlProblem
    start_m : array_like (J, 2) [m]
    h0_m : float or array_like (J,) [m]
    tol_m : float [m]
    sweeps : int
    threshold : float
        Coupling above which users are refined jointly.
    free : array_like (J,) bool or None
        Users whose positions are estimated (None: all); the others are held at ``start_m``
        with their echoes still in the model (:func:`netsim.sensing.ml.ml_refine`).
    stop_m : float or array_like (J,) or None [m]
        Sweeps stop once no user moved by this much (its own entry) after the second sweep
        (None: ``100 tol``).
    sweep_tol_m : float or None [m]
        Final stencil half width of the per-user sweeps (None: ``tol_m``); the joint step of a
        coupled group always uses ``tol_m`` (a close pair's joint peak is a narrow ridge: a
        1e-5 m stencil stopped a pair of family seed 13 3.3 sqrt(CRLB) off, 1e-7 m at 1.5).
    want : array_like (J,) bool or None
        Users whose estimates the caller needs (None: every free user): only coupled groups
        holding one of them get the joint step (:func:`joint_refine`).
    box_m : array_like (J, 2, 2) [m] or None
        Per user ``[lo, hi]`` box its sweeps keep it in (``+-inf``: none; None: no boxes; see
        :func:`netsim.sensing.ml.boxed`). The joint step of a coupled group is not boxed.
    group_stop : bool
        The sweeps' stopping test leaves out the users of the coupled groups (``kappa >
        threshold`` at the current estimates) that then get the joint step: per-user sweeps cannot converge
        on a pair inside one resolution cell (each one's optimum moves with the other's error,
        by centimetres from sweep to sweep), and the joint step starts afresh from the
        first stencil ``h0`` anyway.
    nat : float or None
        One nat in the criterion's unit: the sweeps' and the joint step's climbs may end inside
        their quadratic zone (:func:`netsim.sensing.optimize.maximize_2d`, ``maximize_nd``).
    stop_users : array_like (J,) bool or None
        Only these users' moves decide when the sweeps stop (None: every user's).

    Returns
    -------
    pos : ndarray (J, 2) [m]
    groups : list of list of int
        Coupled groups refined jointly.
    n_gs : int
        Sweeps redone Gauss-Seidel.
    """
    pos = np.array(start_m, dtype=float).reshape(-1, 2)
    h0 = np.broadcast_to(np.asarray(h0_m, dtype=float), (pos.shape[0],)).copy()
    if pos.shape[0] == 0:
        return pos, [], 0
    rows = None if free is None else np.flatnonzero(np.asarray(free, dtype=bool).reshape(pos.shape[0]))
    n_free = pos.shape[0] if rows is None else rows.size
    if n_free == 0:
        return pos, [], 0
    tol_s = tol_m if sweep_tol_m is None else float(sweep_tol_m)
    stop = 100 * tol_m if stop_m is None else np.broadcast_to(np.asarray(stop_m, dtype=float), (pos.shape[0],))
    h = h0.copy()
    box = None if box_m is None else np.asarray(box_m, dtype=float).reshape(pos.shape[0], 2, 2)
    f = float(joint_value(prob, pos)) if n_free > 1 else 0.0
    n_gs = 0
    for s in range(max(1, sweeps)):
        hs = h if s == 0 else np.maximum(h / 10, 10 * tol_s)
        new, _ = ml_refine(prob, pos, hs, tol_s, sweeps=1, free=free, box_m=box, nat=nat)
        if n_free > 1:
            f_new = float(joint_value(prob, new))
            if not f_new >= f - MONOTONE_RTOL * abs(f):
                new = _gauss_seidel(prob, pos, hs, tol_s, rows, box, nat)
                f_new = float(joint_value(prob, new))
                n_gs += 1
            f = f_new
        moved = np.linalg.norm(new - pos, axis=1)
        h = np.maximum(moved, 10 * tol_s)
        pos = new
        if n_free == 1:
            break
        if s >= 1:
            done = moved < stop
            if stop_users is not None:
                done |= ~np.asarray(stop_users, dtype=bool).reshape(pos.shape[0])
            if group_stop and not np.all(done):  # the joint step's users (groups at pos) do not count
                done |= _joint_group_users(prob, pos, threshold, free, want)
            if np.all(done):
                break
    pos, groups = joint_refine(prob, pos, float(np.max(h0 if rows is None else h0[rows])), tol_m, threshold,
                               free=free, want=want, nat=nat)
    return pos, groups, n_gs
