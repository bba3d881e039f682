"""Fit the scaling laws on the pipeline's runs, evaluate them, run the ablations and draw the law figures.

  morph laws --params P --runs results/runs.csv --out-dir results/law --figures results/figures

Writes <out-dir>/<law>.json for each law in fit.laws, <out-dir>/ablations.{json,md}, the law zoo's
cross-validated scores of every form in <out-dir>/zoo.{json,md} (see zoo.py), and
<figures>/{loss_vs_R,predicted_vs_actual,loss_vs_compute,law_zoo}.png. With select.law: auto, also
<out-dir>/auto.json: the zoo's winner fitted like the laws in fit.laws, with how it won (`chosen_by`).

A "size" is the grid.sizes entry a run's shape was proposed for: its shapes share one target N
(within a few %), which is what the paper means by a size. Runs whose shape is not in the grid
(explicit grid.shapes, or a runs table from elsewhere) are grouped by N instead: sorted by params,
a run joins the current group while its N is within 10% of the group's smallest.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np

from morph.core import experiment
from morph.core.artifacts.law import ABLATIONS_JSON, ABLATIONS_MD, PREDICTIONS, ZOO_JSON, ZOO_MD, law_json
from morph.core.artifacts.train import KNOB_COLUMNS, LAW_COLUMNS, RUNS_CSV, RUNS_INPUTS
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.law_names import AUTO, LAWS, PARAMS_COUNTS
from morph.core.shape import shape_id
from morph.law.fitting import cluster, evaluate, fit_law, predict_frame, settle, validate
from morph.law.forms import Law
from morph.law.zoo import SIZE_TOLERANCE, cross_validate, markdown, replicate_noise

ABLATION_TIES = ("all", "alpha-beta", "none")


# -- the table ----------------------------------------------------------------------------------------
def check_collected(inputs: str | Path, runs: str | Path, params: str) -> None:
    """Every metrics.json behind the runs table still holds the bytes collect read: one edited or replaced since
    (a hand-edited loss still parses) would otherwise be fitted as collected, or not at all."""
    from morph.core.io import read_json, sha256_file

    again = (f"snakemake -j1 --force {shlex.quote(str(runs))} --configfile {shlex.quote(params)} "
             "(or dvc repro -f collect)")
    recorded = read_json(inputs, f"rebuild it with the runs table: {again}")
    for path, digest in (recorded.get("inputs", {}) if isinstance(recorded, dict) else {}).items():
        if not Path(path).is_file() or sha256_file(path) != digest:
            run_id = Path(path).parent.name
            raise MorphError(
                f"{path}: {'missing' if not Path(path).is_file() else 'changed'} since collect read it into {runs} "
                f"(its sha256 differs from {inputs}'s); restore it, or retrain that run: snakemake -j1 --force "
                f"{shlex.quote(path)} --configfile {shlex.quote(params)} (or dvc repro -f -s train-{run_id}); if it "
                f"was retrained on purpose, collect it again: {again}")


def read_runs(path: str | Path):
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MorphError(f"{path}: runs table not found (has `morph collect` run?)")
    df = pd.read_csv(path)
    missing = [c for c in LAW_COLUMNS if c not in df.columns]
    if missing:
        raise MorphError(f"{path}: missing column {missing[0]!r} (a runs table from `morph collect` has "
                         f"{', '.join(LAW_COLUMNS)}); re-run `morph collect`")
    # Every law's columns are checked here, once, so a bad row names the file and line.
    df = validate(df, Law("inference-aware"), str(path), also=KNOB_COLUMNS)
    df["multiplier"] = pd.to_numeric(df["multiplier"], errors="coerce")
    df["R"] = df["d_model"] / df["n_layers"]
    return df


def with_count(df, count: str):
    """The runs table with N counted as `count` says (every parameter, or the non-embedding ones)."""
    column = PARAMS_COUNTS[count]
    if column not in df.columns:
        raise MorphError(f"runs table: no {column!r} column for fit.params_count {count!r}; re-run `morph collect`")
    return df.assign(params=df[column])


def choose_count(zoos: dict[str, dict], law: str) -> tuple[str, str]:
    """(the count of N whose law zoo gives `law` (or, for auto, the zoo's winner) the lower cross-validated
    error, why). One count is simply used."""
    if len(zoos) == 1:
        (count,) = zoos
        return count, f"fit.params_count: {count}"
    def error(count: str) -> float:
        zoo = zoos[count]
        form = zoo["winner"] if law == AUTO else law
        cv = zoo["forms"][form]["cv_error"] if form else None
        return float("inf") if cv is None else cv
    errors = {c: error(c) for c in zoos}
    count = min(errors, key=lambda c: (errors[c], list(PARAMS_COUNTS).index(c)))
    shown = ", ".join(f"{c}: {e:.4g}" if np.isfinite(e) else f"{c}: none" for c, e in errors.items())
    return count, f"the lower cross-validated error of the {'zoo winner' if law == AUTO else law} law ({shown})"


def mean_per_run(df):
    """One row per run: seed replicates (a `replicate_of` column) averaged into their run's row, so a replicated
    run weighs as much as any other in a fit and no replicate lands on both sides of a CV fold."""
    if "replicate_of" not in df.columns:
        return df
    key = df["replicate_of"].fillna(df["run_id"]).to_numpy()
    groups = df.groupby(key, sort=False)
    out = groups.first()  # shape and budget are the same across replicates
    out["loss"] = groups["loss"].mean()
    out["run_id"] = out.index
    return out.reset_index(drop=True)


def noise_floor(runs, zoo: dict, law: Law, source: str) -> dict:
    """The law's cross-validated error beside the run-to-run spread of the replicated runs (one JSON section)."""
    spread = [{"run_id": r.run_id, "seeds": int(r.replicates), "loss_sd": r.loss_sd, "loss_range": r.loss_range}
              for r in runs.itertuples() if getattr(r, "replicate", 0) == 0 and getattr(r, "replicates", 1) > 1]
    cv = zoo["forms"][law.name]["cv_error"]
    return {"run_to_run": zoo["noise"], "replicated_runs": spread,
            "cv_error_mse": cv, "cv_error_rmse": float(np.sqrt(cv)) if cv is not None else None,
            "replicates_in_fit": f"mean per run: the {len(runs)} rows of {source} are {zoo['n_runs']} runs, each "
                                 f"fitted and cross-validated once at its seeds' mean loss"}


def size_labels(cfg: Experiment, df) -> np.ndarray:
    """Each run's size: its grid.sizes target N, or a 10%-of-N cluster label (see the module docstring)."""
    target = cfg.size_targets
    shape_ids = (df["shape_id"] if "shape_id" in df.columns
                 else [shape_id(int(d), int(n)) for d, n in zip(df["d_model"], df["n_layers"])])
    labels = np.array([target.get(s, 0) for s in shape_ids], dtype=np.int64)
    loose = labels == 0
    labels[loose] = cluster(df["params"].to_numpy()[loose], SIZE_TOLERANCE).astype(np.int64)
    return labels


def group_labels(df) -> np.ndarray:
    """Size and budget: the shapes a selection ranks against one another."""
    return np.array([f"N{s}-t{m:g}" if np.isfinite(m) else f"N{s}-D{int(t)}"
                     for s, m, t in zip(df["size"], df["multiplier"], df["tokens"])])


def fit_set(cfg: Experiment, df) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(in the fit set, over-trained addition, warnings): the runs at the fit multiplier, plus the
    smallest size at the largest multiplier when fit.include_smallest_at_max (the paper's choice)."""
    fit_cfg, notes = cfg.fit, []
    m = df["multiplier"].to_numpy()
    base_m = fit_cfg.fit_multiplier if fit_cfg.fit_multiplier is not None else min(cfg.grid.multipliers)
    base = np.isclose(m, base_m)
    if not base.any():
        raise MorphError(f"fit.fit_multiplier: no run in the runs table has multiplier {base_m:g} "
                         f"(present: {sorted(set(m[np.isfinite(m)].tolist()))})")
    extra = np.zeros(len(df), dtype=bool)
    if fit_cfg.include_smallest_at_max:
        top = np.nanmax(m)
        extra = (df["size"].to_numpy() == df["size"].min()) & np.isclose(m, top) & ~base
        if not extra.any():
            notes.append(f"fit.include_smallest_at_max: the smallest size has no run at the largest multiplier "
                         f"{top:g} beyond the fit multiplier {base_m:g}; the fit set has no over-trained runs")
    return base | extra, extra, notes


# -- fitting and scoring ------------------------------------------------------------------------------
def fit_and_score(df, mask: np.ndarray, law: Law, solver: str, bootstrap: int = 0, seed: int = 0) -> dict:
    """Fit on df[mask] (dropping an optional term the fit set cannot identify); metrics on the fit rows, on every
    run, and on the held-out ones."""
    law = settle(df[mask], law)
    fit_rows = validate(df[mask], law, "the fit set", min_rows=law.n_free)
    result = fit_law(fit_rows, law, solver, bootstrap, seed, progress=sys.stderr.isatty())
    result["metrics"] = {"fit": evaluate(result, fit_rows, by_group=False),
                         "eval": evaluate(result, df, by_group=True)}
    held = df[~mask]
    result["metrics"]["heldout"] = evaluate(result, held, by_group=True) if len(held) else None
    return result


def _mean_spearman(m: dict | None) -> float | None:
    vals = [v for v in (m or {}).get("spearman_by_group", {}).values() if v is not None]
    return float(np.mean(vals)) if vals else None


def _summary(result: dict) -> dict:
    """The numbers an ablation row shows."""
    mt = result["metrics"]
    held = mt["heldout"] or {}
    return {"n_fit": result["n_fit"], "mse_all": mt["eval"]["mse"], "r2_all": mt["eval"]["r2"],
            "mse_heldout": held.get("mse"), "r2_heldout": held.get("r2"),
            "spearman_heldout_within_group": _mean_spearman(mt["heldout"]),
            "coefficients": result["coefficients"], "warnings": result["warnings"]}


def _attempt(df, mask, law: Law, solver: str) -> dict:
    """One ablation fit; a fit that cannot be made is a recorded row, not a failed stage."""
    try:
        return _summary(fit_and_score(df, mask, law, solver))
    except MorphError as err:
        return {"n_fit": int(mask.sum()), "error": str(err)}


def ablations(cfg: Experiment, df, fit_mask: np.ndarray, extra: np.ndarray, main: dict[str, dict]) -> list[dict]:
    from tqdm import tqdm

    fc = cfg.fit
    solver, tie = fc.solver, fc.tie
    rows = []

    def add(name: str, law: Law, **fields):
        rows.append({"ablation": name, "law": law.name, "tie": law.tie, **fields})

    both = [Law("chinchilla", tie), Law("inference-aware", tie)]
    for law in both:  # Chinchilla against inference-aware, on the paper's fit set
        add("paper fit set", law, **(_summary(main[law.name]) if law.name in main
                                     else _attempt(df, fit_mask, law, solver)))
    for law in both:
        add("without over-trained runs", law, **_attempt(df, fit_mask & ~extra, law, solver))
    # One random shape per size, from the fit set's shapes, with all of that shape's fit-set runs.
    shape_of = df["shape_id"].astype(str).to_numpy()
    sizes = sorted(set(df["size"][fit_mask]))
    repeats = []
    for r in tqdm(range(fc.ablation_repeats), desc="one shape per size", disable=not sys.stderr.isatty()):
        rng = np.random.default_rng([cfg.seed, r])
        picks = [str(rng.choice(sorted(set(shape_of[fit_mask & (df["size"].to_numpy() == s)])))) for s in sizes]
        mask = fit_mask & np.isin(shape_of, picks)
        repeats.append({"shapes": picks, "fits": {law.name: _attempt(df, mask, law, solver) for law in both}})
    for law in both:
        add("one random shape per size", law, **_aggregate([rep["fits"][law.name] for rep in repeats]),
            repeats=[{"shapes": rep["shapes"], **rep["fits"][law.name]} for rep in repeats])
    for t in ABLATION_TIES:  # tied against untied gamma
        law = Law("inference-aware", t)
        add("gamma tying", law, **(_summary(main[law.name]) if law.name in main and t == tie
                                   else _attempt(df, fit_mask, law, solver)))
    return rows


def _aggregate(fits: list[dict]) -> dict:
    ok = [f for f in fits if "error" not in f]
    out = {"n_fit": int(round(np.mean([f["n_fit"] for f in fits]))) if fits else 0,
           "n_repeats": len(fits), "n_failed": len(fits) - len(ok)}
    for key in ("mse_all", "r2_all", "mse_heldout", "r2_heldout", "spearman_heldout_within_group"):
        vals = [f[key] for f in ok if f.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
        out[f"{key}_sd"] = float(np.std(vals)) if len(vals) > 1 else None
    if not ok:
        out["error"] = fits[0]["error"] if fits else "no repeats"
    return out


def _cell(row: dict, key: str) -> str:
    v = row.get(key)
    if v is None:
        return "—"
    sd = row.get(f"{key}_sd")
    return f"{v:.4g} ± {sd:.2g}" if sd is not None else f"{v:.4g}"


def ablations_markdown(rows: list[dict], solver: str) -> str:
    head = ("| ablation | law | tie | fit runs | MSE (all) | R² (all) | MSE (held-out) | R² (held-out) "
            "| Spearman within size (held-out) | notes |\n|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        notes = r.get("error") or "; ".join(r.get("warnings", []))
        if "n_repeats" in r:
            failed = f", {r['n_failed']} failed" if r["n_failed"] else ""
            notes = f"mean ± sd over {r['n_repeats']} repeats{failed}" + (f"; {r['error']}" if r.get("error") else "")
        cells = [r["ablation"], r["law"], r["tie"], str(r.get("n_fit", "—"))]
        cells += [_cell(r, k) for k in ("mse_all", "r2_all", "mse_heldout", "r2_heldout",
                                         "spearman_heldout_within_group")]
        lines.append("| " + " | ".join(cells + [notes.replace("|", "/").replace("\n", " ")]) + " |")
    return (f"# Scaling-law ablations\n\nSolver: `{solver}`. \"All\" is every run; \"held-out\" is every run "
            "outside that row's fit set. Spearman is the mean over (size, budget) groups of the rank "
            "correlation between predicted and actual loss.\n\n" + head + "\n".join(lines) + "\n")


def zoo_winner(cfg: Experiment, df, fit_mask: np.ndarray, zoo: dict, main: dict[str, dict], meta: dict) -> dict:
    """select.law: auto — the form with the lowest cross-validated error, fitted on the paper's fit set."""
    name = zoo["winner"]
    if name is None:
        raise MorphError("select.law: auto, but no law form fitted every cross-validation fold (see the notes in "
                         "zoo.json); set select.law to one of " + ", ".join(LAWS))
    fc = cfg.fit
    result = dict(main[name]) if name in main else (
        fit_and_score(df, fit_mask, Law(name, fc.tie), fc.solver, fc.bootstrap, cfg.seed) | meta)
    runner_up = next((n for n in zoo["ranking"][1:] if zoo["forms"][n]["cv_error"] is not None), None)
    result["chosen_by"] = {"rule": "lowest cross-validated error in zoo.json",
                           "cv_error": zoo["forms"][name]["cv_error"],
                           "runner_up": runner_up, "margin": zoo["margin"],
                           "noise_mse": zoo["noise"]["mse"] if zoo["noise"] else None}
    return result


# -- the stage ----------------------------------------------------------------------------------------
def write_predictions(df, fit_mask, fits: dict, path: Path) -> None:
    """Each run's held-out loss beside every law's prediction of it: the data of `dvc plots show`."""
    from morph.core.io import atomic_path

    table = df[["run_id"]].assign(actual=df["loss"], set=np.where(fit_mask, "fit", "held out"))
    for name, res in fits.items():
        table[name] = predict_frame(res["coefficients"], df)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def run(args):
    from morph.core.io import atomic_path, library_versions, provenance, write_json
    from morph.law.figures import write_figures

    cfg = experiment.load(args.params)
    if inputs := args.runs_inputs or (RUNS_INPUTS if args.runs == RUNS_CSV else None):
        check_collected(inputs, args.runs, args.params)
    runs = read_runs(args.runs)
    df = mean_per_run(runs)
    df["size"] = size_labels(cfg, df)
    df["group"] = group_labels(df)
    fc = cfg.fit
    # The zoo scores every form on every run, whichever forms fit.laws fits for the later stages, once per count
    # of N in question; every fit below then counts N the way that cross-validates better.
    counts = tuple(PARAMS_COUNTS) if fc.params_count == AUTO else (fc.params_count,)
    zoos = {c: cross_validate(with_count(df, c), [Law(name, fc.tie) for name in LAWS], fc.solver, str(args.runs),
                              sizes=df["size"]) for c in counts}
    count, count_rule = choose_count(zoos, cfg.select.law)
    df = with_count(df, count)
    zoo = zoos[count]
    zoo["count_choice"] = {"chosen": count, "rule": count_rule,
                           "cv_error": {c: {n: z["forms"][n]["cv_error"] for n in LAWS} for c, z in zoos.items()}}
    fit_mask, extra, notes = fit_set(cfg, df)
    missing = sorted({r.run_id for r in cfg.grid_runs} - set(runs["run_id"]))
    if missing:
        notes.append(f"{args.runs} lacks {len(missing)} grid run(s): {', '.join(missing[:5])}"
                     + (" ..." if len(missing) > 5 else ""))
    rule = f"multiplier {fc.fit_multiplier or min(cfg.grid.multipliers):g}"
    if fc.include_smallest_at_max:
        rule += " + the smallest size at the largest multiplier"
    meta = {"fit_set": {"rule": rule,
                        "run_ids": df["run_id"][fit_mask].tolist()},
            "heldout_run_ids": df["run_id"][~fit_mask].tolist(),
            "sizes": {rid: int(s) for rid, s in zip(df["run_id"], df["size"])},
            "params_count": count, "config": cfg.params("fit"), **provenance([args.runs, args.params]),
            "versions": library_versions("numpy", "scipy", "pandas", "matplotlib")}
    out_dir = Path(args.out_dir)
    main = {}
    for name in fc.laws:
        law = Law(name, fc.tie)
        result = fit_and_score(df, fit_mask, law, fc.solver, fc.bootstrap, cfg.seed)
        result["warnings"] = notes + result["warnings"]
        main[name] = result | meta
    rows = ablations(cfg, df, fit_mask, extra, main)
    zoo["noise"] = replicate_noise(runs)  # the replicates were averaged away before cross-validation
    auto = zoo_winner(cfg, df, fit_mask, zoo, main, meta) if cfg.select.law == AUTO else None
    for result in (*main.values(), *([auto] if auto else [])):
        result["noise_floor"] = noise_floor(runs, zoo, Law(result["law"], fc.tie), str(args.runs))
    for name, result in main.items():
        for w in result["warnings"]:
            print(f"morph laws: warning: {name}: {w}", file=sys.stderr)
        write_json(law_json(name, out_dir), result)
    write_json(out_dir / ABLATIONS_JSON, {"solver": fc.solver, "rows": rows, **meta})
    with atomic_path(out_dir / ABLATIONS_MD) as tmp:
        tmp.write_text(ablations_markdown(rows, fc.solver), encoding="utf-8")
    write_json(out_dir / ZOO_JSON, zoo | meta)
    if auto is not None:
        write_json(law_json(AUTO, out_dir), auto)
    with atomic_path(out_dir / ZOO_MD) as tmp:
        tmp.write_text(markdown(zoo), encoding="utf-8")
    write_predictions(df, fit_mask, main, out_dir / PREDICTIONS)
    write_figures(df, fit_mask, main, zoo, Path(args.figures))
    for name, r in main.items():
        held = r["metrics"]["heldout"]
        print(f"{name}: fit mse={r['metrics']['fit']['mse']:.3g}, all mse={r['metrics']['eval']['mse']:.3g}"
              + (f", held-out mse={held['mse']:.3g}" if held else "") + f" -> {law_json(name, out_dir)}")
    print(f"law zoo: lowest cross-validated error: {zoo['winner'] or 'none (no form fitted every fold)'} "
          f"-> {out_dir / ZOO_JSON}")
    return 0
