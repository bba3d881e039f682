"""The law zoo: each form predicts what its hand-written formula gives, recovers its own data and wins its own
cross-validation, the published Gemstones ordering, and bad input to `morph fit --cv`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import law_truths
from morph import cli
from morph.core.errors import MorphError
from morph.core.law_names import LAWS
from morph.law.fitting import fit_law, validate
from morph.law.forms import Law, predict
from morph.law.zoo import cross_validate

DATA = Path(__file__).parent / "data"
BASE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.34, "beta": 0.37}
# Known shape terms, each moving the loss by several percent over the shapes below.
TRUE = {
    "chinchilla": BASE,
    "inference-aware": BASE | {"eps": 0.01, "gamma": 0.5},
    "additive": BASE | {"C": 0.02, "gamma": 0.5},
    "conditional": BASE | {"kappa": 0.05, "mu": -2.4},  # width-to-sqrt(N) optimum e^-2.4 ~ 0.09
    "kaplan": BASE | {"kappa": 0.05, "rho": np.log(50.0)},  # aspect-ratio optimum 50
}
SIZES = np.geomspace(5e7, 2e9, 5)


def runs(law: str) -> pd.DataFrame:
    """Noise-free runs of `law`: 5 sizes from 50M to 2B, 3 depths each with the width N = 12 n_layers d^2
    gives, at 20, 40 and 160 tokens per parameter."""
    rows = [{"params": n, "tokens": m * n, "multiplier": m, "d_model": np.sqrt(n / (12 * depth)), "n_layers": depth}
            for n in SIZES for depth in (4, 12, 36) for m in (20, 40, 160)]
    df = pd.DataFrame(rows)
    return df.assign(loss=law_truths.loss(law, TRUE[law], df["params"], df["tokens"], df["d_model"], df["n_layers"]))


def morph(*argv) -> int:
    return cli.main([str(a) for a in argv])


# Where the agreement test draws coefficients: each shape term from negligible to a large share of the loss,
# gamma of either sign.
SPAN = {"E": (1.0, 3.0), "A": (50.0, 2000.0), "B": (100.0, 5000.0), "alpha": (0.1, 0.6), "beta": (0.1, 0.6),
        "eps": (1e-3, 0.5), "C": (1e-3, 0.5), "gamma": (-1.0, 1.0), "kappa": (1e-3, 0.3), "mu": (-4.0, -1.0),
        "rho": (1.0, 6.0), "kappa_r": (1e-3, 0.3), "nu": (-1.0, 2.0)}


def test_every_form_has_a_hand_written_truth():
    assert set(law_truths.LOSS) == set(TRUE) == set(LAWS)


@pytest.mark.parametrize("law_name,names", [(n, tuple(TRUE[n])) for n in LAWS]
                         + [("conditional", tuple(BASE) + ("kappa", "mu", "kappa_r", "nu"))],
                         ids=[*LAWS, "conditional-with-ratio"])
def test_predict_agrees_with_each_form_written_by_hand(law_name, names):
    """Random coefficients at random points, far beyond the fitted ranges: N 1M-100B, D 1-500 tokens per
    parameter, R from 1/8 to 16k, r from 0.3 to 10."""
    rng = np.random.default_rng(sum(map(ord, law_name)) + len(names))
    n = np.exp(rng.uniform(np.log(1e6), np.log(1e11), 200))
    d = n * rng.uniform(1.0, 500.0, 200)
    d_model, n_layers = rng.integers(32, 16384, 200), rng.integers(1, 256, 200)
    ratio = np.exp(rng.uniform(np.log(0.3), np.log(10.0), 200))
    for _ in range(5):
        coeffs = {k: rng.uniform(*SPAN[k]) for k in names}
        truth = law_truths.loss(law_name, coeffs, n, d, d_model, n_layers, ratio)
        np.testing.assert_allclose(predict(coeffs, n, d, d_model, n_layers, ratio), truth, rtol=1e-10)


@pytest.mark.parametrize("law_name", LAWS)
def test_each_form_recovers_its_known_coefficients(law_name):
    law = Law(law_name, "none")
    result = fit_law(validate(runs(law_name), law, "synthetic", law.n_free), law, "lm", progress=False)
    for k, v in result["coefficients"].items():
        assert v == pytest.approx(TRUE[law_name][k], rel=1e-3, abs=1e-6), k


@pytest.mark.parametrize("law_name", LAWS)
def test_each_form_wins_its_own_cross_validation(law_name):
    zoo = cross_validate(runs(law_name), [Law(n, "none") for n in LAWS], "lm", "synthetic")
    assert zoo["folds"] == {"size": [f"{n:.0f}" for n in SIZES], "multiplier": ["20", "40", "160"]}
    assert zoo["winner"] == law_name, {n: f["cv_error"] for n, f in zoo["forms"].items()}
    assert zoo["forms"][law_name]["cv_error"] < 1e-8  # noise-free: the true form predicts held-out runs exactly
    if law_name != "chinchilla":  # every shape form nests Chinchilla, and ties with it on Chinchilla's runs
        assert zoo["margin"] > 100


def gemstones() -> pd.DataFrame:
    g = pd.read_csv(DATA / "gemstones_cool_end.csv")
    return g.rename(columns={"params_active_precise": "params", "width": "d_model", "depth": "n_layers",
                             "final_loss": "loss"})


@pytest.mark.parametrize("solver", ["lm", "huber-log"])
def test_gemstones_inference_aware_has_lower_cross_validated_error_than_chinchilla(solver):
    """The known ordering on Gemstones (cool_end): shape matters at fixed size, so the shape-aware law
    predicts held-out sizes better."""
    zoo = cross_validate(gemstones(), [Law("chinchilla", "all"), Law("inference-aware", "all")], solver, "gemstones")
    assert zoo["notes"] == ["no `multiplier` column: leave-one-multiplier-out skipped"]
    assert zoo["ranking"] == ["inference-aware", "chinchilla"]
    assert zoo["margin"] > 1.2


def test_fit_cv_writes_scores_and_prints_the_table(tmp_path, capsys):
    csv, out = tmp_path / "my_runs.csv", tmp_path / "my_zoo.json"
    runs("kaplan").to_csv(csv, index=False)
    assert morph("fit", "--cv", "--runs", csv, "--tie", "none", "--out", out) == 0
    zoo = json.loads(out.read_text())
    assert zoo["winner"] == "kaplan" and set(zoo["forms"]) == set(LAWS)
    assert zoo["inputs"] == {str(csv): zoo["inputs"][str(csv)]} and zoo["noise"] is None
    size_folds = zoo["forms"]["chinchilla"]["cv"]["size"]["folds"]
    assert len(size_folds) == 5 and sum(f["n"] for f in size_folds) == 45
    printed = capsys.readouterr().out
    assert "| 1 | kaplan |" in printed and "leave-one-multiplier-out MSE" in printed


def test_one_tokens_per_parameter_ratio_ties_beta_to_alpha():
    df = runs("inference-aware")
    zoo = cross_validate(df[df["multiplier"] == 20], [Law("chinchilla", "none"), Law("kaplan", "all")], "lm",
                         "one ratio")
    assert "beta is tied to alpha (tie alpha-beta)" in zoo["notes"][-1]
    assert zoo["forms"]["chinchilla"]["tie"] == "alpha-beta" and zoo["forms"]["kaplan"]["tie"] == "all"
    assert zoo["winner"] is not None and "multiplier" not in zoo["folds"]


def test_replicates_give_the_noise_floor():
    df = runs("chinchilla")
    twice = pd.concat([df, df.assign(loss=df["loss"] + 0.01)])
    noise = cross_validate(twice, [Law("chinchilla", "all")], "lm", "twice")["noise"]
    assert noise["mse"] == pytest.approx(0.01 ** 2 / 2) and noise["replicated_points"] == 45


# -- bad input ---------------------------------------------------------------------------------------
def test_unknown_form_is_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown law 'power'; choose one of"):
        Law("power")
    runs("chinchilla").to_csv(tmp_path / "my_runs.csv", index=False)
    with pytest.raises(SystemExit):
        morph("fit", "--runs", tmp_path / "my_runs.csv", "--law", "power", "--out", tmp_path / "o.json")
    assert "invalid choice: 'power'" in capsys.readouterr().err


def test_cv_on_a_csv_without_a_needed_column_names_file_and_column(tmp_path, capsys):
    csv = tmp_path / "my_runs.csv"
    runs("chinchilla").drop(columns=["n_layers"]).to_csv(csv, index=False)
    assert morph("fit", "--cv", "--runs", csv, "--out", tmp_path / "my_zoo.json") == 2
    err = capsys.readouterr().err
    assert f"{csv}: missing column 'n_layers'; the inference-aware law needs columns" in err
    assert not (tmp_path / "my_zoo.json").exists()


def test_cv_refuses_single_fit_options_and_single_size_data(tmp_path, capsys):
    csv = tmp_path / "my_runs.csv"
    runs("chinchilla").to_csv(csv, index=False)
    assert morph("fit", "--cv", "--law", "kaplan", "--runs", csv, "--out", tmp_path / "z.json") == 2
    assert "--law: not used with --cv" in capsys.readouterr().err
    assert morph("fit", "--runs", csv, "--out", tmp_path / "z.json") == 2
    assert "--law: required unless --cv" in capsys.readouterr().err
    one_size = runs("chinchilla").assign(params=1e8)
    with pytest.raises(MorphError, match="every run is one size"):
        cross_validate(one_size, [Law("chinchilla")], "lm", "one size")


def test_a_bad_multiplier_is_named_and_an_empty_one_never_held_out(tmp_path, capsys):
    csv = tmp_path / "my_runs.csv"
    df = runs("chinchilla").astype({"multiplier": object})
    df.loc[3, "multiplier"] = "twenty"
    df.to_csv(csv, index=False)
    assert morph("fit", "--cv", "--runs", csv, "--out", tmp_path / "my_zoo.json") == 2
    assert f"{csv}: line 5: column 'multiplier' is 'twenty'; a multiplier" in capsys.readouterr().err
    df.loc[3, "multiplier"] = None
    zoo = cross_validate(df, [Law("chinchilla", "all")], "lm", "one empty")
    assert sum(f["n"] for f in zoo["forms"]["chinchilla"]["cv"]["multiplier"]["folds"]) == len(df) - 1


def test_a_quadratic_shape_factor_needs_three_distinct_shapes():
    df = runs("kaplan")
    two = df.assign(d_model=1024, n_layers=np.where(df["n_layers"] < 16, 8, 16))  # R = 128 or 64
    with pytest.raises(MorphError, match="only 2 distinct values of R = d_model/n_layers; the kaplan law's kappa "
                                         "and rho are unidentifiable from fewer than 3"):
        validate(two, Law("kaplan"), "two shapes", min_rows=4)


# -- the conditional law's MLP-to-attention ratio factor ------------------------------------------------
RATIO_TRUE = BASE | {"kappa": 0.05, "mu": -2.4, "kappa_r": 0.04, "nu": np.log(1.5)}  # optimal ratio 1.5
RATIOS = (0.75, 2.0, 4.0)


def ratio_runs() -> pd.DataFrame:
    """runs()'s design with an mlp_attention_ratio per run, cycled over size and depth so every depth meets
    every ratio, in and out of any one held-out size."""
    df = runs("chinchilla").drop(columns="loss")
    size, depth = np.searchsorted(SIZES, df["params"]), np.searchsorted((4, 12, 36), df["n_layers"])
    df["mlp_attention_ratio"] = np.array(RATIOS)[(size + depth) % len(RATIOS)]
    return df.assign(loss=law_truths.conditional(RATIO_TRUE, df["params"], df["tokens"], df["d_model"],
                                                 ratio=df["mlp_attention_ratio"]))


def test_the_conditional_law_recovers_its_ratio_factor():
    law = Law("conditional", "none")
    result = fit_law(validate(ratio_runs(), law, "synthetic", law.n_free), law, "lm", progress=False)
    assert result["dropped_terms"] == {} and "kappa_r*(ln r - nu)^2" in result["form"]
    assert set(result["coefficients"]) == set(RATIO_TRUE)
    for k, v in result["coefficients"].items():
        assert v == pytest.approx(RATIO_TRUE[k], rel=1e-3, abs=1e-6), k


def test_the_conditional_law_wins_its_own_cross_validation_with_a_varying_ratio():
    zoo = cross_validate(ratio_runs(), [Law(n, "none") for n in LAWS], "lm", "synthetic")
    assert zoo["winner"] == "conditional", {n: f["cv_error"] for n, f in zoo["forms"].items()}
    assert zoo["forms"]["conditional"]["cv_error"] < 1e-8 and zoo["margin"] > 100
    assert not any("conditional" in note for note in zoo["notes"])  # the factor is kept


def test_the_ratio_factor_ranks_candidates_by_their_distance_from_its_optimum(tmp_path, monkeypatch):
    from conftest import write_params
    from morph.select import rank

    law = Law("conditional", "none")
    fitted = fit_law(validate(ratio_runs(), law, "synthetic", law.n_free), law, "lm", progress=False)
    params = write_params(tmp_path / "p.yaml", {"fit.laws": ["chinchilla", "conditional"],
                                                 "select.law": "conditional", "select.k": 3})
    n = 150000  # configs/ci.yaml's select.params
    cand = {"d_model": 64, "n_layers": 2, "n_heads": 2, "n_kv_heads": 2, "ffn": 176, "vocab_size": 512,
            "tie_embeddings": False, "ffn_ratio": None, "kv_knob": False, "params": n, "params_gap": 0.0,
            "within_tolerance": True, "latency": {"median_s": 0.1}, "serving": {}}
    ratios = {"far": 6.0, "near": 1.6, "off": 0.5}  # |ln r - ln 1.5|: 1.39, 0.06, 1.10
    cands = {"candidates": [cand | {"shape_id": s, "mlp_attention_ratio": r} for s, r in ratios.items()],
             "baseline": cand | {"shape_id": "base", "mlp_attention_ratio": 2.0}}
    (tmp_path / "c.json").write_text(json.dumps(cands))
    (tmp_path / "law.json").write_text(json.dumps(fitted))
    monkeypatch.setattr(rank, "plot_pareto", lambda out, path: None)
    assert morph("select", "--params", params, "--candidates", tmp_path / "c.json", "--law", tmp_path / "law.json",
                 "--out", tmp_path / "s.json") == 0
    top = json.loads((tmp_path / "s.json").read_text())["top_k"]
    assert [c["shape_id"] for c in top] == ["near", "off", "far"]
    def factor(r):  # the same N, D and width: only the ratio factor differs between candidates
        return 1 + RATIO_TRUE["kappa_r"] * (np.log(r) - RATIO_TRUE["nu"]) ** 2

    for c in top:
        assert c["predicted_loss"] / top[0]["predicted_loss"] == pytest.approx(
            factor(ratios[c["shape_id"]]) / factor(ratios["near"]), rel=1e-4)


@pytest.mark.parametrize("ratios,why", [
    (None, "the runs table has no mlp_attention_ratio column"),
    ((2.0, 2.1, 2.2), "only 1 distinct mlp_attention_ratio value(s) (within 10%)"),  # ffn rounding, one design
    ((1.0, 2.0, 1.0), "only 2 distinct mlp_attention_ratio value(s) (within 10%)"),
])
def test_the_ratio_factor_drops_out_where_the_runs_cannot_place_its_u(ratios, why):
    df = runs("conditional")  # drawn without a ratio factor: the width-only law is the truth
    if ratios is not None:
        df["mlp_attention_ratio"] = np.array(ratios)[np.searchsorted((4, 12, 36), df["n_layers"])]
    law = Law("conditional", "none")
    result = fit_law(validate(df, law, "synthetic", law.n_free), law, "lm", progress=False)
    assert why in result["dropped_terms"]["ratio"] and "kappa_r" not in result["form"]
    assert set(result["coefficients"]) == set(TRUE["conditional"])
    zoo = cross_validate(df, [Law("chinchilla", "none"), law], "lm", "synthetic")
    assert any(note.startswith(f"conditional: {why}") for note in zoo["notes"])
    assert zoo["winner"] == "conditional"


@pytest.mark.parametrize("value,shown", [(0.0, "0.0"), (-1.5, "-1.5"), (np.nan, "nan"), ("inf", "inf")])
def test_a_bad_mlp_attention_ratio_is_named_with_file_line_and_column(tmp_path, capsys, value, shown):
    csv = tmp_path / "my_runs.csv"
    df = ratio_runs().astype({"mlp_attention_ratio": object})
    df.loc[7, "mlp_attention_ratio"] = value
    df.to_csv(csv, index=False)
    for argv in (("--law", "conditional"), ("--cv",)):
        assert morph("fit", "--runs", csv, *argv, "--out", tmp_path / "out.json") == 2
        err = capsys.readouterr().err
        assert f"{csv}: line 9: column 'mlp_attention_ratio' is '{shown}'" in err and "positive numbers" in err
    assert morph("fit", "--runs", csv, "--law", "kaplan", "--out", tmp_path / "out.json") == 0  # not read by kaplan


def test_a_law_fitted_with_its_ratio_factor_needs_the_ratio_to_predict():
    from morph.law.fitting import predict_loss

    law = Law("conditional", "all")
    fitted = fit_law(validate(ratio_runs(), law, "synthetic", law.n_free), law, "lm", progress=False)
    with pytest.raises(MorphError, match="the conditional law needs mlp_attention_ratio"):
        predict_loss(fitted, 1e9, 2e10, 2048, 16)
    assert predict_loss(fitted, 1e9, 2e10, 2048, 16, 2.0) > 0
