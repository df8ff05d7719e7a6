"""analysis/finetune_gnn_n.py: the per-N fine-tune recipe of the shipped Table II files (torch)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from netsim.comm.power.gnn import default_weights_path, load_gnn_weights  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def _script():
    spec = importlib.util.spec_from_file_location("finetune_gnn_n", ROOT / "analysis" / "finetune_gnn_n.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dts_fine_tune_trains_the_power_gnn_only_and_records_its_stages(tmp_path):
    mod = _script()
    out1, out2 = tmp_path / "a.npz", tmp_path / "b.npz"
    common = ["--model", "dts", "--n-ant", "3", "--drops", "5", "--subframes", "1", "--epochs", "1",
              "--lr", "0.05", "--seed", "77"]
    assert mod.main([*common, "--out", str(out1)]) == 0
    assert mod.main([*common, "--out", str(out2), "--init", str(out1)]) == 0
    base, w1, w2 = (load_gnn_weights(p) for p in (default_weights_path("dts"), out1, out2))
    for k, v in base.params["pilot"].items():  # the pilot head is copied bit for bit
        assert np.array_equal(w2.params["pilot"][k], v)
    moved = max(float(np.abs(w1.params["power"][k] - v).max()) for k, v in base.params["power"].items())
    assert moved > 0  # one Adam step at lr 0.05 changes the Power-GNN
    assert w2.rounding == base.rounding
    # a second stage on top of the first keeps both records
    assert {"finetune_power_n3", "finetune_power_n3+"} <= set(w2.meta)
    assert w2.meta["finetune_power_n3+"]["init_from"] == str(out1)
    assert w2.meta["finetune_power_n3"]["drops"] == 5


def test_dts_fine_tune_can_widen_the_power_gnn_first(tmp_path):
    mod = _script()
    out = tmp_path / "w.npz"
    assert mod.main(["--model", "dts", "--n-ant", "3", "--drops", "4", "--subframes", "1", "--epochs", "1",
                     "--lr", "0.05", "--seed", "78", "--widen", "12", "--out", str(out)]) == 0
    base, wide = load_gnn_weights(default_weights_path("dts")), load_gnn_weights(out)
    assert wide.archs["power"].width == 12 and wide.archs["pilot"] == base.archs["pilot"]
    assert wide.params["power"]["pow.1.Us"].shape == (12, 12)
    assert wide.meta["finetune_power_n3"]["widened_to"] == 12
    with pytest.raises(SystemExit, match="DTS Power-GNN only"):
        mod.main(["--model", "sts", "--n-ant", "3", "--widen", "12", "--out", str(tmp_path / "s.npz")])


def test_dts_fine_tune_with_err_var_starts_from_the_same_function(tmp_path):
    """--err-var adds the error-variance input at zero weight, then trains it: the file has the
    feature (format 2), the pilot head is copied, and the new column has moved off zero."""
    from netsim.comm.power.gnn import FORMAT_ERR_VAR

    mod = _script()
    out, out2 = tmp_path / "e.npz", tmp_path / "e2.npz"
    common = ["--model", "dts", "--n-ant", "3", "--drops", "5", "--subframes", "1", "--epochs", "1",
              "--lr", "0.05", "--seed", "79", "--err-var"]
    assert mod.main([*common, "--out", str(out)]) == 0
    base, w = load_gnn_weights(default_weights_path("dts")), load_gnn_weights(out)
    assert w.power_err_var and w.meta["format"] == FORMAT_ERR_VAR
    assert w.params["power"]["pow.0.Us"].shape == (base.archs["power"].width, 5)
    assert np.abs(w.params["power"]["pow.0.Us"][:, 4]).max() > 0  # the new input got weight
    for k, v in base.params["pilot"].items():
        assert np.array_equal(w.params["pilot"][k], v)
    rec = w.meta["finetune_power_n3"]
    assert rec["err_var_input"] and rec["err_var_added"]
    assert mod.main([*common, "--init", str(out), "--out", str(out2)]) == 0  # already has it: kept
    assert not load_gnn_weights(out2).meta["finetune_power_n3+"]["err_var_added"]
    with pytest.raises(SystemExit, match="DTS Power-GNN only"):
        mod.main(["--model", "sts", "--n-ant", "3", "--err-var", "--out", str(tmp_path / "s.npz")])
