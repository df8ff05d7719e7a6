"""Function-preserving widening of an exported DTS-Power-GNN (a warm start for a wider head).

The Power-GNN's layers mix channels only through their weight matrices ``[out, in]`` (eq. (24)
and its INF twin: every aggregation is a per-channel sum or mean over edges), so a net of width
d becomes one of width d' > d computing exactly the same function when

* old output channels read nothing from the new input channels (those columns are zero),
* the readout (last layer, one output) reads nothing from the new channels,
* the new channels' rows of every matrix are small random numbers (``init_scale`` times a
  standard normal: they must differ from zero, or no gradient reaches them), their biases are
  zero and their folded batch norm is the identity (scale 1, shift 0).

Fine-tuning then starts from the narrow net's function and can use the new channels. Only
numpy is needed; ``analysis/finetune_gnn_n.py --widen`` is the training that uses it.

:func:`add_err_var_input` is the same idea on the input side: a fifth input edge channel (the
estimation-error variance, ``GNNArch.err_var``) whose first-layer columns are zero, so the net
computes exactly its old function until fine-tuning (``finetune_gnn_n.py --err-var``) gives
those columns weight (the gradient reaching a zero column is its input times the upstream
gradient, not zero).

    from netsim.learn.widen import add_err_var_input, widen_power_params
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from netsim.comm.power.gnn_layers import GNNArch, power_bn_keys, power_layer_names

__all__ = ["widen_power_params", "add_err_var_input"]


def add_err_var_input(params: dict[str, np.ndarray], arch: GNNArch) -> tuple[GNNArch, dict]:
    """A "power" GNN without the err_var input -> the same function with it (zero columns).

    params : exported (BN-folded) parameters of ``arch`` (``arch.err_var`` False).
    Returns (arch with err_var = True, params with every first-layer matrix [out, 4] padded to
    [out, 5] by a zero column; everything else copied).
    """
    if arch.kind != "power":
        raise ValueError(f"the err_var input is for the DTS-Power-GNN only, got kind {arch.kind!r}")
    if arch.err_var:
        raise ValueError("this Power-GNN already has the err_var input")
    new_arch = replace(arch, err_var=True)
    old_shapes, new_shapes = power_layer_names(arch), power_layer_names(new_arch)
    out = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    for name, shape in new_shapes.items():
        old = out[name]
        if old.shape != old_shapes[name]:
            raise ValueError(f"{name}: shape {old.shape}, expected {old_shapes[name]}")
        if old.shape != shape:  # a first-layer matrix: one more (zero) input column
            val = np.zeros(shape)
            val[:, :old.shape[1]] = old
            out[name] = val
    return new_arch, out


def widen_power_params(params: dict[str, np.ndarray], arch: GNNArch, width: int,
                       rng: np.random.Generator, init_scale: float = 1e-2) -> tuple[GNNArch, dict]:
    """Pad the exported parameters of a "power" GNN of ``arch.width`` to ``width`` channels.

    Parameters
    ----------
    params : exported (BN-folded) parameters of ``arch`` (name -> float64 array)
    arch : GNNArch of kind "power"
    width : int, the new hidden width (>= arch.width)
    rng : numpy Generator of the new rows
    init_scale : standard deviation of the new rows' entries

    Returns
    -------
    (arch with ``width``, params of that arch); the eval-mode function is unchanged.
    """
    if arch.kind != "power":
        raise ValueError(f"widening is defined for the DTS-Power-GNN only, got kind {arch.kind!r}")
    if int(width) < arch.width:
        raise ValueError(f"new width {width} < current width {arch.width}")
    new_arch = replace(arch, width=int(width))
    old_shapes, new_shapes = power_layer_names(arch), power_layer_names(new_arch)
    out: dict[str, np.ndarray] = {}
    for name, shape in new_shapes.items():
        old = np.asarray(params[name], dtype=np.float64)
        if old.shape != old_shapes[name]:
            raise ValueError(f"{name}: shape {old.shape}, expected {old_shapes[name]}")
        if len(shape) == 1:  # biases: new channels start at zero
            val = np.zeros(shape)
            val[:old.shape[0]] = old
        else:
            fo, fi = old.shape
            val = np.zeros(shape)  # [out', in']
            val[fo:, :] = init_scale * rng.standard_normal((shape[0] - fo, shape[1]))  # new rows
            val[:fo, :fi] = old  # old rows keep their inputs, read zero from new inputs
        out[name] = val
    for key, ch in power_bn_keys(new_arch).items():
        for part, fill in (("scale", 1.0), ("shift", 0.0)):
            old = np.asarray(params[f"{key}.{part}"], dtype=np.float64)
            val = np.full(ch, fill)
            val[:old.shape[0]] = old
            out[f"{key}.{part}"] = val
    extra = set(params) - set(out)
    if extra:
        raise ValueError(f"unexpected power-GNN parameters {sorted(extra)}")
    return new_arch, out
