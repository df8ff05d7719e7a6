"""Layer arithmetic of the seed-004 edge GNNs, written ONCE for numpy and torch.

Every function here takes an ``ops`` backend first (:class:`NumpyOps` here, the torch twin in
:mod:`netsim.learn.torch_ops`) and a flat ``params`` mapping ``name -> array``. The numpy
inference path (:mod:`netsim.comm.power.gnn`) and the torch training path call the very same
functions, so the two can only differ through the backend primitives (tested to 1e-5 in
float64 on random drops, and against a per-edge loop oracle in the unit tests).

Graphs and updates (spec power.md 5.1-5.3; [R] neighbour sets, [C] widths/activations):

* Pilot / STS GNN (per frame). AP-UE edges ``D [B, M, K, d]`` (features
  ``[10 log10(beta p_u / sigma^2) / 30, a_mk]``), PS-UE edges ``E [B, S, K, e]`` (random
  feature z ~ U(0, 1), or zeros for the "w/o FE" ablation). Per layer, eq. (25)-(27):

      D' = act(BN(U1 D + V1 mean_{m' != m} D + V2 mean_{k' != k} D + b1))
      E' = act(BN(U2 E + V3 mean_m D + V4 mean_{s' != s} E
                  + V5 (1/(K-1)) sum_{i != k} alpha[k, i] E[s, i] + b2))
      alpha[k, i] = sigmoid((1/M) sum_m (Wq D[m, k]) . (Wk D[m, i])),  alpha[k, k] = 0

  (no activation/BN on the last layer; "no attention" ablation: alpha = 1 off the diagonal).
  Heads: pilots x = softmax_s(E_L) (29); power from D_L through :func:`power_activation`.

  This project's variant, NOT the paper's (``GNNArch.copilot``, STS only): the last layer's
  AP-UE update (the power readout) also reads the pilots, through the co-pilot matrix
  C [K, K] (C[k, i] = 1 when UEs k != i share a pilot, zero diagonal):

      D_L += V6 sum_{i != k} C[k, i] D[m, i] + V7 sum_{i != k} C[k, i] mean_m' D[m', i]

  with D the last layer's input. C is the soft X^T X of the pilot head's own output in the
  soft training chain and the one-hot C of the pilots the frame uses at test time (after
  rounding; :func:`copilot_from_colour`). The pilot head never reads D_L, so the pilots are the
  same with or without the term (eq. (25)'s power head never sees the pilots).
  With ``GNNArch.branch`` = P > 0 the readout also gets a power branch (:func:`power_branch`):
  P hidden AP-UE layers of width ``branch_width`` on H_0 = [D, log2(N / branch_n_ref)],

      H_{j+1} = act(W_j [H, mean_{m' != m} H, mean_{k' != k} H, sum_{i != k} C[k, i] H[m, i],
                        mean_m' sum_{i != k} C[k, i] H[m', i]] + b_j),   D_L += W_out H_P

  (the antenna count N is an input of the branch only, so one file serves every N).

* DTS-Power-GNN (per subframe). One AN a = (m, k) per a_mk = 1; edges AN -> UE i stored as
  ``F [B, A, K, f]`` with the one-hot ``an_k [B, A, K]`` of k(a) and a padding mask
  ``[B, A]``; i == k(a) is the SIG edge, the rest INF.
  Input ``[log10(1 + |g|^2 P_ref / sigma^2) / 5, cos(angle g), sin(angle g), a_mi]``,
  g = Ghat[m, k, i]; with ``GNNArch.err_var`` a fifth channel
  ``log10(1 + e_mi P_ref / sigma^2) / 5``, e_mi = err_var[m, i] the variance of the part of
  g that AP m does not know (the MMSE error variance c_mi where a_mi = 1, beta_mi where
  a_mi = 0; unit-norm w, spec 3.5 and the d term of 4.3), on the same scale as |g|^2. SIG update (24) with U_s, V1 (INF at the same AN), V2 (SIG at UE k from
  other ANs), V3 (INF at UE k); INF update with U_f, V4 (SIG at the same AN), V5 (other INF at
  the same AN), V6 (SIG at UE i), V7 (other INF at UE i). Output on SIG edges.

"Mean over others" is ``(sum - self) / (count - 1)`` with count - 1 = 0 giving 0 (the
numerator is then exactly 0). Invalid ANs are zeroed before every aggregation.

Batch norm: :meth:`NumpyOps.bn` applies the folded eval-mode affine ``x * scale + shift``
(exported as ``<key>.scale``/``<key>.shift``); the torch backend uses batch statistics in
training and the same affine in eval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "NumpyOps",
    "GNNArch",
    "pilot_layer_names",
    "power_layer_names",
    "lsf_features",
    "ssf_features",
    "sts_forward",
    "copilot_names",
    "copilot_from_colour",
    "copilot_soft",
    "copilot_term",
    "power_branch",
    "branch_t",
    "power_forward",
    "power_activation",
    "POWER_SAFETY",
    "LEAKY_SLOPE",
    "READOUT_N_SUFFIX",
    "readout_n_names",
    "readout_n_t",
    "readout_n_params",
]

LEAKY_SLOPE = 0.01  # LeakyReLU slope in hidden layers [C]
POWER_SAFETY = 1.0 - 1e-12  # keeps sum_k p_mk <= P_max through floating-point rounding
_MAG_FLOOR = 1e-12  # |g|^2 floor (in SNR units) inside the phase features


class NumpyOps:
    """numpy primitives used by the layer arithmetic (float64 inference backend)."""

    name = "numpy"

    @staticmethod
    def einsum(eq: str, *xs: np.ndarray) -> np.ndarray:
        return np.einsum(eq, *xs, optimize=True)

    @staticmethod
    def lin(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """x @ w.T over the last axis (one 2-D BLAS call instead of a batched matmul)."""
        out = np.dot(x.reshape(-1, x.shape[-1]), w.T)
        return out.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def cat(xs: list[np.ndarray], axis: int) -> np.ndarray:
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def sum(x: np.ndarray, axis, keepdims: bool = False) -> np.ndarray:
        return x.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def leaky_relu(x: np.ndarray) -> np.ndarray:
        return np.where(x >= 0, x, LEAKY_SLOPE * x)

    @staticmethod
    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * x))

    @staticmethod
    def softmax(x: np.ndarray, axis: int) -> np.ndarray:
        z = np.exp(x - x.max(axis=axis, keepdims=True))
        return z / z.sum(axis=axis, keepdims=True)

    @staticmethod
    def log10(x: np.ndarray) -> np.ndarray:
        return np.log10(x)

    @staticmethod
    def sqrt(x: np.ndarray) -> np.ndarray:
        return np.sqrt(x)

    @staticmethod
    def clamp_min(x: np.ndarray, lo: float) -> np.ndarray:
        return np.maximum(x, lo)

    @staticmethod
    def stack(xs: list[np.ndarray], axis: int) -> np.ndarray:
        return np.stack(xs, axis=axis)

    @staticmethod
    def real(x: np.ndarray) -> np.ndarray:
        return np.real(x)

    @staticmethod
    def imag(x: np.ndarray) -> np.ndarray:
        return np.imag(x)

    @staticmethod
    def eye_like(n: int, like: np.ndarray) -> np.ndarray:
        return np.eye(n, dtype=like.dtype)

    @staticmethod
    def where(c, a, b):
        return np.where(c, a, b)

    @staticmethod
    def bn(x: np.ndarray, key: str, params: Mapping[str, Any], mask=None) -> np.ndarray:
        return x * params[key + ".scale"] + params[key + ".shift"]


@dataclass(frozen=True)
class GNNArch:
    """Architecture of one exported model (stored as JSON inside the weights file).

    kind : "sts" (pilot + power heads, eqs. (25)-(27)), "pilot" (DTS-Pilot-GNN: the same
        network, pilot head only) or "power" (DTS-Power-GNN, eq. (24))
    layers : number of layers (7 for pilot/STS, 4 for power [R])
    width : hidden width (8 [C])
    att_width : attention key/query width
    attention : False = the "-GNN" ablation (plain mean over i != k)
    random_features : False = the "w/o FE" ablation (PS-UE edges start at 0)
    n_ps : number of PS vertices; 0 = K_max = K (default), > 0 = the Fix(tau_p) ablation
    err_var : "power" kind only: the edge features carry the estimation-error variance as a
        fifth channel (:func:`ssf_features`); False = the four features of spec 5.1. Written to
        the weights file only when True, so files without it read as before.
    copilot : "sts" kind only: the power readout reads the co-pilot matrix (this project's
        variant of spec 5.3, see the module docstring; arrays ``sts.<L-1>.V6``, ``sts.<L-1>.V7``
        of shape [1, width]). Written to the file only when True (older readers then refuse
        the file's architecture instead of ignoring the term).
    branch : with ``copilot``: number of hidden layers of the power branch (0 = none, see the
        module docstring); branch_width : their width; branch_n_ref : N_ref of the branch's
        antenna input log2(N / N_ref). Written to the file only when branch > 0.
    """

    kind: str
    layers: int
    width: int = 8
    att_width: int = 8
    attention: bool = True
    random_features: bool = True
    n_ps: int = 0
    err_var: bool = False
    copilot: bool = False
    branch: int = 0
    branch_width: int = 16
    branch_n_ref: float = 16.0

    def __post_init__(self) -> None:
        if self.branch and not self.copilot:
            raise ValueError("the power branch (branch > 0) is part of the co-pilot readout: set copilot too")
        if self.branch < 0 or self.branch_width < 1 or not self.branch_n_ref > 0:
            raise ValueError(f"branch = {self.branch} must be >= 0, branch_width = {self.branch_width} >= 1, "
                             f"branch_n_ref = {self.branch_n_ref} > 0")
        if self.err_var and self.kind != "power":
            raise ValueError(f"the err_var input feature is for the DTS-Power-GNN, not kind {self.kind!r}")
        if self.copilot and self.kind != "sts":
            raise ValueError(f"the co-pilot power readout is for the STS-GNN, not kind {self.kind!r}")

    @property
    def n_edge_in(self) -> int:
        """Input channels of the Power-GNN's edges (4, or 5 with :attr:`err_var`)."""
        return 5 if self.err_var else 4

    def to_dict(self) -> dict:
        out = asdict(self)
        if not self.err_var:  # files without the feature keep the layout older readers know
            del out["err_var"]
        if not self.copilot:
            del out["copilot"]
        if not self.branch:
            for key in ("branch", "branch_width", "branch_n_ref"):
                del out[key]
        return out


def _widths(arch: GNNArch, first: int) -> list[tuple[int, int]]:
    dims = [first] + [arch.width] * (arch.layers - 1) + [1]
    return list(zip(dims[:-1], dims[1:], strict=True))


def pilot_layer_names(arch: GNNArch) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of a pilot/STS GNN (weights as ``[out, in]``)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for l, ((di, do), (ei, eo)) in enumerate(zip(_widths(arch, 2), _widths(arch, 1), strict=True)):
        p = f"sts.{l}."
        for n in ("U1", "V1", "V2"):
            shapes[p + n] = (do, di)
        shapes[p + "b1"] = (do,)
        shapes[p + "U2"] = (eo, ei)
        shapes[p + "V3"] = (eo, di)
        shapes[p + "V4"] = (eo, ei)
        shapes[p + "V5"] = (eo, ei)
        shapes[p + "b2"] = (eo,)
        if arch.attention:
            shapes[p + "Wq"] = (arch.att_width, di)
            shapes[p + "Wk"] = (arch.att_width, di)
    shapes.update(copilot_names(arch))
    return shapes


#: the co-pilot readout's arrays (last layer), see :func:`copilot_names`
COPILOT_NAMES = ("V6", "V7")


def copilot_names(arch: GNNArch) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the co-pilot power-readout arrays of a ``copilot`` STS-GNN
    (``sts.<L-1>.V6`` and ``.V7``, [1, d] with d the last layer's input width); empty otherwise."""
    if not arch.copilot:
        return {}
    d_in = 2 if arch.layers == 1 else arch.width
    out = {f"sts.{arch.layers - 1}.{n}": (1, d_in) for n in COPILOT_NAMES}
    c = d_in + 1  # the branch's input: D and the antenna feature
    for j in range(arch.branch):
        out[f"sts.pb.{j}.W"] = (arch.branch_width, 5 * c)
        out[f"sts.pb.{j}.b"] = (arch.branch_width,)
        c = arch.branch_width
    if arch.branch:
        out["sts.pb.out"] = (1, arch.branch_width)
    return out


def branch_t(arch: GNNArch, n_ant):
    """The power branch's antenna input log2(N / branch_n_ref) (N > 0; None -> 0, i.e. N = N_ref)."""
    if n_ant is None:
        return 0.0
    n = np.asarray(n_ant, float)
    if not np.all(n > 0):
        raise ValueError(f"antennas per AP must be > 0 for the STS power branch, got {n_ant!r}")
    t = np.log2(n / arch.branch_n_ref)
    return float(t) if t.ndim == 0 else t


def power_branch(ops, params: Mapping[str, Any], arch: GNNArch, d, copilot, t):
    """The power branch's contribution W_out H_P to the readout (module docstring).

    d : [B, M, K, c] last-layer input; copilot : [B, K, K]; t : log2(N / branch_n_ref) as a
    scalar or ``[B, 1, 1, 1]``. Returns [B, M, K, 1].
    """
    n_ap, n_ue = d.shape[1], d.shape[2]
    h = ops.cat([d, d[..., :1] * 0.0 + t], -1)  # [B, M, K, c + 1]
    for j in range(arch.branch):
        w, c = params[f"sts.pb.{j}.W"], h.shape[-1]
        cd = ops.einsum("bki,bmid->bmkd", copilot, h)  # [B, M, K, c] co-pilot sum at the same AP
        z = ops.lin(h, w[:, :c]) + ops.lin(_others(ops, h, 1, n_ap), w[:, c:2 * c]) \
            + ops.lin(_others(ops, h, 2, n_ue), w[:, 2 * c:3 * c]) + ops.lin(cd, w[:, 3 * c:4 * c]) \
            + ops.lin(ops.sum(cd, 1, keepdims=True) / n_ap, w[:, 4 * c:]) + params[f"sts.pb.{j}.b"]
        h = ops.leaky_relu(z)  # [B, M, K, width]
    return ops.lin(h, params["sts.pb.out"])


def copilot_from_colour(colour) -> np.ndarray:
    """One-hot co-pilot matrix ``C [K, K]`` of a pilot assignment (C[k, i] = 1 when k != i
    share a pilot, zero diagonal). colour : [K] ints, or [B, K] (then C is [B, K, K])."""
    c = np.asarray(colour)
    same = (c[..., :, None] == c[..., None, :]).astype(float)
    k = c.shape[-1]
    same[..., np.arange(k), np.arange(k)] = 0.0
    return same


def copilot_soft(ops, x):
    """Soft co-pilot matrix ``X^T X`` with zero diagonal, x : [B, S, K] -> [B, K, K] (the
    soft chain's Cp of spec 5.5 without its unit diagonal)."""
    k = x.shape[-1]
    return ops.einsum("bsk,bsi->bki", x, x) * (1.0 - ops.eye_like(k, x))


def copilot_term(ops, params: Mapping[str, Any], arch: GNNArch, d, copilot):
    """The co-pilot term of the power readout: V6 sum_i C[k, i] D[m, i] + V7 sum_i C[k, i]
    mean_m' D[m', i].

    d : [B, M, K, d] last-layer input; copilot : [B, K, K] (zero diagonal). Returns [B, M, K, 1].
    """
    p = f"sts.{arch.layers - 1}."
    cd = ops.einsum("bki,bmid->bmkd", copilot, d)  # [B, M, K, d] co-pilot sum at the same AP
    cm = ops.sum(cd, 1, keepdims=True) / d.shape[1]  # [B, 1, K, d] ... averaged over the APs
    return ops.lin(cd, params[p + "V6"]) + ops.lin(cm, params[p + "V7"])


#: suffix of the optional antenna-count term of the STS power readout (see :func:`readout_n_names`)
READOUT_N_SUFFIX = "_dlog2n"
_READOUT = ("U1", "V1", "V2", "b1")


def readout_n_names(arch: GNNArch) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the optional antenna-count term of the STS power readout.

    The power readout is the last layer's AP-UE update (U1, V1, V2, b1 of layer L-1, eq. (25)
    without activation). With the term its weights depend on the antenna count N:

        W(N) = W + t W_dlog2n,  t = log2(N / N_ref)   (W in U1, V1, V2, b1)

(t optionally clipped to a range [t_lo, t_hi] containing 0, :func:`readout_n_t`),

    so the file is unchanged at N = N_ref and the pilot head (the PS-UE update, which never
    reads the last layer's AP-UE output) is unchanged at every N. Names ``sts.<L-1>.<W>_dlog2n``,
    the shapes of W.
    """
    base = pilot_layer_names(arch)
    last = f"sts.{arch.layers - 1}."
    return {last + n + READOUT_N_SUFFIX: base[last + n] for n in _READOUT}


def readout_n_t(n_ant, n_ref: float, t_range=None):
    """t = log2(N / N_ref) of :func:`readout_n_names` (N > 0 scalar or array), clipped to
    ``t_range`` = (t_lo, t_hi) with t_lo <= 0 <= t_hi when given (e.g. (-3, 0): the term acts
    only below N_ref and stays constant below N_ref / 8)."""
    t = np.log2(np.asarray(n_ant, float) / float(n_ref))
    if t_range is not None:
        t = np.clip(t, float(t_range[0]), float(t_range[1]))
    return t


def readout_n_params(params: Mapping[str, Any], arch: GNNArch, t: float) -> dict[str, Any]:
    """``params`` with the readout weights replaced by W + t W_dlog2n (scalar t; the
    folded form used by the numpy fast path; :func:`sts_forward` adds t * (readout of
    W_dlog2n) instead, which is the same function)."""
    out = dict(params)
    last = f"sts.{arch.layers - 1}."
    for n in _READOUT:
        out[last + n] = params[last + n] + t * params[last + n + READOUT_N_SUFFIX]
    return out


def pilot_bn_keys(arch: GNNArch) -> dict[str, int]:
    """BN keys (name -> channels) of a pilot/STS GNN: every layer but the last."""
    out = {}
    for l in range(arch.layers - 1):
        out[f"sts.{l}.bn_d"] = arch.width
        out[f"sts.{l}.bn_e"] = arch.width
    return out


def power_layer_names(arch: GNNArch) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the DTS-Power-GNN."""
    shapes: dict[str, tuple[int, ...]] = {}
    for l, (fi, fo) in enumerate(_widths(arch, arch.n_edge_in)):
        p = f"pow.{l}."
        for n in ("Us", "V1", "V2", "V3", "Uf", "V4", "V5", "V6", "V7"):
            shapes[p + n] = (fo, fi)
        shapes[p + "bs"] = (fo,)
        shapes[p + "bf"] = (fo,)
    return shapes


def power_bn_keys(arch: GNNArch) -> dict[str, int]:
    out = {}
    for l in range(arch.layers - 1):
        out[f"pow.{l}.bn_sig"] = arch.width
        out[f"pow.{l}.bn_inf"] = arch.width
    return out


def lsf_features(ops, beta, assoc, snr_pilot: float):
    """AP-UE input features ``[B, M, K, 2]`` = [10 log10(beta p_u / sigma^2) / 30, a_mk].

    beta : [B, M, K] linear gains (0 for an offline AP is floored at -300 dB);
    assoc : [B, M, K] float in {0, 1}; snr_pilot = p_u / sigma^2 (linear).
    """
    x = ops.clamp_min(beta * snr_pilot, 1e-30)
    return ops.stack([10.0 * ops.log10(x) / 30.0, assoc], -1)  # [B, M, K, 2]


def ssf_features(ops, g_re, g_im, known, snr_ref: float, err=None):
    """Power-GNN edge features ``[B, A, K, 4]`` (``[B, A, K, 5]`` with ``err``) from
    Ghat_AN = g_re + j g_im (real and imaginary parts given separately so that the torch path
    stays differentiable at g = 0).

    g_re, g_im : [B, A, K] Ghat[m(a), k(a), i] per AN a and UE i; known : [B, A, K] a_{m(a), i};
    snr_ref = P_max / sigma^2 (linear); err : None, or [B, A, K] err_var[m(a), i] (same units
    as |g|^2: the variance of the unknown part of g, c_mi or beta_mi), giving the fifth channel
    ``log10(1 + err P / sigma^2) / 5`` of a :attr:`GNNArch.err_var` model.
    """
    re = g_re * snr_ref**0.5
    im = g_im * snr_ref**0.5
    p2 = re * re + im * im  # [B, A, K] |g|^2 P / sigma^2
    mag = ops.sqrt(p2 + _MAG_FLOOR)
    feats = [ops.log10(1.0 + p2) / 5.0, re / mag, im / mag, known]
    if err is not None:
        feats.append(ops.log10(1.0 + err * snr_ref) / 5.0)
    return ops.stack(feats, -1)


def _others(ops, x, axis: int, n: int):
    """mean over the other entries along ``axis`` (size n): (sum - self) / (n - 1), 0 if n = 1."""
    return (ops.sum(x, axis, keepdims=True) - x) / max(n - 1, 1)


def sts_forward(ops, params: Mapping[str, Any], arch: GNNArch, d0, e0, *, bn_mask=None, readout_t=None,
                copilot=None, branch_t=0.0):
    """Pilot/STS GNN forward pass, eqs. (25)-(27).

    Parameters
    ----------
    d0 : [B, M, K, 2] AP-UE features (:func:`lsf_features`)
    e0 : [B, S, K, 1] PS-UE features (z, or zeros)
    readout_t : None, or t = log2(N / N_ref) as a scalar or ``[B, 1, 1, 1]``: adds
        t * (U1' D + V1' mean_m' D + V2' mean_k' D + b1') to the last layer's AP-UE update with
        the ``*_dlog2n`` arrays of :func:`readout_n_names` (the power readout's antenna term)
    copilot : ``arch.copilot`` models only: [B, K, K] co-pilot matrix the power readout reads
        (:func:`copilot_from_colour` of the frame's pilots); None = the soft
        :func:`copilot_soft` of this pass's own pilot output softmax_s(E_L) (the training chain)
    branch_t : ``arch.branch`` models only: the power branch's antenna input log2(N /
        branch_n_ref) (:func:`branch_t`), scalar or ``[B, 1, 1, 1]``

    Returns
    -------
    power_logit : [B, M, K] (AP-UE head), pilot_logit : [B, S, K] (PS-UE head)
    """
    d, e = d0, e0
    n_ap, n_ue, n_ps = d0.shape[1], d0.shape[2], e0.shape[1]
    off = 1.0 - ops.eye_like(n_ue, d0)  # [K, K]
    for l in range(arch.layers):
        p = f"sts.{l}."
        dm = _others(ops, d, 1, n_ap)  # [B, M, K, d]
        dk = _others(ops, d, 2, n_ue)
        d_new = ops.lin(d, params[p + "U1"]) + ops.lin(dm, params[p + "V1"]) + ops.lin(dk, params[p + "V2"]) \
            + params[p + "b1"]  # [B, M, K, d']
        if readout_t is not None and l == arch.layers - 1:
            sx = READOUT_N_SUFFIX
            d_new = d_new + readout_t * (ops.lin(d, params[p + "U1" + sx]) + ops.lin(dm, params[p + "V1" + sx])
                                         + ops.lin(dk, params[p + "V2" + sx]) + params[p + "b1" + sx])  # [B, M, K, 1]
        d_mean = ops.sum(d, 1, keepdims=True) / n_ap  # [B, 1, K, d]
        es = _others(ops, e, 1, n_ps)  # [B, S, K, e]
        if arch.attention:
            q = ops.lin(d, params[p + "Wq"])  # [B, M, K, a]
            kk = ops.lin(d, params[p + "Wk"])
            alpha = ops.sigmoid(ops.einsum("bmka,bmia->bki", q, kk) / n_ap) * off  # [B, K, K]
            att = ops.einsum("bki,bsid->bskd", alpha, e) / max(n_ue - 1, 1)  # [B, S, K, e]
        else:  # "-GNN" ablation: plain mean over the other UEs on the same PS
            att = ops.einsum("ki,bsid->bskd", off, e) / max(n_ue - 1, 1)  # [B, S, K, e]
        e_new = ops.lin(e, params[p + "U2"]) + ops.lin(d_mean, params[p + "V3"]) + ops.lin(es, params[p + "V4"]) \
            + ops.lin(att, params[p + "V5"]) + params[p + "b2"]  # [B, S, K, e']
        if l < arch.layers - 1:
            d_new = ops.leaky_relu(ops.bn(d_new, p + "bn_d", params, bn_mask))
            e_new = ops.leaky_relu(ops.bn(e_new, p + "bn_e", params, None))
        elif arch.copilot:  # this project's variant: the readout reads the pilots
            c = copilot if copilot is not None else copilot_soft(ops, ops.softmax(e_new[..., 0], 1))
            d_new = d_new + copilot_term(ops, params, arch, d, c)
            if arch.branch:
                d_new = d_new + power_branch(ops, params, arch, d, c, branch_t)
        d, e = d_new, e_new
    return d[..., 0], e[..., 0]


def power_forward(ops, params: Mapping[str, Any], arch: GNNArch, f0, an_k, an_mask):
    """DTS-Power-GNN forward pass, eq. (24) and its INF twin, on the AN-indexed graph.

    Parameters
    ----------
    f0 : [B, A, K, 4] (or 5 with ``arch.err_var``) edge features (:func:`ssf_features`), edge (AN a, UE i)
    an_k : [B, A, K] float one-hot of the UE k(a) that AN a serves (zero rows for padding)
    an_mask : [B, A] float {0, 1}, 1 for a real AN (padding lets batches mix AN counts)

    Returns
    -------
    logit : [B, A] SIG-edge outputs (meaningful where an_mask = 1)
    """
    n_ue = f0.shape[2]
    mask = an_mask[:, :, None, None]  # [B, A, 1, 1]
    n_k = ops.sum(an_k, 1)  # [B, K] |M_k|
    n_an = ops.sum(an_mask, 1)  # [B]
    cnt3 = n_an[:, None] - n_k  # [B, K] INF edges at UE k
    c2 = ops.clamp_min(ops.einsum("bak,bk->ba", an_k, n_k) - 1.0, 1.0)[:, :, None]  # [B, A, 1]
    c3 = ops.clamp_min(cnt3, 1.0)  # [B, K]
    c6 = ops.clamp_min(n_k, 1.0)[:, None, :, None]  # [B, 1, K, 1]
    c7 = ops.clamp_min(cnt3 - 1.0, 1.0)[:, None, :, None]  # [B, 1, K, 1]
    sel = an_k[..., None]  # [B, A, K, 1] SIG-edge selector
    f = f0
    for l in range(arch.layers):
        p = f"pow.{l}."
        f = f * mask
        sig = ops.sum(f * sel, 2)  # [B, A, d] SIG edge of each AN
        row = ops.sum(f, 2)  # [B, A, d] sum over receivers i at the AN
        sig_ue = ops.einsum("bak,bad->bkd", an_k, sig)  # [B, K, d] SIG edges at UE k
        inf_ue = ops.sum(f, 1) - sig_ue  # [B, K, d] INF edges at UE k
        v1 = (row - sig) / max(n_ue - 1, 1)
        v2 = (ops.einsum("bak,bkd->bad", an_k, sig_ue) - sig) / c2
        v3 = ops.einsum("bak,bkd->bad", an_k, inf_ue / c3[..., None])
        s_new = ops.lin(sig, params[p + "Us"]) + ops.lin(v1, params[p + "V1"]) \
            + ops.lin(v2, params[p + "V2"]) + ops.lin(v3, params[p + "V3"]) + params[p + "bs"]
        # INF update; by linearity the three full-size terms share ONE matmul of f:
        #   V5 mean_{j not in {k,i}} f[a,j] = (V5 row - V5 sig - V5 f) / (K - 2)
        #   V7 mean_{other INF at UE i}      = (V7 inf_ue[i] - V7 f) / (count - 1)
        fo = params[p + "Uf"].shape[0]
        big = ops.lin(f, ops.cat([params[p + "Uf"], params[p + "V5"], params[p + "V7"]], 0))
        uf, f5, f7 = big[..., :fo], big[..., fo:2 * fo], big[..., 2 * fo:]  # [B, A, K, d']
        small5 = ops.lin(row - sig, params[p + "V5"])[:, :, None, :]  # [B, A, 1, d']
        v4 = ops.lin(sig, params[p + "V4"])[:, :, None, :]  # [B, A, 1, d']
        v6 = ops.lin(sig_ue, params[p + "V6"])[:, None] / c6  # [B, 1, K, d']
        i7 = ops.lin(inf_ue, params[p + "V7"])[:, None]  # [B, 1, K, d']
        i_new = uf + v4 + (small5 - f5) / max(n_ue - 2, 1) + v6 + (i7 - f7) / c7 \
            + params[p + "bf"]  # [B, A, K, d']
        if l < arch.layers - 1:
            s_new = ops.leaky_relu(ops.bn(s_new, p + "bn_sig", params, an_mask))
            i_new = ops.leaky_relu(ops.bn(i_new, p + "bn_inf", params, an_mask))
        f = sel * s_new[:, :, None, :] + (1.0 - sel) * i_new  # [B, A, K, d']
    return ops.sum(f * sel, 2)[..., 0]


def power_activation(ops, logit, an_mask, p_max):
    """Output activation of 5.1 [C]: q = sigmoid(z) a_mk, p = P_max q / max(1, sum_k q).

    Always feasible: p >= 0, p = 0 where a_mk = 0 and sum_k p_mk <= P_max (the factor
    :data:`POWER_SAFETY` = 1 - 1e-12 absorbs the rounding of the division and the sum).

    logit, an_mask : [B, M, K]; p_max : [B, M] (W). Returns p : [B, M, K] (W).
    """
    q = ops.sigmoid(logit) * an_mask
    s = ops.clamp_min(ops.sum(q, 2, keepdims=True), 1.0)  # [B, M, 1]
    return p_max[:, :, None] * POWER_SAFETY * q / s
