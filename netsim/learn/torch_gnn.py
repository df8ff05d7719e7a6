"""torch twin of the GNN layer backend and the differentiable seed-004 chain (spec 5.5).

The layer arithmetic itself lives in :mod:`netsim.comm.power.gnn_layers` and is shared with
the numpy inference path; this module only supplies torch primitives (:class:`TorchOps`),
parameter containers (:class:`TorchGNN`) and the soft pipeline

    Pilot head -> soft X -> tau_soft = sum_s (1 - prod_k (1 - x_sk)) -> Cp = X^T X (diag 1)
    -> pilots + MMSE (3.5) -> distributed RZF (3.6) -> Ghat (11) -> Power-GNN (DTS) or the
    STS power head -> true G -> SINR (3) -> net-SE (4) -> loss (30).

A Power-GNN with the err_var input (``GNNArch.err_var``) also reads the soft chain's
unknown-part variances: c_mk of the MMSE stage with tau_soft and the soft Cp where a_mk = 1,
beta_mk elsewhere (differentiable in the pilot head's X).

Everything runs in noise-normalised units (sigma^2 = 1: beta' = beta / sigma^2), so float32
training is well conditioned; SINR and net-SE are unit-free and identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from netsim.comm.power.gnn_layers import (
    LEAKY_SLOPE,
    GNNArch,
    branch_t,
    copilot_names,
    lsf_features,
    pilot_bn_keys,
    pilot_layer_names,
    power_activation,
    power_bn_keys,
    power_forward,
    power_layer_names,
    readout_n_names,
    ssf_features,
    sts_forward,
)

__all__ = ["TorchOps", "TorchGNN", "ChainInputs", "soft_chain", "dts_power", "net_se", "BN_EPS"]

BN_EPS = 1e-5


class TorchOps:
    """torch primitives for :mod:`netsim.comm.power.gnn_layers` (training or eval BN)."""

    name = "torch"

    def __init__(self, module: TorchGNN | None = None, training: bool = False,
                 momentum: float = 0.1) -> None:
        self.module = module
        self.training = training
        self.momentum = momentum

    einsum = staticmethod(torch.einsum)

    @staticmethod
    def cat(xs, axis: int):
        return torch.cat(xs, dim=axis)

    @staticmethod
    def lin(x, w):
        return torch.nn.functional.linear(x, w)

    @staticmethod
    def sum(x, axis, keepdims: bool = False):
        return x.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def leaky_relu(x):
        return torch.nn.functional.leaky_relu(x, LEAKY_SLOPE)

    @staticmethod
    def sigmoid(x):
        return torch.sigmoid(x)

    @staticmethod
    def softmax(x, axis: int):
        return torch.softmax(x, dim=axis)

    @staticmethod
    def log10(x):
        return torch.log10(x)

    @staticmethod
    def sqrt(x):
        return torch.sqrt(x)

    @staticmethod
    def clamp_min(x, lo: float):
        return torch.clamp(x, min=lo)

    @staticmethod
    def stack(xs, axis: int):
        return torch.stack(xs, dim=axis)

    @staticmethod
    def real(x):
        return x.real

    @staticmethod
    def imag(x):
        return x.imag

    @staticmethod
    def eye_like(n: int, like):
        return torch.eye(n, dtype=like.dtype, device=like.device)

    @staticmethod
    def where(c, a, b):
        return torch.where(c, a, b)

    def bn(self, x, key: str, params, mask=None):
        gamma, beta = params[key + ".gamma"], params[key + ".beta"]
        mean_buf, var_buf = self.module.running(key)
        if self.training:
            dims = tuple(range(x.dim() - 1))
            if mask is None:
                mean = x.mean(dim=dims)
                var = x.var(dim=dims, unbiased=False)
            else:
                wgt = mask.reshape(mask.shape + (1,) * (x.dim() - mask.dim()))
                wgt = wgt.expand(x.shape[:-1] + (1,))
                tot = wgt.sum().clamp(min=1.0)
                mean = (x * wgt).sum(dim=dims) / tot
                var = (((x - mean) ** 2) * wgt).sum(dim=dims) / tot
            with torch.no_grad():
                mean_buf.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
                var_buf.mul_(1 - self.momentum).add_(self.momentum * var.detach())
        else:
            mean, var = mean_buf, var_buf
        return (x - mean) / torch.sqrt(var + BN_EPS) * gamma + beta


def _safe(name: str) -> str:
    return name.replace(".", "__")


class TorchGNN(torch.nn.Module):
    """Trainable parameters (and BN running statistics) of one GNNArch."""

    def __init__(self, arch: GNNArch, generator: torch.Generator, dtype=torch.float32,
                 readout_n: bool = False) -> None:
        super().__init__()
        self.arch = arch
        if arch.kind == "power":
            shapes, bn = power_layer_names(arch), power_bn_keys(arch)
        else:
            shapes, bn = pilot_layer_names(arch), pilot_bn_keys(arch)
        if readout_n and arch.kind != "sts":
            raise ValueError("the readout's antenna term (readout_n) exists for the STS-GNN only")
        #: names of the power readout's antenna-term arrays (zero at start), empty without it
        self.readout_names = list(readout_n_names(arch)) if readout_n else []
        self.p = torch.nn.ParameterDict()
        self.names = list(shapes)
        for name, shape in shapes.items():
            if len(shape) == 1:
                val = torch.zeros(shape, dtype=dtype)
            else:
                # several matrices feed one sum: 1/sqrt(fan_in * 4) keeps the variance ~ 1
                val = torch.randn(shape, generator=generator, dtype=dtype) / math.sqrt(2.0 * shape[1])
            self.p[_safe(name)] = torch.nn.Parameter(val)
        for name, shape in (readout_n_names(arch).items() if readout_n else ()):
            self.p[_safe(name)] = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
        self.names += self.readout_names
        self.bn_keys = dict(bn)
        for key, ch in bn.items():
            self.p[_safe(key + ".gamma")] = torch.nn.Parameter(torch.ones(ch, dtype=dtype))
            self.p[_safe(key + ".beta")] = torch.nn.Parameter(torch.zeros(ch, dtype=dtype))
            self.register_buffer(_safe(key) + "__mean", torch.zeros(ch, dtype=dtype))
            self.register_buffer(_safe(key) + "__var", torch.ones(ch, dtype=dtype))

    @classmethod
    def from_export(cls, arch: GNNArch, params: dict, dtype=torch.float32,
                    readout_n: bool | None = None) -> TorchGNN:
        """A net whose eval-mode function is exactly the exported (BN-folded) ``params``:
        gamma = scale, beta = shift, running mean 0 and variance 1 - eps. Fine-tune it with
        eval-mode BN (``TorchOps(training=False)``) to keep that equivalence. ``readout_n``:
        give the STS power readout its antenna term (None: when ``params`` has its arrays);
        arrays absent from ``params`` start at zero. The co-pilot readout arrays of a
        ``copilot`` arch (:func:`copilot_names`) absent from ``params`` also start at zero, so
        an STS file without them becomes a ``copilot`` net computing the same function."""
        if readout_n is None:
            readout_n = arch.kind == "sts" and any(n in params for n in readout_n_names(arch))
        net = cls(arch, torch.Generator().manual_seed(0), dtype, readout_n)
        optional = set(net.readout_names) | set(copilot_names(arch))
        with torch.no_grad():
            for n in net.names:
                if n in optional and n not in params:
                    # a missing term starts at zero: V6, V7 and the branch's output map (its
                    # hidden maps keep their random start, so that gradients reach them)
                    if n not in net.readout_names and not n.startswith("sts.pb.") or n == "sts.pb.out":
                        net.p[_safe(n)].zero_()
                    continue
                net.p[_safe(n)].copy_(torch.as_tensor(np.asarray(params[n]), dtype=dtype))
            for key in net.bn_keys:
                net.p[_safe(key + ".gamma")].copy_(torch.as_tensor(np.asarray(params[key + ".scale"]), dtype=dtype))
                net.p[_safe(key + ".beta")].copy_(torch.as_tensor(np.asarray(params[key + ".shift"]), dtype=dtype))
                mean, var = net.running(key)
                mean.zero_()
                var.fill_(1.0 - BN_EPS)
        return net

    def running(self, key: str):
        return getattr(self, _safe(key) + "__mean"), getattr(self, _safe(key) + "__var")

    def params(self) -> dict:
        """name -> tensor view with the layer module's dotted names."""
        out = {n: self.p[_safe(n)] for n in self.names}
        for key in self.bn_keys:
            out[key + ".gamma"] = self.p[_safe(key + ".gamma")]
            out[key + ".beta"] = self.p[_safe(key + ".beta")]
        return out

    def n_trainable(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    def export(self) -> dict[str, np.ndarray]:
        """float64 numpy parameters with batch norm folded into ``.scale``/``.shift``."""
        with torch.no_grad():
            out = {n: self.p[_safe(n)].detach().double().cpu().numpy() for n in self.names}
            for key in self.bn_keys:
                mean, var = (t.double() for t in self.running(key))
                gamma = self.p[_safe(key + ".gamma")].double()
                beta = self.p[_safe(key + ".beta")].double()
                scale = gamma / torch.sqrt(var + BN_EPS)
                out[key + ".scale"] = scale.cpu().numpy()
                out[key + ".shift"] = (beta - mean * scale).cpu().numpy()
        return out


@dataclass
class ChainInputs:
    """One batch in noise-normalised units (torch tensors).

    beta : [B, M, K] beta / sigma^2; assoc : [B, M, K] float; g : [B, T, M, K, N] complex
    CN(0, 1) fading; noise : [B, T, M, K, N] complex CN(0, 1) pilot noise (one per AP and UE);
    z : [B, S, K] random features; p_pilot : p_u (W, i.e. p_u / sigma^2 in these units);
    p_max : [B, M] (W); tau_c : int; an_m, an_k : [B, A] long, AP and UE of each AN (padded
    with 0), an_mask : [B, A] float (see :func:`an_index`).
    """

    beta: torch.Tensor
    assoc: torch.Tensor
    g: torch.Tensor
    noise: torch.Tensor
    z: torch.Tensor
    p_pilot: float
    p_max: torch.Tensor
    tau_c: int
    an_m: torch.Tensor | None = None
    an_k: torch.Tensor | None = None
    an_mask: torch.Tensor | None = None


def an_index(assoc: np.ndarray):
    """Padded AN lists of a batch: assoc [B, M, K] bool -> an_m, an_k [B, A] int, mask [B, A]."""
    lists = [np.nonzero(a) for a in assoc]
    n = max(1, max(len(m) for m, _ in lists))
    an_m = np.zeros((len(lists), n), dtype=np.int64)
    an_k = np.zeros((len(lists), n), dtype=np.int64)
    mask = np.zeros((len(lists), n))
    for b, (m, k) in enumerate(lists):
        an_m[b, :m.size], an_k[b, :k.size], mask[b, :m.size] = m, k, 1.0
    return an_m, an_k, mask


def _soft_csi(x, inp: ChainInputs, n_ps_fixed: int):
    """Soft tau_p, Cp, pilots, MMSE, RZF, Ghat and true G for every subframe."""
    beta, a = inp.beta, inp.assoc  # [B, M, K]
    if n_ps_fixed:
        tau = torch.full(beta.shape[:1], float(n_ps_fixed), dtype=beta.dtype)
    else:
        tau = (1.0 - torch.prod(1.0 - x, dim=2)).sum(dim=1)  # [B] soft pilot length
    k = beta.shape[2]
    eye = torch.eye(k, dtype=beta.dtype, device=beta.device)
    cp = torch.einsum("bsk,bsi->bki", x, x) * (1 - eye) + eye  # [B, K, K]
    h = torch.sqrt(beta)[:, None, :, :, None] * inp.g  # [B, T, M, K, N]
    gain = torch.sqrt(tau * inp.p_pilot)  # [B]
    y = gain[:, None, None, None, None] * torch.einsum("bki,btmin->btmkn", cp.to(h.dtype), h) \
        + inp.noise  # [B, T, M, K, N]
    psi = tau[:, None, None] * inp.p_pilot * torch.einsum("bmi,bki->bmk", beta, cp) + 1.0
    coef = gain[:, None, None] * beta / psi * a  # [B, M, K]
    hhat = coef[:, None, :, :, None] * y  # [B, T, M, K, N]
    c = beta - tau[:, None, None] * inp.p_pilot * beta**2 / psi
    err = torch.where(a > 0, c, beta)  # [B, M, K] unknown-part variance (the engine's err_var)
    reg = err.sum(dim=2) + 1.0 / inp.p_pilot  # [B, M]
    n_ant = h.shape[-1]
    hm = hhat.transpose(-1, -2)  # [B, T, M, N, K]
    gram = hm @ hhat.conj()  # [B, T, M, N, N]
    mat = gram + reg[:, None, :, None, None] * torch.eye(n_ant, dtype=h.dtype, device=h.device)
    wbar = torch.linalg.solve(mat, hm).transpose(-1, -2)  # [B, T, M, K, N]
    nrm = torch.sqrt((wbar.abs() ** 2).sum(dim=-1, keepdim=True) + 1e-30)
    w = wbar / nrm * a[:, None, :, :, None]  # unit norm, zero where not associated
    known = w @ hhat.conj().transpose(-1, -2)  # [B, T, M, K, K] hhat_i^H w_k
    stat = a[:, None, :, :, None] * torch.sqrt(beta)[:, None, :, None, :]  # [B, 1, M, K, K]
    ai = a[:, None, :, None, :] > 0  # [B, 1, M, 1, K] a_mi
    ghat = torch.where(ai, known, stat.to(known.dtype))
    g_true = w @ h.conj().transpose(-1, -2)  # [B, T, M, K, K]
    return tau, ghat, g_true, err


def net_se(g_true, power, tau, tau_c: int):
    """Net-SE (4) per (b, t): g_true [B, T, M, K, K], power [B, T, M, K] (noise units)."""
    amp = torch.sqrt(torch.clamp(power, min=1e-30))
    s = torch.einsum("btmik,btmi->btik", g_true, amp.to(g_true.dtype))  # [B, T, K, K]
    pw = s.real**2 + s.imag**2
    sig = torch.diagonal(pw, dim1=-2, dim2=-1)  # [B, T, K]
    interf = pw.sum(dim=-2) - sig
    rate = torch.log2(1.0 + sig / (interf + 1.0)).sum(dim=-1)  # [B, T]
    return (1.0 - tau[:, None] / tau_c) * rate



def dts_power(ops, pw: TorchGNN, ghat, assoc, an_m, an_k, an_mask, p_max, err=None):
    """DTS-Power-GNN on every subframe of a batch (noise units), as in the test phase.

    ghat : [B, T, M, K, K] complex, ghat[..., m, k, i] = hhat_i^H w_k (eq. (11));
    assoc : [B, M, K] float; an_m, an_k : [B, A] long, an_mask : [B, A] (:func:`an_index`);
    p_max : [B, M] (W; noise power 1); err : [B, M, K] or [B, T, M, K] unknown-part variances
    (noise units), read only by a net with ``arch.err_var`` (required there).
    Returns power [B, T, M, K] (W).
    """
    b, t, m, k = ghat.shape[:4]
    bi = torch.arange(b, device=ghat.device)[:, None]  # [B, 1]
    g_an = ghat.permute(0, 2, 3, 1, 4)[bi, an_m, an_k]  # [B, A, T, K]
    n_an = g_an.shape[1]
    g_an = g_an.permute(0, 2, 1, 3).reshape(b * t, n_an, k)  # [B*T, A, K]
    known = assoc[bi, an_m]  # [B, A, K] a_{m(a), i}
    oh_k = torch.nn.functional.one_hot(an_k, k).to(known.dtype) * an_mask[..., None]
    oh_m = torch.nn.functional.one_hot(an_m, m).to(known.dtype) * an_mask[..., None]
    rep = lambda x: x[:, None].expand((b, t) + x.shape[1:]).reshape((b * t,) + x.shape[1:])  # noqa: E731
    snr = float(p_max.max())  # P_max / sigma^2 in noise units
    e_an = None
    if pw.arch.err_var:
        if err is None:
            raise ValueError("this Power-GNN has the err_var input feature: pass err")
        if err.dim() == 3:
            e_an = rep(err[bi, an_m])  # [B*T, A, K] err_var[m(a), i]
        else:
            e_an = err.permute(0, 2, 3, 1)[bi, an_m].permute(0, 3, 1, 2).reshape(b * t, n_an, k)
    f0 = ssf_features(ops, g_an.real, g_an.imag, rep(known), snr, e_an)
    logit = power_forward(ops, pw.params(), pw.arch, f0, rep(oh_k), rep(an_mask))
    dense = torch.einsum("na,nam,nak->nmk", logit, rep(oh_m), rep(oh_k))  # [B*T, M, K]
    return power_activation(ops, dense, rep(assoc), rep(p_max)).reshape(b, t, m, k)


def soft_chain(framework: str, nets: dict, inp: ChainInputs, ops: TorchOps | dict,
               random_features: bool = True):
    """Differentiable net-SE of one batch.

    framework : "dts" (nets = {"pilot", "power"}) or "sts" (nets = {"sts"});
    ops : one TorchOps per net name (their BN mode), or one shared.
    Returns (net_se [B, T], x [B, S, K], tau_soft [B]).
    """
    get = (lambda n: ops[n]) if isinstance(ops, dict) else (lambda n: ops)
    pname = "pilot" if framework == "dts" else "sts"
    pnet = nets[pname]
    d0 = lsf_features(get(pname), inp.beta, inp.assoc, inp.p_pilot)
    e0 = (inp.z if random_features else torch.zeros_like(inp.z))[..., None]
    bt = branch_t(pnet.arch, inp.g.shape[-1]) if pnet.arch.branch else 0.0  # N of this batch
    p_logit, x_logit = sts_forward(get(pname), pnet.params(), pnet.arch, d0, e0, branch_t=bt)
    x = torch.softmax(x_logit, dim=1)  # [B, S, K]
    tau, ghat, g_true, err = _soft_csi(x, inp, pnet.arch.n_ps)
    b, t, m, k = ghat.shape[:4]
    if framework == "dts":
        power = dts_power(get("power"), nets["power"], ghat, inp.assoc, inp.an_m, inp.an_k,
                          inp.an_mask, inp.p_max, err)
    else:
        p = power_activation(get(pname), p_logit, inp.assoc, inp.p_max)  # [B, M, K]
        power = p[:, None].expand(b, t, m, k)
    return net_se(g_true, power, tau, inp.tau_c), x, tau
