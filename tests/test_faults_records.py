"""Faults in records that still parse, or in the machine's setup, that must not pass silently: a folder hash
that bookkeeping files would change, and text read or written under an ASCII locale."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import CI_PARAMS, write_params
from morph.errors import MorphError
from morph.io import sha256_tree
from morph.spec import experiment
from morph.workflow import preflight


def test_a_folder_hash_ignores_the_orchestrators_bookkeeping(tmp_path):
    """A tokenizer folder Snakemake built (with its timestamp file) hashes like the same bytes built by hand or
    by DVC, so switching tools retrains nothing; a changed byte still changes the hash."""
    folder = tmp_path / "tokenizer"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(b'{"model": "bpe"}')
    by_hand = sha256_tree(folder)
    (folder / ".snakemake_timestamp").write_bytes(b"")
    assert sha256_tree(folder) == by_hand
    (folder / "tokenizer.json").write_bytes(b'{"model": "BPE"}')
    assert sha256_tree(folder) != by_hand


def test_reports_read_and_write_utf8_under_an_ascii_locale(tmp_path):
    """The report's symbols (σ, δ, Δ) and lm-eval's samples survive a machine whose locale is plain ASCII."""
    script = f"""
import json
from pathlib import Path
from morph.io import read_json, write_json
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
    selection = {"budgets": {"latency_s": 0.5}, "candidates": [cand]}
    check_selection(selection, "results/selection.json")
    cand["kept"] = True
    with pytest.raises(MorphError, match=r"results/selection.json: candidate d104-l1 is marked kept.*morph select"):
        check_selection(selection, "results/selection.json")


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
