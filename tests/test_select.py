"""Predict, rank, select: budgets, ranking, warnings and the no-feasible-candidate error."""
from __future__ import annotations

from pathlib import Path

import pytest

from morph.core.artifacts.common import FIGURES, figure
from morph.core.artifacts.report import MODEL_CARD, REPORT_MD
from morph.core.artifacts.train import run_dir, run_model
from morph.core.errors import MorphError
from morph.core.figures import pareto
from morph.core.schema import build
from morph.core.select import Select
from morph.report.contrasts import Noise, paired_noise
from morph.report.decide import decide
from morph.select.rank import choose

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


def test_a_latency_budget_in_the_wrong_unit_is_named():
    cands = [cand("d160-l1", 1_000_000, 0.2, 3.1, 160, 1), cand("d88-l6", 990_000, 1.5, 2.9, 88, 6)]
    _, warnings, _ = choose(cands, SEL, 1200.0)  # meant as ms
    assert any("rules out nothing" in w and "select.latency_budget_s" in w for w in warnings)
    assert not choose(cands, SEL, 2.0)[1]


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


def model_entry(run_id, role, shape_id, accuracy: dict[str, float]) -> dict:
    """A model as morph1b.json lists it, scored on `accuracy`'s tasks."""
    return {"run_id": run_id, "role": role, "shape_id": shape_id, "params": 1000, "aspect_ratio": 32.0,
            "predicted_loss": 3.1, "actual_loss": 3.2, "mean_loss": 3.2, "seed_losses": [3.2],
            "latency": {"median_s": 0.5, "p10_s": 0.4, "p90_s": 0.6}, "speedup_vs_baseline": 1.0,
            "avg_accuracy": sum(accuracy.values()) / len(accuracy), "avg_accuracy_interval": [0.0, 1.0],
            "accuracy": accuracy, "accuracy_stderr": dict.fromkeys(accuracy, 0.05), "eval_limit": None,
            "eval_max_length": 64, "eval_too_long": dict.fromkeys(accuracy, 0), "shape": {"d_model": 64, "n_layers": 2}}


def decision_record(models: list[dict], tasks: dict, verdict: dict | None = None) -> dict:
    """A morph1b.json the report page renders: `models` first the release, `tasks` each task's levels."""
    verdict = {"kind": "matches", "basis": "measured", "headline": "MATCHES", "weights": "runs/x/model",
               "model_card": MODEL_CARD, "within_margin_of_best": ["d64-l2"], "best_measured": "d64-l2",
               "tied_in_speed": ["d64-l2"], "accuracy": {"delta": 0.0, "interval": [0.0, 0.0]}, "comparisons": 1,
               "margin": 0.03, "mcb_upper": {"d64-l2": 0.0}, "versus_baseline": {}, "seeds_to_show_the_best": None,
               "by_backend": {}, "disturbed_timings": [], **(verdict or {})}
    return {"budgets": {"params": 1000, "tolerance": 0.1, "tokens": 10, "latency_s": 1.0,
                        "latency_rule": "select.latency_budget_s", "k": 1},
            "law": "inference-aware", "params_count": "non-embedding", "chosen": models[0], "models": models,
            "tasks": tasks, "candidates": [], "verdict": verdict,
            "decision_rule": {"name": "measured", "statement": "fastest", "confidence": 0.95, "bootstrap": 10},
            "ranking": {"informative": True, "basis": "point predictions", "statement": "one candidate"},
            "r_effect": {"statement": "no bootstrap refits", "gamma": None},
            "hindsight": None, "warnings": [], "law_warnings": [], "knobs": [],
            "noise": {"loss_sd": None, "replicated_runs": [], "law_cv_rmse": None}}


COPA = {"copa": {"metric": "acc_norm", "chance": 0.5, "constant_answer": None}}


def test_report_links_figures_relative_to_the_page_wherever_they_are(tmp_path):
    from pathlib import Path

    from morph.report.write import markdown

    decision = decision_record([model_entry("d64-l2-D1M", "release", "d64-l2", {"copa": 0.6})], COPA)
    page = tmp_path / REPORT_MD
    figs = [Path(figure("a", tmp_path / FIGURES)), tmp_path / "elsewhere" / "b.png"]
    text = markdown(decision, figs, page)
    assert "![a](figures/a.png)" in text and "![b](../elsewhere/b.png)" in text
    assert markdown(decision, [Path(figure("a"))], Path(REPORT_MD)).count("(figures/a.png)") == 1
    card = Path(MODEL_CARD).name  # beside the page
    assert f"[{card}]({card})" in markdown(decision, [], Path(REPORT_MD))


def table(text: str, headers: str) -> list[dict[str, str]]:
    """The markdown table whose header starts with `headers` ("shape | Δ"), as one dict per row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {headers}"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def test_the_page_says_only_what_holds():
    """A release better than the baseline beyond noise is said to be, in the headline and in its row, and no
    weaker claim is made; the average and the per-task table use one metric; a score at or below chance (or below
    always giving the most common answer) is marked; what N counts is stated."""
    from conftest import CI_PARAMS
    from morph.core import experiment
    from morph.report.write import markdown, verdict_record

    d = decide([shape("better", BASE["mean_loss"] - 0.10, 0.5), shape("close", BASE["mean_loss"] - 0.002, 0.4)],
               BASE, NOISE, DELTA)
    tasks = {"boolq": {"metric": "acc", "chance": 0.5, "constant_answer": 0.62},
             "hellaswag": {"metric": "acc_norm", "chance": 0.25, "constant_answer": 0.01},
             "winogrande": {"metric": "acc", "chance": 0.5, "constant_answer": None}}
    release, other = d["shape"]["shape_id"], ({"better", "close"} - {d["shape"]["shape_id"]}).pop()
    release = model_entry(f"{release}-D1M", "release", release, {"boolq": 0.60, "hellaswag": 0.31, "winogrande": 0.50})
    other = model_entry(f"{other}-D1M", "candidate", other, {"boolq": 0.66, "hellaswag": 0.24, "winogrande": 0.52})
    base = model_entry("base-D1M", "baseline", "base", {"boolq": 0.64, "hellaswag": 0.25, "winogrande": 0.55})
    record = verdict_record(d, release | {"speedup_vs_baseline": 2.0}, release["run_id"],
                            {"run_id": "base-D1M", "mean_loss": BASE["mean_loss"], "latency": {"median_s": 1.0}},
                            NOISE, DELTA, experiment.load(CI_PARAMS), predicted=False)
    text = markdown(decision_record([release, other, base], tasks, record | {
                        "model_card": MODEL_CARD, "accuracy": {"delta": 0, "interval": [0, 0]}, "by_backend": {},
                        "disturbed_timings": []}),
                    [], Path(REPORT_MD))
    assert d["versus_baseline"]["upper"] < 0 and "better than the baseline beyond noise" in record["headline"]
    assert "within noise" not in text
    rows = table(text, "shape")
    for row in rows:
        upper = float(row["bounds"].strip("[]").split(",")[1])
        assert ("better beyond noise" in row["verdict"]) == (upper < 0), row
    assert {r["shape"] for r in rows if "better beyond noise" in r["verdict"]} == {"better"}

    per_task = {r["model"]: r for r in table(text, "model | boolq (acc)") if r["model"].endswith("-D1M")}
    averages = {r["model"]: float(r[next(k for k in r if k.startswith("avg accuracy"))].split()[0])
                for r in table(text, "model | role")}
    assert len(per_task) == len(averages) == 3
    for name, row in per_task.items():
        cells = {t: row[f"{t} ({level['metric']})"] for t, level in tasks.items()}
        assert averages[name] == pytest.approx(sum(float(c.split()[0]) for c in cells.values()) / len(cells), abs=1e-3)
        for t, level in tasks.items():
            score = float(cells[t].split()[0])
            beaten = score > level["chance"] and score >= (level["constant_answer"] or 0)
            assert cells[t].endswith("†") != beaten, (name, t, cells[t])
    assert "the law's N counts the non-embedding parameters" in text


def shape(shape_id, mean_loss, latency, band=0.0):
    return {"shape_id": shape_id, "mean_loss": mean_loss, "latency_s": latency,
            "latency_low_s": latency - band, "latency_high_s": latency + band}


BASE = {"mean_loss": 4.47, "latency_s": 1.38}
NOISE = Noise(sd=0.008, df=8, seeds=3, source="test")  # se of a difference of means: 0.0065
DELTA = 0.045


def test_a_faster_shape_outside_the_top_k_that_measures_lower_is_released():
    """The default experiment's case: the law ranked d72-l4 and d80-l3 top; d88-l2 (third) is faster and lower in
    loss. The release comes from the measurements, so d88-l2 is released."""
    shapes = [shape("d72-l4", 4.3504, 0.730), shape("d80-l3", 4.3420, 0.783), shape("d88-l2", 4.3329, 0.457),
              shape("d104-l1", 4.6560, 0.353)]
    d = decide(shapes, BASE, NOISE, DELTA)
    assert d["shape"]["shape_id"] == "d88-l2" and d["verdict"] == "matches"
    assert "d104-l1" not in d["within_margin_of_best"]  # fastest, but 0.32 behind the best: beyond delta
    assert set(d["within_margin_of_best"]) == {"d72-l4", "d80-l3", "d88-l2"}
    assert d["versus_baseline"]["better_beyond_noise"]


def test_matches_needs_the_upper_bound_within_delta_not_merely_no_evidence_of_harm():
    """A shape 2.6 sd behind the baseline (the old rule's 'match') with delta below its bound is not a match."""
    d = decide([shape("fast", BASE["mean_loss"] + 0.04, 0.3)], BASE, NOISE, 0.03)
    assert d["verdict"] == "inconclusive" and d["versus_baseline"]["seeds_to_decide"] > 3
    d = decide([shape("fast", BASE["mean_loss"] + 0.10, 0.3)], BASE, NOISE, 0.03)
    assert d["verdict"] == "worse" and d["versus_baseline"]["lower"] > 0.03


def test_shapes_tied_in_speed_are_decided_by_loss():
    """Latency bands that overlap are a tie in speed: the lower loss wins it."""
    shapes = [shape("a", 4.37, 0.50, band=0.06), shape("b", 4.36, 0.54, band=0.06), shape("c", 4.35, 0.90)]
    d = decide(shapes, BASE, NOISE, DELTA)
    assert d["shape"]["shape_id"] == "b" and set(d["tied_in_speed"]) == {"a", "b"}


def test_at_paper_scale_the_verdict_is_the_laws_prediction_and_says_so_first():
    """select.validate: none: nothing measured with seeds, so the law's top-1 is judged on the law's own bounds,
    and the first words of the verdict say it was predicted."""
    from morph.report.decide import decide_predicted
    from morph.report.write import headline

    top = {"shape_id": "d3072-l12", "latency": {"median_s": 0.5},
           "predicted_vs_baseline": {"point": 0.004, "upper": 0.012, "lower": -0.003}}
    d = decide_predicted(top, 0.9, margin=0.03)
    assert d["verdict"] == "matches" and d["speedup"] == pytest.approx(1.8)
    record = {"kind": d["verdict"], "basis": "predicted, not measured", "released": "top-1", "margin": 0.03,
              "margin_rule": "absolute", "delta_loss": 0.004, "upper": 0.012, "lower": -0.003, "comparisons": 1,
              "noise": None, "seeds": 1, "speedup": d["speedup"], "speedup_interval": None,
              "better_beyond_noise": False, "seeds_to_decide": None}
    line = headline(record, "d2048-l24-D30G")
    assert line.startswith("MATCHES (predicted, not measured)") and "the law's bootstrap refits" in line
    assert decide_predicted(top | {"predicted_vs_baseline": {"point": 0.05, "upper": 0.06, "lower": 0.04}},
                            0.9, 0.03)["verdict"] == "worse"


def test_each_serving_stack_gets_its_own_release_and_the_report_says_when_it_changes():
    """Eager generate favours the shallow shape; a compiled stack near the memory limit favours the one with fewer
    weight bytes. Same losses, two releases, and the first lines say the decision depends on the stack."""
    from morph.report.decide import per_stack
    from morph.report.write import stack_lines

    def timed(median):
        return {"median_s": median, "p10_s": median * 0.99, "p90_s": median * 1.01}

    shapes = [{"shape_id": "wide", "mean_loss": 4.30, "latency_by_backend": {"hf": timed(0.40), "static": timed(0.30)}},
              {"shape_id": "deep", "mean_loss": 4.31, "latency_by_backend": {"hf": timed(0.70), "static": timed(0.25)}}]
    base = {"mean_loss": 4.47, "latency_by_backend": {"hf": timed(1.4), "static": timed(0.35)}}
    stacks = per_stack(shapes, base, NOISE, DELTA, lambda base_latency: 0.9 * base_latency)
    assert stacks["hf"]["release"] == "wide" and stacks["static"]["release"] == "deep"
    assert stacks["static"]["latency_budget_s"] == pytest.approx(0.315) and stacks["static"]["feasible"] == ["wide",
                                                                                                            "deep"]
    assert stacks["hf"]["speedup"] == pytest.approx(1.4 / 0.40)
    [line, _] = stack_lines({"by_backend": stacks, "latency_backend": "hf"})
    assert line.startswith("**The decision depends on the serving stack** (T_C judged on hf)")


def test_the_released_weights_are_the_run_directory_that_was_measured():
    """A release measured through its top-k slot (select.validate a count) has its weights in runs/top-1, though
    its metrics name the run id the slot trained."""
    from conftest import CI_PARAMS
    from morph.core import experiment
    from morph.report.write import verdict_record

    d = decide([shape("d72-l4", 4.35, 0.7)], BASE, NOISE, DELTA)
    model = {"run_id": "d72-l4-D800k", "latency": {"median_s": 0.7}, "speedup_vs_baseline": 2.0}
    base = {"run_id": "d56-l8-D800k", "mean_loss": 4.47, "latency": {"median_s": 1.4}}
    record = verdict_record(d, model, run_dir("top-1"), base, NOISE, DELTA, experiment.load(CI_PARAMS),
                            predicted=False)
    assert record["weights"] == run_model("top-1") and record["released"] == "d72-l4-D800k"


def test_without_noise_nothing_is_claimed():
    d = decide([shape("a", 4.40, 0.5), shape("b", 4.30, 0.9)], BASE, None, DELTA)
    assert d["shape"]["shape_id"] == "b" and not d["claims_within_margin_of_best"]
    assert d["verdict"] == "inconclusive" and d["versus_baseline"]["upper"] is None


def test_the_noise_of_paired_seeds_has_its_degrees_of_freedom():
    """Seed effects shared by every shape cancel: a loss table that is shape + seed exactly has zero residual
    sd, and the df is (shapes - 1)(seeds - 1)."""
    seed_effect = [0.03, -0.01, 0.02]
    table = {s: [base + e for e in seed_effect] for s, base in (("a", 4.3), ("b", 4.4), ("c", 4.5))}
    noise = paired_noise(table)
    assert noise.df == 4 and noise.sd == pytest.approx(0.0, abs=1e-12)
    table["c"][0] += 0.03
    noise = paired_noise(table)
    low, high = noise.sd_interval()
    assert noise.sd > 0 and low < noise.sd < high


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
