"""Faults in records that still parse, or in the machine's setup, that must not pass silently: a folder hash
that bookkeeping files would change, and text read or written under an ASCII locale."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import CI_PARAMS, ROOT, record_with, write_params
from morph import cli
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import TOKENIZER_DIR, TOKENIZER_JSON
from morph.core.artifacts.latency import LATENCY_CSV, LATENCY_MODEL
from morph.core.artifacts.law import LAW_DIR
from morph.core.artifacts.report import DECISION
from morph.core.artifacts.select import SELECTION, Selection
from morph.core.artifacts.train import RUNS_CSV, RUNS_INPUTS, RunMetrics, run_metrics
from morph.core.errors import MorphError
from morph.core.io import provenance, sha256_tree, write_json
from morph.law import laws
from morph.workflow import pipeline, preflight
from test_faults import snapshot, tree


def test_a_folder_hash_ignores_the_orchestrators_bookkeeping(tmp_path):
    """A tokenizer folder Snakemake built (with its timestamp file) hashes like the same bytes built by hand or
    by DVC, so switching tools retrains nothing; a changed byte still changes the hash."""
    folder = tmp_path / TOKENIZER_DIR
    folder.mkdir()
    (folder / TOKENIZER_JSON).write_bytes(b'{"model": "bpe"}')
    by_hand = sha256_tree(folder)
    (folder / ".snakemake_timestamp").write_bytes(b"")
    assert sha256_tree(folder) == by_hand
    (folder / TOKENIZER_JSON).write_bytes(b'{"model": "BPE"}')
    assert sha256_tree(folder) != by_hand


def test_reports_read_and_write_utf8_under_an_ascii_locale(tmp_path):
    """The report's symbols (σ, δ, Δ) and lm-eval's samples survive a machine whose locale is plain ASCII."""
    script = f"""
import json
from pathlib import Path
from morph.core.io import read_json, write_json
from morph.report.uncertainty import item_scores
folder = Path({str(tmp_path)!r})
row = {{"doc_id": 1, "acc": 1.0, "arguments": "caf\\u00e9 \\u2013 na\\u00efve"}}
(folder / "copa.jsonl").write_bytes(json.dumps(row, ensure_ascii=False).encode() + b"\\n")
print(item_scores({{"tasks": {{"copa": {{"samples": "copa.jsonl", "acc": 1.0}}}}}}, folder))
write_json(folder / "d.json", {{"headline": "\\u03c3 = 0.011, \\u03b4 = 0.045, \\u0394 loss"}})
print(read_json(folder / "d.json")["headline"].encode("ascii", "backslashreplace").decode())
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8"))}
    env |= {"LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    assert "{'copa': {1: 1.0}}" in out.stdout and "\\u03c3 = 0.011" in out.stdout


def test_a_hand_edited_selection_cannot_steer_the_release():
    """A candidate over T_C marked feasible (so it could be released) is refused when the report reads it."""
    from morph.report.measured import check_selection

    cand = {"shape_id": "d104-l1", "latency": {"median_s": 0.9}, "within_tolerance": True, "kept": False}
    selection = record_with(Selection, budgets={"latency_s": 0.5}, candidates=[cand])
    check_selection(selection, SELECTION)
    cand["kept"] = True
    with pytest.raises(MorphError, match=re.escape(SELECTION) + r": candidate d104-l1 is marked kept.*morph select"):
        check_selection(selection, SELECTION)


@pytest.mark.parametrize("overrides,says", [
    ({"train.accelerator": "gpu"}, "train.accelerator: gpu, but torch sees no CUDA device here"),
    ({"train.strategy": "fsdp", "train.devices": 2}, "train.strategy: fsdp needs train.accelerator gpu"),
])
def test_training_this_machine_cannot_run_is_refused_before_any_job(tmp_path, overrides, says):
    """Checked as Snakemake starts (onstart), before it deletes a run's outputs; a cluster judges its own."""
    exp = experiment.load(write_params(tmp_path / "p.yaml", overrides))
    with pytest.raises(MorphError, match=says):
        preflight.runnable(exp, frozenset({"train"}), local=True)
    preflight.runnable(exp, frozenset({"train"}), local=False)
    preflight.runnable(exp, frozenset({"collect"}), local=True)


def test_a_missing_extra_is_named_before_evaluate_starts(monkeypatch):
    exp = experiment.load(CI_PARAMS)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))
    with pytest.raises(MorphError, match=r"lm-eval is not installed.*pip install -e '\.\[eval\]'"):
        preflight.runnable(exp, frozenset({"evaluate"}), local=True)


def fake_metrics(root, exp, loss: float = 4.84) -> None:
    """A metrics.json for every grid run, with the fields collect reads, as training writes them."""
    for i, r in enumerate(exp.grid_runs):
        write_json(root / run_metrics(r.run_id), record_with(
            RunMetrics, run_id=r.run_id, tokens=r.tokens, val_loss=loss + i / 10, train_loss_ema=loss, wall_s=1.0,
            tokens_per_s=1.0, mfu=0.1, seed=r.seed(exp.seed)).to_json())


def morph(root, capsys, *argv: str) -> tuple[int, str]:
    with contextlib.chdir(root):
        code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_a_metrics_file_edited_after_collect_is_refused_by_the_law(tmp_path, capsys):
    """val_loss 4.84 -> 3.84 by hand still parses; the law names the file, keeps every output, and says how to
    recover (restore or retrain it, or collect it again)."""
    root = tree(tmp_path / "tree")
    exp = experiment.load(root / PARAMS)
    fake_metrics(root, exp)
    assert morph(root, capsys, "collect", "--params", PARAMS)[0] == 0
    rid = exp.grid_runs[0].run_id
    metrics = root / run_metrics(rid)
    good = metrics.read_bytes()
    metrics.write_bytes(good.replace(b'"val_loss": 4.84', b'"val_loss": 3.84'))
    assert metrics.read_bytes() != good
    before = snapshot(root)
    code, err = morph(root, capsys, "laws", "--params", PARAMS)
    assert code == 2, err
    assert (f"{run_metrics(rid)}: changed since collect read it into {RUNS_CSV} (its sha256 differs from "
            f"{RUNS_INPUTS}'s)") in err
    assert f"snakemake -j1 --force {run_metrics(rid)} --configfile {PARAMS}" in err
    assert f"dvc repro -f -s train-{rid}" in err and "dvc repro -f collect" in err and "Traceback" not in err
    assert snapshot(root) == before and not (root / LAW_DIR).exists()
    with contextlib.chdir(root):
        metrics.write_bytes(good)  # restored
        laws.check_collected(RUNS_INPUTS, RUNS_CSV, PARAMS)
        metrics.write_bytes(good.replace(b'"val_loss": 4.84', b'"val_loss": 4.85'))  # a retrain, collected again
        assert cli.main(["collect", "--params", PARAMS]) == 0
        laws.check_collected(RUNS_INPUTS, RUNS_CSV, PARAMS)
    recorded = json.loads((root / RUNS_INPUTS).read_text())
    assert recorded["params_read"] == json.loads(json.dumps({"grid": exp.params("grid")}))  # the slice collect reads


CHECK = ("lineage", "--check", DECISION, "--params", PARAMS)
STALE = f"morph lineage: {DECISION} is stale: 1 record(s) behind it disagree with the experiment or the files"


def decision_tree(root) -> None:
    """A decision recording the latency table it read."""
    tree(root)
    with contextlib.chdir(root):
        (root / LATENCY_CSV).parent.mkdir(parents=True)
        (root / LATENCY_CSV).write_text("shape_id,median\nd40-l1,0.15\n")
        write_json(DECISION, provenance([LATENCY_CSV]))


def test_lineage_check_names_the_decision_an_input_changed_under(tmp_path, capsys):
    root = tmp_path / "tree"
    decision_tree(root)
    assert morph(root, capsys, *CHECK)[0] == 0
    with open(root / LATENCY_CSV, "a") as f:
        f.write("\n")
    code, err = morph(root, capsys, *CHECK)
    assert code == 1 and f"{LATENCY_CSV}: changed since report read it" in err, err
    assert STALE in err and f"`snakemake -j1 {DECISION} --configfile {PARAMS}` (or `dvc repro`)" in err


def test_lineage_check_names_a_record_made_under_other_params_and_the_stale_decision(tmp_path, capsys):
    """Records state the params their stage read (the table's slice); a record whose slice the experiment no
    longer holds makes the decision behind it stale, though every hash still matches."""
    from morph.core.io import reading_params

    root = tmp_path / "tree"
    decision_tree(root)
    exp = experiment.load(root / PARAMS)
    with contextlib.chdir(root):  # as `morph latency-collect` writes it (the CLI sets the stage's params)
        with reading_params(pipeline.params_read(exp, pipeline.STAGE["latency_collect"].reads)):
            write_json(LATENCY_MODEL, provenance([]))
    code, err = morph(root, capsys, *CHECK)
    assert code == 0, err
    good = (root / PARAMS).read_bytes()
    write_params(root / PARAMS, {"latency.new_tokens": 16}, base=root / PARAMS)
    code, err = morph(root, capsys, *CHECK)
    assert code == 1, err
    assert (f"{LATENCY_MODEL}: made under other params than {PARAMS} holds now (latency.new_tokens was 32, now 16); "
            f"rerun it: `snakemake -j1 {LATENCY_MODEL} --configfile {PARAMS}` or `dvc repro latency_collect`") in err
    assert STALE in err
    (root / PARAMS).write_bytes(good)
    assert morph(root, capsys, *CHECK)[0] == 0


def test_experiment_file_not_found_names_the_working_directory(tmp_path, capsys):
    code, err = morph(tmp_path, capsys, "grid")
    assert code == 2
    assert f"{PARAMS}: experiment file not found in {tmp_path}; run from the folder that holds it" in err, err


def test_a_paper_scale_run_on_a_machine_without_a_gpu_is_warned_with_its_jobs_and_hours(monkeypatch):
    """Before any job: the jobs planned and their training FLOPs as hours here and on GPUs; nothing for a small
    experiment, a machine with a GPU, or jobs sent to a cluster."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    paper = ROOT / "configs/paper.yaml"
    exp = experiment.load(paper)
    everything = frozenset(o for n in pipeline.all_nodes(exp, "configs/paper.yaml") for o in n.outs)
    said = preflight.cost_warning(exp, "configs/paper.yaml", everything, local=True)
    assert said and said.startswith("configs/paper.yaml: 693 jobs planned, 66 of them training (2.65e+21 FLOPs)")
    assert "hours here at this machine's measured matmul peak" in said and "H100-hours" in said
    assert preflight.cost_warning(exp, "configs/paper.yaml", everything, local=False) is None
    small = experiment.load(CI_PARAMS)
    assert preflight.cost_warning(small, "configs/ci.yaml", frozenset(
        o for n in pipeline.all_nodes(small, "configs/ci.yaml") for o in n.outs), local=True) is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert preflight.cost_warning(exp, "configs/paper.yaml", everything, local=True) is None
