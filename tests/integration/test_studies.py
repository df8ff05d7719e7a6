"""The bundled studies (scenarios/sweeps/): every full-size grid point validates, and each
study runs end to end at a reduced size (fewer frames, a 2-point grid, 1 replication)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import netsim
from netsim.sweep import plan_sweep, run_sweep

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "scenarios" / "sweeps").glob("*.yaml"))


def test_the_three_studies_are_bundled():
    assert {p.stem for p in STUDIES} >= {"sync_period", "mobility", "outage"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_full_size_point_validates(path, tmp_path):
    spec, _, tasks, done = plan_sweep(path, tmp_path / "out")
    n_points = 1
    for values in spec.grid.values():
        n_points *= len(values)
    assert len(tasks) == n_points * spec.replications and not any(done)
    assert len({t.seed for t in tasks}) == len(tasks)


REDUCED = {  # extra overrides that make each study a few CPU seconds (swap_iterations: the
    # Algorithm-2 swap matching of the sync plan dominates short runs of 9 and 36 APs)
    "sync_period": ["run.duration_s=3", "sync.swap_iterations=1"],
    # the crlb fidelity for the mobility study's sensing: MUSIC's two acquisition frames in
    # this room cost ~10 CPU-s per run, and isac_paper's MUSIC has its own engine tests
    "mobility": ["run.frames=3", "sensing.method=crlb"],
    "outage": ["run.frames=3", "sync.swap_iterations=1"],
}


@pytest.mark.parametrize("name", sorted(REDUCED))
def test_study_runs_at_reduced_size(name, tmp_path):
    source = REPO / "scenarios" / "sweeps" / f"{name}.yaml"
    data = yaml.safe_load(source.read_text())
    # keep two values of the first grid entry and the first of the others
    grid = {}
    for i, (k, v) in enumerate(data["grid"].items()):
        if isinstance(v, dict):
            items = list(v.items())[-2:] if i == 0 else list(v.items())[:1]
            grid[k] = dict(items)
        else:
            grid[k] = v[:2] if i == 0 else v[:1]
    data.update(grid=grid, replications=1, base=str((source.parent / data["base"]).resolve()))
    reduced = tmp_path / f"{name}.yaml"
    reduced.write_text(yaml.safe_dump(data, sort_keys=False))
    extra = REDUCED[name]
    result = run_sweep(reduced, workers=1, out=tmp_path / "out", progress=False, extra_set=extra)
    assert (result.summary.status == "finished").all(), result.summary.error.tolist()
    sw = netsim.load_sweep(tmp_path / "out")
    assert sw.frames.run_id.nunique() == 2
    assert list(sw.params) == list(grid)
    from netsim.plots import plot_sweep

    assert len(plot_sweep(tmp_path / "out", tmp_path / "plots")) == len(grid)
