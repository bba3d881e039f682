"""Architecture knobs (ffn_ratios, n_kv_heads) as grid and candidate dimensions, without training: counts against
the built model, the KV cache a forward pass really holds, the ids Snakemake must match, and the refusals."""
from __future__ import annotations

import argparse
import csv
import json
import re

import pytest
import yaml

from conftest import CI_PARAMS, record_with, write_params
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.latency import LATENCY_CSV
from morph.core.artifacts.select import SELECTION, SelectedSlot, Selection
from morph.core.artifacts.train import RUNS_COLUMNS, RUNS_CSV, RunMetrics
from morph.core.errors import MorphError
from morph.core.shape import Shape, swiglu_ffn
from morph.workflow import pipeline

CI_SIZES = yaml.safe_load(CI_PARAMS.read_text())["grid"]["sizes"]
KNOB_SIZE = {"params": 60000, "depths": [2], "ffn_ratios": [1.0, 4.0], "n_kv_heads": [1], "multipliers": [2]}
KNOBBED = {"grid.sizes": [*CI_SIZES, KNOB_SIZE], "select.ffn_ratios": [1.0],
           "select.n_kv_heads": [1]}


@pytest.fixture(scope="module")
def knobbed(tmp_path_factory):
    return experiment.load(write_params(tmp_path_factory.mktemp("knobs") / PARAMS, KNOBBED))


def is_default(cfg, shape: Shape) -> bool:
    return shape.ffn == swiglu_ffn(shape.d_model, cfg.model.ffn_multiple) and shape.n_kv_heads == shape.n_heads


def test_knobs_add_shapes_and_change_no_existing_id_or_model(knobbed):
    plain = experiment.load(CI_PARAMS)
    for run in plain.grid_runs:
        assert knobbed.run(run.run_id) == run
    for shape in plain.latency_shapes:
        assert knobbed.shape(shape.shape_id) == shape
    new = [s for s in knobbed.latency_shapes if s.shape_id not in {p.shape_id for p in plain.latency_shapes}]
    assert new and not any(is_default(knobbed, s) for s in new)
    # every knob value at every depth, alone and combined: (default + 2 ratios) x (default + 1 kv) per depth
    size_shapes = {s for s in knobbed.grid_shapes if s.n_layers == 2 and knobbed.size_targets[s.shape_id] == 60000}
    assert {(s.ffn_ratio, s.n_kv_heads) for s in size_shapes} == {(f, kv) for f in (None, 1.0, 4.0) for kv in (2, 1)}
    per_depth = {}
    for s in knobbed.candidate_shapes:
        per_depth.setdefault(s.n_layers, set()).add((s.ffn_ratio, s.n_kv_heads))
    assert all(v == {(f, kv) for f in (None, 1.0) for kv in (2, 1)} for v in per_depth.values())


def test_ids_are_one_per_model_and_match_the_snakemake_wildcards(knobbed):
    # The wildcards the generated rules constrain their keys with.
    pattern = {key: re.compile(p) for key, p in (s.wildcard for s in pipeline.STAGES) if key}
    shapes = knobbed.latency_shapes
    assert len({(s.d_model, s.n_layers, s.ffn, s.n_kv_heads) for s in shapes}) == len(shapes)
    for s in shapes:
        assert pattern["shape_id"].fullmatch(s.shape_id), s.shape_id
    for r in (*knobbed.grid_runs, knobbed.baseline):
        assert pattern["run_id"].fullmatch(r.run_id), r.run_id
        assert not pattern["shape_id"].fullmatch(r.run_id)


def _model(shape):
    from morph.core.decoder import build_model

    return build_model(shape, 128, 0, seed=0)


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_counts_and_the_mlp_attention_ratio_are_the_built_models(knobbed):
    for shape in knobbed.latency_shapes:
        model = _model(shape)
        assert _numel(model) == shape.params(), shape.shape_id
        layer = model.model.layers[0]
        attention, mlp = _numel(layer.self_attn), _numel(layer.mlp)
        assert mlp / attention == pytest.approx(shape.mlp_attention_ratio)
        assert model.config.num_key_value_heads == shape.n_kv_heads
        if shape.ffn_ratio is not None:  # the requested ratio, to the nearest whole ffn_multiple
            exact = shape.ffn_ratio * attention / (3 * shape.d_model)
            assert abs(shape.ffn - exact) <= knobbed.model.ffn_multiple / 2 or shape.ffn == knobbed.model.ffn_multiple


def test_kv_cache_bytes_are_what_a_forward_pass_caches(knobbed):
    import torch

    tokens, batch = 7, 3
    for shape in {s.n_kv_heads: s for s in knobbed.latency_shapes}.values():  # MHA and GQA
        model = _model(shape).eval()
        with torch.no_grad():
            cache = model(torch.zeros((batch, tokens), dtype=torch.long), use_cache=True).past_key_values
        cached = sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
        assert cached == shape.kv_cache_bytes(tokens, batch, 4), shape.shape_id


KNOB = f"grid.sizes[{len(CI_SIZES)}]"  # the knob size's key, after the CI grid's sizes
REFUSED = [
    ({**KNOB_SIZE, "ffn_ratios": [0]}, f"{KNOB}.ffn_ratios[0]: 0.0 must be between 0.01 and 100"),
    ({**KNOB_SIZE, "ffn_ratios": [-1.5]}, f"{KNOB}.ffn_ratios[0]: -1.5 must be between"),
    ({**KNOB_SIZE, "n_kv_heads": [3]}, f"{KNOB}.n_kv_heads: 3 does not divide n_heads=2; use a divisor of 2"),
    ({**KNOB_SIZE, "n_kv_heads": [0]}, f"{KNOB}.n_kv_heads[0]: 0 is below the minimum 1"),
    ({**KNOB_SIZE, "n_kv_heads": [2]}, f"{KNOB}.n_kv_heads: 2 is listed twice or is the model default"),
    ({**KNOB_SIZE, "ffn_ratios": [1.0, 1.01]}, f"{KNOB}.ffn_ratios: 1.01 builds"),
    ({**KNOB_SIZE, "ffn_ratios": 1.5}, f"{KNOB}.ffn_ratios: expected a list"),
]


@pytest.mark.parametrize("size,message", REFUSED, ids=[m.split(": ")[1] for _, m in REFUSED])
def test_bad_grid_knobs_are_refused_naming_the_key(make_params, size, message):
    with pytest.raises(MorphError, match=re.escape(message)):
        experiment.load(make_params({**KNOBBED, "grid.sizes": [*CI_SIZES, size]}))


@pytest.mark.parametrize("override,message", [
    ({"select.n_kv_heads": [4]}, "select.n_kv_heads: 4 does not divide n_heads=2"),
    ({"select.ffn_ratios": [500]}, "select.ffn_ratios[0]: 500.0 must be between 0.01 and 100"),
])
def test_bad_candidate_knobs_are_refused_naming_the_key(make_params, override, message):
    with pytest.raises(MorphError, match=re.escape(message)):
        experiment.load(make_params({**KNOBBED, **override}))


def test_a_selected_knobbed_candidate_trains_as_that_shape(knobbed, tmp_path):
    from morph.core.shape import run_id
    from morph.train.run import resolve_run

    shape = next(s for s in knobbed.candidate_shapes if s.ffn_ratio is not None and s.n_kv_heads == 1)
    described = json.loads(json.dumps(shape.to_dict()))  # a candidate as candidates.json stores it
    rebuilt = Shape.from_dict(described)
    assert rebuilt == shape
    selection = tmp_path / SELECTION
    selection.parent.mkdir()
    entry = record_with(SelectedSlot, slot="top-1", run_id=run_id(rebuilt, tokens=1000), **{k: described[k] for k in (
        "d_model", "n_layers", "ffn_ratio", "n_kv_heads")})
    selection.write_text(json.dumps(record_with(Selection, top_k=[entry], tokens=1000).to_json()))
    args = argparse.Namespace(run=None, slot="top-1", selection=str(selection), params="p")
    run, slot = resolve_run(knobbed, args)
    assert (run.shape, run.run_id, slot) == (shape, f"{shape.shape_id}-D1k", "top-1")


def _runs_csv(cfg, path):
    from morph.train.collect import row

    rows = []
    for i, run in enumerate(cfg.grid_runs):
        metrics = record_with(RunMetrics, run_id=run.run_id, tokens=run.tokens, val_loss=3.0 + 0.01 * i,
                              train_loss_ema=3.0, wall_s=1.0, tokens_per_s=1.0, mfu=0.1, seed=run.seed(cfg.seed))
        rows.append(row(run, metrics, path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RUNS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_runs_table_carries_the_knobs_as_built_and_refuses_a_bad_column(knobbed, tmp_path):
    import pandas as pd

    from morph.law.laws import read_runs

    path = tmp_path / RUNS_CSV
    _runs_csv(knobbed, path)
    df = read_runs(path)
    for _, r in df.iterrows():
        shape = knobbed.run(r["run_id"]).shape
        assert r["shape_id"] == shape.shape_id and (r["n_kv_heads"], r["ffn"]) == (shape.n_kv_heads, shape.ffn)
        assert r["mlp_attention_ratio"] == pytest.approx(3 * shape.d_model * shape.ffn / (
            _numel(_model(shape).model.layers[0].self_attn)))
    bad = pd.read_csv(path)
    bad.loc[1, "n_kv_heads"] = 0
    bad.to_csv(path, index=False)
    with pytest.raises(MorphError, match=r"line 3 \(run .*\): column 'n_kv_heads' is .*must all be positive"):
        read_runs(path)
    bad.drop(columns="mlp_attention_ratio").to_csv(path, index=False)
    with pytest.raises(MorphError, match="missing column 'mlp_attention_ratio'.*re-run `morph collect`"):
        read_runs(path)


def test_knob_table_compares_each_variant_with_its_size_and_depths_default(knobbed, tmp_path):
    from morph.report.write import knob_effects

    runs = tmp_path / RUNS_CSV
    rows = {r["run_id"]: r for r in _runs_csv(knobbed, runs)}
    latency = tmp_path / LATENCY_CSV
    with open(latency, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["shape_id", "backend", "setting", "median", "p10", "p90", "cv"])
        writer.writeheader()
        for i, s in enumerate(knobbed.latency_shapes):  # the columns latency-collect writes
            writer.writerow({"shape_id": s.shape_id, "backend": "hf", "setting": "full", "median": 1.0 + i,
                             "p10": 1.0 + i, "p90": 1.0 + i, "cv": ""})
    effects = knob_effects(knobbed, runs, latency)
    knobbed_runs = [r for r in knobbed.grid_runs if not is_default(knobbed, r.shape)]
    assert sorted(e["run_id"] for e in effects) == sorted(r.run_id for r in knobbed_runs)
    for e in effects:
        run, base = knobbed.run(e["run_id"]), knobbed.run(e["default"])
        assert is_default(knobbed, base.shape) and base.multiplier == run.multiplier
        assert base.shape.n_layers == run.shape.n_layers
        assert knobbed.size_targets[base.shape.shape_id] == knobbed.size_targets[run.shape.shape_id]
        assert e["loss_change"] == pytest.approx(rows[run.run_id]["loss"] - rows[base.run_id]["loss"])
