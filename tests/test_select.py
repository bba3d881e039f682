"""Predict, rank, select: budgets, ranking, warnings and the no-feasible-candidate error."""
from __future__ import annotations

import pytest

from morph.errors import MorphError
from morph.figures import pareto
from morph.select.rank import choose
from morph.spec.schema import build
from morph.spec.select import Select

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
    top, warnings, ranking = choose(cands, SEL, SEL.latency_budget_s)
    assert [c["shape_id"] for c in top] == ["d120-l3", "d104-l4"] and ranking["informative"]
    assert [c["slot"] for c in top] == ["top-1", "top-2"]
    assert top[0]["run_id"] == "d120-l3-D2M"
    assert warnings == []
    by_id = {c["shape_id"]: c for c in cands}
    assert "over the budget T_C=1.0" in by_id["d88-l6"]["reason"]
    assert "over the parameter cap" in by_id["d300-l1"]["reason"]
    assert by_id["d160-l1"]["kept"] and by_id["d160-l1"]["rank"] == 3


def test_k_above_feasible_warns_and_takes_all_feasible():
    cands = [cand("d160-l1", 1_000_000, 0.2, 3.1, 160, 1), cand("d88-l6", 990_000, 5.0, 2.9, 88, 6)]
    top, warnings, _ = choose(cands, SEL, SEL.latency_budget_s)
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
                "law": "inference-aware", "chosen": model, "models": [model], "candidates": [],
                "verdict": {"kind": "matches", "statement": "it matches", "versus_baseline": []},
                "decision_rule": {"name": "matches-baseline", "statement": "fastest", "confidence": 0.95,
                                  "bootstrap": 10},
                "ranking": {"informative": True, "basis": "point predictions", "statement": "one candidate"},
                "r_effect": {"statement": "no bootstrap refits", "gamma": None},
                "hindsight": None, "warnings": [], "law_warnings": [], "knobs": [],
                "noise": {"loss_sd": None, "replicated_runs": [], "law_cv_rmse": None}}
    page = tmp_path / "results" / "report.md"
    figs = [tmp_path / "results" / "figures" / "a.png", tmp_path / "elsewhere" / "b.png"]
    text = markdown(decision, figs, page)
    assert "![a](figures/a.png)" in text and "![b](../elsewhere/b.png)" in text
    assert markdown(decision, [Path("results/figures/a.png")], Path("results/report.md")).count("(figures/a.png)") == 1


def _model(role, run_id, correct, latency, loss=4.7, base_latency=1.2):
    """A model entry and its per-item scores on 60 items of one task (1 where `correct` holds the id)."""
    items = {i: float(i in correct) for i in range(60)}
    entry = {"role": role, "run_id": run_id, "avg_accuracy": sum(items.values()) / 60,
             "latency": {"median_s": latency}, "speedup_vs_baseline": base_latency / latency, "actual_loss": loss}
    return entry, {"copa": items}


def _decide(*models, confidence=0.95, loss_sd=0.05, hindsight=None):
    from morph.report.decide import decide
    from morph.report.uncertainty import paired_draws

    draws = paired_draws({m["run_id"]: items for m, items in models}, draws=2000, seed=0)
    return decide([m for m, _ in models], draws, confidence, loss_sd, hindsight)


BASE = _model("baseline", "d56-l8", set(range(30)), latency=1.2, loss=4.70)


# Two runs' losses, each with sd 0.05, differ by more than 1.96 * 0.05 * sqrt(2) = 0.1386 one time in 20.
def test_the_fastest_shape_within_noise_of_the_baseline_is_released_with_its_cost():
    deep = _model("top-1", "d64-l6", set(range(30)), latency=0.9, loss=4.75)
    fast = _model("top-2", "d72-l4", set(range(2, 31)), latency=0.6, loss=4.83)  # 0.13 behind: within noise
    d = _decide(deep, fast, BASE)
    assert d["verdict"] == "matches" and d["rule"] == "matches-baseline" and d["released"]["run_id"] == "d72-l4"
    assert "2.00x" in d["statement"] and "+0.1300" in d["statement"] and "+2.6 sd" in d["statement"]


def test_a_faster_shape_behind_the_baseline_beyond_noise_does_not_match():
    deep = _model("top-1", "d64-l6", set(range(30)), latency=0.9, loss=4.75)
    fast = _model("top-2", "d72-l4", set(range(30)), latency=0.3, loss=4.85)  # 0.15 behind: beyond 0.1386
    d = _decide(deep, fast, BASE)
    assert d["verdict"] == "matches" and d["released"]["run_id"] == "d64-l6"
    [_, f] = d["versus_baseline"]
    assert not f["loss_within_noise"] and f["delta_loss_sd"] == pytest.approx(3.0)


def test_no_match_releases_the_lowest_loss_and_states_the_trade():
    a = _model("top-1", "d72-l4", set(range(30)), latency=0.6, loss=4.95)
    b = _model("top-2", "d104-l1", set(range(30)), latency=0.3, loss=5.10)
    d = _decide(a, b, BASE)
    assert d["verdict"] == "trades" and d["rule"] == "lowest-loss" and d["released"]["run_id"] == "d72-l4"
    assert "trades Δ held-out loss +0.2500 (+5.0 sd)" in d["statement"] and "2.00x" in d["statement"]
    every = {"top_k_has_best": True, "all_feasible_trained": True}
    assert _decide(a, b, BASE, hindsight=every)["verdict"] == "none-matches"


def test_accuracy_below_the_baseline_beyond_noise_is_no_match():
    weak = _model("top-1", "d72-l4", set(range(5)), latency=0.6, loss=4.70)  # 5 of 60 against 30 of 60
    d = _decide(weak, BASE)
    [c] = d["versus_baseline"]
    assert c["loss_within_noise"] and c["accuracy_below_beyond_noise"] and d["verdict"] == "trades"


def test_without_replicates_only_a_loss_at_or_below_the_baseline_matches():
    close = _model("top-1", "d72-l4", set(range(30)), latency=0.6, loss=4.71)
    d = _decide(close, BASE, loss_sd=None)
    assert d["verdict"] == "trades" and "noise unknown" in d["statement"]


def test_a_better_shape_outside_the_top_k_means_no_decision():
    a = _model("top-1", "d72-l4", set(range(30)), latency=0.6, loss=4.70)
    missed = {"top_k_has_best": False, "all_feasible_trained": True,
              "best": {"shape_id": "d48-l6", "run_id": "d48-l6-D1M", "measured_loss": 4.40},
              "regret": {"top_k_best": "d72-l4", "top_k_loss": 0.30}}
    d = _decide(a, BASE, hindsight=missed)
    assert d["verdict"] == "no-decision" and d["released"] is None and "d48-l6" in d["statement"]


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
