"""Predict, rank, select: budgets, ranking, warnings and the no-feasible-candidate error."""
from __future__ import annotations

import pytest

from morph.errors import MorphError
from morph.figures import pareto
from morph.select.rank import choose
from morph.workflow.experiment import Select
from morph.workflow.schema import build

SEL = build(Select, {"params": 1_000_000, "tolerance": 0.1, "latency_budget_s": 1.0, "k": 2, "tokens": 2_000_000,
                     "depths": [1], "baseline": {"d_model": 64, "n_layers": 4}})


def cand(shape_id, params, latency, loss, d_model=64, n_layers=2):
    return {"shape_id": shape_id, "params": params, "params_gap": params / SEL.params - 1,
            "within_tolerance": abs(params / SEL.params - 1) <= SEL.tolerance,
            "latency": {"median_s": latency}, "predicted_loss": loss, "d_model": d_model, "n_layers": n_layers,
            "n_heads": 4, "n_kv_heads": 4, "ffn": 192, "vocab_size": 2048, "tie_embeddings": False}


def test_ranks_feasible_by_predicted_loss_and_gives_every_drop_a_reason():
    cands = [
        cand("d160-l1", 1_000_000, 0.2, 3.10, 160, 1),
        cand("d120-l3", 1_010_000, 0.5, 3.00, 120, 3),
        cand("d88-l6", 990_000, 1.5, 2.95, 88, 6),   # best loss but too slow
        cand("d300-l1", 1_500_000, 0.3, 2.50, 300, 1),  # over the parameter cap
        cand("d104-l4", 960_000, 0.7, 3.05, 104, 4),
    ]
    top, warnings = choose(cands, SEL, SEL.latency_budget_s)
    assert [c["shape_id"] for c in top] == ["d120-l3", "d104-l4"]
    assert [c["slot"] for c in top] == ["top-1", "top-2"]
    assert top[0]["run_id"] == "d120-l3-D2M"
    assert warnings == []
    by_id = {c["shape_id"]: c for c in cands}
    assert "over the budget T_C=1.0" in by_id["d88-l6"]["reason"]
    assert "over the parameter cap" in by_id["d300-l1"]["reason"]
    assert by_id["d160-l1"]["kept"] and by_id["d160-l1"]["rank"] == 3


def test_k_above_feasible_warns_and_takes_all_feasible():
    cands = [cand("d160-l1", 1_000_000, 0.2, 3.1, 160, 1), cand("d88-l6", 990_000, 5.0, 2.9, 88, 6)]
    top, warnings = choose(cands, SEL, SEL.latency_budget_s)
    assert [c["shape_id"] for c in top] == ["d160-l1"]
    assert warnings and "only 1 candidate(s) are feasible" in warnings[0]


def test_no_feasible_candidate_lists_each_with_latency_and_params():
    cands = [cand("d88-l6", 990_000, 5.0, 2.9, 88, 6), cand("d104-l4", 960_000, 3.0, 3.0, 104, 4)]
    with pytest.raises(MorphError) as err:
        choose(cands, SEL, SEL.latency_budget_s)
    msg = str(err.value)
    assert "no candidate meets the budgets" in msg
    assert "d88-l6: N=990,000, latency=5.000 s" in msg and "d104-l4: N=960,000, latency=3.000 s" in msg


def test_pareto_frontier_keeps_points_no_other_beats_on_both_axes():
    # (latency, accuracy): the second is dominated by the first (slower and less accurate).
    points = [(1.0, 0.50), (2.0, 0.45), (3.0, 0.60), (0.5, 0.40)]
    assert pareto(points) == [3, 0, 2]


def test_report_links_figures_relative_to_the_page_wherever_they_are(tmp_path):
    from pathlib import Path

    from morph.report.write import markdown

    model = {"run_id": "d64-l2-D1M", "role": "top-1", "params": 1000, "aspect_ratio": 32.0,
             "predicted_loss": 3.1, "actual_loss": 3.2, "latency": {"median_s": 0.5, "p10_s": 0.4, "p90_s": 0.6},
             "speedup_vs_baseline": 1.0, "avg_accuracy": 0.5, "accuracy": {"copa": 0.5}, "eval_limit": None,
             "shape": {"d_model": 64, "n_layers": 2}}
    decision = {"budgets": {"params": 1000, "tolerance": 0.1, "tokens": 10, "latency_s": 1.0,
                            "latency_rule": "select.latency_budget_s", "k": 1},
                "law": "inference-aware", "chosen": model, "why": "best", "models": [model], "candidates": [],
                "warnings": [], "law_warnings": []}
    page = tmp_path / "results" / "report.md"
    figs = [tmp_path / "results" / "figures" / "a.png", tmp_path / "elsewhere" / "b.png"]
    text = markdown(decision, figs, page)
    assert "![a](figures/a.png)" in text and "![b](../elsewhere/b.png)" in text
    assert markdown(decision, [Path("results/figures/a.png")], Path("results/report.md")).count("(figures/a.png)") == 1
