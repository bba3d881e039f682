"""What `snakemake --report` shows, without building a tree: every reported output of the table has a category
and a caption, Decision comes first, and the front page states morph1b.json's verdict."""
from __future__ import annotations

import json
import os
from pathlib import Path

import jinja2

from graphs import REPO
from morph.core.artifacts import report
from morph.workflow import pipeline, snakemake_report


def test_every_reported_output_has_one_category_and_a_caption(ci_cfg):
    outs = {o for n in pipeline.all_nodes(ci_cfg) for o in n.outs}
    reported = {o for o in outs if snakemake_report.reported(o)}
    assert set(snakemake_report.CATEGORY) == reported, "a category names a path the table does not write"
    for path in reported:
        marking = snakemake_report.marking(path, str(REPO))
        assert os.path.isfile(marking["caption"]), path
        assert marking["labels"]["result"].startswith(f"{Path(path).name}: "), path
        assert "{" not in marking["labels"]["result"], f"{path}: Snakemake would read a brace in a label as a wildcard"
    paths = [p for ps in snakemake_report.CATEGORIES.values() for p in ps]
    assert len(paths) == len(set(paths)), "an output in two categories"


def test_the_decision_category_holds_the_decision_files_and_is_listed_first():
    # The report's menu sorts categories by name.
    assert sorted(snakemake_report.CATEGORIES)[0] == "Decision"
    assert {report.DECISION, report.REPORT_MD, report.SUMMARY} <= set(snakemake_report.CATEGORIES["Decision"])


def test_the_front_page_states_the_verdict_the_release_and_its_speed_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    template = (REPO / "report/workflow.rst").read_text()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake renders it

    def page() -> str:
        config = {snakemake_report.DECISION_KEY: snakemake_report.Decision()}
        return env.from_string(template).render(snakemake=type("Snakemake", (), {"config": config}),
                                                categories={}, files=[])

    assert "No decision yet" in page()
    verdict = {"kind": "matches", "basis": "measured", "released": "d80-l3-D800k", "weights": "runs/d80-l3-D800k/model",
               "speedup": 2.2452, "speedup_interval": [2.1927, 2.3148], "headline": "MATCHES (measured): d80-l3-D800k"}
    Path("results").mkdir()
    Path(report.DECISION).write_text(json.dumps({"verdict": verdict}))
    text = page()
    assert "Decision: MATCHES (measured)" in text
    assert "``d80-l3-D800k``, 2.25x the baseline's decode speed [2.19, 2.31]" in text
    assert "**Verdict:** MATCHES (measured): d80-l3-D800k" in text
    assert "``runs/d80-l3-D800k/model``" in text
