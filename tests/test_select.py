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
             "speedup_vs_baseline": 1.0, "avg_accuracy": 0.5, "avg_accuracy_interval": [0.4, 0.6],
             "accuracy": {"copa": 0.5}, "accuracy_stderr": {"copa": 0.05}, "eval_limit": None, "eval_max_length": 64,
             "eval_too_long": {"copa": 0},
             "shape": {"d_model": 64, "n_layers": 2}}
    decision = {"budgets": {"params": 1000, "tolerance": 0.1, "tokens": 10, "latency_s": 1.0,
                            "latency_rule": "select.latency_budget_s", "k": 1},
                "law": "inference-aware", "chosen": model, "why": "best", "models": [model], "candidates": [],
                "decision_rule": {"name": "sole-candidate", "statement": "only one", "confidence": 0.95, "bootstrap": 10},
                "comparisons": [], "warnings": [], "law_warnings": [], "ties": [], "knobs": [],
                "noise": {"loss_sd": None, "replicated_runs": [], "law_cv_rmse": None, "rule": "no replicated runs"}}
    page = tmp_path / "results" / "report.md"
    figs = [tmp_path / "results" / "figures" / "a.png", tmp_path / "elsewhere" / "b.png"]
    text = markdown(decision, figs, page)
    assert "![a](figures/a.png)" in text and "![b](../elsewhere/b.png)" in text
    assert markdown(decision, [Path("results/figures/a.png")], Path("results/report.md")).count("(figures/a.png)") == 1


def _model(role, run_id, correct, latency, loss=4.7):
    """A model entry and its per-item scores on 60 items of one task (1 where `correct` holds the id)."""
    items = {i: float(i in correct) for i in range(60)}
    entry = {"role": role, "run_id": run_id, "avg_accuracy": sum(items.values()) / 60,
             "latency": {"median_s": latency}, "speedup_vs_baseline": 1.0, "actual_loss": loss}
    return entry, {"copa": items}


def _decide(*models, confidence=0.95, loss_sd=0.05):
    from morph.report.decide import decide
    from morph.report.uncertainty import paired_draws

    draws = paired_draws({m["run_id"]: items for m, items in models}, draws=2000, seed=0)
    return decide([m for m, _ in models], draws, confidence, loss_sd)


def test_a_lead_within_noise_releases_the_faster_shape_and_says_why():
    # One item apart (30 vs 29 of 60, disagreeing on 3 items): noise at any usual confidence.
    slow = _model("top-1", "d64-l6", set(range(30)), latency=0.9)
    fast = _model("top-2", "d72-l4", set(range(2, 31)), latency=0.6)
    base = _model("baseline", "d56-l8", set(range(60)), latency=1.2)  # never a candidate, however accurate
    chosen, rule, why, comparisons = _decide(slow, fast, base)
    assert rule == "fastest-within-noise" and chosen["run_id"] == "d72-l4"
    assert "within noise" in why and "d72-l4" in why
    [c] = comparisons
    assert c["leader"] == "d64-l6" and c["other"] == "d72-l4" and c["within_noise"]
    assert c["difference"] == pytest.approx(1 / 60)
    assert c["interval"][0] < 0 < c["interval"][1]


# Two runs' losses, each with sd 0.05, differ by more than 1.96 * 0.05 * sqrt(2) = 0.1386 one time in 20.
@pytest.mark.parametrize("fast_loss, loss_sd, chosen_id, says", [
    (4.70 + 0.15, 0.05, "d64-l6", "d72-l4 is left out: its held-out loss 4.8500 is 0.1500 above d64-l6's 4.7000"),
    (4.70 + 0.13, 0.05, "d72-l4", "the fastest, d72-l4"),
    (4.70 + 0.50, None, "d72-l4", "held-out losses are not compared: no replicated runs"),
])
def test_a_shape_tied_in_accuracy_but_behind_in_held_out_loss_beyond_noise_is_not_released(fast_loss, loss_sd,
                                                                                           chosen_id, says):
    slow = _model("top-1", "d64-l6", set(range(30)), latency=0.9, loss=4.70)
    fast = _model("top-2", "d72-l4", set(range(2, 31)), latency=0.6, loss=fast_loss)
    chosen, rule, why, [c] = _decide(slow, fast, loss_sd=loss_sd)
    assert c["within_noise"] and rule == "fastest-within-noise"
    assert chosen["run_id"] == chosen_id and says in why, why


def test_a_lead_beyond_noise_releases_the_more_accurate_shape():
    strong = _model("top-1", "d64-l6", set(range(50)), latency=0.9)
    weak = _model("top-2", "d72-l4", set(range(10)), latency=0.6)
    chosen, rule, why, [c] = _decide(strong, weak)
    assert rule == "most-accurate" and chosen["run_id"] == "d64-l6"
    assert not c["within_noise"] and c["interval"][0] > 0


def test_paired_bootstrap_of_constant_scores_has_no_spread():
    from morph.report.uncertainty import interval, paired_draws

    always = {"copa": {i: 1.0 for i in range(20)}, "piqa": {i: 1.0 for i in range(30)}}
    never = {"copa": {i: 0.0 for i in range(20)}, "piqa": {i: 0.0 for i in range(30)}}
    draws = paired_draws({"a": always, "b": never}, draws=50, seed=3)
    assert interval(draws["a"], 0.95) == [1.0, 1.0] and interval(draws["b"], 0.95) == [0.0, 0.0]


def test_models_scored_on_different_items_are_refused():
    from morph.report.uncertainty import paired_draws

    with pytest.raises(MorphError, match="different copa items"):
        paired_draws({"a": {"copa": {1: 1.0, 2: 0.0}}, "b": {"copa": {1: 1.0, 3: 0.0}}}, draws=10, seed=0)
