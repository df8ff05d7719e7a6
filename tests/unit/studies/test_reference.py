"""The generated reference pages are up to date with the code (regenerate with
``python -m netsim.reference``), and the check notices what it must notice."""

from __future__ import annotations

from netsim import reference


def test_reference_pages_are_up_to_date():
    problems = reference.check()
    assert not problems, "\n".join(problems) + "\n-> run: python -m netsim.reference"


def test_every_scenario_field_appears_in_the_scenario_page():
    from netsim.scenario.models import Scenario

    page = reference.scenario_page()
    for section, field in Scenario.model_fields.items():
        model = reference._models_in(field.annotation)
        for name in (model[0].model_fields if model else [section]):
            path = f"{section}.{name}" if model else section
            if model and reference.typing.get_origin(field.annotation) is list:
                path = f"{section}[].{name}"
            assert f"`{path}`" in page, path


def test_check_finds_undocumented_columns_events_and_stale_pages(tmp_path, monkeypatch):
    for name, text in reference.generate().items():
        (tmp_path / name).write_text(text)
    assert reference.check(tmp_path) == []
    (tmp_path / "tables.md").write_text("old")
    assert any("tables.md is out of date" in p for p in reference.check(tmp_path))
    frames = dict(reference.COLUMN_DOCS["frames"])
    del frames["t_s"]
    monkeypatch.setitem(reference.COLUMN_DOCS, "frames", frames)
    assert any("frames.t_s has no entry" in p for p in reference.check(tmp_path))


def test_emitted_event_kinds_finds_calls_in_source(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text('sim.event("brand_new", -1, "x")\nself.sim.event(\n  "other", 2)\n')
    assert set(reference.emitted_event_kinds(pkg)) == {"brand_new", "other"}
    # and the real package: every kind the engine logs today is documented
    assert {"replan", "outage", "sync_untrusted"} <= set(reference.emitted_event_kinds())
