"""The shipped STS networks with the readout's antenna term stripped: the plain networks that the
antenna-input and multi-size fine-tune tests start from (shared by test_finetune_mix and
test_readout_n_torch)."""

from __future__ import annotations

import json

from netsim.comm.power.gnn import GNNWeights, default_weights_path, load_gnn_weights


def plain_sts_weights(tmp_path=None):
    """The shipped STS networks without the readout's antenna term, without the co-pilot
    readout and its power branch (``GNNArch.copilot``), and without their fine-tune records
    (written to ``tmp_path`` / plain.npz when given: (weights, path))."""
    from netsim.comm.power.gnn import save_gnn_weights

    w = load_gnn_weights(default_weights_path("sts")).without_copilot()
    meta = json.loads(json.dumps(w.meta))
    for key in ("n_ant_ref", "readout_n_ref", "readout_n_range"):
        meta["features"].pop(key, None)
    for key in [k for k in meta if k.startswith("finetune_sts_mix")]:
        meta.pop(key)
    plain = GNNWeights("sts", w.archs, {"sts": {k: v for k, v in w.params["sts"].items()
                                                if not k.endswith("_dlog2n")}}, meta)
    if tmp_path is None:
        return plain
    path = tmp_path / "plain.npz"
    save_gnn_weights(path, plain)
    return load_gnn_weights(path), path
