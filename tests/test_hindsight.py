"""The decision checked against measured outcomes it did not see: a law that carries no information must not
turn into a release of the fastest shape, and hindsight over trained candidates is computed as defined."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tests.conftest import write_params

from morph import cli
from morph.core.artifacts.common import figure
from morph.core.artifacts.select import PARETO_FIGURE, Selection
from morph.report import hindsight
from morph.report.contrasts import Noise
from morph.report.decide import decide

# Five candidates at one N: shallow ones are fast, and (as measured) worse. R = d_model / n_layers.
SHAPES = [(48, 8, 0.80), (56, 6, 0.62), (64, 4, 0.45), (80, 2, 0.28), (104, 1, 0.16)]  # d_model, layers, latency s
MEASURED_LOSS = {6.0: 4.70, 9.3: 4.72, 16.0: 4.78, 40.0: 4.90, 104.0: 5.05}  # rises with R
LOSS_SD = 0.03
NOISE = Noise(sd=0.01, df=12, seeds=3, source="test")  # paired D_C runs


def cand(d_model, n_layers, latency):
    return {"shape_id": f"d{d_model}-l{n_layers}", "d_model": d_model, "n_layers": n_layers, "n_heads": 2,
            "n_kv_heads": 2, "ffn": 4 * d_model, "vocab_size": 512, "tie_embeddings": False, "ffn_ratio": None,
            "kv_knob": False, "params": 150_000, "params_gap": 0.0, "within_tolerance": True,
            "aspect_ratio": d_model / n_layers, "mlp_attention_ratio": 2.0,
            "latency": {"median_s": latency}, "serving": {}}


def flat_law(draws: int) -> dict:
    """An inference-aware fit with no shape effect (eps = 0): every candidate at one N predicts the same loss,
    in the point fit and in every bootstrap refit."""
    coeffs = {"E": 2.0, "A": 400.0, "alpha": 0.34, "B": 400.0, "beta": 0.28, "eps": 0.0, "gamma": 0.5}
    return {"law": "inference-aware", "coefficients": coeffs,
            "bootstrap": {"draws": [dict(coeffs, E=2.0 + 0.01 * i) for i in range(draws)]},
            "noise_floor": {"run_to_run": {"sd": LOSS_SD}, "cv_error_rmse": 0.2, "replicated_runs": []}}


def run_select(tmp_path, law: dict, k: int = 2) -> dict:
    params = write_params(tmp_path / "p.yaml", {"select.k": k, "select.law": "inference-aware"})
    (tmp_path / "c.json").write_text(json.dumps({"candidates": [cand(*s) for s in SHAPES],
                                                 "baseline": cand(32, 12, 1.0)}))
    (tmp_path / "law.json").write_text(json.dumps(law))
    assert cli.main(["select", "--params", str(params), "--candidates", str(tmp_path / "c.json"),
                     "--law", str(tmp_path / "law.json"), "--out", str(tmp_path / "s.json"),
                     "--figure", figure(PARETO_FIGURE, tmp_path)]) == 0
    return json.loads((tmp_path / "s.json").read_text())


def measured(selection: dict) -> dict:
    return {c["shape_id"]: {"run_id": f"{c['shape_id']}-D1M", "loss": MEASURED_LOSS[round(c["aspect_ratio"], 1)]}
            for c in selection["candidates"]}


def test_a_flat_law_never_releases_the_shallowest_shape_as_matching_the_baseline(tmp_path):
    """A law with no information about shape brackets the latency range; the release then comes from the
    measured losses, which rise with R here, so the fastest (and worst) shape is never it."""
    selection = run_select(tmp_path, flat_law(draws=50))
    preds = {c["predicted_loss"] for c in selection["candidates"]}
    assert len(preds) == 1  # the law carries no information about shape
    assert not selection["ranking"]["informative"]
    top = [c["shape_id"] for c in selection["top_k"]]
    assert top != ["d104-l1", "d80-l2"]  # not the two fastest: a bracket of the range
    assert "d104-l1" in top and "d48-l8" in top

    got = measured(selection)
    shapes = [{"shape_id": c["shape_id"], "mean_loss": got[c["shape_id"]]["loss"],
               "latency_s": c["latency"]["median_s"]} for c in selection["candidates"] if c["kept"]]
    d = decide(shapes, {"mean_loss": 4.70, "latency_s": 1.0}, NOISE, 0.01 * 4.70)
    assert d["shape"]["shape_id"] == "d56-l6" and d["verdict"] == "matches"
    assert set(d["within_margin_of_best"]) == {"d48-l8", "d56-l6"}


def test_an_informative_law_ranks_by_prediction_and_says_so(tmp_path):
    law = flat_law(draws=50)
    law["coefficients"]["eps"] = 0.01  # loss rises with R, by more than any refit moves it
    for i, c in enumerate(law["bootstrap"]["draws"]):
        c["eps"] = 0.01 * (1 + 0.01 * (i % 5))
    selection = run_select(tmp_path, law)
    assert selection["ranking"]["informative"]
    assert [c["shape_id"] for c in selection["top_k"]] == ["d48-l8", "d56-l6"]
    gap = next(c for c in selection["candidates"] if c["shape_id"] == "d104-l1")["gap_to_leader"]
    assert gap["interval"][0] > 0
    effect = selection["r_effect"]
    assert effect["identified"] and effect["high_R"] == "d104-l1" and effect["low_R"] == "d48-l8"
    assert effect["interval"][0] > 0 and "from 0" in effect["statement"]


def test_a_flat_law_says_its_r_effect_is_not_identified(tmp_path):
    law = flat_law(draws=50)
    for i, c in enumerate(law["bootstrap"]["draws"]):  # refits that disagree on the sign of the effect
        c["eps"] = 0.01 * (i % 2)
        c["gamma"] = 0.5 if i % 4 < 2 else -0.5
    effect = run_select(tmp_path, law)["r_effect"]
    assert effect["identified"] is False and "not identified" in effect["statement"]


def test_the_bracket_mirrors_when_latencies_are_reversed(tmp_path):
    """No end of the latency range is favoured: reversing which shapes are fast reverses nothing else."""
    from morph.select.separation import bracket

    tied = [{"shape_id": f"s{i}", "latency": {"median_s": 0.1 * (i + 1)}} for i in range(5)]
    picked = {c["shape_id"] for c in bracket(tied, 2)}
    mirrored = [{"shape_id": c["shape_id"], "latency": {"median_s": 0.6 - c["latency"]["median_s"]}} for c in tied]
    assert picked == {c["shape_id"] for c in bracket(mirrored, 2)} == {"s0", "s4"}
    assert [c["shape_id"] for c in bracket(tied, 3)] == ["s0", "s2", "s4"]


def test_hindsight_numbers_follow_their_definitions(tmp_path):
    selection = run_select(tmp_path, flat_law(draws=20))
    record = Selection.from_json(selection, tmp_path / "s.json")  # its candidates are selection's, edited below
    got = measured(selection)
    h = hindsight.check(record, got, NOISE, "all", 0)
    feasible = [c for c in selection["candidates"] if c["kept"]]
    losses = {c["shape_id"]: got[c["shape_id"]]["loss"] for c in feasible}
    top1 = selection["top_k"][0]["shape_id"]
    assert h["regret"]["loss"] == pytest.approx(losses[top1] - min(losses.values()))
    assert h["regret"]["sd"] == pytest.approx(h["regret"]["loss"] / NOISE.sd)
    values = np.array(list(losses.values()))
    assert h["regret"]["no_signal_expected"] == pytest.approx(values.mean() - values.min())
    assert h["regret"]["no_signal_p"] == pytest.approx(np.mean(values <= losses[top1]))
    pred = np.array([c["predicted_loss"] for c in feasible])
    assert h["law_error"]["rmse"] == pytest.approx(np.sqrt(np.mean((pred - values) ** 2)))
    assert h["spearman"]["rho"] is None  # constant predictions have no rank order
    assert h["best"]["shape_id"] == "d48-l8" and h["all_feasible_trained"]
    # A law whose order is the measured one: rho = 1, which one ordering in n! reaches by chance.
    for c in selection["candidates"]:
        c["predicted_loss"] = got[c["shape_id"]]["loss"] + 0.1
    h = hindsight.check(record, got, NOISE, "all", 0)
    assert h["spearman"]["rho"] == pytest.approx(1.0)
    assert h["spearman"]["p_value"] == pytest.approx(1 / math.factorial(len(feasible)))
    # Reversed, the order is the worst one: every ordering does at least as well.
    for c in selection["candidates"]:
        c["predicted_loss"] = 10 - got[c["shape_id"]]["loss"]
    assert hindsight.check(record, got, NOISE, "all", 0)["spearman"]["p_value"] == pytest.approx(1.0)


def test_a_form_whose_r_term_has_a_fixed_sign_never_identifies_the_r_effect(tmp_path):
    """gamma tied to alpha (tie: all) makes the R term a penalty that only rises with R: however clear the
    interval, the sign came from the form, not the data."""
    law = flat_law(draws=50) | {"tie": "all"}
    law["coefficients"]["eps"] = 0.01
    for c in law["bootstrap"]["draws"]:
        c["eps"] = 0.01
    effect = run_select(tmp_path, law)["r_effect"]
    assert effect["interval"][0] > effect["practical"] > 0
    assert effect["identified"] is False and not effect["sign_free"] and "sign is fixed" in effect["statement"]


def drawn(monkeypatch, module) -> list:
    """The figures `module` saves, kept open instead of written."""
    figs = []
    monkeypatch.setattr(module, "save_png", lambda fig, path: figs.append(fig))
    return figs


def test_hindsight_figure_names_every_candidate_legibly_and_rings_the_release(monkeypatch):
    """The law predicts top-1 and top-2 alike and they measure alike: labels beside the points would overlap. No two
    texts in the figure overlap, every candidate is named once, and the release is the one marked so."""
    trained = [{"shape_id": s, "slot": slot, "feasible": True, "predicted_loss": 4.55, "predicted_interval": None,
                "measured_loss": loss} for s, slot, loss in (("d72-l4", "top-1", 4.372), ("d80-l3", "top-2", 4.371),
                                                              ("d104-l1", None, 4.65))]
    figs = drawn(monkeypatch, hindsight)
    hindsight.plot({"trained": trained, "spearman": {"rho": 0.8}}, {"run_id": "base", "mean_loss": 4.48},
                   Noise(sd=0.06, df=10, seeds=3, source="test"), "unused.png", released="d80-l3")
    [fig] = figs
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not [(a.get_text(), b.get_text()) for i, a in enumerate(texts) for j, b in enumerate(texts)
                if i < j and boxes[i].overlaps(boxes[j])]
    names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for r in trained:
        assert sum(n.startswith(r["shape_id"]) for n in names) == 1
    assert [n for n in names if "released" in n] == ["d80-l3 (top-2), released"]


def test_chance_levels_come_from_the_items_scored(tmp_path):
    """Chance is the mean of 1 / choices over the items; the constant answer's rate is how often the most common gold
    answer is the gold, and there is none where the gold is not a choice's continuation."""
    from morph.report.uncertainty import task_levels

    def item(i, answers, gold):
        return {"doc_id": i, "target": gold, "arguments": [["ctx", a] for a in answers], "acc": 0.0}

    rows = {"boolq": [item(i, [" no", " yes"], int(i % 4 != 0)) for i in range(8)],  # yes is the gold 6 times in 8
            "arc": [item(0, ["a", "b", "c"], 0), item(1, ["d", "e", "f", "g", "h"], 1)],
            "winogrande": [{"doc_id": 0, "target": "rest", "arguments": [["x", "rest"], ["y", "rest"]], "acc": 1.0}]}
    summary = {"tasks": {}}
    for task, items in rows.items():
        (tmp_path / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
        summary["tasks"][task] = {"acc": 0.0, **({"acc_norm": 0.0} if task != "winogrande" else {}),
                                  "samples": f"{task}.jsonl"}
    levels = task_levels(summary, tmp_path)
    assert levels["boolq"] == {"metric": "acc_norm", "chance": 0.5, "constant_answer": 0.75}
    assert levels["arc"]["chance"] == pytest.approx((1 / 3 + 1 / 5) / 2) and levels["arc"]["constant_answer"] == 0.5
    assert levels["winogrande"] == {"metric": "acc", "chance": 0.5, "constant_answer": None}
