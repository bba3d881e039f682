"""Seed replicates (grid.replicates) and the noise floor: replicates differ in weights and losses but not in shape
or budget; collect and the law stage report their spread; a rank resting on a gap below that spread is a tie,
broken by the cheaper latency."""
from __future__ import annotations

import csv
import math

import pandas as pd
import pytest

from conftest import write_params
from morph import cli
from morph.core import experiment
from morph.core.artifacts.train import RUN_METRICS, RUN_MODEL, RUNS, RUNS_CSV, RUNS_INPUTS
from morph.core.errors import MorphError
from morph.core.schema import build
from morph.core.select import Select
from morph.select.rank import choose

# configs/ci.yaml with one tiny shape at a fraction of a token per parameter: a handful of steps.
TINY = {"model.seq_len": 32, "train.batch_size": 8, "train.checkpoint_every": 100,
        "grid": {"multipliers": [0.1], "shapes": [{"d_model": 32, "n_layers": 1}],
                 "replicates": [{"run": "d32-l1-t0.1", "seeds": 2}]}}


# ---- the config -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("replicates,message", [
    ([{"run": "d99-l1-t0.1", "seeds": 2}], "grid.replicates[0].run: 'd99-l1-t0.1' is not a grid run"),
    ([{"run": "d32-l1-t0.1", "seeds": 1}], "grid.replicates[0].seeds: 1 must be at least 2"),
    ([{"run": "d32-l1-t0.1", "seeds": 0}], "grid.replicates[0].seeds: 0 must be at least 2"),
    ([{"run": "d32-l1-t0.1"}], "grid.replicates[0].seeds: required key is missing"),
    ([{"run": "d32-l1-t0.1", "seeds": 2}, {"run": "d32-l1-t0.1", "seeds": 3}],
     "grid.replicates[1].run: 'd32-l1-t0.1' is listed twice"),
])
def test_bad_replicates_are_refused_by_key_at_load(tmp_path, replicates, message):
    with pytest.raises(MorphError) as err:
        experiment.load(write_params(tmp_path / "p.yaml", {**TINY, "grid": {**TINY["grid"], "replicates": replicates}}))
    assert message in str(err.value)


def test_replicates_add_runs_and_leave_every_other_run_as_it_was(tmp_path):
    from morph.train.run import fingerprint

    plain = experiment.load(write_params(tmp_path / "plain.yaml", {**TINY, "grid": {
        k: v for k, v in TINY["grid"].items() if k != "replicates"}}))
    cfg = experiment.load(write_params(tmp_path / "rep.yaml", TINY | {"grid": {**TINY["grid"], "replicates": [
        {"run": "d32-l1-t0.1", "seeds": 3}]}}))
    ids = [r.run_id for r in cfg.grid_runs]
    assert set(ids) - {r.run_id for r in plain.grid_runs} == {"d32-l1-t0.1-r1", "d32-l1-t0.1-r2"}
    original = plain.run("d32-l1-t0.1")
    # Replicate 0 is the run itself: same id, same seed, same training fingerprint, so a tree trained before
    # replicates were asked for is not retrained.
    assert cfg.run("d32-l1-t0.1") == original and fingerprint(original, plain, "m") == fingerprint(
        cfg.run("d32-l1-t0.1"), cfg, "m")
    reps = [cfg.run(i) for i in ids]
    assert len({r.seed(cfg.seed) for r in reps}) == 3 and len({fingerprint(r, cfg, "m") for r in reps}) == 3
    assert {(r.shape, r.tokens, r.original) for r in reps} == {(original.shape, original.tokens, "d32-l1-t0.1")}


# ---- training and collect -------------------------------------------------------------------------------
def test_two_replicates_differ_in_weights_and_loss_but_not_in_shape_or_budget(tmp_path, ci_tokens, capsys):
    import torch
    from safetensors.torch import load_file

    params = write_params(tmp_path / "p.yaml", TINY)
    runs = tmp_path / RUNS
    for rid in ("d32-l1-t0.1", "d32-l1-t0.1-r1"):
        assert cli.main(["train", "--params", str(params), "--run", rid, "--tokens", str(ci_tokens),
                         "--out", str(runs / rid)]) == 0
    a, b = (pd.read_json(runs / rid / RUN_METRICS, typ="series") for rid in ("d32-l1-t0.1", "d32-l1-t0.1-r1"))
    assert a["shape"] == b["shape"] and a["params"] == b["params"]
    assert a["tokens_seen"] == b["tokens_seen"] == a["tokens"] and a["steps"] == b["steps"]
    assert a["seed"] != b["seed"] and (a["replicate"], b["replicate"]) == (0, 1)
    assert a["val_loss"] != b["val_loss"]
    wa, wb = (load_file(runs / rid / RUN_MODEL / "model.safetensors") for rid in ("d32-l1-t0.1", "d32-l1-t0.1-r1"))
    assert wa.keys() == wb.keys() and all(wa[k].shape == wb[k].shape for k in wa)
    assert not any(torch.equal(wa[k], wb[k]) for k in wa if k.endswith("proj.weight"))

    out = tmp_path / RUNS_CSV
    assert cli.main(["collect", "--params", str(params), "--runs-dir", str(runs), "--out", str(out),
                     "--inputs-out", str(tmp_path / RUNS_INPUTS)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["run_id"], r["replicate"], r["replicate_of"]) for r in rows] == [
        ("d32-l1-t0.1", "0", "d32-l1-t0.1"), ("d32-l1-t0.1-r1", "1", "d32-l1-t0.1")]
    gap = abs(a["val_loss"] - b["val_loss"])
    for r in rows:  # two values: sd = |a - b| / sqrt 2, range = |a - b|
        assert r["replicates"] == "2" and float(r["loss_range"]) == pytest.approx(gap)
        assert float(r["loss_sd"]) == pytest.approx(gap / math.sqrt(2))
    assert "d32-l1-t0.1 over 2 seeds: loss sd" in capsys.readouterr().out


# ---- the law stage --------------------------------------------------------------------------------------
def test_the_fit_sees_each_replicated_run_once_at_its_mean_and_reports_the_spread():
    from morph.law.laws import mean_per_run
    from morph.law.zoo import replicate_noise

    base = pd.DataFrame({"run_id": ["a", "b", "c"], "d_model": [32, 64, 48], "n_layers": [4, 1, 2],
                         "params": [1e5, 1.1e5, 1.05e5], "tokens": [1e6, 1e6, 2e6], "multiplier": [10, 10, 20],
                         "loss": [3.0, 3.1, 2.9], "replicate": 0, "replicate_of": ["a", "b", "c"]})
    reps = base.iloc[[0, 0, 2]].assign(run_id=["a-r1", "a-r2", "c-r1"], replicate=[1, 2, 1],
                                       loss=[3.02, 3.04, 2.95])
    table = pd.concat([base, reps], ignore_index=True)
    means = mean_per_run(table)
    assert sorted(means["run_id"]) == ["a", "b", "c"]
    assert dict(zip(means["run_id"], means["loss"])) == pytest.approx({"a": 3.02, "b": 3.1, "c": 2.925})
    noise = replicate_noise(table)
    within = (0.02 ** 2 * 2 + 0.025 ** 2 * 2) / 3  # squares about each run's mean over (3-1) + (2-1) dof
    assert noise["dof"] == 3 and noise["sd"] == pytest.approx(math.sqrt(within))
    assert mean_per_run(base.drop(columns=["replicate", "replicate_of"])).equals(
        base.drop(columns=["replicate", "replicate_of"]))


# ---- ranking under noise --------------------------------------------------------------------------------------
def cand(shape_id, loss, latency):
    return {"shape_id": shape_id, "d_model": 64, "n_layers": 2, "n_heads": 2, "n_kv_heads": 2, "ffn": 176,
            "vocab_size": 512, "tie_embeddings": False, "ffn_ratio": None, "kv_knob": False, "params": 100_000,
            "params_gap": 0.0, "within_tolerance": True, "latency": {"median_s": latency}, "serving": {},
            "predicted_loss": loss}


SEL = build(Select, {"params": 100_000, "tokens": 1_000_000, "depths": [1], "k": 2, "latency_budget_s": 1.0,
                     "baseline": {"d_model": 32, "n_layers": 6}})


def test_a_gap_below_the_noise_is_no_evidence_and_favours_no_latency():
    # Without bootstrap refits the run-to-run sd stands in: gaps below it do not order the candidates.
    deep, mid, wide = cand("deep", 3.000, 0.8), cand("mid", 3.003, 0.5), cand("wide", 3.004, 0.3)
    far = cand("far", 3.2, 0.1)
    top, _, ranking = choose([deep, mid, wide, far], SEL, 1.0, loss_sd=0.01)
    assert not ranking["informative"] and sorted(ranking["indistinguishable"]) == ["deep", "mid", "wide"]
    assert [c["shape_id"] for c in top] == ["wide", "deep"]  # the tied set's fastest and slowest: a bracket
    assert far["indistinguishable_from"] == [] and deep["indistinguishable_from"] == ["mid", "wide"]


def test_a_gap_above_the_noise_keeps_the_lower_predicted_loss_first():
    deep, wide = cand("deep", 3.000, 0.8), cand("wide", 3.004, 0.3)
    top, _, ranking = choose([deep, wide], SEL, 1.0, loss_sd=0.001)
    assert [c["shape_id"] for c in top] == ["deep", "wide"] and ranking["informative"]
    assert not deep["indistinguishable_from"]
    # Tied but no more than k: the predicted order stands, not the faster shape.
    top, _, ranking = choose([cand("deep", 3.000, 0.8), cand("wide", 3.004, 0.3)], SEL, 1.0, loss_sd=0.01)
    assert [c["shape_id"] for c in top] == ["deep", "wide"] and ranking["informative"]


def test_select_reads_the_noise_from_the_law_and_says_so(tmp_path, monkeypatch):
    import json

    from morph.law import fitting
    from morph.select import rank

    params = write_params(tmp_path / "p.yaml", {"select.k": 1})
    cands = {"candidates": [cand("deep", 0, 0.5) | {"n_layers": 4}, cand("wide", 0, 0.2)],
             "baseline": cand("base", 0, 0.9) | {"n_layers": 8}}
    by_depth = {4: 3.000, 2: 3.003, 8: 3.2}  # deep leads wide by 0.003, under the noise 0.005
    monkeypatch.setattr(fitting, "predict_loss", lambda law, n, d, d_model, n_layers, ratio: by_depth[n_layers])
    monkeypatch.setattr(rank, "plot_pareto", lambda out, path: None)
    (tmp_path / "c.json").write_text(json.dumps(cands))
    law = {"law": experiment.load(params).select.law,
           "noise_floor": {"run_to_run": {"sd": 0.005}, "cv_error_rmse": 0.03, "replicated_runs": []}}
    (tmp_path / "law.json").write_text(json.dumps(law))
    assert cli.main(["select", "--params", str(params), "--candidates", str(tmp_path / "c.json"),
                     "--law", str(tmp_path / "law.json"), "--out", str(tmp_path / "s.json")]) == 0
    out = json.loads((tmp_path / "s.json").read_text())
    # k = 1 cannot bracket: the point leader stands, and the ranking says it is not evidence.
    assert [c["shape_id"] for c in out["top_k"]] == ["deep"] and not out["ranking"]["informative"]
    assert "run-to-run sd 0.0050" in out["ranking"]["basis"]
    assert out["noise"]["loss_sd"] == 0.005 and out["noise"]["law_cv_rmse"] == 0.03


def test_the_report_states_the_spread_the_law_error_and_each_tie():
    from morph.report.write import noise_floor

    noise = {"loss_sd": 0.0526, "law_cv_rmse": 0.031,
             "replicated_runs": [{"run_id": "d40-l1-t1", "seeds": 2, "loss_sd": 0.0533, "loss_range": 0.0754}]}
    (line,) = noise_floor(noise)
    assert "run-to-run sd of the held-out loss 0.0526" in line and "d40-l1-t1 over 2 seeds: sd 0.0533, range 0.0754" \
        in line and "cross-validated RMSE is 0.0310" in line
    (line,) = noise_floor({**noise, "loss_sd": None, "replicated_runs": []})
    assert line.startswith("Noise floor: no replicated runs")
