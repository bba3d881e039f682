"""Serving budgets: T_C absolute or relative to the baseline, minimum throughput, maximum KV cache and
time to first token. Each binds on the candidates it should, names itself with the numbers, and a
bad budget is refused when the experiment loads."""
from __future__ import annotations

import contextlib
import csv
import json

import pytest

from conftest import write_params
from morph import cli
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.latency import LATENCY_CSV, LATENCY_MODEL
from morph.core.artifacts.select import SELECTION
from morph.core.errors import MorphError
from morph.core.schema import build
from morph.core.select import Select
from morph.select.rank import choose

RELATIVE = {"select.latency_budget_s": None, "select.latency_budget_relative": {"relative_to": "baseline",
                                                                                "factor": 0.5}}


@pytest.mark.parametrize("overrides,message", [
    ({"select.latency_budget_relative": {"relative_to": "baseline", "factor": -0.5}, "select.latency_budget_s": None},
     "select.latency_budget_relative.factor: -0.5 must be above 0"),
    ({"select.latency_budget_relative": {"relative_to": "fastest", "factor": 0.5}, "select.latency_budget_s": None},
     "select.latency_budget_relative.relative_to: 'fastest' is not one of ['baseline']"),
    ({"select.latency_budget_relative": {"factor": 0.5}}, "set exactly one of select.latency_budget_s"),
    ({"select.latency_budget_s": None}, "set exactly one of select.latency_budget_s"),
    # d32-l1 at batch 4 and context 48 holds 2*1*32*48*4 values of 4 bytes: 0.0469 MiB, the smallest.
    ({"select.max_kv_cache": {"batch": 4, "context": 48, "mib": 0.04}},
     "select.max_kv_cache.mib: 0.04 MiB is below the smallest candidate's KV cache"),
    ({"select.min_throughput": {"batch": 8, "tokens_per_s": 10}}, "select.min_throughput.batch: 8 is not timed"),
    ({"select.max_ttft_s": 0.1}, "select.max_ttft_s: time-to-first-token is not measured"),
])
def test_bad_budgets_are_refused_at_load(tmp_path, overrides, message):
    with pytest.raises(MorphError) as err:
        experiment.load(write_params(tmp_path / "p.yaml", overrides))
    assert message in str(err.value)


def cand(shape_id, layers, latency, throughput=None, kv=None, ttft=None):
    serving = {k: v for k, v in (("throughput_tokens_per_s", throughput), ("kv_cache_mib", kv), ("ttft_s", ttft))
               if v is not None}
    return {"shape_id": shape_id, "d_model": 64, "n_layers": layers, "n_heads": 2, "n_kv_heads": 2, "ffn": 176,
            "vocab_size": 512, "tie_embeddings": False, "params": 100_000, "params_gap": 0.0, "within_tolerance": True,
            "latency": {"median_s": latency}, "serving": serving, "predicted_loss": 3.0 - 0.1 * layers}


SELECT = {"params": 100_000, "tokens": 1_000_000, "depths": [1], "k": 3, "baseline": {"d_model": 32, "n_layers": 6}}


# Deeper candidates predict lower loss here, so the top-3 is the deepest three that meet the budget.
@pytest.mark.parametrize("budget,costs,dropped,reason,top", [
    ({"min_throughput": {"batch": 4, "tokens_per_s": 100}}, {"throughput": [300, 150, 90, 40]}, {"l3", "l4"},
     "tokens/s at batch 4 is under the budget 100", ["l2", "l1"]),
    ({"max_kv_cache": {"batch": 1, "context": 256, "mib": 2}}, {"kv": [0.5, 1.0, 1.5, 2.5]}, {"l4"},
     "KV cache 2.5 MiB at batch 1, context 256 is over the budget 2 MiB", ["l3", "l2", "l1"]),
    ({"max_ttft_s": 0.05}, {"ttft": [0.01, 0.02, 0.06, 0.08]}, {"l3", "l4"},
     "time to first token 0.060 s is over the budget 0.05 s", ["l2", "l1"]),
])
def test_each_serving_budget_drops_exactly_the_candidates_over_it(budget, costs, dropped, reason, top):
    (kind, values), = costs.items()
    cands = [cand(f"l{i}", i, 0.1, **{kind: v}) for i, v in enumerate(values, 1)]
    sel = build(Select, {**SELECT, "latency_budget_s": 1.0, **budget})
    chosen, _, _ = choose(cands, sel, 1.0)
    assert {c["shape_id"] for c in cands if not c["kept"]} == dropped
    assert any(reason in c["reason"] for c in cands if not c["kept"])
    assert [c["shape_id"] for c in chosen] == top


def test_a_candidate_over_two_budgets_names_both():
    c = cand("l9", 9, 2.0, ttft=0.5)
    sel = build(Select, {**SELECT, "latency_budget_s": 1.0, "max_ttft_s": 0.1})
    with pytest.raises(MorphError):
        choose([c], sel, 1.0)
    assert "over the budget T_C=1.000 s" in c["reason"] and "time to first token 0.500 s" in c["reason"]


# -- a machine twice as fast: a relative T_C keeps the decision, an absolute one does not ------------------------

def write_tree(root, factor: float, relative: bool):
    """Latency tables and a fitted law for the CI experiment's candidates (depths 1-3, baseline 6 layers).
    Latency grows with depth, 0.05 + 0.1 L seconds; the law favours depth (loss grows with R)."""
    over = RELATIVE if relative else {"select.latency_budget_s": 0.3}
    params = write_params(root / PARAMS, over)
    exp = experiment.load(params)
    rows = [{"shape_id": s.shape_id, "backend": "hf", "setting": "full", "median": (0.05 + 0.1 * s.n_layers) * factor,
             "p10": 0, "p90": 0, "cv": ""} for s in (*exp.candidate_shapes, exp.baseline.shape)]
    (root / "results").mkdir(exist_ok=True)
    with open(root / LATENCY_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (root / LATENCY_MODEL).write_text(json.dumps({"models": []}))
    (root / "results/law.json").write_text(json.dumps({"law": "inference-aware", "coefficients": {
        "E": 1.5, "A": 400.0, "B": 400.0, "alpha": 0.3, "beta": 0.3, "eps": 0.01, "gamma": 1.0}}))


def decide(root, capsys) -> dict:
    with contextlib.chdir(root):
        assert cli.main(["candidates", "--params", PARAMS]) == 0
        assert cli.main(["select", "--params", PARAMS, "--law", "results/law.json"]) == 0
    capsys.readouterr()
    return json.loads((root / SELECTION).read_text())


@pytest.mark.parametrize("relative", [True, False], ids=["relative T_C", "absolute T_C"])
def test_halving_every_latency(tmp_path, capsys, relative):
    write_tree(tmp_path, 1.0, relative)
    before = decide(tmp_path, capsys)
    write_tree(tmp_path, 0.5, relative)
    after = decide(tmp_path, capsys)
    top = lambda s: [c["shape_id"] for c in s["top_k"]]  # noqa: E731 (a one-line helper)
    dropped = {c["shape_id"]: c["reason"] for c in before["candidates"] if not c["kept"]}
    # On the slower machine T_C is 0.3 s given, or half the baseline's 0.65 s: the 3-layer 0.35 s is over either.
    assert len(dropped) == 1
    assert f"over the budget T_C={0.325 if relative else 0.3:.3f} s" in next(iter(dropped.values()))
    if relative:
        assert top(after) == top(before)
        assert after["budgets"]["latency_s"] == pytest.approx(before["budgets"]["latency_s"] / 2)
        assert "x the baseline d32-l6" in after["budgets"]["latency_rule"]
    else:
        assert top(after) != top(before)
        assert top(after)[0] in dropped  # the deep shape the slower machine excluded now wins
        assert after["budgets"]["latency_rule"] == "select.latency_budget_s"
