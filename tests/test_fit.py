"""The scaling-law fitter: laws and tying, both solvers, published reference fits, bad input, and the
`morph fit` / `morph laws` commands."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.optimize import check_grad

import law_truths
from morph import cli
from morph.core import experiment
from morph.core.artifacts.common import PARAMS, figure
from morph.core.artifacts.law import ABLATIONS_JSON, ABLATIONS_MD, LAW_FIGURES, ZOO_JSON, ZOO_MD, law_json
from morph.core.artifacts.select import SELECTION
from morph.core.artifacts.train import RUNS_CSV
from morph.core.errors import MorphError
from morph.core.io import sha256_file
from morph.core.law_names import LAWS
from morph.law.fitting import design, evaluate, fit_law, predict_loss, validate
from morph.law.forms import Law
from morph.law.laws import size_labels
from morph.law.solvers import Objective, start_grid
from morph.report.write import law_choice

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]
TRUE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.34, "beta": 0.37, "eps": 0.01, "gamma": 0.5}


def synthetic(law: str, n: int, noise: float, seed: int = 0) -> pd.DataFrame:
    """Runs drawn from TRUE over the paper's range: N 50M-2B, 20/40/160 tokens per parameter, R 16-768."""
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e9), n))
    D = N * rng.choice([20, 40, 160], n)
    d_model, n_layers = rng.choice([512, 1024, 2048, 3072], n), rng.choice([4, 8, 16, 24, 32], n)
    loss = law_truths.loss(law, TRUE, N, D, d_model, n_layers) * np.exp(rng.normal(0.0, noise, n))
    return pd.DataFrame({"params": N, "tokens": D, "d_model": d_model, "n_layers": n_layers, "loss": loss})


def morph(*argv) -> int:
    return cli.main([str(a) for a in argv])


def chinchilla_points() -> pd.DataFrame:
    c = pd.read_csv(DATA / "chinchilla_epoch.csv")
    return c[c["epoch_outlier"] == 0].rename(columns={"model_size": "params", "training_tokens": "tokens"})


def gemstones() -> pd.DataFrame:
    g = pd.read_csv(DATA / "gemstones_cool_end.csv")
    return g.rename(columns={"params_active_precise": "params", "width": "d_model", "depth": "n_layers",
                             "final_loss": "loss"})


# -- laws, tying, objectives ------------------------------------------------------------------------
def test_tying_sets_the_free_coefficients_and_round_trips():
    assert Law("chinchilla", "none").free_names() == ("E", "A", "B", "alpha", "beta")
    assert Law("chinchilla", "all").free == Law("chinchilla", "alpha-beta").free  # all == alpha-beta here
    assert Law("inference-aware", "alpha-beta").free_names() == ("E", "A", "B", "alpha", "eps", "gamma")
    law = Law("inference-aware", "all")
    assert law.n_free == 5
    c = law.coefficients(law.vector(TRUE))
    assert c["beta"] == c["gamma"] == c["alpha"] == pytest.approx(0.34)
    assert c["E"] == pytest.approx(1.8) and c["eps"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown tie"):
        Law("chinchilla", "beta")


@pytest.mark.parametrize("solver", ["lm", "huber-log"])
def test_analytic_gradients_and_grid_scoring_agree_with_direct_evaluation(solver):
    df = synthetic("inference-aware", 60, 0.01)
    law = Law("inference-aware", "none")
    obj = Objective(law, solver, design(df, law), df["loss"].to_numpy())
    x = law.vector(TRUE) + 0.05
    if solver == "lm":
        f = lambda t: 0.5 * np.sum(obj._residuals(t)[0] ** 2)  # noqa: E731 (the objective, beside its gradient)
        g = lambda t: obj._residuals(t)[0] @ obj._residuals(t)[1]  # noqa: E731 (the gradient, beside the objective)
    else:
        f, g = (lambda t: obj._huber_and_grad(t)[0]), (lambda t: obj._huber_and_grad(t)[1])
    assert check_grad(f, g, x) < 1e-5 * max(1.0, np.linalg.norm(g(x)))
    tied = Objective(Law("inference-aware", "alpha-beta"), solver, obj.X, obj.y)
    grid_pts = start_grid(tied.law)
    assert np.allclose(tied.grid_scores(), tied.batch(grid_pts), rtol=1e-9)


# -- recovery ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("law_name", ["chinchilla", "inference-aware"])
@pytest.mark.parametrize("solver", ["lm", "huber-log"])
def test_noise_free_runs_are_recovered_exactly(law_name, solver):
    df = synthetic(law_name, 80, 0.0)
    law = Law(law_name, "none")
    result = fit_law(validate(df, law, "synthetic", law.n_free), law, solver, progress=False)
    for k, v in result["coefficients"].items():
        assert v == pytest.approx(TRUE[k], rel=1e-4), k
    assert result["warnings"] == []


@pytest.mark.parametrize("law_name", ["chinchilla", "inference-aware"])
@pytest.mark.parametrize("solver", ["lm", "huber-log"])
def test_noisy_runs_are_recovered_within_tolerance(law_name, solver):
    df = synthetic(law_name, 300, 0.003, seed=1)
    law = Law(law_name, "all" if law_name == "chinchilla" else "none")
    coeffs = fit_law(validate(df, law, "synthetic", law.n_free), law, solver, progress=False)["coefficients"]
    if law_name == "chinchilla":  # data drawn with alpha != beta, fitted tied: only the fit's quality is known
        pred = law_truths.chinchilla(coeffs, df["params"], df["tokens"])
        assert np.max(np.abs(pred / df["loss"] - 1)) < 0.02
        return
    assert coeffs["E"] == pytest.approx(TRUE["E"], abs=0.1)
    for k in ("alpha", "beta", "gamma"):
        assert coeffs[k] == pytest.approx(TRUE[k], abs=0.05), k
    assert coeffs["eps"] == pytest.approx(TRUE["eps"], rel=0.5)


# -- published data ---------------------------------------------------------------------------------
def test_chinchilla_reference_fit_end_to_end(tmp_path):
    """`morph fit` on the 240 Epoch points reproduces the reference Huber/log fit; bootstrap is seeded."""
    runs = tmp_path / "chinchilla.csv"
    chinchilla_points().to_csv(runs, index=False)
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    for out in outs:
        assert morph("fit", "--runs", runs, "--law", "chinchilla", "--tie", "none", "--solver", "huber-log",
                     "--bootstrap", 30, "--seed", 3, "--out", out) == 0
    res = json.loads(outs[0].read_text())
    c = res["coefficients"]
    assert c["E"] == pytest.approx(1.817, abs=0.01)
    assert c["alpha"] == pytest.approx(0.347, abs=0.005) and c["beta"] == pytest.approx(0.367, abs=0.005)
    assert (res["law"], res["tie"], res["solver"], res["n_fit"]) == ("chinchilla", "none", "huber-log", 240)
    assert set(res["metrics"]["fit"]) == {"n", "mse", "r2", "spearman", "max_relative_error"}
    assert res["metrics"]["fit"]["r2"] > 0.99
    for k, (lo, hi) in res["ci"].items():
        assert lo <= c[k] <= hi, k
    assert res["bootstrap"]["samples"] == 30 and res["bootstrap"]["seed"] == 3
    assert res["inputs"] == {str(runs): sha256_file(runs)}
    assert json.loads(outs[1].read_text())["ci"] == res["ci"]  # same seed, same intervals


@pytest.mark.parametrize("solver", ["lm", "huber-log"])
def test_gemstones_inference_aware_beats_chinchilla_on_larger_held_out_sizes(solver):
    """Fitted on the sizes below 600M, evaluated on the 1B and 2B sizes (see tests/data/README.md)."""
    g = gemstones()
    small, large = g[g["params"] < 6e8], g[g["params"] >= 6e8]
    assert small["params"].nunique() == 14 and large["params"].nunique() == 6
    mse = {}
    for name in ("chinchilla", "inference-aware"):
        law = Law(name, "all")
        result = fit_law(validate(small, law, "small", law.n_free), law, solver, progress=False)
        mse[name] = evaluate(result, validate(large, law, "large"), by_group=True)["mse"]
    assert mse["inference-aware"] < 0.7 * mse["chinchilla"]


def test_eval_csv_gives_grouped_spearman_and_predict_loss_reads_the_result(tmp_path):
    g = gemstones()
    runs, ev, out = tmp_path / "small.csv", tmp_path / "large.csv", tmp_path / "ia.json"
    g[g["params"] < 6e8].to_csv(runs, index=False)
    g[g["params"] >= 6e8].assign(group=lambda d: d["d_model"].astype(str)).to_csv(ev, index=False)
    assert morph("fit", "--runs", runs, "--eval", ev, "--law", "inference-aware", "--tie", "all",
                 "--solver", "lm", "--out", out) == 0
    res = json.loads(out.read_text())
    assert set(res["metrics"]["eval"]["spearman_by_group"]) == {"1280", "1536", "1792", "2048", "2560", "3072"}
    assert set(res["inputs"]) == {str(runs), str(ev)}
    row = g[g["params"] >= 6e8].iloc[0]
    direct = law_truths.inference_aware(res["coefficients"], row["params"], row["tokens"], row["d_model"],
                                        row["n_layers"])
    assert predict_loss(out, row["params"], row["tokens"], row["d_model"], row["n_layers"]) == pytest.approx(direct)
    assert predict_loss(res, [row["params"]] * 2, row["tokens"], row["d_model"], row["n_layers"]).shape == (2,)
    with pytest.raises(MorphError, match="holds the inference-aware law, but chinchilla was expected"):
        predict_loss(res, 1e9, 2e10, 2048, 16, expect_law="chinchilla")
    with pytest.raises(MorphError, match="needs d_model and n_layers"):
        predict_loss(res, 1e9, 2e10)


# -- bad input ---------------------------------------------------------------------------------------
def _bad(tmp_path, capsys, df: pd.DataFrame, *extra) -> str:
    runs = tmp_path / "my_runs.csv"
    df.to_csv(runs, index=False)
    args = ["fit", "--runs", runs, "--out", tmp_path / "out.json", *extra]
    if "--law" not in extra:
        args += ["--law", "inference-aware"]
    assert morph(*args) == 2
    assert not (tmp_path / "out.json").exists()
    return capsys.readouterr().err


def test_too_few_rows(tmp_path, capsys):
    err = _bad(tmp_path, capsys, synthetic("inference-aware", 6, 0.0), "--tie", "none")
    assert "6 rows, fewer than the 7 free coefficients" in err and "tie 'none'" in err


@pytest.mark.parametrize("column,value,shown", [("loss", np.nan, "nan"), ("params", 0, "0"),
                                                ("tokens", -5e9, "-5000000000.0"), ("loss", "abc", "'abc'")])
def test_nan_zero_negative_or_text_values(tmp_path, capsys, column, value, shown):
    df = synthetic("inference-aware", 20, 0.0).astype({column: object})
    df.loc[4, column] = value
    err = _bad(tmp_path, capsys, df)
    assert f"line 6: column '{column}' is" in err and shown in err and "must all be positive numbers" in err


def test_a_duplicated_run_row_is_refused_not_counted_as_a_seed(tmp_path, capsys):
    df = synthetic("inference-aware", 20, 0.01).assign(run_id=[f"run{i}" for i in range(20)])
    err = _bad(tmp_path, capsys, pd.concat([df, df.iloc[[3]]]))
    assert "run 'run3' appears in more than one row" in err and "morph collect" in err


def test_missing_column_is_needed_only_by_the_law_that_uses_it(tmp_path, capsys):
    df = synthetic("chinchilla", 20, 0.0).drop(columns=["d_model"])
    err = _bad(tmp_path, capsys, df)
    assert "missing column 'd_model'; the inference-aware law needs columns params, tokens, d_model" in err
    assert morph("fit", "--runs", tmp_path / "my_runs.csv", "--law", "chinchilla", "--tie", "all",
                 "--out", tmp_path / "ok.json") == 0


def test_a_single_aspect_ratio_cannot_identify_the_shape_term(tmp_path, capsys):
    df = synthetic("chinchilla", 20, 0.0).assign(d_model=1024, n_layers=16)
    err = _bad(tmp_path, capsys, df)
    assert "same R = d_model/n_layers = 64" in err and "eps and gamma are unidentifiable" in err


def test_non_convergence_names_the_solver_and_best_residual(tmp_path, capsys):
    err = _bad(tmp_path, capsys, synthetic("inference-aware", 40, 0.01), "--solver", "huber-log",
               "--max-iter", 2)
    assert "solver 'huber-log' did not converge" in err and "best objective reached" in err


def test_a_bad_eval_table_is_named(tmp_path, capsys):
    runs, ev = tmp_path / "my_runs.csv", tmp_path / "eval.csv"
    synthetic("chinchilla", 20, 0.0).to_csv(runs, index=False)
    synthetic("chinchilla", 5, 0.0).drop(columns=["tokens"]).to_csv(ev, index=False)
    assert morph("fit", "--runs", runs, "--eval", ev, "--law", "chinchilla", "--out", tmp_path / "o.json") == 2
    assert f"{ev}: missing column 'tokens'" in capsys.readouterr().err


# -- the graph stage -----------------------------------------------------------------------------------
def _experiment(tmp_path) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "ci.yaml").read_text())
    raw["grid"]["sizes"] = [{"params": 60000, "depths": [1, 2, 4], "multipliers": [2, 4, 16]},
                            {"params": 120000, "depths": [1, 2, 4]}, {"params": 240000, "depths": [1, 2, 4]}]
    raw["grid"]["replicates"] = []
    raw["fit"].update({"bootstrap": 10, "ablation_repeats": 2})
    path = tmp_path / PARAMS
    path.write_text(yaml.safe_dump(raw))
    return path


def _runs_table(params: Path, path: Path) -> pd.DataFrame:
    """Collect's runs table for the grid, with losses drawn from a known inference-aware law."""
    cfg, rng = experiment.load(params), np.random.default_rng(0)
    rows = [{"run_id": r.run_id, "shape_id": r.shape.shape_id, **r.shape.to_dict(), "tokens": r.tokens,
             "multiplier": r.multiplier}
            for r in cfg.grid_runs]
    df = pd.DataFrame(rows)
    coeffs = {"E": 1.5, "A": 60.0, "B": 300.0, "alpha": 0.3, "beta": 0.3, "eps": 0.02, "gamma": 0.3}
    df["loss"] = (law_truths.inference_aware(coeffs, df["params"], df["tokens"], df["d_model"], df["n_layers"])
                  * np.exp(rng.normal(0, 0.003, len(df))))
    df = df.assign(train_loss_ema=df["loss"], wall_s=1.0, tokens_per_s=1.0, mfu=0.1)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return df


def test_sizes_come_from_the_grid_and_unknown_shapes_are_clustered(tmp_path):
    params = _experiment(tmp_path)
    cfg = experiment.load(params)
    df = _runs_table(params, tmp_path / RUNS_CSV)
    labels = size_labels(cfg, df)
    assert sorted(set(labels)) == [60000, 120000, 240000]
    foreign = pd.DataFrame({"d_model": [1000, 1002, 3000], "n_layers": [7, 7, 7], "params": [1e6, 1.05e6, 5e6]})
    assert list(size_labels(cfg, foreign)) == [1000000, 1000000, 5000000]


def test_laws_stage_writes_fits_ablations_and_figures(tmp_path, capsys):
    params = _experiment(tmp_path)
    runs = tmp_path / RUNS_CSV
    df = _runs_table(params, runs)
    out, figs = tmp_path / "law", tmp_path / "figures"
    assert morph("laws", "--params", params, "--runs", runs, "--out-dir", out, "--figures", figs) == 0
    ia = json.loads(Path(law_json("inference-aware", out)).read_text())
    fit_ids = set(ia["fit_set"]["run_ids"])
    expected = set(df["run_id"][df["multiplier"] == 2]) | {r for r in df["run_id"] if r.endswith("-t16")}
    assert fit_ids == expected and len(fit_ids) == 12
    assert set(ia["heldout_run_ids"]) == set(df["run_id"]) - fit_ids
    assert ia["metrics"]["heldout"]["n"] == len(df) - 12 and ia["ci"]["alpha"][0] <= ia["coefficients"]["alpha"]
    assert ia["metrics"]["heldout"]["mse"] < 3e-3  # the law the runs were drawn from (noise sd ~0.02)
    assert set(ia["inputs"]) == {str(runs), str(params)}
    assert "N120000-t4" in ia["metrics"]["heldout"]["spearman_by_group"]
    chin = json.loads(Path(law_json("chinchilla", out)).read_text())
    assert chin["metrics"]["heldout"]["mse"] > 5 * ia["metrics"]["heldout"]["mse"]
    rows = json.loads((out / ABLATIONS_JSON).read_text())["rows"]
    assert {(r["ablation"], r["law"], r["tie"]) for r in rows} >= {
        ("paper fit set", "chinchilla", "all"), ("paper fit set", "inference-aware", "all"),
        ("without over-trained runs", "inference-aware", "all"), ("one random shape per size", "chinchilla", "all"),
        ("gamma tying", "inference-aware", "alpha-beta"), ("gamma tying", "inference-aware", "none")}
    one = next(r for r in rows if r["ablation"] == "one random shape per size" and r["law"] == "chinchilla")
    assert len(one["repeats"]) == 2 and all(len(rep["shapes"]) == 3 for rep in one["repeats"])
    md = (out / ABLATIONS_MD).read_text()
    assert md.count("\n| ") == len(rows) + 1 and "| without over-trained runs | inference-aware | all |" in md
    zoo = json.loads((out / ZOO_JSON).read_text())  # every form, whatever fit.laws lists
    assert set(zoo["forms"]) == set(LAWS) and zoo["folds"]["size"] == ["60000", "120000", "240000"]
    assert zoo["forms"]["inference-aware"]["cv_error"] < zoo["forms"]["chinchilla"]["cv_error"]  # drawn from it
    assert f"| 1 | {zoo['winner']} |" in (out / ZOO_MD).read_text() and set(zoo["inputs"]) == {str(runs), str(params)}
    for name in LAW_FIGURES:
        assert Path(figure(name, figs)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_select_law_auto_fits_the_zoo_winner_and_select_predicts_with_it(tmp_path):
    params = _experiment(tmp_path)
    raw = yaml.safe_load(params.read_text())
    raw["select"]["law"] = "auto"
    raw["fit"]["bootstrap"] = 0
    params.write_text(yaml.safe_dump(raw))
    runs, out = tmp_path / RUNS_CSV, tmp_path / "law"
    _runs_table(params, runs)
    assert morph("laws", "--params", params, "--runs", runs, "--out-dir", out, "--figures", tmp_path / "f") == 0
    zoo, auto = json.loads((out / ZOO_JSON).read_text()), json.loads(Path(law_json("auto", out)).read_text())
    assert auto["law"] == zoo["winner"] and auto["chosen_by"]["cv_error"] == zoo["forms"][zoo["winner"]]["cv_error"]
    assert auto["chosen_by"]["runner_up"] == zoo["ranking"][1] and auto["chosen_by"]["margin"] >= 1
    # select reads the chosen fit: candidates from the grid's 120k-parameter shapes, inside every budget
    cfg = experiment.load(params)
    shapes = [r.shape.to_dict() for r in cfg.grid_runs if r.run_id.endswith("-t2")][3:5]
    cands = [s | {"shape_id": f"d{s['d_model']}-l{s['n_layers']}", "within_tolerance": True, "params_gap": 0.0,
                  "latency": {"median_s": 0.1}} for s in shapes]
    (tmp_path / "cands.json").write_text(json.dumps({"candidates": cands, "baseline": cands[0]}))
    sel_out = tmp_path / SELECTION
    assert morph("select", "--params", params, "--candidates", tmp_path / "cands.json", "--law", law_json("auto", out),
                 "--out", sel_out) == 0
    sel = json.loads(sel_out.read_text())
    assert sel["law"] == "auto" and sel["law_choice"]["form"] == auto["law"]
    c = sel["candidates"][0]
    assert c["predicted_loss"] == pytest.approx(float(law_truths.loss(
        auto["law"], auto["coefficients"], c["params"], cfg.select.tokens, c["d_model"], c["n_layers"],
        c.get("mlp_attention_ratio"))))
    assert law_choice(sel).startswith(f" → {auto['law']} (lowest cross-validated error, RMSE ")  # the report's line
    assert morph("select", "--params", params, "--candidates", tmp_path / "cands.json", "--law",
                 law_json("chinchilla", out), "--out", sel_out) == 2  # a fit the zoo did not choose


def test_laws_stage_names_a_missing_fit_multiplier(tmp_path, capsys):
    params = _experiment(tmp_path)
    runs = tmp_path / RUNS_CSV
    df = _runs_table(params, runs)
    df[df["multiplier"] != 2].to_csv(runs, index=False)
    assert morph("laws", "--params", params, "--runs", runs, "--out-dir", tmp_path / "law",
                 "--figures", tmp_path / "f") == 2
    assert "no run in the runs table has multiplier 2" in capsys.readouterr().err
    assert not (tmp_path / "law").exists()


def test_degenerate_toy_runs_give_warnings_or_recorded_errors_never_silence(tmp_path, capsys):
    """Losses that follow no law, on two sizes (6 fit runs): the stage still reports, and says why to distrust it."""
    raw = yaml.safe_load((ROOT / "configs" / "ci.yaml").read_text())
    raw["grid"].update({"sizes": [{"params": 60000, "depths": [1, 2], "multipliers": [2, 4, 16]},
                                  {"params": 120000, "depths": [1, 2]}], "replicates": []})
    raw["fit"].update({"bootstrap": 5, "ablation_repeats": 1})
    params = tmp_path / PARAMS
    params.write_text(yaml.safe_dump(raw))
    runs = tmp_path / RUNS_CSV
    df = _runs_table(params, runs)
    df.assign(loss=np.random.default_rng(1).uniform(5.0, 6.0, len(df))).to_csv(runs, index=False)
    assert morph("laws", "--params", params, "--runs", runs, "--out-dir", tmp_path / "law",
                 "--figures", tmp_path / "f") == 0
    ia = json.loads(Path(law_json("inference-aware", tmp_path / "law")).read_text())
    assert any("only 6 rows for 5 free coefficients" in w for w in ia["warnings"])
    assert "morph laws: warning: inference-aware:" in capsys.readouterr().err
    rows = json.loads((tmp_path / "law" / ABLATIONS_JSON).read_text())["rows"]
    assert all(r.get("error") or r.get("warnings") for r in rows)
    assert any("fewer than the" in (r.get("error") or "") for r in rows)


def test_laws_fit_each_replicated_run_once_at_its_mean_and_report_the_spread(tmp_path):
    params = _experiment(tmp_path)
    raw = yaml.safe_load(params.read_text())
    raw["fit"].update({"bootstrap": 0, "ablation_repeats": 1})
    params.write_text(yaml.safe_dump(raw))
    plain = _runs_table(params, tmp_path / "plain.csv")
    rid = plain["run_id"][0]  # in the fit set (multiplier 2)
    raw["grid"]["replicates"] = [{"run": rid, "seeds": 3}]
    replicated = tmp_path / "replicated.yaml"
    replicated.write_text(yaml.safe_dump(raw))
    # Seeds 1 and 2 land 0.01 either side of seed 0: the mean is seed 0's loss, the sample sd 0.01.
    reps = plain[plain["run_id"] == rid].iloc[[0, 0]].assign(run_id=[f"{rid}-r1", f"{rid}-r2"], replicate=[1, 2],
                                                           loss=lambda d: d["loss"] + [0.01, -0.01])
    table = pd.concat([plain.assign(replicate=0), reps]).assign(
        replicate_of=lambda d: d["run_id"].str.split("-r").str[0])
    table.to_csv(tmp_path / "replicated.csv", index=False)
    fits = {}
    for name, p in (("plain", params), ("replicated", replicated)):
        assert morph("laws", "--params", p, "--runs", tmp_path / f"{name}.csv", "--out-dir", tmp_path / name,
                     "--figures", tmp_path / f"{name}-f") == 0
        fits[name] = json.loads(Path(law_json("inference-aware", tmp_path / name)).read_text())
    assert fits["replicated"]["coefficients"] == pytest.approx(fits["plain"]["coefficients"], rel=1e-6)
    assert fits["replicated"]["fit_set"]["run_ids"] == fits["plain"]["fit_set"]["run_ids"]
    floor = fits["replicated"]["noise_floor"]
    assert floor["run_to_run"]["sd"] == pytest.approx(0.01) and floor["run_to_run"]["dof"] == 2
    assert floor["cv_error_rmse"] ** 2 == pytest.approx(floor["cv_error_mse"])
    assert floor["replicates_in_fit"].startswith(f"mean per run: the {len(table)} rows")
    assert fits["plain"]["noise_floor"]["run_to_run"] is None


@pytest.mark.parametrize("truth", ["total", "non-embedding"])
def test_params_count_auto_picks_the_count_the_losses_were_drawn_with(tmp_path, truth):
    params = _experiment(tmp_path)
    raw = yaml.safe_load(params.read_text())
    raw["fit"].update({"bootstrap": 0, "ablation_repeats": 1, "params_count": "auto"})
    params.write_text(yaml.safe_dump(raw))
    df = _runs_table(params, tmp_path / RUNS_CSV)
    n = df["params"] if truth == "total" else df["non_embedding_params"]
    # Chinchilla written out by hand, in the count under test; embeddings are 40-90% of N on this grid.
    df["loss"] = (1.5 + 60.0 * n ** -0.3 + 300.0 * df["tokens"] ** -0.3) * np.exp(
        np.random.default_rng(1).normal(0, 0.002, len(df)))
    df.to_csv(tmp_path / RUNS_CSV, index=False)
    assert morph("laws", "--params", params, "--runs", tmp_path / RUNS_CSV, "--out-dir", tmp_path / "law",
                 "--figures", tmp_path / "f") == 0
    zoo = json.loads((tmp_path / "law" / ZOO_JSON).read_text())
    assert zoo["count_choice"]["chosen"] == truth and set(zoo["count_choice"]["cv_error"]) == {"total",
                                                                                                "non-embedding"}
    assert json.loads(Path(law_json("inference-aware", tmp_path / "law")).read_text())["params_count"] == truth
