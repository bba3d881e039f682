"""The records one stage writes and others read (core/records.py): a record the code wrote reads back to the same
bytes, key order included, and a missing, unknown, renamed or mistyped key stops its reader, named with the file and
the stage that rebuilds it."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import write_params
from morph import cli
from morph.core.artifacts.common import figure
from morph.core.artifacts.report import DECISION, Decision
from morph.core.artifacts.select import CANDIDATES, PARETO_FIGURE, SELECTION, SelectedSlot, Selection, slot
from morph.core.artifacts.train import RUN_METRICS, RUNS, RunMetrics
from morph.core.errors import MorphError
from morph.core.io import write_json
from morph.core.records import Record

# Three candidates near the CI experiment's N_C (the selection reads their stated params), small enough to train
# a few steps: d_model, n_layers, median latency s.
SHAPES = [(32, 2, 0.30), (48, 1, 0.20), (24, 4, 0.50)]
BUDGET = 4096  # select.tokens: the slot trains 4 steps of the CI experiment's 16 x 64 tokens


def candidate(d_model: int, n_layers: int, latency: float) -> dict:
    return {"shape_id": f"d{d_model}-l{n_layers}", "d_model": d_model, "n_layers": n_layers, "n_heads": 2,
            "n_kv_heads": 2, "ffn": 4 * d_model, "vocab_size": 512, "tie_embeddings": False, "ffn_ratio": None,
            "kv_knob": False, "params": 150_000, "params_gap": 0.0, "within_tolerance": True,
            "aspect_ratio": d_model / n_layers, "mlp_attention_ratio": 2.0,
            "latency": {"median_s": latency}, "serving": {}}


def law() -> dict:
    """An inference-aware fit whose loss rises with R, with bootstrap refits."""
    coeffs = {"E": 2.0, "A": 400.0, "alpha": 0.34, "B": 400.0, "beta": 0.28, "eps": 0.01, "gamma": 0.5}
    return {"law": "inference-aware", "coefficients": coeffs,
            "bootstrap": {"draws": [dict(coeffs, E=2.0 + 0.01 * i) for i in range(20)]},
            "noise_floor": {"run_to_run": {"sd": 0.03}, "cv_error_rmse": 0.2, "replicated_runs": []}}


def written_back(record: Record, path: Path) -> bytes:
    """The bytes io.write_json, every stage's writer, gives the record."""
    write_json(path, record.to_json())
    return path.read_bytes()


@pytest.fixture(scope="module")
def selected(tmp_path_factory) -> tuple[Path, Path]:
    """(the experiment, results/selection.json) written by `morph select` from a candidates file and a fit."""
    root = tmp_path_factory.mktemp("selected")
    params = write_params(root / "p.yaml", {"select.tokens": BUDGET, "select.law": "inference-aware"})
    (root / CANDIDATES).parent.mkdir(parents=True)
    (root / CANDIDATES).write_text(json.dumps({"candidates": [candidate(*s) for s in SHAPES],
                                               "baseline": candidate(32, 6, 1.0)}))
    (root / "law.json").write_text(json.dumps(law()))
    assert cli.main(["select", "--params", str(params), "--candidates", str(root / CANDIDATES),
                     "--law", str(root / "law.json"), "--out", str(root / SELECTION),
                     "--figure", figure(PARETO_FIGURE, root)]) == 0
    return params, root / SELECTION


@pytest.fixture(scope="module")
def trained(selected, ci_tokens, tmp_path_factory) -> Path:
    """runs/top-1/metrics.json written by `morph train --selection ... --slot top-1` (a few steps)."""
    params, selection = selected
    out = tmp_path_factory.mktemp(RUNS) / slot(1)
    assert cli.main(["train", "--params", str(params), "--selection", str(selection), "--slot", slot(1),
                     "--tokens", str(ci_tokens), "--out", str(out)]) == 0
    return out / RUN_METRICS


def test_a_selection_written_by_select_reads_back_to_its_bytes(selected, tmp_path):
    _, path = selected
    record = Selection.read(path)
    assert written_back(record, tmp_path / "again.json") == path.read_bytes()
    assert list(json.loads(path.read_text())) == list(record.to_json())  # the order written, optional keys left out
    assert record.law_choice is None and record.params_read is not None  # select.law is not auto; a CLI stage
    assert [type(e) for e in record.top_k] == [SelectedSlot] * 2 and record.slot(slot(1)).run_id == "d24-l4-D4096"


def test_a_runs_metrics_written_by_train_reads_back_to_its_bytes(trained, selected, tmp_path):
    record = RunMetrics.read(trained)
    assert written_back(record, tmp_path / "again.json") == trained.read_bytes()
    top1 = Selection.read(selected[1]).slot(slot(1))
    assert (record.slot, record.run_id, record.tokens_seen) == (slot(1), top1.run_id, BUDGET)
    assert record.reused_from is None and "reused_from" not in json.loads(trained.read_text())
    assert record.model_sha256 and list(record.to_json())[-1] == "model_sha256"  # written once the model is saved


def test_an_optional_key_reads_back_present_or_absent(trained, tmp_path):
    data = json.loads(trained.read_text()) | {"reused_from": "elsewhere/d24-l4-D4096"}
    path = tmp_path / RUN_METRICS
    write_json(path, data)
    record = RunMetrics.read(path)
    assert record.reused_from == "elsewhere/d24-l4-D4096" and written_back(record, tmp_path / "again.json") == \
        path.read_bytes()


def edited(path: Path, dest: Path, edit) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(data, indent=2))
    return dest


def test_a_missing_key_is_refused_by_name(trained, selected, tmp_path):
    path = edited(trained, tmp_path / RUN_METRICS, lambda d: d.pop("val_loss"))
    with pytest.raises(MorphError, match=re.escape(f"{path}: a training run's metrics lacks the key 'val_loss'")
                       + r".*retrain the run with `morph train` \(snakemake -j1 --force " + re.escape(str(path))):
        RunMetrics.read(path)
    path = edited(selected[1], tmp_path / SELECTION, lambda d: d["top_k"][0].pop("n_layers"))
    with pytest.raises(MorphError, match=re.escape(f"{path}: top_k[0], a top-k entry, lacks the key 'n_layers'")
                       + r".*rebuild it with `morph select`"):
        Selection.read(path)


def test_an_unknown_key_is_refused_by_name(trained, selected, tmp_path):
    path = edited(trained, tmp_path / RUN_METRICS, lambda d: d.update(val_loss_ema=3.0))
    with pytest.raises(MorphError, match=re.escape(f"{path}: a training run's metrics holds the unknown key "
                                                   "'val_loss_ema'") + ".*morph train"):
        RunMetrics.read(path)
    path = edited(selected[1], tmp_path / SELECTION, lambda d: d.update(chosen="d32-l2"))
    with pytest.raises(MorphError, match=re.escape(f"{path}: a selection holds the unknown key 'chosen'")):
        Selection.read(path)


def test_a_value_of_the_wrong_type_is_refused_by_name(trained, tmp_path):
    path = edited(trained, tmp_path / RUN_METRICS, lambda d: d.update(val_loss="3.9"))
    with pytest.raises(MorphError, match=re.escape(f"{path}: 'val_loss' is '3.9', where a training run's metrics "
                                                   "holds a number")):
        RunMetrics.read(path)
    path = edited(trained, tmp_path / "list.json", lambda d: None)
    path.write_text("[]")
    with pytest.raises(MorphError, match=re.escape(f"{path}: holds an array, not a training run's metrics")):
        RunMetrics.read(path)


def rename(key: str, new: str):
    def edit(data: dict) -> None:
        data[new] = data.pop(key)
    return edit


def test_a_reader_given_a_renamed_key_names_the_key_and_the_file(trained, selected, ci_tokens, tmp_path, capsys):
    from morph.report.measured import losses

    record = RunMetrics.read(trained)
    renamed = edited(trained, tmp_path / RUNS / record.run_id / RUN_METRICS, rename("val_loss", "loss"))
    with pytest.raises(MorphError, match=re.escape(f"{renamed}: a training run's metrics lacks the key 'val_loss' "
                                                   "and holds the unknown key 'loss'")):
        losses(tmp_path / RUNS, [record.run_id], record.seed)

    params, path = selected
    renamed = edited(path, tmp_path / SELECTION, lambda d: rename("d_model", "width")(d["top_k"][0]))
    assert cli.main(["train", "--params", str(params), "--selection", str(renamed), "--slot", slot(1),
                     "--tokens", str(ci_tokens), "--out", str(tmp_path / slot(1))]) == 2
    err = capsys.readouterr().err
    assert (f"{renamed}: top_k[0], a top-k entry, lacks the key 'd_model' and holds the unknown key 'width'" in err
            and "rebuild it with `morph select`" in err), err
    assert not (tmp_path / slot(1) / RUN_METRICS).exists()


def test_a_decision_record_with_a_renamed_key_is_refused_by_name(tmp_path):
    # Its keys alone (a real one is read back in the slow test below): the names are checked before the values.
    path = tmp_path / DECISION
    write_json(path, dict.fromkeys(Decision.keys()) | {"decision": None})
    with pytest.raises(MorphError, match=re.escape(f"{path}: a decision record holds the unknown key 'decision'")
                       + r".*rebuild it with `morph report`"):
        Decision.read(path)
    data = json.loads(path.read_text())
    rename("verdict", "outcome")(data)
    write_json(path, data)
    with pytest.raises(MorphError, match=re.escape("lacks the key 'verdict' and holds the unknown keys 'decision', "
                                                   "'outcome'")):
        Decision.read(path)


@pytest.mark.slow
def test_every_record_of_the_ci_tree_reads_back_to_its_bytes(ci_tree, tmp_path):
    """The CI experiment built through the decision (Snakemake): each record the stages wrote (grid, validation,
    baseline and slot runs, a slot copied from its twin among them), read and written again, is the same file."""
    records = [(RunMetrics, p) for p in sorted((ci_tree / RUNS).glob(f"*/{RUN_METRICS}"))]
    assert any(RunMetrics.read(p).reused_from for _, p in records)  # the optional key, written
    records += [(Selection, ci_tree / SELECTION), (Decision, ci_tree / DECISION)]
    for kind, path in records:
        assert written_back(kind.read(path), tmp_path / "again.json") == path.read_bytes(), path
