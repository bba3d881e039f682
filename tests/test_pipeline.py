"""Snakemake and DVC hold the same graph, built from one table; dvc.yaml is current."""
from __future__ import annotations

import subprocess
import sys

import yaml
from graphs import REPO, dvc_stages, edges, snakemake_jobs

from morph.workflow import dvc_yaml, experiment

MORPH = [sys.executable, "-m", "morph.cli"]


def test_committed_dvc_yaml_matches_params():
    out = subprocess.run(MORPH + ["dvc-yaml", "--check"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_stale_dvc_yaml_is_reported(tmp_path):
    stale = tmp_path / "dvc.yaml"
    stale.write_text("stages: {}\n")
    out = subprocess.run(MORPH + ["dvc-yaml", "--check", "--out", str(stale)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert "out of date with params.yaml" in out.stderr


def test_snakemake_and_dvc_hold_the_same_nodes_commands_and_edges():
    params = "configs/ci.yaml"
    smk = snakemake_jobs(params)
    text, count = dvc_yaml.render(experiment.load(REPO / params), params)
    dvc = dvc_stages(text)
    assert count == len(smk) == len(dvc)
    assert set(smk) == set(dvc), set(smk) ^ set(dvc)
    for outs, (rule, cmd, ins) in smk.items():
        name, dvc_cmd, deps = dvc[outs]
        assert name == rule or name.startswith(rule + "-"), (name, rule)
        assert cmd == dvc_cmd
        assert ins == deps, (name, ins ^ deps)
    assert edges(smk) == edges(dvc)
    # The whole method is one graph: every node but the report feeds some other node.
    producers = {producer for producer, _ in edges(dvc)}
    assert {cmd for _, cmd, _ in dvc.values() if not cmd.startswith("morph report")} <= producers


def test_adding_a_shape_adds_it_to_both_graphs(tmp_path):
    raw = yaml.safe_load((REPO / "configs/ci.yaml").read_text())
    raw["grid"]["shapes"] = [{"d_model": 48, "n_layers": 3}]
    params = tmp_path / "more.yaml"
    params.write_text(yaml.safe_dump(raw))
    cfg = experiment.load(params)
    new_runs = {r.run_id for r in cfg.grid_runs} - {r.run_id for r in experiment.load(REPO / "configs/ci.yaml").grid_runs}
    assert new_runs == {"d48-l3-t2", "d48-l3-t4"}
    smk = snakemake_jobs(str(params))
    dvc = dvc_stages(dvc_yaml.render(cfg, str(params))[0])
    for rid in new_runs:
        outs = frozenset({f"runs/{rid}/model", f"runs/{rid}/metrics.json"})
        assert outs in smk and outs in dvc
    latency_out = frozenset({"latency/d48-l3.json"})
    assert latency_out in smk and latency_out in dvc
