"""numpy-only inference of the seed-004 GNNs (spec power.md 5.6): no torch needed.

Weights file (``.npz``, written by ``netsim train-gnn`` / :mod:`netsim.learn.train`):

* ``__meta__`` : 0-d str, JSON with ``format`` (:data:`FORMAT`; :data:`FORMAT_ERR_VAR` for a
  file whose Power-GNN has the estimation-error-variance input, ``GNNArch.err_var``, so that
  readers that predate it refuse the file by its format), ``framework`` ("dts" or
  "sts"), ``models`` {name: GNNArch dict}, ``features`` (``snr_ref`` = P_ref / sigma^2 of the
  power features; optional ``n_ant_ref``: when present, the POWER head of the STS-GNN is
  evaluated on AP-UE features with the array-gain-scaled pilot SNR beta p_u N /
  (sigma^2 n_ant_ref), so that one model sees the antenna count N of the deployment (a second
  pass when N != n_ant_ref; the pilot head always sees beta p_u / sigma^2); absent = N is not
  an input; optional ``readout_n_ref``: the STS power readout has an antenna-count term,
  weights W + t W_dlog2n, t = log2(N / readout_n_ref) clipped to the optional
  ``readout_n_range`` [t_lo, t_hi], see
  :func:`netsim.comm.power.gnn_layers.readout_n_names`; absent = no term), ``training`` (scenario name and hash, samples, epochs, CPU time, ...);
* ``<model>/<param>`` : float64 arrays, weights ``[out, in]``, biases ``[out]``, batch norm
  folded into ``<key>.scale`` / ``<key>.shift`` ``[channels]``; with ``readout_n_ref`` also
  ``sts/sts.<L-1>.{U1,V1,V2,b1}_dlog2n``.

A DTS file holds ``pilot`` (DTS-Pilot-GNN) and ``power`` (DTS-Power-GNN); an STS file holds
``sts`` (pilot and power heads). The GNNs are size-agnostic: any M, K, N runs.

Public API
----------
* :func:`load_gnn_weights`, :func:`save_gnn_weights`, :func:`default_weights_path`
* :func:`gnn_pilot_assignment` (Pilot-GNN or STS pilot head: colour, tau_p, soft X)
* :func:`gnn_power` (DTS-Power-GNN for one subframe), :func:`sts_power` (STS power head)
* :func:`gnn_allocator`: the ``comm.power: gnn`` entry of the power registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from netsim.comm.power.gnn_fast import (
    copilot_term_fast,
    pilot_head_fast,
    pilot_head_plan,
    pilot_plan,
    power_activation_fast,
    power_branch_fast,
    power_forward_fast,
    power_graph_fast,
    power_plan,
    sts_forward_fast,
)
from netsim.comm.power.gnn_layers import (
    GNNArch,
    NumpyOps,
    branch_t,
    copilot_names,
    pilot_bn_keys,
    pilot_layer_names,
    power_bn_keys,
    power_layer_names,
    readout_n_names,
    readout_n_params,
    readout_n_t,
    ssf_features,
)

__all__ = [
    "FORMAT",
    "FORMAT_ERR_VAR",
    "FAST_DTYPE",
    "GNNWeights",
    "GNNWeightsError",
    "PilotDecision",
    "load_gnn_weights",
    "save_gnn_weights",
    "default_weights_path",
    "gnn_pilot_assignment",
    "gnn_power",
    "sts_power",
    "gnn_allocator",
    "expected_params",
    "PILOT_ROUNDINGS",
    "conflict_free_colour",
]

FORMAT = "netsim-gnn-1"
#: format of a file whose DTS-Power-GNN reads the error variance (``GNNArch.err_var``): a fifth
#: edge feature and a 5-column first layer; files without it keep :data:`FORMAT`
FORMAT_ERR_VAR = "netsim-gnn-2"
_FORMATS = (FORMAT, FORMAT_ERR_VAR)
#: dtype of the forward passes in the simulator and the reproduction (float32 is about twice as
#: fast; the public functions default to float64, the reference that torch is checked against)
FAST_DTYPE = np.float32
_OPS = NumpyOps()
_REQUIRED = {"dts": ("pilot", "power"), "sts": ("sts",)}


class GNNWeightsError(ValueError):
    """A GNN weights file is missing or malformed (the message names the file and the fault)."""


@dataclass
class GNNWeights:
    """A loaded weights file.

    framework : "dts" or "sts"; archs : {model name: GNNArch};
    params : {model name: {param name: ndarray float64}}; meta : the file's JSON metadata;
    path : where it was loaded from (recorded in the run's meta.json).
    """

    framework: str
    archs: dict[str, GNNArch]
    params: dict[str, dict[str, np.ndarray]]
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        """Pickled (and deep-copied) without :attr:`cache`: its plans and workspaces hold views
        into their own buffers, which a pickle would turn into separate copies; they are
        rebuilt on demand."""
        state = self.__dict__.copy()
        state["cache"] = {}
        return state

    def pilot_plan(self, model: str, n_ap: int, n_ue: int, n_ps: int, dtype=np.float64,
                   readout_t: float = 0.0) -> list[dict]:
        """Folded matrices of ``model`` for these sizes (:mod:`gnn_fast`), built once;
        ``readout_t`` != 0: the power readout at t = log2(N / readout_n_ref)."""
        key = ("pilot", model, n_ap, n_ue, n_ps, np.dtype(dtype), float(readout_t))
        if key not in self.cache:
            ps = self.params[model]
            if readout_t != 0.0:
                ps = readout_n_params(ps, self.archs[model], float(readout_t))
            self.cache[key] = pilot_plan(ps, self.archs[model], n_ap, n_ue, n_ps, dtype)
        return self.cache[key]

    def pilot_head_plan(self, model: str, n_ap: int, n_ue: int, n_ps: int, dtype=np.float64) -> dict:
        """Folded matrices and workspace of ``model``'s pilot head for these sizes
        (:func:`gnn_fast.pilot_head_plan`), built once."""
        key = ("pilot", model, n_ap, n_ue, n_ps, np.dtype(dtype), "head")
        hp = self.cache.get(key)
        if hp is None:
            hp = self.cache[key] = pilot_head_plan(self.params[model], self.archs[model], n_ap, n_ue, n_ps, dtype)
        return hp

    def power_plan(self, n_ue: int, dtype=np.float64) -> list[dict]:
        key = ("power", n_ue, np.dtype(dtype))
        if key not in self.cache:
            self.cache[key] = power_plan(self.params["power"], self.archs["power"], n_ue, dtype)
        return self.cache[key]

    def power_graph(self, assoc: np.ndarray, dtype=np.float64) -> dict:
        """AN graph of ``assoc`` (:func:`gnn_fast.power_graph_fast`); the last one is kept, so
        that the subframes of a frame (one association) build it once."""
        key = (np.asarray(assoc, bool).tobytes(), assoc.shape, np.dtype(dtype))
        last = self.cache.get("power_graph")
        if last is None or last[0] != key:
            last = (key, power_graph_fast(assoc, dtype))
            self.cache["power_graph"] = last
        return last[1]

    @property
    def power_err_var(self) -> bool:
        """True when the DTS-Power-GNN reads the error variance err_var (``GNNArch.err_var``)."""
        arch = self.archs.get("power")
        return bool(arch is not None and arch.err_var)

    @property
    def snr_ref(self) -> float:
        return float(self.meta["features"]["snr_ref"])

    @property
    def n_ant_ref(self) -> float | None:
        """``meta["features"]["n_ant_ref"]``: antenna count the pilot/STS features are scaled
        to (None: the features do not depend on N)."""
        v = self.meta.get("features", {}).get("n_ant_ref")
        return None if v is None else float(v)

    @property
    def readout_n_ref(self) -> float | None:
        """``meta["features"]["readout_n_ref"]``: N_ref of the STS power readout's antenna term
        (None: no term, the readout does not depend on N)."""
        v = self.meta.get("features", {}).get("readout_n_ref")
        return None if v is None else float(v)

    def readout_t(self, n_ant: int | None) -> float:
        """t = log2(N / readout_n_ref) of the power readout (0 without the term or without N)."""
        ref = self.readout_n_ref
        if ref is None or n_ant is None:
            return 0.0
        if not n_ant > 0:
            raise ValueError(f"antennas per AP must be > 0 for the STS readout term, got {n_ant!r}")
        return float(readout_n_t(n_ant, ref, self.readout_n_range))

    @property
    def readout_n_range(self) -> tuple[float, float] | None:
        """``meta["features"]["readout_n_range"]``: [t_lo, t_hi] that t = log2(N / readout_n_ref)
        is clipped to (None: not clipped)."""
        v = self.meta.get("features", {}).get("readout_n_range")
        return None if v is None else (float(v[0]), float(v[1]))

    def lsf_scale(self, n_ant: int | None) -> float:
        """Factor on beta p_u / sigma^2 in the STS power head's features: N / n_ant_ref when the
        file has ``n_ant_ref`` and N is given, else 1."""
        ref = self.n_ant_ref
        return 1.0 if ref is None or n_ant is None else float(n_ant) / ref

    @property
    def rounding(self) -> str:
        """Test-phase pilot rounding of this file (``meta["pilot_rounding"]``, default argmax)."""
        return str(self.meta.get("pilot_rounding", "argmax"))

    def with_rounding(self, rounding: str) -> GNNWeights:
        """The same networks with another test-phase pilot rounding (:data:`PILOT_ROUNDINGS`)."""
        if rounding not in PILOT_ROUNDINGS:
            raise ValueError(f"pilot rounding {rounding!r}; allowed: {PILOT_ROUNDINGS}")
        return GNNWeights(self.framework, self.archs, self.params,
                          {**self.meta, "pilot_rounding": rounding}, self.path)

    def without_copilot(self) -> GNNWeights:
        """The same networks with the STS co-pilot readout and its power branch removed
        (``GNNArch.copilot`` off, their arrays dropped; every other array as it is); ``self``
        when the file has no such term."""
        arch = self.archs.get("sts")
        if arch is None or not arch.copilot:
            return self
        extra = set(copilot_names(arch))
        ps = {k: v for k, v in self.params["sts"].items() if k not in extra}
        return GNNWeights(self.framework, {**self.archs, "sts": replace(arch, copilot=False, branch=0)},
                          {**self.params, "sts": ps}, dict(self.meta), self.path)

    @property
    def pilot_model(self) -> str:
        return "pilot" if self.framework == "dts" else "sts"

    def describe(self) -> dict[str, Any]:
        """Provenance for meta.json: path, framework, training scenario and hash."""
        tr = self.meta.get("training", {})
        return {"path": self.path, "framework": self.framework,
                "trained_on": tr.get("scenario"), "scenario_hash": tr.get("scenario_hash"),
                "samples": tr.get("samples"), "pilot_rounding": self.rounding,
                "models": {k: a.to_dict() for k, a in self.archs.items()}}


def expected_params(arch: GNNArch) -> dict[str, tuple[int, ...]]:
    """Names and shapes every exported model of ``arch`` must contain (BN folded)."""
    if arch.kind == "power":
        shapes, bn = power_layer_names(arch), power_bn_keys(arch)
    else:
        shapes, bn = pilot_layer_names(arch), pilot_bn_keys(arch)
    for key, ch in bn.items():
        shapes[key + ".scale"] = (ch,)
        shapes[key + ".shift"] = (ch,)
    return shapes


def default_weights_path(framework: str) -> Path:
    """Shipped weights trained on the umi_cellfree defaults (``netsim/data/<fw>_gnn.npz``)."""
    if framework not in _REQUIRED:
        raise ValueError(f"framework {framework!r}; allowed: 'dts', 'sts'")
    return _data_dir() / f"{framework}_gnn.npz"


@lru_cache(maxsize=1)
def _data_dir() -> Path:
    """The package's data folder (importlib.resources costs ~1 ms a call: looked up once)."""
    return Path(str(resources.files("netsim") / "data"))


def save_gnn_weights(path: str | Path, weights: GNNWeights) -> None:
    """Write ``weights`` as an npz (see the module docstring for the layout)."""
    meta = dict(weights.meta)
    err_var = any(a.err_var for a in weights.archs.values())
    meta.update(format=FORMAT_ERR_VAR if err_var else FORMAT, framework=weights.framework,
                models={k: a.to_dict() for k, a in weights.archs.items()})
    arrays = {f"{m}/{n}": np.asarray(v, dtype=np.float64)
              for m, ps in weights.params.items() for n, v in ps.items()}
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(Path(path), **arrays)


def load_gnn_weights(path: str | Path) -> GNNWeights:
    """Load and validate a weights file; every fault raises :class:`GNNWeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise GNNWeightsError(f"GNN weights file {path}: not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:  # zip/npy format errors of every kind
        raise GNNWeightsError(f"GNN weights file {path}: not a readable .npz ({exc})") from None
    if "__meta__" not in data:
        raise GNNWeightsError(f"GNN weights file {path}: no __meta__ entry (not a netsim GNN file)")
    try:
        meta = json.loads(str(data.pop("__meta__")))
    except json.JSONDecodeError as exc:
        raise GNNWeightsError(f"GNN weights file {path}: __meta__ is not JSON ({exc})") from None
    if meta.get("format") not in _FORMATS:
        raise GNNWeightsError(f"GNN weights file {path}: format {meta.get('format')!r}, expected one of {_FORMATS}")
    fw = meta.get("framework")
    if fw not in _REQUIRED:
        raise GNNWeightsError(f"GNN weights file {path}: framework {fw!r}; allowed: 'dts', 'sts'")
    try:
        snr = float(meta["features"]["snr_ref"])
    except (KeyError, TypeError, ValueError):
        raise GNNWeightsError(f"GNN weights file {path}: features.snr_ref missing") from None
    if not np.isfinite(snr) or snr <= 0:
        raise GNNWeightsError(f"GNN weights file {path}: features.snr_ref = {snr} must be > 0")
    n_ref = meta["features"].get("n_ant_ref")
    if n_ref is not None and not (isinstance(n_ref, (int, float)) and np.isfinite(n_ref) and n_ref > 0):
        raise GNNWeightsError(f"GNN weights file {path}: features.n_ant_ref = {n_ref!r} must be a number > 0")
    r_ref = meta["features"].get("readout_n_ref")
    if r_ref is not None and not (isinstance(r_ref, (int, float)) and not isinstance(r_ref, bool)
                                  and np.isfinite(r_ref) and r_ref > 0):
        raise GNNWeightsError(f"GNN weights file {path}: features.readout_n_ref = {r_ref!r} must be a number > 0")
    r_rng = meta["features"].get("readout_n_range")
    if r_rng is not None and not (r_ref is not None and isinstance(r_rng, list) and len(r_rng) == 2
                                  and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                          and np.isfinite(x) for x in r_rng)
                                  and r_rng[0] <= 0 <= r_rng[1]):
        raise GNNWeightsError(f"GNN weights file {path}: features.readout_n_range = {r_rng!r} must be "
                              "[t_lo, t_hi] with t_lo <= 0 <= t_hi, next to features.readout_n_ref")
    if r_ref is not None and fw != "sts":
        raise GNNWeightsError(f"GNN weights file {path}: features.readout_n_ref is for an STS file, "
                              f"this one is {fw!r}")
    if meta.get("pilot_rounding", "argmax") not in PILOT_ROUNDINGS:
        raise GNNWeightsError(f"GNN weights file {path}: pilot_rounding {meta.get('pilot_rounding')!r}; "
                              f"allowed: {PILOT_ROUNDINGS}")
    archs: dict[str, GNNArch] = {}
    params: dict[str, dict[str, np.ndarray]] = {}
    for name in _REQUIRED[fw]:
        try:
            arch = GNNArch(**meta["models"][name])
        except (KeyError, TypeError, ValueError) as exc:
            raise GNNWeightsError(f"GNN weights file {path}: model {name!r} missing or bad architecture ({exc})") from None
        ps = {}
        shapes = expected_params(arch)
        extra = readout_n_names(arch) if arch.kind == "sts" else {}
        if r_ref is not None:
            shapes.update(extra)
        else:
            stray = [f"{name}/{n}" for n in extra if f"{name}/{n}" in data]
            if stray:
                raise GNNWeightsError(f"GNN weights file {path}: array {stray[0]!r} present but "
                                      "features.readout_n_ref missing")
        for pname, shape in shapes.items():
            key = f"{name}/{pname}"
            if key not in data:
                raise GNNWeightsError(f"GNN weights file {path}: array {key!r} missing")
            arr = np.asarray(data[key], dtype=np.float64)
            if arr.shape != shape:
                raise GNNWeightsError(f"GNN weights file {path}: array {key!r} has shape {arr.shape}, expected {shape}")
            if not np.all(np.isfinite(arr)):
                raise GNNWeightsError(f"GNN weights file {path}: array {key!r} has non-finite values")
            ps[pname] = arr
        if arch.err_var and meta["format"] != FORMAT_ERR_VAR:
            raise GNNWeightsError(f"GNN weights file {path}: model {name!r} has the err_var input but the file's "
                                  f"format is {meta['format']!r}; a file with it is {FORMAT_ERR_VAR!r}")
        archs[name], params[name] = arch, ps
    if meta["format"] == FORMAT_ERR_VAR and not any(a.err_var for a in archs.values()):
        raise GNNWeightsError(f"GNN weights file {path}: format {FORMAT_ERR_VAR!r} but no model has the "
                              f"err_var input (a file without it is {FORMAT!r})")
    return GNNWeights(fw, archs, params, meta, str(path))


@lru_cache(maxsize=4)
def _default_path_str(framework: str) -> str:
    return str(default_weights_path(framework))


@lru_cache(maxsize=8)
def _cached(path: str, mtime: float) -> GNNWeights:
    return load_gnn_weights(path)


def resolve_weights(weights: GNNWeights | str | Path | None, framework: str) -> GNNWeights:
    """``weights`` itself, the file it names (cached), or the shipped file of ``framework``."""
    if isinstance(weights, GNNWeights):
        w = weights
    else:  # one stat per call (the engine resolves its weights every subframe)
        p = os.fspath(weights) if weights else _default_path_str(framework)
        try:
            mtime = os.stat(p).st_mtime
        except OSError:  # missing: load_gnn_weights names the file
            mtime = -1.0
        w = _cached(p, mtime)
    if w.framework != framework:
        raise GNNWeightsError(f"GNN weights file {w.path}: framework {w.framework!r}, "
                              f"but a {framework!r} model is needed here")
    return w


@dataclass
class PilotDecision:
    """Pilot-GNN output of one frame.

    colour : [K] int, PS of each UE relabelled to 0..tau_p-1 (empty rows of X~ removed);
    tau_p : int; x_soft : [S, K] soft assignment (columns sum to 1); logits : [S, K].
    """

    colour: np.ndarray
    tau_p: int
    x_soft: np.ndarray
    logits: np.ndarray


def _relabel(colour: np.ndarray) -> np.ndarray:
    """Non-negative ints relabelled to 0..n-1 in increasing order (= np.unique's inverse)."""
    used = np.zeros(int(colour.max()) + 1, dtype=bool)
    used[colour] = True
    return (np.cumsum(used) - 1)[colour].astype(np.int64)


def draw_random_features(arch: GNNArch, n_ue: int, rng: np.random.Generator | None) -> np.ndarray:
    """PS-UE input ``[S, K]``: z ~ U(0, 1) (fresh per call), zeros for the w/o-FE ablation."""
    n_ps = arch.n_ps or n_ue
    if not arch.random_features:
        return np.zeros((n_ps, n_ue))
    if rng is None:
        raise ValueError("the Pilot-GNN draws random features: give it a numpy Generator")
    return rng.uniform(0.0, 1.0, size=(n_ps, n_ue))  # [S, K]


def _sts_outputs(w: GNNWeights, model: str, beta, assoc, p_pilot_w, noise_w, z, dtype=np.float64,
                 n_ant: int | None = None, last_input: bool = False):
    """(power_logit [M, K], pilot_logit [S, K]) of one graph through the fast path; ``n_ant``
    (N) scales the pilot SNR feature of the power head's pass when the file has ``n_ant_ref``
    (:meth:`GNNWeights.lsf_scale`) and sets the power readout's antenna term when the file has
    ``readout_n_ref`` (:meth:`GNNWeights.readout_t`); the pilot logits always come from the
    unscaled features and never depend on N. ``last_input``: also return the power pass's
    last-layer AP-UE input D [K, M, d] (for the co-pilot readout, :func:`copilot_term_fast`);
    the power logits are then WITHOUT the co-pilot term."""
    beta = np.asarray(beta, float)
    n_ap, n_ue = beta.shape
    z = np.asarray(z, float)  # [S, K]
    d0 = np.empty((n_ue, n_ap, 2), dtype)  # [K, M, 2] channel-last UE-major lsf_features
    snr_p = p_pilot_w / noise_w
    d0[:, :, 0] = np.log10(np.maximum(beta.T * snr_p, 1e-30)) * (10.0 / 30.0)
    d0[:, :, 1] = np.asarray(assoc, float).T
    e0 = z.T[:, :, None].astype(dtype)  # [K, S, 1]
    # the readout's antenna term (readout_n_ref) moves only the power logits: one pass
    plan = w.pilot_plan(model, n_ap, n_ue, z.shape[0], dtype, w.readout_t(n_ant))
    out = sts_forward_fast(plan, w.archs[model], d0, e0, last_input=last_input)  # [K, M], [K, S](, D)
    p_logit, x_logit = out[0], out[1]
    d_last = out[2] if last_input else None
    scale = w.lsf_scale(n_ant)
    if scale != 1.0:  # the power head sees the array-gain-scaled pilot SNR: a second pass
        d0[:, :, 0] = np.log10(np.maximum(beta.T * (snr_p * scale), 1e-30)) * (10.0 / 30.0)
        out = sts_forward_fast(plan, w.archs[model], d0, e0, last_input=last_input)
        p_logit = out[0]
        d_last = out[2] if last_input else None
    if last_input:
        return p_logit.T.astype(float), x_logit.T.astype(float), d_last
    return p_logit.T.astype(float), x_logit.T.astype(float)


#: test-phase rounding rules of the pilot head (see :func:`_round_pilots`)
PILOT_ROUNDINGS = ("argmax", "conflict_free", "reuse", "dsatur")


def conflict_free_colour(x: np.ndarray, assoc: np.ndarray, *, reuse: bool,
                         order: str = "confidence") -> np.ndarray:
    """Sequential, conflict-aware rounding of a soft pilot assignment.

    UEs are visited one at a time; each takes, among the pilots that no already-decided UE
    sharing an AP with it holds (spec 4.1's conflict graph: a_mk = a_mi = 1 for some m), the one
    with the largest ``x[s, k]``: the Pilot-GNN decides WHICH pilot, the rule only keeps the
    result conflict-free.

    reuse : prefer pilots already held by some UE (a new pilot opens only when none of those is
        allowed), which keeps tau_p near a greedy colouring's; False only removes the conflicts;
    order : "confidence" visits UEs in decreasing ``max_s x[s, k]``; "saturation" visits next
        the undecided UE with the most distinct pilots among its conflicting, decided UEs, then
        the most conflicts, then the highest confidence (the DSatur order of spec 4.1).

    When every pilot is blocked (S < K, the Fix(tau_p) ablations), the pilot with the fewest
    conflicting holders (then the largest x) is taken.

    x : [S, K] soft assignment (columns sum to 1); assoc : [M, K] bool.
    Returns colour [K] int in 0..S-1 (not relabelled).
    """
    if order not in ("confidence", "saturation"):
        raise ValueError(f"order {order!r}; allowed: 'confidence', 'saturation'")
    n_ps, n_ue = x.shape
    a = np.asarray(assoc, float)  # [M, K]
    share = (a.T @ a) > 0  # [K, K] UEs sharing an AP
    np.fill_diagonal(share, False)
    if n_ps >= n_ue:  # a free pilot always exists (<= K - 1 conflicts): the scalar loop
        return _colour_scalar(x, share, reuse, order)
    return _colour_numpy(x, share, reuse, order)


def _colour_scalar(x: np.ndarray, share: np.ndarray, reuse: bool, order: str) -> np.ndarray:
    """:func:`conflict_free_colour` for S >= K with Python ints as bit sets (about 10x faster
    than the array loop at K = 42); the same visiting order, ties and choices as
    :func:`_colour_numpy` (tested equal). The saturation order is :func:`_colour_dsatur_bits`;
    in confidence order only undecided UEs' blocked sets are kept up to date (a decided UE's are
    never read again)."""
    if order == "saturation":
        return _colour_dsatur_bits(x, share, reuse)
    n_ps, n_ue = x.shape
    conf = x.max(axis=0)  # [K]
    pref = np.argsort(-x.T, axis=1, kind="stable").tolist()  # [K][S] pilots by decreasing x
    deg = share.sum(axis=1)  # [K]
    cols = np.nonzero(share)[1].tolist()  # row-major: the conflicting UEs of UE 0, 1, ...
    ends = np.cumsum(deg).tolist()
    nbrs = [cols[e - n:e] for e, n in zip(ends, deg.tolist(), strict=True)]
    blocked = [0] * n_ue  # bit s set: a conflicting, decided UE holds pilot s
    opened = 0
    colour = [-1] * n_ue
    for u in np.argsort(-conf, kind="stable").tolist():
        bu = blocked[u]
        s = -1
        if reuse:
            allowed = opened & ~bu  # opened pilots no conflicting, decided UE holds
            if allowed:
                for c in pref[u]:
                    if (allowed >> c) & 1:
                        s = c
                        break
        if s < 0:
            for c in pref[u]:
                if not (bu >> c) & 1:
                    s = c
                    break
        colour[u] = s
        bit = 1 << s
        opened |= bit
        for j in nbrs[u]:
            if colour[j] < 0:
                blocked[j] |= bit
    return np.asarray(colour, dtype=np.int64)


def _colour_dsatur_bits(x: np.ndarray, share: np.ndarray, reuse: bool) -> np.ndarray:
    """:func:`conflict_free_colour` in saturation (DSatur) order for S >= K, on Python-int bit
    sets over UE *positions* (UEs ranked by the static key degree * K + confidence, descending,
    ties to the smaller UE index: the lowest set bit of a set of positions is its best UE).

    * ``has[s]``: positions with a decided conflicting UE on pilot s (bit p of ``has[s]`` = pilot
      s is blocked for p), so a decision updates every neighbour at once: the neighbours for
      which s is new are ``nbr[p] & undecided & ~has[s]``;
    * the saturations (distinct blocked pilots) are bit-sliced counters, ``planes[i]`` = bit i
      of every position's count: adding 1 to a set of positions is a ripple carry over ~log2(S)
      planes, and the most saturated undecided position is found by walking the planes from
      the top (keep the candidates with the bit set when any has it), then the lowest bit.

    The same choices as the array loop :func:`_colour_numpy`, ties included (tested)."""
    n_ps, n_ue = x.shape
    conf = x.max(axis=0)  # [K]
    deg = share.sum(axis=1)  # [K]
    static = deg * float(n_ue) + conf  # [K] (deg < K, conf <= 1: lexicographic)
    order = np.lexsort((np.arange(n_ue), -static))  # [K] position -> UE
    packed = np.packbits(share[order][:, order], axis=1, bitorder="little")  # [K, ceil(K / 8)]
    nb = packed.shape[1]
    raw = packed.tobytes()
    nbr = [int.from_bytes(raw[i * nb:(i + 1) * nb], "little") for i in range(n_ue)]  # conflict sets
    srt = np.argsort(-x.T[order], axis=1, kind="stable")  # [K, S] pilots by decreasing x, per position
    if n_ps <= 256:  # bytes iterate as small ints, cheaper to build than nested lists
        pb = srt.astype(np.uint8).tobytes()
        pref = [pb[i * n_ps:(i + 1) * n_ps] for i in range(n_ue)]
    else:
        pref = srt.tolist()
    und = (1 << n_ue) - 1  # undecided positions
    planes: list[int] = []  # bit-sliced saturation counters
    has = [0] * n_ps
    opened = 0  # bit s: some UE holds pilot s
    colour = [0] * n_ue  # per position
    for _ in range(n_ue):
        cand = und
        for pl in reversed(planes):  # most saturated undecided positions
            t = cand & pl
            if t:
                cand = t
        low = cand & -cand
        p = low.bit_length() - 1
        und ^= low
        s = -1
        if reuse and opened:  # the preferred opened pilot that no decided neighbour holds
            for c in pref[p]:
                if (opened >> c) & 1 and not (has[c] >> p) & 1:
                    s = c
                    break
        if s < 0:  # the preferred pilot that no decided neighbour holds
            for c in pref[p]:
                if not (has[c] >> p) & 1:
                    s = c
                    break
        colour[p] = s
        opened |= 1 << s
        nbp = nbr[p]
        hs = has[s]
        carry = nbp & und & ~hs  # undecided neighbours for which s is a new blocked pilot: +1
        has[s] = hs | nbp
        i = 0
        while carry:
            if i == len(planes):
                planes.append(carry)
                break
            pl = planes[i]
            planes[i] = pl ^ carry
            carry &= pl
            i += 1
    out = np.empty(n_ue, dtype=np.int64)
    out[order] = colour
    return out


def _colour_numpy(x: np.ndarray, share: np.ndarray, reuse: bool, order: str) -> np.ndarray:
    """The array form of :func:`conflict_free_colour` (any S, incl. S < K)."""
    n_ps, n_ue = x.shape
    conf = x.max(axis=0)  # [K] in (0, 1]
    colour = -np.ones(n_ue, dtype=np.int64)
    cnt = np.zeros((n_ps, n_ue), dtype=np.int64)  # [S, K] decided conflicting UEs on pilot s
    opened = np.zeros(n_ps, dtype=bool)
    if order == "saturation":
        # key = saturation * K^2 + degree * K + confidence (confidence < 1 <= K: lexicographic)
        n_sat = np.zeros(n_ue)
        static = share.sum(axis=1) * float(n_ue) + conf  # [K]
        big = float(n_ue) ** 2
    else:
        seq = np.argsort(-conf, kind="stable")  # [K] most confident first
    for step in range(n_ue):
        if order == "saturation":
            u = int(np.argmax(np.where(colour < 0, n_sat * big + static, -np.inf)))
        else:
            u = int(seq[step])
        blocked = cnt[:, u]  # [S]
        free = blocked == 0
        cand = free & opened if reuse else free
        if not cand.any():
            cand = free
        if cand.any():
            s = int(np.argmax(np.where(cand, x[:, u], -np.inf)))
        else:  # fewer pilots than needed: least-conflicting pilot, then the largest x
            s = int(np.lexsort((-x[:, u], blocked))[0])
        colour[u] = s
        opened[s] = True
        nb = share[u]  # [K] UEs in conflict with u
        if order == "saturation":
            n_sat += nb & (cnt[s] == 0)  # s is a new pilot in those UEs' neighbourhoods
        cnt[s, nb] += 1
    return colour


def _round_pilots(logit: np.ndarray, n_ps_fixed: int, rounding: str = "argmax",
                  assoc: np.ndarray | None = None):
    """softmax over s (29), then the rounding rule, empty rows removed:
    (x [S, K], colour [K], tau_p). ``argmax``: each column's argmax (spec 5.5);
    ``conflict_free`` / ``reuse`` / ``dsatur``: :func:`conflict_free_colour` in confidence order
    without / with pilot reuse, or in DSatur order with reuse (needs ``assoc`` [M, K])."""
    zz = np.exp(logit - logit.max(axis=0, keepdims=True))
    x = zz / zz.sum(axis=0, keepdims=True)  # [S, K]
    if rounding == "argmax":
        raw = np.argmax(x, axis=0)
    elif rounding in ("conflict_free", "reuse", "dsatur"):
        if assoc is None:
            raise ValueError(f"pilot rounding {rounding!r} needs the association matrix")
        raw = conflict_free_colour(x, assoc, reuse=rounding != "conflict_free",
                                   order="saturation" if rounding == "dsatur" else "confidence")
    else:
        raise ValueError(f"pilot rounding {rounding!r}; allowed: {PILOT_ROUNDINGS}")
    colour = _relabel(raw)
    tau_p = int(n_ps_fixed) if n_ps_fixed else int(colour.max()) + 1
    return x, colour, tau_p


def gnn_pilot_assignment(
    weights: GNNWeights | str | Path | None,
    beta: np.ndarray,
    assoc: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    rng: np.random.Generator | None,
    *,
    framework: str = "dts",
    z: np.ndarray | None = None,
    dtype=np.float64,
    rounding: str | None = None,
    n_ant: int | None = None,
) -> PilotDecision:
    """Pilot length and assignment from the Pilot-GNN (DTS) or the STS pilot head (spec 5.2/5.5).

    Parameters
    ----------
    beta : [M, K] linear LSF gains; assoc : [M, K] bool; p_pilot_w, noise_w : W;
    rng : generator for the random features z ~ U(0, 1) [S, K] (or give ``z`` directly).

    Test-phase rounding: ``rounding`` (None = the weights file's ``meta["pilot_rounding"]``,
    "argmax" when absent) is one of :data:`PILOT_ROUNDINGS`; "argmax" is spec 5.5 (each
    column's argmax gets the 1), the others are :func:`conflict_free_colour`. Empty rows are
    removed and tau_p is the number of rows left (1 <= tau_p <= S). ``dtype`` of the forward
    pass (float64 default; float32 is faster, see :mod:`netsim.comm.power.gnn_fast`).
    ``n_ant`` : antennas per AP (N); it only moves the STS power head (files with
    ``features.n_ant_ref``), never the pilots.
    """
    w = resolve_weights(weights, framework)
    model = w.pilot_model
    n_ue = beta.shape[1]
    if z is None:
        z = draw_random_features(w.archs[model], n_ue, rng)
    logit = _pilot_logits(w, model, beta, assoc, p_pilot_w, noise_w, z, dtype)
    x, colour, tau_p = _round_pilots(logit, w.archs[model].n_ps, rounding or w.rounding, assoc)
    return PilotDecision(colour, tau_p, x, logit)


def _pilot_logits(w: GNNWeights, model: str, beta, assoc, p_pilot_w, noise_w, z, dtype=np.float64) -> np.ndarray:
    """pilot_logit [S, K] of one graph through the pilot-head pass (:func:`gnn_fast.pilot_head_fast`:
    the PS-UE output of :func:`_sts_outputs` without the power head's last layer; never depends
    on N)."""
    beta = np.asarray(beta, float)
    z = np.asarray(z, float)  # [S, K]
    hp = w.pilot_head_plan(model, beta.shape[0], beta.shape[1], z.shape[0], dtype)
    lsf_ln = np.log(np.maximum(beta * (p_pilot_w / noise_w), 1e-30))  # [M, K]
    return pilot_head_fast(hp, lsf_ln, assoc, z)


def power_graph(ghat: np.ndarray, assoc: np.ndarray, snr: float, err_var: np.ndarray | None = None):
    """AN-indexed Power-GNN inputs of one subframe (spec 3.7 "AN-indexed view").

    ghat : [M, K, K] complex; assoc : [M, K] bool; snr : P_max / sigma^2;
    err_var : None, or [M, K] unknown-part variances (the fifth feature of an err_var model).
    Returns f0 [1, A, K, 4 or 5], an_k [1, A, K] one-hot of k(a), m_idx [A], k_idx [A] (AP-major).
    """
    m_idx, k_idx = np.nonzero(assoc)
    g_an = ghat[m_idx, k_idx, :][None]  # [1, A, K]
    an_k = np.eye(assoc.shape[1])[k_idx][None]  # [1, A, K]
    err = None if err_var is None else np.asarray(err_var, float)[m_idx, :][None]  # [1, A, K] err_var[m(a), i]
    f0 = ssf_features(_OPS, g_an.real, g_an.imag, assoc[m_idx, :][None].astype(float), snr, err)
    return f0, an_k, m_idx, k_idx


def gnn_power(
    weights: GNNWeights | str | Path | None,
    ghat: np.ndarray,
    assoc: np.ndarray,
    noise_w: float,
    p_max_w: float | np.ndarray,
    *,
    err_var: np.ndarray | None = None,
    dtype=np.float64,
) -> np.ndarray:
    """DTS-Power-GNN for one subframe (eq. (12)), batched over leading axes (one forward pass
    for all of them when ``assoc`` is a single [M, K] matrix, e.g. the T subframes of a frame).

    Parameters
    ----------
    ghat : [..., M, K, K] complex, estimated equivalent channels (eq. (11))
    assoc : [..., M, K] bool; noise_w : sigma^2 (W); p_max_w : float or [..., M] (W).
    The SNR scale of the features is max(P_max) / sigma^2 of THIS deployment (the file's
    ``features.snr_ref`` records the training value). dtype : float64 (default) or float32
    forward pass (:mod:`netsim.comm.power.gnn_fast`).
    err_var : [..., M, K] unknown-part variances (c_mk where a_mk = 1, beta_mk elsewhere; the
    ``err_var`` WMMSE gets), or [M, K] shared by every leading index. Required when the file's
    Power-GNN has the err_var input (:attr:`GNNWeights.power_err_var`); unread otherwise, so a
    file without it computes exactly what it did before.

    Returns
    -------
    power_w : [..., M, K] float64 (W), zero where a_mk = 0, sum_k p_mk <= P_max.
    """
    w = resolve_weights(weights, "dts")
    if not w.power_err_var:
        err_var = None
    elif err_var is None:
        raise ValueError(f"GNN weights file {w.path}: its Power-GNN reads the estimation-error variance; "
                         "pass err_var [M, K]")
    if ghat.ndim == 3 and np.ndim(assoc) == 2:  # one subframe (the engine's call): no batching
        m, k = ghat.shape[:2]
        if np.ndim(p_max_w) == 0:  # one budget for every AP (np.broadcast_to costs ~5 us)
            top = float(p_max_w)
            pm = np.full(m, top)
        else:
            pm = np.broadcast_to(np.asarray(p_max_w, float), (m,))
            top = float(pm.max())
        snr = top / noise_w if top > 0 else w.snr_ref
        logit, m_idx, k_idx = power_forward_fast(w.power_plan(k, dtype), ghat, assoc, snr, dtype,
                                                 w.power_graph(assoc, dtype), err_var)
        if not m_idx.size:
            return np.zeros((m, k))
        return power_activation_fast(logit, m_idx, k_idx, (m, k), pm)
    lead = ghat.shape[:-3]
    m, k = ghat.shape[-3:-1]
    g = np.asarray(ghat).reshape((-1, m, k, k))
    a = np.broadcast_to(np.asarray(assoc, bool), lead + (m, k)).reshape((-1, m, k))
    pm = np.broadcast_to(np.asarray(p_max_w, float), lead + (m,)).reshape((-1, m))
    snr = float(np.max(pm)) / noise_w if np.max(pm) > 0 else w.snr_ref
    ev = None
    if err_var is not None:
        ev = np.broadcast_to(np.asarray(err_var, float), lead + (m, k)).reshape((-1, m, k))  # [B, M, K]
    out = np.zeros(g.shape[:3])
    plan = w.power_plan(k, dtype)
    if np.ndim(assoc) == 2 and g.shape[0] > 1:  # one association: ONE batched pass, one graph
        logit, m_idx, k_idx = power_forward_fast(plan, g, a[0], snr, dtype, w.power_graph(a[0], dtype), ev)
        if m_idx.size:
            out = power_activation_fast(logit, m_idx, k_idx, (m, k), pm)  # [B, M, K]
        return out.reshape(lead + (m, k))
    for b in range(g.shape[0]):  # the AN graph differs per association
        logit, m_idx, k_idx = power_forward_fast(plan, g[b], a[b], snr, dtype, w.power_graph(a[b], dtype),
                                                 None if ev is None else ev[b])
        if m_idx.size:
            out[b] = power_activation_fast(logit, m_idx, k_idx, (m, k), pm[b])
    return out.reshape(lead + (m, k))


def sts_power(
    weights: GNNWeights | str | Path | None,
    beta: np.ndarray,
    assoc: np.ndarray,
    p_pilot_w: float,
    noise_w: float,
    p_max_w: float | np.ndarray,
    rng: np.random.Generator | None,
    *,
    z: np.ndarray | None = None,
    dtype=np.float64,
    rounding: str | None = None,
    n_ant: int | None = None,
    pilots: np.ndarray | None = None,
) -> tuple[np.ndarray, PilotDecision]:
    """STS-GNN (eq. (14)): one power matrix ``[M, K]`` for the frame and its pilot decision.

    The power head of the paper's STS-GNN never sees the PS-UE states (eq. (25)); z only
    affects the pilot head. A file whose STS arch has ``copilot`` (this project's variant, see
    :mod:`netsim.comm.power.gnn_layers`) adds the co-pilot term of the frame's pilots to the
    power readout: those of the returned decision (after rounding), or ``pilots`` ([K] int,
    e.g. the J~-refined assignment) when given; ``pilots`` is unread by other files. Its power
    branch (``branch`` > 0) also reads N = ``n_ant`` (None: N = ``branch_n_ref``).
    ``rounding`` and ``n_ant`` as in :func:`gnn_pilot_assignment`.
    """
    w = resolve_weights(weights, "sts")
    n_ap, n_ue = beta.shape
    arch = w.archs["sts"]
    if z is None:
        z = draw_random_features(arch, n_ue, rng)
    outs = _sts_outputs(w, "sts", beta, assoc, p_pilot_w, noise_w, z, dtype, n_ant, last_input=arch.copilot)
    p_logit, logit = outs[0], outs[1]
    x, colour, tau_p = _round_pilots(logit, arch.n_ps, rounding or w.rounding, assoc)
    if arch.copilot:
        seen = colour if pilots is None else np.asarray(pilots, np.int64)
        if seen.shape != (n_ue,) or seen.min(initial=0) < 0:
            raise ValueError(f"pilots must be [K] = [{n_ue}] non-negative ints, got shape {seen.shape}")
        last = f"sts.{arch.layers - 1}."
        ps = w.params["sts"]
        extra = copilot_term_fast(ps[last + "V6"], ps[last + "V7"], outs[2], seen)  # [K, M]
        if arch.branch:
            extra = extra + power_branch_fast(ps, arch, outs[2], seen, branch_t(arch, n_ant))
        p_logit = p_logit + extra.T.astype(float)
    pm = np.broadcast_to(np.asarray(p_max_w, float), (n_ap,))
    m_idx, k_idx = np.nonzero(np.asarray(assoc, bool))
    power = power_activation_fast(p_logit[m_idx, k_idx], m_idx, k_idx, (n_ap, n_ue), pm)
    return power, PilotDecision(colour, tau_p, x, logit)


def gnn_allocator(
    ghat: np.ndarray,
    err_var: np.ndarray,
    assoc: np.ndarray,
    noise_w: float,
    p_max_w: float | np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    config: GNNWeights | str | Path | None = None,
):
    """``comm.power: gnn`` policy (registry signature; ``config`` = weights or their path,
    None = the shipped DTS weights), run in :data:`FAST_DTYPE`. ``err_var`` is an input of a
    Power-GNN with the err_var feature (:attr:`GNNWeights.power_err_var`) and unread otherwise;
    ``rng`` is not used (deterministic)."""
    from netsim.comm.power import PowerAllocation

    w = resolve_weights(config, "dts")
    power = gnn_power(w, ghat, assoc, noise_w, p_max_w, err_var=err_var, dtype=FAST_DTYPE)
    return PowerAllocation(power, 0, np.zeros(0), True, {"policy": "gnn", "weights": w.path})
