"""Fast numpy forward passes of the seed-004 GNNs for single graphs (the simulator's path).

The arithmetic is the one of :mod:`netsim.comm.power.gnn_layers` (eqs. (24)-(27), spec power.md
5.1-5.3), which stays the reference that torch is trained with; this module evaluates the same
functions for ONE graph with fewer, larger numpy calls, and is checked against the reference to
1e-10 in float64 (tests/unit/comm/test_gnn_fast.py). What changes is only the order of the
linear algebra:

* batch norm (eval affine ``x * scale + shift``) is folded into the layer's matrices and bias;
* "mean over the others" ``(sum - self) / (n - 1)`` is split into a self term, folded into the
  self matrix (``U - V / (n - 1)``), and a per-row/per-column sum term;
* every linear map that acts on the same input is one matmul with the matrices side by side;
* the pilot/STS states are stored UE-major and channel-last, ``D [K, M, d]``, ``E [K, S, e]``:
  every channel map is one gemm ``X [K * M, d] @ W [d, d']`` and the attention sum over the
  other UEs one gemm ``alpha [K, K] @ E [K, S * e]``;
* the Power-GNN's edge states are receiver-major and channel-first, ``F [K, d, T, A]``: the INF
  self map of receiver i, with its own "other INF edges at UE i" scaling c7[i] folded in, is
  one batched matmul ``W[i] [d', d] @ F[i] [d, T * A]``, the per-AN and per-UE terms are
  broadcasts along long contiguous rows, the sums over receivers / ANs are products with a ones
  vector, and its features use ``ln`` (``np.log10`` is several times slower);
* the Power-GNN keeps the SIG states ``[d, T, A]`` apart from the edge tensor (a gather and a
  scatter by (k(a), a) instead of one-hot products), its last layer computes the SIG update
  only (the INF states of the last layer are never read), and its large arrays live in a
  workspace kept with the graph (fresh MB-sized arrays per pass cost more in page faults than
  the arithmetic that fills them);
* T subframes that share one association run as ONE pass (the subframe axis is inside the
  rows of every matmul).

The folded matrices depend on the graph sizes (M, K, S) and on the dtype; they are built once per
size (a "plan") and kept in ``weights.cache`` (plain dicts of numpy arrays and views into them,
rebuildable; not pickled: :meth:`GNNWeights.__getstate__`).
``dtype=np.float32`` halves the memory traffic; float64 is the default and the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from netsim.comm.power.gnn_layers import LEAKY_SLOPE, POWER_SAFETY, GNNArch

__all__ = ["pilot_plan", "power_plan", "sts_forward_fast", "copilot_term_fast", "power_branch_fast",
           "pilot_head_plan", "pilot_head_fast", "power_graph_fast", "power_forward_fast",
           "power_activation_fast"]

_MAG_FLOOR = 1e-12  # same floor as gnn_layers.ssf_features


def _leaky(x: np.ndarray) -> np.ndarray:
    """LeakyReLU with slope 0.01 < 1: max(x, 0.01 x) (identical values to the reference)."""
    return np.maximum(x, LEAKY_SLOPE * x)


def _bn(params: Mapping[str, Any], key: str, width: int, last: bool):
    if last:
        return np.ones(width), np.zeros(width)
    return np.asarray(params[key + ".scale"]), np.asarray(params[key + ".shift"])


def _mm(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """w [o, c] applied to the channel axis of x [c, ...] as ONE wide gemm -> [o, ...]."""
    return np.dot(w, x.reshape(x.shape[0], -1)).reshape((w.shape[0],) + x.shape[1:])


def pilot_plan(params: Mapping[str, Any], arch: GNNArch, n_ap: int, n_ue: int, n_ps: int,
               dtype=np.float64) -> list[dict]:
    """Folded per-layer matrices of a pilot/STS GNN for (M, K, S), stored TRANSPOSED
    (``[in, out]``, applied as ``X [..., in] @ W``: the states are channel-last).

    Sums over the M APs / S pilots of one UE enter only through linear maps, so they are folded
    into those maps: ``(sum_m D[k, m]) W = D[k] (as [M * d]) @ vstack(M x W)`` (``dk``, ``ek``);
    the attention score ``sum_m (Wq D[k, m]) . (Wk D[i, m]) / (2M)`` is ``(D[k] B) . D[i]``
    with ``B = Wq^T Wk / (2M)`` (``att``)."""
    cm, ck, cs = 1.0 / max(n_ap - 1, 1), 1.0 / max(n_ue - 1, 1), 1.0 / max(n_ps - 1, 1)
    layers = []
    for l in range(arch.layers):
        p = f"sts.{l}."
        g = lambda n, p=p: np.asarray(params[p + n], float)  # noqa: E731  [out, in]
        last = l == arch.layers - 1
        sd, hd = _bn(params, p + "bn_d", g("U1").shape[0], last)
        se, he = _bn(params, p + "bn_e", g("U2").shape[0], last)
        sd, hd, se, he = sd[:, None], hd[:, None], se[:, None], he[:, None]
        # per-UE terms from sum_m D: [V3 / M (E') | V1 / (M - 1) (D')], one row block per AP
        per_m = np.concatenate([g("V3") / n_ap * se, cm * g("V1") * sd], 0).T  # [d, e' + d']
        lay = {
            "d_self": ((g("U1") - cm * g("V1") - ck * g("V2")) * sd).T,  # [d, d']
            "d_sumk": (ck * g("V2") * sd).T,  # applied to sum_k D  [d, d']
            "d_bias": (g("b1")[:, None] * sd + hd).T,  # [1, d']
            "dk": np.tile(per_m, (n_ap, 1)),  # [M d, e' + d'] applied to D[k] as [M d]
            "ek": np.tile((cs * g("V4") * se).T, (n_ps, 1)),  # [S e, e'] applied to E[k] as [S e]
            "e_bias": (g("b2")[:, None] * se + he).T,  # [1, e']
            "e_self": ((g("U2") - cs * g("V4")) * se).T,  # [e, e']
            "e_att": (ck * g("V5") * se).T,  # [e, e'] applied to sum_i alpha[k, i] E[i]
            "att": (g("Wq").T @ g("Wk")) * (0.5 / n_ap) if arch.attention else None,  # [d, d]
        }
        lay["tile_e"] = np.tile(np.eye(lay["e_self"].shape[1]), n_ps)  # [e', S e'] per-UE term on every PS
        lay = {k: (np.ascontiguousarray(v).astype(dtype) if v is not None else None)
               for k, v in lay.items()}
        lay["last"] = last
        layers.append(lay)
    return layers


def sts_forward_fast(plan: list[dict], arch: GNNArch, d0: np.ndarray, e0: np.ndarray, *,
                     last_input: bool = False):
    """Pilot/STS GNN on one graph, UE-major channel-last layout.

    d0 : [K, M, 2] AP-UE features (lsf_features, UE-major); e0 : [K, S, 1] PS-UE features.
    Every channel map is ONE gemm on ``[K * M, d]`` / ``[K * S, e]``, every per-UE term one gemm
    on ``D [K, M * d]`` / ``E [K, S * e]`` (:func:`pilot_plan`), the attention scores one gemm
    ``(D B) [K, M * d] @ D^T`` and the attention sum ``sum_i alpha[k, i] E[i]``, with the
    per-UE term of E' appended, ONE gemm ``[alpha | per-UE] @ [E (as [K, S * e]); tile(I, S)]``;
    by linearity the attention matrix V5 is applied before that sum.
    Returns power_logit [K, M], pilot_logit [K, S] (the reference's outputs transposed), and
    with ``last_input`` also the last layer's AP-UE input D [K, M, d] (what the co-pilot
    readout of a ``GNNArch.copilot`` model reads: :func:`copilot_term_fast`).
    """
    d, e = d0, e0
    d_in = d0
    n_ue, n_ap, n_ps = d0.shape[0], d0.shape[1], e0.shape[1]
    off = 1.0 - np.eye(n_ue, dtype=d0.dtype)  # [K, K]
    half_off = 0.5 * off
    one_k = np.ones(n_ue, dtype=d0.dtype)
    for lay in plan:
        cd, ce = d.shape[2], e.shape[2]
        d2 = d.reshape(-1, cd)  # [K*M, d]
        e2 = e.reshape(-1, ce)  # [K*S, e]
        dflat = d.reshape(n_ue, -1)  # [K, M*d]
        if lay["att"] is not None:
            z = np.dot(np.dot(d2, lay["att"]).reshape(n_ue, -1), dflat.T)  # [K, K] score / 2
            np.tanh(z, out=z)
            z += 1.0
            z *= half_off  # sigmoid, zero diagonal  [K, K]
            alpha = z
        else:
            alpha = off
        fo = lay["e_self"].shape[1]
        do = lay["d_self"].shape[1]
        per_k = np.dot(dflat, lay["dk"])  # [K, e' + d'] per-UE terms from sum_m D
        per_e = np.dot(e.reshape(n_ue, -1), lay["ek"])  # [K, e'] per-UE term from sum_s E
        per_e += per_k[:, :fo]
        per_e += lay["e_bias"]
        # sum_i alpha[k, i] V5' E[i] + per_e[k] on every PS as ONE gemm:
        # [alpha | per_e] [K, K + e'] @ [V5' E (as [K, S * e']); tile(I_e', S)]
        v5e = np.empty((n_ue + fo, n_ps * fo), d0.dtype)
        np.dot(e2, lay["e_att"], out=v5e[:n_ue].reshape(-1, fo))  # V5' E
        v5e[n_ue:] = lay["tile_e"]
        lhs = np.empty((n_ue, n_ue + fo), d0.dtype)
        lhs[:, :n_ue] = alpha
        lhs[:, n_ue:] = per_e
        e_new = np.dot(lhs, v5e)  # [K, S*e']
        e_new += np.dot(e2, lay["e_self"]).reshape(n_ue, -1)
        d_new = np.dot(d2, lay["d_self"]).reshape(n_ue, n_ap, do)  # [K, M, d']
        d_new += per_k[:, None, fo:]
        sum_k = np.dot(one_k, dflat).reshape(n_ap, cd)  # [M, d]
        per_m = np.dot(sum_k, lay["d_sumk"])  # [M, d']
        per_m += lay["d_bias"]
        d_new += per_m[None, :, :]
        e_new = e_new.reshape(n_ue, n_ps, fo)
        if not lay["last"]:
            np.maximum(d_new, LEAKY_SLOPE * d_new, out=d_new)
            np.maximum(e_new, LEAKY_SLOPE * e_new, out=e_new)
        d_in = d
        d, e = d_new, e_new
    if last_input:
        return d[:, :, 0], e[:, :, 0], d_in
    return d[:, :, 0], e[:, :, 0]


def copilot_term_fast(v6: np.ndarray, v7: np.ndarray, d_in: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Co-pilot term of a ``GNNArch.copilot`` STS power readout for one graph and hard pilots
    (:func:`netsim.comm.power.gnn_layers.copilot_term` with C = one-hot co-pilot matrix).

    By linearity the maps act first: u[k, m] = V6 D[k, m] + V7 mean_m' D[k, m'] (scalars),
    then the term is the sum of u over the OTHER UEs on k's pilot: (group sum - own), with
    the group sums one ``[tau_p, K] @ [K, M]`` product.

    v6, v7 : [1, d]; d_in : [K, M, d] last-layer input (UE-major, :func:`sts_forward_fast`);
    colour : [K] int pilots. Returns [K, M] (added to the power logits).
    """
    u = np.dot(d_in.reshape(-1, d_in.shape[2]), v6[0].astype(d_in.dtype)).reshape(d_in.shape[:2])  # [K, M]
    u += np.dot(d_in.mean(axis=1), v7[0].astype(d_in.dtype))[:, None]  # [K, 1] the AP-mean part
    col = np.asarray(colour, np.int64)
    onehot = np.zeros((int(col.max()) + 1, col.size), u.dtype)  # [tau_p, K]
    onehot[col, np.arange(col.size)] = 1.0
    return np.dot(onehot, u)[col] - u  # [K, M]


def power_branch_fast(params: Mapping[str, Any], arch: GNNArch, d_in: np.ndarray, colour: np.ndarray,
                      t: float) -> np.ndarray:
    """The STS power branch (:func:`netsim.comm.power.gnn_layers.power_branch`) on one graph
    with hard pilots, UE-major: the co-pilot sums are group sums (one ``[tau_p, K] @ [K, M c]``
    product) minus the own row, the five input blocks one gemm each on ``[K * M, c]``.

    params : the STS model's arrays; d_in : [K, M, d] last-layer input; colour : [K] int;
    t : log2(N / branch_n_ref). Returns [K, M] (added to the power logits).
    """
    n_ue, n_ap = d_in.shape[:2]
    dt = d_in.dtype
    col = np.asarray(colour, np.int64)
    onehot = np.zeros((int(col.max()) + 1, n_ue), dt)  # [tau_p, K]
    onehot[col, np.arange(n_ue)] = 1.0
    h = np.empty((n_ue, n_ap, d_in.shape[2] + 1), dt)
    h[:, :, :-1] = d_in
    h[:, :, -1] = t
    cm, ck = 1.0 / max(n_ap - 1, 1), 1.0 / max(n_ue - 1, 1)
    for j in range(arch.branch):
        w = np.asarray(params[f"sts.pb.{j}.W"]).astype(dt)  # [w, 5 c]
        c = h.shape[2]
        hs = h.reshape(n_ue, -1)  # [K, M c]
        cd = (np.dot(onehot, hs)[col] - hs).reshape(h.shape)  # [K, M, c] co-pilot sums
        sum_m = h.sum(axis=1, keepdims=True)  # [K, 1, c]
        sum_k = h.sum(axis=0, keepdims=True)  # [1, M, c]
        # self + (sum - self)/(n - 1) terms folded: h (W0 - cm W1 - ck W2) + sum_m cm W1 + sum_k ck W2
        w0 = w[:, :c] - cm * w[:, c:2 * c] - ck * w[:, 2 * c:3 * c]
        z = np.dot(h.reshape(-1, c), w0.T).reshape(n_ue, n_ap, -1)
        z += np.dot(sum_m, (cm * w[:, c:2 * c]).T)
        z += np.dot(sum_k, (ck * w[:, 2 * c:3 * c]).T)
        z += np.dot(cd.reshape(-1, c), w[:, 3 * c:4 * c].T).reshape(z.shape)
        z += np.dot(cd.mean(axis=1, keepdims=True), w[:, 4 * c:].T)
        z += np.asarray(params[f"sts.pb.{j}.b"]).astype(dt)
        h = np.maximum(z, LEAKY_SLOPE * z)
    return np.dot(h, np.asarray(params["sts.pb.out"])[0].astype(dt))  # [K, M]
_LN_TO_DB30 = 1.0 / (3.0 * np.log(10.0))  # 10 log10(x) / 30 = ln(x) * _LN_TO_DB30


def pilot_head_plan(params: Mapping[str, Any], arch: GNNArch, n_ap: int, n_ue: int, n_ps: int,
                    dtype=np.float64) -> dict:
    """Folded matrices and workspace of the PILOT HEAD of a pilot/STS GNN for (M, K, S): the pass
    of :func:`pilot_head_fast`, which returns the PS-UE logits only and so skips the last
    layer's AP-UE update. Same arithmetic as :func:`pilot_plan` (eqs. (25)-(27), BN folded),
    with these layouts and folds:

    * the AP-UE states are UE-major and channel-last with a channel of ones, ``D [K, M, d + 1]``
      (channel d = 1; their maps are stored transposed ``[in + 1, out + 1]``): the AP-UE bias is
      that channel's row of the self map, the PS-UE bias (over M) that of the per-UE map ``dk``
      (the sum over the M APs of the ones channel is M); the per-AP sum and the attention have
      a zero row for it, and the self map carries it on;
    * the PS-UE states are channel-first and UE-last, ``E [e, S, K]``: both channel maps of E
      (V5 / (K - 1) and the self map U2 - V4 / (S - 1)) are ONE gemm ``w2 [2 e', e] @ E [e, S K]``
      and the attention sum over the other UEs one gemm ``(V5 E) [e' S, K] @ alpha^T [K, K]``;
    * the first layer reads its LSF channel as ``ln(beta p_u / sigma^2)``: the 10 / (30 ln 10)
      of :func:`gnn_layers.lsf_features` is folded into its rows.

    Per layer: ``dk`` [M (d + 1), e' + d' + 1] (per-UE terms from sum_m D, applied as
    ``dk^T @ D^T``), ``w4`` [e', e S] (per-UE term from sum_s E), ``w2`` [2 e', e], ``att``
    [d + 1, d + 1] or None, ``d_self``, ``d_sumk`` [d + 1, d' + 1] (the latter applied to
    sum_k D); ``ws`` holds the layer outputs (the AP-UE and PS-UE states of a layer in ONE buffer,
    so that one LeakyReLU covers both)."""
    cm, ck, cs = 1.0 / max(n_ap - 1, 1), 1.0 / max(n_ue - 1, 1), 1.0 / max(n_ps - 1, 1)
    dt = np.dtype(dtype)
    layers = []
    for l in range(arch.layers):
        p = f"sts.{l}."

        def g(n, p=p, l=l):
            w = np.array(params[p + n], float)  # [out, in] (a copy)
            if l == 0 and n in ("U1", "V1", "V2", "V3", "Wq", "Wk"):
                w[:, 0] *= _LN_TO_DB30  # D input channel 0 read as ln(.)
            return w

        last = l == arch.layers - 1
        do, di = g("U1").shape
        eo = g("U2").shape[0]
        sd, hd = _bn(params, p + "bn_d", do, last)
        se, he = _bn(params, p + "bn_e", eo, last)

        def aug(w, bias=None, keep_ones=False):
            """[out, in] map on D -> [in + 1, out + 1] transposed, with the ones channel."""
            o, i = w.shape
            a = np.zeros((i + 1, o + 1))
            a[:i, :o] = w.T
            if bias is not None:
                a[i, :o] = bias
            if keep_ones:
                a[i, o] = 1.0
            return a

        per_m = np.zeros((di + 1, eo + do + 1))  # one AP's block of dk
        per_m[:di, :eo] = (g("V3") / n_ap * se[:, None]).T
        per_m[di, :eo] = (g("b2") * se + he) / n_ap  # PS-UE bias, over the M ones
        per_m[:di, eo:eo + do] = (cm * g("V1") * sd[:, None]).T
        lay = {
            "d_self": aug((g("U1") - cm * g("V1") - ck * g("V2")) * sd[:, None], g("b1") * sd + hd, True),
            "d_sumk": aug(ck * g("V2") * sd[:, None]),
            "dk": np.tile(per_m, (n_ap, 1)),  # [M (d + 1), e' + d' + 1]
            "w4": np.repeat(cs * g("V4") * se[:, None], n_ps, axis=1),  # [e', e S] on E as [e S, K]
            "w2": np.concatenate([ck * g("V5") * se[:, None], (g("U2") - cs * g("V4")) * se[:, None]], 0),
            "att": None,
        }
        if arch.attention:
            b = np.zeros((di + 1, di + 1))
            b[:di, :di] = (g("Wq").T @ g("Wk")) * (0.5 / n_ap)
            lay["att"] = b
        lay = {k: (None if v is None else np.ascontiguousarray(v).astype(dt)) for k, v in lay.items()}
        lay.update(last=last, di=di, do=do, eo=eo)
        layers.append(lay)
    ws = []
    for lay in layers:
        do, eo = lay["do"], lay["eo"]
        n_d = 0 if lay["last"] else n_ue * n_ap * (do + 1)
        out = np.empty(n_d + eo * n_ps * n_ue, dt)  # [D' (K M (d' + 1)) | E' (e' S K)]
        ws.append({"out": out, "d": out[:n_d].reshape(n_ue, n_ap, do + 1) if n_d else None,
                   "e": out[n_d:].reshape(eo, n_ps, n_ue), "y": np.empty((2 * eo, n_ps * n_ue), dt),
                   "tmp": np.empty_like(out)})
    d0 = np.empty((n_ue, n_ap, 3), dt)
    d0[:, :, 2] = 1.0
    off = 1.0 - np.eye(n_ue)
    return {"layers": layers, "ws": ws, "d0": d0, "e0": np.empty((1, n_ps, n_ue), dt),
            "half_off": (0.5 * off).astype(dt), "off": off.astype(dt), "one_k": np.ones(n_ue, dt),
            "sizes": (n_ap, n_ue, n_ps)}


def pilot_head_fast(hp: dict, lsf_ln: np.ndarray, assoc: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Pilot head of a pilot/STS GNN on one graph (:func:`pilot_head_plan`; the same function as
    the PS-UE output of :func:`sts_forward_fast` / ``gnn_layers.sts_forward``).

    lsf_ln : [M, K] ln(beta p_u / sigma^2) (floored by the caller); assoc : [M, K] bool or
    float; z : [S, K] PS-UE features. Returns pilot_logit [S, K] float64.

    Per layer: the attention ``alpha^T = sigmoid(D (D B)^T)`` (zero diagonal) [K, K], the per-UE
    terms ``dk^T D^T`` and ``w4 E``, both channel maps of E in one gemm, the PS-UE update
    ``(V5 E) alpha^T + E U2 + per-UE term``, the AP-UE update (skipped in the last layer), and
    one LeakyReLU over both states.
    """
    n_ap, n_ue, n_ps = hp["sizes"]
    d = hp["d0"]
    d[:, :, 0] = lsf_ln.T
    d[:, :, 1] = assoc.T
    e = hp["e0"]
    e[0] = z  # [1, S, K]
    half_off, one_k = hp["half_off"], hp["one_k"]
    dot = np.dot
    for lay, ws in zip(hp["layers"], hp["ws"], strict=True):
        di1 = d.shape[2]
        eo = lay["eo"]
        dflat = d.reshape(n_ue, n_ap * di1)  # [K, M (d + 1)]
        d2 = d.reshape(-1, di1)  # [K M, d + 1]
        if lay["att"] is not None:
            alpha_t = dot(dflat, dot(d2, lay["att"]).reshape(n_ue, -1).T)  # [K, K] [i, k] = score(k, i) / 2
            np.tanh(alpha_t, out=alpha_t)
            alpha_t += 1.0
            alpha_t *= half_off  # sigmoid, zero diagonal
        else:
            alpha_t = hp["off"]
        per_k = dot(lay["dk"].T, dflat.T)  # [e' + d' + 1, K] per-UE terms from sum_m D (+ E bias)
        y = ws["y"]
        dot(lay["w2"], e.reshape(e.shape[0], -1), out=y)  # [V5 E; E U2]  [2 e', S K]
        e_new = ws["e"]
        dot(y[:eo].reshape(eo * n_ps, n_ue), alpha_t, out=e_new.reshape(eo * n_ps, n_ue))  # attention sum
        e_new += y[eo:].reshape(eo, n_ps, n_ue)  # PS-UE self map
        per_e = dot(lay["w4"], e.reshape(-1, n_ue))  # [e', K] from sum_s E
        per_e += per_k[:eo]
        e_new += per_e[:, None, :]  # per-UE term on every PS
        if lay["last"]:
            return e_new[0].astype(float)  # [S, K] (e' = 1)
        d_new = ws["d"]
        dot(d2, lay["d_self"], out=d_new.reshape(-1, d_new.shape[2]))  # (+ bias, ones carried)
        d_new += per_k[eo:].T[:, None, :]
        d_new += dot(dot(one_k, dflat).reshape(n_ap, di1), lay["d_sumk"])[None]  # per-AP term
        out, tmp = ws["out"], ws["tmp"]
        np.multiply(out, LEAKY_SLOPE, out=tmp)
        np.maximum(out, tmp, out=out)  # LeakyReLU of both states (the ones channel stays 1)
        d, e = d_new, e_new
    raise ValueError("pilot plan has no layers")


_LOG10_E_5 = 0.2 / np.log(10.0)  # log10(1 + p) / 5 = ln(1 + p) * _LOG10_E_5


def power_plan(params: Mapping[str, Any], arch: GNNArch, n_ue: int, dtype=np.float64) -> list[dict]:
    """Folded per-layer matrices of the DTS-Power-GNN for K UEs, stored ``[out, in]`` (the edge
    states are channel-first per receiver: every map is applied as ``W @ X``).

    Per layer with ``cd`` input and ``fo`` output channels:

    * ``w_s`` ``[2 fo + 1, 4 cd + 1]`` (``[1, 4 cd + 1]`` in the last layer) maps the per-AN input
      ``X = [s; row; K; x2; x3]`` (SIG state, sum over receivers, the constant K that the row
      sum of the edge tensor's ones channel gives, ``(sig_ue[k(a)] - s) c2``, ``inf_ue[k(a)] c3``)
      to ``[s_new; P; 0]``: the SIG update and the per-AN INF term (rows 0..fo-1, fo..2fo-1) with
      their biases as column ``2 cd`` (times K, since that row holds K), and a zero row for the
      ones channel; ``row - s`` of (24) is folded as ``V1 row - V1 s``;
    * ``w_ue`` ``[fo, 2 cd]`` maps ``[sig_ue c6; inf_ue c7]`` to the per-UE INF term;
    * ``w_f0``, ``w_f7`` (float64) are the INF self map without / with the receiver scaling c7[i]
      (:func:`_receiver_maps` folds them per receiver).

    The first layer reads its log channels (0, and 4 with err_var) as ``ln(1 + x)``: the
    ``1 / (5 ln 10)`` of :func:`gnn_layers.ssf_features` is folded into its columns."""
    c1, c5 = 1.0 / max(n_ue - 1, 1), 1.0 / max(n_ue - 2, 1)
    log_cols = [0, 4] if arch.n_edge_in == 5 else [0]
    layers = []
    for l in range(arch.layers):
        p = f"pow.{l}."

        def g(n, p=p, l=l):
            w = np.array(params[p + n], float)  # [out, in] (a copy)
            if l == 0 and w.ndim == 2:
                w[:, log_cols] *= _LOG10_E_5
            return w

        last = l == arch.layers - 1
        fo, cd = g("Us").shape
        ss, hs = _bn(params, p + "bn_sig", fo, last)
        si, hi = _bn(params, p + "bn_inf", fo, last)
        ss, si = ss[:, None], si[:, None]
        w_sig = np.concatenate([(g("Us") - c1 * g("V1")) * ss, c1 * g("V1") * ss,
                                ((g("bs") * ss[:, 0] + hs) / n_ue)[:, None], g("V2") * ss, g("V3") * ss], 1)
        lay = {"w_s": w_sig, "w_ue": np.concatenate([g("V6"), g("V7")], 1) * si}  # [fo, 4cd+1], [fo, 2cd]
        if not last:
            w_an = np.concatenate([(g("V4") - c5 * g("V5")) * si, c5 * g("V5") * si,
                                   ((g("bf") * si[:, 0] + hi) / n_ue)[:, None], np.zeros((fo, 2 * cd))], 1)
            lay["w_s"] = np.concatenate([w_sig, w_an, np.zeros((1, 4 * cd + 1))], 0)  # [2fo+1, 4cd+1]
        lay = {k: np.ascontiguousarray(v).astype(dtype) for k, v in lay.items()}
        lay["w_f0_64"] = (g("Uf") - c5 * g("V5")) * si  # [fo, cd] INF self map without the V7 part
        lay["w_f7_64"] = g("V7") * si  # [fo, cd] times c7[i] (other INF edges at receiver i)
        lay.update(last=last, cd=cd, fo=fo)
        layers.append(lay)
    return layers


def power_graph_fast(assoc: np.ndarray, dtype=np.float64) -> dict:
    """Index arrays and aggregation maps of the AN-indexed Power-GNN graph of one association
    (they depend on nothing else: built once per frame, reused by every subframe).

    assoc : [M, K] bool. Returns a dict with m_idx, k_idx, an [A] (AP-major ANs), onehot
    [A, K] (onehot[a, k(a)] = 1), ``g2`` [A, A] ((Sk - I) diag(c2), Sk[a', a] = [k(a') = k(a)]:
    ``s @ g2`` = (sig_ue[k(a)] - s[a]) c2[a]), ``h3`` [K, A] (onehot^T diag(c3): ``inf_ue @ h3``
    = inf_ue[k(a)] c3[a]), ``c67`` [2, 1, 1, K] (c6; c7), c7 [K] float64 and known [K, A]
    (a_{m(a), i}); the per-receiver INF self maps are added by :func:`_receiver_maps`.
    """
    assoc = np.asarray(assoc, bool)
    m_idx, k_idx = np.nonzero(assoc)
    n_an, n_ue = m_idx.size, assoc.shape[1]
    n_k = assoc.sum(axis=0).astype(float)  # [K] |M_k|
    onehot = np.zeros((n_an, n_ue))  # [A, K]
    onehot[np.arange(n_an), k_idx] = 1.0
    c2 = 1.0 / np.maximum(n_k[k_idx] - 1.0, 1.0)  # [A]
    c3 = 1.0 / np.maximum(n_an - n_k[k_idx], 1.0)  # [A]
    c6 = 1.0 / np.maximum(n_k, 1.0)  # [K]
    c7 = 1.0 / np.maximum(n_an - n_k - 1.0, 1.0)  # [K] other INF edges at receiver i
    same = onehot @ onehot.T  # [A, A] Sk
    return {
        "m_idx": m_idx, "k_idx": k_idx, "an": np.arange(n_an), "n_ap": assoc.shape[0],
        "an_lin": m_idx * n_ue + k_idx,  # [A] flat index m K + k
        "onehot": onehot.astype(dtype),
        "g2": ((same - np.eye(n_an)) * c2[None, :]).astype(dtype),  # [A, A]
        "h3": (onehot.T * c3[None, :]).astype(dtype),  # [K, A]
        "c67": np.stack([c6, c7])[:, None, None, :].astype(dtype),  # [2, 1, 1, K]
        "c7": c7,  # [K] float64 (folded into the receiver maps)
        "known": assoc[m_idx].T.astype(dtype),  # [K, A]
        "one_k": np.ones(n_ue, dtype), "one_a": np.ones(n_an, dtype),
        "plan": None, "w_recv": None,
    }


def _receiver_maps(plan: list[dict], gr: dict) -> list[np.ndarray | None]:
    """Per layer, the augmented INF map of every receiver i, ``[K, fo + 1, cd + 1]``: block
    ``[:fo, :cd]`` is ``U_f - V5 / (K - 2) - c7[i] V7`` (BN folded), column ``cd`` (read against
    the edge tensor's ones channel) holds the per-UE term of the pass (written by
    :func:`power_forward_fast`), row ``fo`` carries the ones channel to the next layer. Kept in the
    graph (rebuilt when the graph meets another plan: the plan is held by reference, not by id)."""
    if gr["plan"] is not plan:
        c7 = gr["c7"][:, None, None]  # [K, 1, 1]
        maps = []
        for lay in plan:
            if lay["last"]:
                maps.append(None)
                continue
            fo, cd = lay["fo"], lay["cd"]
            w = np.zeros((c7.shape[0], fo + 1, cd + 1))
            w[:, :fo, :cd] = lay["w_f0_64"][None] - c7 * lay["w_f7_64"][None]
            w[:, fo, cd] = 1.0
            maps.append(w.astype(lay["w_s"].dtype))
        gr["w_recv"] = maps
        gr["plan"] = plan
    return gr["w_recv"]


def _n_in(plan: list[dict]) -> int:
    """Input edge channels of a Power-GNN plan (4, or 5 with the err_var feature)."""
    return plan[0]["cd"]


def _workspace(gr: dict, plan: list[dict], n_t: int, n_ue: int, dtype) -> dict:
    """Scratch arrays of one forward pass for T = ``n_t`` subframes, kept in the graph and
    reused by every later pass of the same size: fresh arrays of a few 100 kB to MB each pass
    cost more in first-touch page faults than the arithmetic that fills them. The edge tensors
    ``[K, c + 1, T, A]`` carry a channel of ones (index c); the input one also holds the
    constant known-channel 3."""
    n_in = _n_in(plan)
    width = max([n_in] + [lay["fo"] for lay in plan])
    dt = np.dtype(dtype)
    key = ("ws", n_t, dt, width, n_in)
    ws = gr.get(key)
    if ws is None:
        m_idx, k_idx = gr["m_idx"], gr["k_idx"]
        n_an, n_ap = m_idx.size, gr["n_ap"]
        n_ta = n_t * n_an
        t = np.arange(n_t)[None, :, None]
        # flat index of Ghat[t, m(a), k(a), i] in [T, M, K, K], receiver-major [K, T, A]
        gidx = ((t * n_ap + m_idx[None, None, :]) * n_ue + k_idx[None, None, :]) * n_ue \
            + np.arange(n_ue)[:, None, None]
        f0 = np.zeros((n_ue, n_in + 1, n_t, n_an), dt)
        f0[:, 3] = gr["known"][:, None, :]
        f0[:, n_in] = 1.0
        ws = {
            "gidx": gidx if n_t == 1 else None, "g": np.empty((n_ue, n_t, n_an), complex),
            "sq": np.empty((n_ue, n_t, 2 * n_an)), "p2": np.empty((n_ue, n_t, n_an)),
            "t64": np.empty((n_ue, n_t, n_an)), "f0": f0,
            "f": [np.empty(n_ue * (width + 1) * n_ta, dt) for _ in range(2)],  # ping-pong edge states
            "tmp": np.empty(n_ue * (width + 1) * n_ta, dt),
            "x": np.empty((4 * width + 1, n_ta), dt), "out": np.empty((2 * width + 1, n_ta), dt),
            "tmp_s": np.empty((width, n_ta), dt), "u": np.empty(2 * width * n_t * n_ue, dt),
            "cs": np.empty(n_ue * (width + 1) * n_t, dt),
            "sig": {},  # channels d -> flat index [d, T, A] of the SIG edges in F [K, d + 1, T, A]
        }
        gv4 = ws["g"].view(np.float64).reshape(n_ue, n_t, n_an, 2)  # (re, im) of the gathered Ghat
        sq4 = ws["sq"].reshape(n_ue, n_t, n_an, 2)
        ws["feat"] = (ws["g"].view(np.float64), sq4[..., 0], sq4[..., 1], gv4[..., 0], gv4[..., 1],
                      f0[:, 0], f0[:, 1], f0[:, 2])
        gr[key] = ws
    return ws


def _sig_index(ws: dict, gr: dict, cd: int, n_t: int) -> np.ndarray:
    """Flat index ``[d, T, A]`` of the SIG edges (k(a), c, t, a) in ``F [K, d + 1, T, A]`` (a
    take / put on it is cheaper than the two-axis fancy index), kept in the workspace."""
    idx = ws["sig"].get(cd)
    if idx is None:
        k_idx = gr["k_idx"]
        n_an = k_idx.size
        c = np.arange(cd)[:, None, None]
        t = np.arange(n_t)[None, :, None]
        idx = ((k_idx[None, None, :] * (cd + 1) + c) * n_t + t) * n_an + np.arange(n_an)[None, None, :]
        ws["sig"][cd] = idx
    return idx


def _edge_features(g3: np.ndarray, gr: dict, snr: float, ws: dict, err: np.ndarray | None = None) -> np.ndarray:
    """Input edge states ``F [K, c + 1, T, A]`` (:func:`gnn_layers.ssf_features`, receiver-major,
    channel-first, c = 4, or 5 with ``err``; channel 3 and the ones channel c are constant)
    from Ghat ``g3 [T, M, K, K]`` complex, written into ``ws["f0"]``. The log channels hold
    ``ln(1 + x)`` (their 1 / (5 ln 10) is in the first layer's weights, :func:`power_plan`);
    the phase channels are ``re / sqrt(|g|^2 + 1e-12 / snr)`` = the reference's
    ``re_s / sqrt(|g_s|^2 + 1e-12)`` with ``g_s = g snr^0.5``. err : None, or err_var ``[M, K]`` /
    ``[T, M, K]``."""
    f = ws["f0"]
    gv, sq_re, sq_im, g_re, g_im, f_log, f_cos, f_sin = ws["feat"]
    sq, p2, t = ws["sq"], ws["p2"], ws["t64"]
    if ws["gidx"] is not None:  # one subframe: one gather straight into the receiver-major layout
        np.take(g3.reshape(-1), ws["gidx"], out=ws["g"])  # [K, 1, A] Ghat[m(a), k(a), i]
    else:  # T subframes: gather rows (contiguous in i), then one transposing copy
        n_t = g3.shape[0]
        rows = np.take(g3.reshape(n_t, -1, g3.shape[3]), gr["an_lin"], axis=1)  # [T, A, K]
        np.copyto(ws["g"], rows.transpose(2, 0, 1))  # [K, T, A]
    np.multiply(gv, gv, out=sq)
    np.add(sq_re, sq_im, out=p2)  # |g|^2
    np.multiply(p2, snr, out=f_log)
    np.log1p(f_log, out=f_log)  # ln(1 + |g|^2 P / sigma^2), in the pass's dtype
    np.add(p2, _MAG_FLOOR / snr, out=t)
    np.sqrt(t, out=t)
    np.divide(g_re, t, out=f_cos)
    np.divide(g_im, t, out=f_sin)
    if err is not None:
        e = np.take(err, gr["m_idx"], axis=-2)  # [A, K] or [T, A, K] err_var[m(a), i]
        e = e.T[:, None, :] if e.ndim == 2 else e.transpose(2, 0, 1)  # [K, 1 or T, A]
        f[:, 4] = np.log1p(e * snr)
    return f


def _bind(ws: dict, gr: dict, plan: list[dict], w_recv: list, n_t: int) -> list[tuple]:
    """Per-layer views into the workspace (and the receiver maps) that a pass reads and writes,
    built once per (workspace, plan): a pass then only calls numpy on them (~15 reshapes and
    slices per layer otherwise). Rebuilt when the graph's receiver maps were rebuilt."""
    if ws.get("bound_maps") is w_recv:
        return ws["bound"]
    m_idx = gr["m_idx"]
    n_an, n_ue = m_idx.size, gr["one_k"].size
    n_ta = n_t * n_an
    xbuf = ws["x"]
    f = ws["f0"]  # [K, c + 1, T, A]
    bound = []
    for j, (lay, w) in enumerate(zip(plan, w_recv, strict=True)):
        cd, fo = lay["cd"], lay["fo"]
        x = xbuf[:4 * cd + 1]  # [s; row; K; (sig_ue[k] - s) c2; inf_ue[k] c3]  [4 cd + 1, T * A]
        s2d = x[:cd].reshape(cd * n_t, n_an)  # SIG states [d * T, A]
        cs = ws["cs"][:n_ue * (cd + 1) * n_t]  # sums over ANs [K (d + 1) T]
        u = ws["u"][:2 * cd * n_t * n_ue].reshape(2, cd, n_t, n_ue)  # [sig_ue; inf_ue]
        out = ws["out"][:lay["w_s"].shape[0]]  # [s_new; P; 0]  [n_out, T * A]
        common = (f.reshape(n_ue, -1), x[cd:2 * cd + 1].reshape(-1), f.reshape(-1, n_an), cs, s2d,
                  u[0].reshape(cd * n_t, n_ue), cs.reshape(n_ue, cd + 1, n_t)[:, :cd].transpose(1, 2, 0),
                  u[0], u[1], x[2 * cd + 1:3 * cd + 1].reshape(cd * n_t, n_an), u[1].reshape(cd * n_t, n_ue),
                  x[3 * cd + 1:].reshape(cd * n_t, n_an), lay["w_s"], x, out)
        if lay["last"]:
            bound.append((common, None))
            continue
        f_new = ws["f"][j % 2][:n_ue * (fo + 1) * n_ta].reshape(n_ue, fo + 1, n_ta)
        q_full = np.zeros((n_ue, fo + 1, n_t, 1), ws["x"].dtype)  # T > 1: per-UE term, 0 on the ones channel
        hidden = (u, lay["w_ue"], u.reshape(2 * cd, n_t * n_ue), w[:, :fo, cd], w, f.reshape(n_ue, cd + 1, n_ta),
                  f_new, out[fo:][None], (f_new.reshape(n_ue, fo + 1, n_t, n_an), q_full, q_full[:, :fo, :, 0]),
                  ws["tmp"][:f_new.size].reshape(f_new.shape), out[:fo], ws["tmp_s"][:fo], xbuf[:fo],
                  f_new.reshape(-1), _sig_index(ws, gr, fo, n_t), xbuf[:fo].reshape(fo, n_t, n_an), fo)
        bound.append((common, hidden))
        f = f_new.reshape(n_ue, fo + 1, n_t, n_an)
    ws["bound"], ws["bound_maps"] = bound, w_recv
    return bound


def power_forward_fast(plan: list[dict], ghat: np.ndarray, assoc: np.ndarray, snr: float,
                       dtype=np.float64, graph: dict | None = None, err_var: np.ndarray | None = None):
    """DTS-Power-GNN (eq. (24) and its INF twin) on one subframe or on T subframes that share
    one association (one batched pass: the graph is built once).

    Layout: the edge states are receiver-major and channel-first with a channel of ones,
    ``F [K, d + 1, T, A]`` (entry [i, c, t, a] = channel c of the edge from AN a to UE i in
    subframe t; channel d = 1), so that

    * the INF update of every receiver is ONE batched matmul ``W[i] [d' + 1, d + 1] @ F[i]``
      (:func:`_receiver_maps`: its c7[i] folded in and, in a single-subframe pass, the per-UE
      term as the column read against the ones channel), then one broadcast add of the per-AN
      term and the LeakyReLU, all on the whole contiguous tensor (the ones channel stays 1);
    * the sum over receivers is one product ``ones [K] @ F [K, (d + 1) T A]`` (its ones-channel
      row is K, which carries the biases), the sum over ANs one ``F [K (d + 1) T, A] @ ones``;
    * the SIG states ``S [d, T * A]`` are kept apart (gathered from / scattered into F); the
      per-UE sums and the gathers back to the ANs are products with the graph's ``onehot``,
      ``g2``, ``h3`` (:func:`power_graph_fast`), and all SIG-side maps are ONE ``W @ X``; the
      last layer computes the SIG update only;
    * the large arrays live in a workspace kept with the graph (:func:`_workspace`) and every
      view a pass uses is made once (:func:`_bind`).

    ghat : [M, K, K] or [T, M, K, K] complex (eq. (11)); assoc : [M, K] bool;
    snr : P_max / sigma^2 (linear); graph : :func:`power_graph_fast` of ``assoc`` (built here
    when None); err_var : [M, K] or [T, M, K] unknown-part variances (same units as |Ghat|^2),
    required by a plan of a model with the err_var input (5 input channels), unread otherwise.
    Returns logit [A] (or [T, A]) on the SIG edges and the AN index arrays m_idx, k_idx [A]
    (AP-major).
    """
    gr = graph if graph is not None else power_graph_fast(assoc, dtype)
    m_idx, k_idx = gr["m_idx"], gr["k_idx"]
    single = ghat.ndim == 3
    g3 = np.asarray(ghat[None] if single else ghat, complex)  # [T, M, K, K]
    n_t, n_an, n_ue = g3.shape[0], m_idx.size, g3.shape[2]
    if n_an == 0:
        return (np.zeros(0) if single else np.zeros((n_t, 0))), m_idx, k_idx
    n_in = _n_in(plan)
    if n_in == 5:
        if err_var is None:
            raise ValueError("this Power-GNN has the err_var input feature: pass err_var [M, K]")
        err = np.asarray(err_var, float)
        if err.shape[-2:] != g3.shape[1:3] or err.ndim not in (2, 3) or (err.ndim == 3 and err.shape[0] != n_t):
            raise ValueError(f"err_var shape {err.shape}; expected {g3.shape[1:3]} or {(n_t,) + g3.shape[1:3]}")
        if not np.all(err >= 0.0):  # also catches NaN
            raise ValueError("err_var must be >= 0 (variances), got negative or NaN entries")
    else:
        err = None
    w_recv = _receiver_maps(plan, gr)
    ws = _workspace(gr, plan, n_t, n_ue, dtype)
    bound = _bind(ws, gr, plan, w_recv, n_t)
    f = _edge_features(g3, gr, snr, ws, err)  # [K, c + 1, T, A]
    onehot, g2, h3, c67 = gr["onehot"], gr["g2"], gr["h3"], gr["c67"]
    one_k, one_a = gr["one_k"], gr["one_a"]
    np.take(f.reshape(-1), _sig_index(ws, gr, n_in, n_t), out=ws["x"][:n_in].reshape(n_in, n_t, n_an))  # SIG states
    dot, subtract, multiply, maximum = np.dot, np.subtract, np.multiply, np.maximum
    for common, hidden in bound:
        f_row, row, f_col, cs, s2d, u0_2d, cs_t, u0, u1, x2, u1_2d, x3, w_s, x, out = common
        dot(one_k, f_row, out=row)  # sums over receivers (+ K on the ones channel)
        dot(f_col, one_a, out=cs)  # sums over ANs
        dot(s2d, onehot, out=u0_2d)  # SIG edges at each UE
        subtract(cs_t, u0, out=u1)  # INF edges at each UE
        dot(s2d, g2, out=x2)  # (sig_ue[k(a)] - s) c2
        dot(u1_2d, h3, out=x3)  # inf_ue[k(a)] c3
        dot(w_s, x, out=out)  # [s_new; P; 0]
        if hidden is None:
            logit = out[0].reshape(n_t, n_an).astype(float)  # [T, A]
            return (logit[0] if single else logit), m_idx, k_idx
        u, w_ue, u2d, wcol, w, f_in, f_new, p_an, f4, tmp, s_new, tmp_s, s_next, f_flat, sig, s_next3, fo = hidden
        u *= c67
        q = dot(w_ue, u2d)  # [d', T * K] per-UE term
        if n_t == 1:
            wcol[...] = q.T  # rides in the matmul against the ones channel
        else:
            wcol[...] = 0.0
        np.matmul(w, f_in, out=f_new)  # INF self maps (+ per-UE term if T = 1)
        f_new += p_an  # per-AN term, every receiver (zero on the ones channel)
        if n_t > 1:  # per-UE term, every AN (on the whole contiguous tensor)
            f4, q_full, q_view = f4
            q_view[...] = q.reshape(fo, n_t, n_ue).transpose(2, 0, 1)
            f4 += q_full
        multiply(f_new, LEAKY_SLOPE, out=tmp)
        maximum(f_new, tmp, out=f_new)  # LeakyReLU in place (the ones channel stays 1)
        multiply(s_new, LEAKY_SLOPE, out=tmp_s)
        maximum(s_new, tmp_s, out=s_next)  # next layer's SIG states
        f_flat[sig] = s_next3  # SIG edges
    raise ValueError("power plan has no layers")


def power_activation_fast(logit: np.ndarray, m_idx: np.ndarray, k_idx: np.ndarray,
                          shape: tuple[int, int], p_max: np.ndarray) -> np.ndarray:
    """Output activation of 5.1 on the AN list: q = sigmoid(z), p = P_max q / max(1, sum_AP q).

    logit : [A] or [T, A] (T subframes on one AN graph); m_idx, k_idx : [A]; shape = (M, K);
    p_max : [M] or [T, M] (W). Returns p [M, K] or [T, M, K] float64 (W). The per-AP sums are
    one sequential ``bincount`` in AN order for every subframe (the same sums for any T).
    """
    z = np.asarray(logit, float)
    q = 0.5 * (1.0 + np.tanh(0.5 * z))  # [A] or [T, A]
    n_ap = shape[0]
    if q.ndim == 1:
        load = np.maximum(np.bincount(m_idx, weights=q, minlength=n_ap), 1.0)  # [M]
        out = np.zeros(shape)
        out[m_idx, k_idx] = p_max[m_idx] * POWER_SAFETY * q / load[m_idx]
        return out
    n_t = q.shape[0]
    bins = (m_idx[None, :] + n_ap * np.arange(n_t)[:, None]).ravel()  # [T * A] bin (t, m(a))
    load = np.maximum(np.bincount(bins, weights=q.ravel(), minlength=n_t * n_ap), 1.0).reshape(n_t, n_ap)
    pm = np.broadcast_to(np.asarray(p_max, float), (n_t, n_ap))  # [T, M]
    out = np.zeros((n_t,) + tuple(shape))
    out[:, m_idx, k_idx] = pm[:, m_idx] * POWER_SAFETY * q / load[:, m_idx]
    return out
