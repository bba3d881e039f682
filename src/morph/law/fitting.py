"""Fit a scaling law (any form in forms.FORMS) to any table of runs, with metrics and bootstrap CIs.

  morph fit --runs RUNS.csv [--eval EVAL.csv] --law {chinchilla,inference-aware,additive,conditional,kaplan}
            --tie {none,alpha-beta,all} --solver {lm,huber-log} [--bootstrap B] [--seed S] --out OUT.json

RUNS.csv and EVAL.csv hold columns params,tokens,d_model,n_layers,loss (d_model and n_layers only for the
shape-aware forms), mlp_attention_ratio where the conditional law's ratio factor is to be fitted (without
it, or with fewer than 3 distinct ratios, the factor drops out and the fit's `dropped_terms` says why; see
forms.py) and an optional `group`; other columns are ignored. `predict_loss` reads OUT.json back for the
stages that rank shapes by predicted loss.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from morph.core.errors import MorphError
from morph.law.forms import (
    COEFFICIENTS,
    EXPONENTS,
    FEATURES,
    FORMS,
    LAWS,
    RATIO_COLUMN,
    Law,
    ShapeTerm,
    droppable,
    features,
    law_of,
    predict,
    term_feature,
)
from morph.law.solvers import POLISH, FitError, serial_blas, solve

OBJECTIVES = {"lm": "sum of squared loss residuals",
              "huber-log": "summed Huber loss (delta=1e-3) on log-loss residuals"}
CI_LEVEL = 0.95
_SAME = 1e-9  # feature values closer than this (relative) are one value: float noise, not another shape


# -- input ------------------------------------------------------------------------------------------
def needed_columns(law: Law) -> tuple[str, ...]:
    shape = ("d_model", "n_layers") if any(t.feature != "ratio" for t in law.terms) else ()
    ratio = (RATIO_COLUMN,) if any(t.feature == "ratio" for t in law.terms) else ()
    return ("params", "tokens", *shape, "loss", *ratio)


def cluster(values, tolerance: float) -> np.ndarray:
    """Group labels for positive values: in sorted order, a value joins the current group while it is within
    `tolerance` (relative) of the group's smallest, which labels the group."""
    values = np.asarray(values, dtype=float)
    labels = np.empty(len(values))
    start = None
    for i in np.argsort(values, kind="stable"):
        if start is None or values[i] > start * (1 + tolerance):
            start = values[i]
        labels[i] = start
    return labels


def distinct(values, term: ShapeTerm) -> int:
    """How many distinct values of a term's (positive) feature, told apart at the term's tolerance."""
    return len(np.unique(cluster(values, max(term.tolerance, _SAME))))


def why_dropped(df, term: ShapeTerm) -> str | None:
    """Why the runs cannot identify an optional term, or None if they can."""
    import pandas as pd

    column, left_out = FEATURES[term.feature], f"so the term `{term.clause.removeprefix(' * ')}` is left out"
    if column not in df.columns:
        return f"the runs table has no {column} column, {left_out}"
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
    n = distinct(values[np.isfinite(values) & (values > 0)], term)
    if n < term.min_distinct:
        return (f"only {n} distinct {column} value(s) (within {term.tolerance:.0%}), and its U needs "
                f"{term.min_distinct} to place both curvature and optimum, {left_out}")
    return None


def settle(df, law: Law) -> Law:
    """The law with every optional term these runs cannot identify dropped (why_dropped says why)."""
    gone = tuple(t.feature for t in law.terms if t.optional and why_dropped(df, t))
    return replace(law, dropped=law.dropped + gone)


def dropped_terms(df, law: Law) -> dict[str, str]:
    """{feature: why} for each optional term of the form that `law` leaves out, as the fit records it."""
    return {t.feature: why_dropped(df, t) or "left out by the caller"
            for t in FORMS[law.name].terms if t.feature in law.dropped}


def _row_name(df, i: int) -> str:
    """How an error points at a row: its CSV line (header = line 1), and its run id when there is one."""
    label = f"line {i + 2}"
    if "run_id" in df.columns:
        label += f" (run {df['run_id'].iloc[i]})"
    return label


def validate(df, law: Law, source: str, min_rows: int | None = None, also: tuple[str, ...] = ()):
    """Check and normalise a runs table for `law`: the needed columns (and `also` these), positive finite
    values, and enough rows and distinct values to identify the coefficients. Returns a copy with numeric columns.
    An optional term's column (mlp_attention_ratio) is never missing, since `settle` drops the term without it,
    and is checked wherever the table has it, so a bad ratio is named rather than silently left out."""
    import pandas as pd

    optional = {FEATURES[t.feature] for t in FORMS[law.name].terms if t.optional}
    needed = tuple(c for c in dict.fromkeys((*needed_columns(law), *optional, *also))
                   if c in df.columns or c not in optional)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise MorphError(f"{source}: missing column {missing[0]!r}; the {law.name} law needs columns "
                         f"{', '.join(needed)} (found: {', '.join(map(str, df.columns)) or 'none'})")
    if len(df) == 0:
        raise MorphError(f"{source}: no rows")
    if "run_id" in df.columns and df["run_id"].duplicated().any():
        # A copied row would count as a second seed and shrink the noise the verdict is judged by.
        twice = df["run_id"][df["run_id"].duplicated()].iloc[0]
        raise MorphError(f"{source}: run {twice!r} appears in more than one row; each run is one row (its seed "
                         "replicates have ids of their own): rebuild the table with `morph collect`")
    df = df.reset_index(drop=True).copy()
    for col in needed:
        raw = df[col]
        values = pd.to_numeric(raw, errors="coerce")
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MorphError(f"{source}: {_row_name(df, i)}: column {col!r} is {str(raw.iloc[i])!r}; "
                             f"{', '.join(needed)} must all be positive numbers "
                             f"({int(bad.sum())} bad row(s) in this column)")
        df[col] = values.astype(float)
    if "group" in df.columns:
        df["group"] = df["group"].astype(str)
    if min_rows is not None and len(df) < min_rows:
        raise MorphError(f"{source}: {len(df)} rows, fewer than the {min_rows} free coefficients of the "
                         f"{law.name} law with tie {law.tie!r} ({', '.join(law.free_names())}); add runs or "
                         "tie more exponents")
    if min_rows is not None:
        _check_identifiable(df, law, source)
    return df


def _feature(df, law: Law, term: ShapeTerm) -> np.ndarray:
    """The shape feature x that one of the law's terms reads, per row."""
    return term_feature(law, term, *_columns(df, ("params", "d_model", "n_layers", RATIO_COLUMN)))


def _check_identifiable(df, law: Law, source: str) -> None:
    single = [("params", "A and alpha cannot be told apart from E"),
              ("tokens", "B and beta cannot be told apart from E")]
    for col, why in single:
        if df[col].nunique() == 1:
            raise MorphError(f"{source}: every row has {col} = {df[col].iloc[0]:g}; {why}. "
                             f"Add runs with other {col} values")
    for term in (t for t in law.terms if not t.optional):  # an optional term is dropped (settle), never refused
        x = _feature(df, law, term)
        n = distinct(np.exp(x), term)
        if n < term.min_distinct:
            feature = FEATURES[term.feature] + (f" (within {term.tolerance:.0%})" if term.tolerance else "")
            seen = (f"every row has the same {feature} = {np.exp(x[0]):g}" if n == 1
                    else f"only {n} distinct values of {feature}")
            p, q = law.term_names(term)
            raise MorphError(f"{source}: {seen}; the {law.name} law's {p} and {q} are unidentifiable from fewer "
                             f"than {term.min_distinct}. Add runs of other shapes, or fit --law chinchilla")


def read_csv(path: str | Path):
    """A runs table as read, unchecked; MorphError naming the file if it is absent or not a CSV."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise MorphError(f"{path}: runs table not found")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise MorphError(f"{path}: not a readable CSV ({err})") from None


def read_runs(path: str | Path, law: Law, min_rows: int | None = None):
    return validate(read_csv(path), law, str(path), min_rows)


def _columns(df, names: tuple[str, ...]) -> tuple:
    """The named columns as arrays; None for any the table lacks."""
    return tuple(df[c].to_numpy() if c in df.columns else None for c in names)


_SHAPE = ("d_model", "n_layers", RATIO_COLUMN)


def design(df, law: Law) -> np.ndarray:
    return features(law, df["params"].to_numpy(), df["tokens"].to_numpy(), *_columns(df, _SHAPE))


def predict_frame(coeffs: dict, df) -> np.ndarray:
    return predict(coeffs, df["params"].to_numpy(), df["tokens"].to_numpy(), *_columns(df, _SHAPE))


# -- fitting ----------------------------------------------------------------------------------------
def fit_law(df, law: Law, solver: str, bootstrap: int = 0, seed: int = 0, max_iter: int = 1000,
            polish: int = POLISH, progress: bool = True) -> dict:
    """Fit `law` to a validated table, less any optional term the table cannot identify (settle); returns
    coefficients, solver details, CIs and warnings."""
    law = settle(df, law)
    X, y = design(df, law), df["loss"].to_numpy()
    with serial_blas():
        sol = solve(law, solver, X, y, polish=polish, max_iter=max_iter)
        coeffs = law.coefficients(sol.theta)
        out = {
            "law": law.name,
            "tie": law.tie,
            "solver": solver,
            "form": law.formula,
            "coefficients": coeffs,
            "free": list(law.free_names()),
            "n_fit": len(df),
            "objective": {"kind": OBJECTIVES[solver], "value": sol.objective, "rms_loss_residual": sol.rms},
            "starts": {"grid": sol.grid_size, "polished": sol.tried, "converged": sol.converged},
            "warnings": diagnose(law, coeffs, df),
        }
        if droppable(law.name) != [()]:  # a form with optional terms says which were left out, and why
            out["dropped_terms"] = dropped_terms(df, law)
        if bootstrap:
            out.update(_bootstrap(law, solver, X, y, sol.theta, bootstrap, seed, max_iter, progress, out["warnings"]))
    return out


def _bootstrap(law, solver, X, y, theta, samples, seed, max_iter, progress, warnings) -> dict:
    """Percentile intervals from refits on rows resampled with replacement.

    Each refit starts from the full-data optimum, not the whole grid: a resample's optimum lies near it,
    and a grid per resample would cost ~100x more for the same answer.
    """
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    draws, failed = [], 0
    for _ in tqdm(range(samples), desc=f"bootstrap {law.name}", disable=not progress, leave=False):
        idx = rng.integers(0, len(y), len(y))
        Xb, yb = X[idx], y[idx]
        if len(np.unique(idx)) < law.n_free or any(np.ptp(Xb[:, j]) == 0 for j in range(X.shape[1])):
            failed += 1  # a resample that cannot identify the law; counted, not fitted
            continue
        try:
            draws.append(solve(law, solver, Xb, yb, starts=theta[None], polish=1, max_iter=max_iter).theta)
        except FitError:
            failed += 1
    info = {"bootstrap": {"samples": samples, "converged": samples - failed, "seed": seed, "level": CI_LEVEL,
                          "method": "percentile; rows resampled with replacement; each refit warm-started "
                                    "at the full-data optimum"}}
    if failed > 0.1 * samples:
        warnings.append(f"bootstrap: {failed} of {samples} resamples failed to fit; the intervals are unreliable")
    if len(draws) < 2:
        warnings.append("bootstrap: fewer than 2 resamples fitted; no confidence intervals")
        return info
    named = [law.coefficients(t) for t in draws]
    # Kept whole: select reads the law's predictive uncertainty for each candidate from these refits.
    info["bootstrap"]["draws"] = named
    tail = 100 * (1 - CI_LEVEL) / 2
    info["ci"] = {k: [float(np.percentile([c[k] for c in named], tail)),
                      float(np.percentile([c[k] for c in named], 100 - tail))] for k in named[0]}
    return info


def diagnose(law: Law, coeffs: dict, df) -> list[str]:
    """Warnings about fits that converged but should not be trusted or extrapolated."""
    out = []
    if len(df) - law.n_free < 2:
        out.append(f"only {len(df)} rows for {law.n_free} free coefficients: the fit (nearly) interpolates, "
                   "so its fit-set metrics say little")
    for name in (n for n in law.free_names() if n in EXPONENTS):  # a tied exponent is reported once
        v = coeffs[name]
        lo = -3.0 if name == "gamma" else 0.0
        if not lo < v <= 3.0:
            out.append(f"{name} = {v:.4g} is outside ({lo:g}, 3]: a degenerate fit; do not extrapolate it")
    if coeffs["E"] < 1e-3 * float(df["loss"].min()):
        out.append(f"E = {coeffs['E']:.3g} is ~0: the fit found no irreducible loss")
    if law.shape_aware:
        with np.errstate(over="ignore", invalid="ignore"):
            base = predict({k: coeffs[k] for k in COEFFICIENTS["chinchilla"]}, df["params"], df["tokens"])
            effect = np.abs(predict_frame(coeffs, df) / base - 1.0)
        if effect.max() < 1e-4:
            out.append(f"the shape terms change the loss by less than 1e-4 (relative) on every fitted row "
                       f"(max {effect.max():.2g}): the fit found no effect of shape, and the law reduces to "
                       "Chinchilla")
    for term in (t for t in law.terms if t.kind == "factor-u"):  # a U with its bottom off the data is one-sided
        x = _feature(df, law, term)
        name = law.term_names(term)[1]
        if not x.min() <= coeffs[name] <= x.max():
            out.append(f"{name} = {coeffs[name]:.3g}: the U-shaped factor's optimum {FEATURES[term.feature]} = "
                       f"{np.exp(coeffs[name]):.3g} lies outside the fitted shapes ({np.exp(x.min()):.3g} to "
                       f"{np.exp(x.max()):.3g}); only one side of the U is fitted, so do not trust that optimum")
    return out


# -- metrics ----------------------------------------------------------------------------------------
def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None  # undefined for constant or single-point groups; JSON gets null, not NaN
    return float(spearmanr(a, b).statistic)


def _group_key(v) -> str:
    return f"{v:.0f}" if isinstance(v, float) and v.is_integer() else str(v)


def metrics(pred: np.ndarray, actual: np.ndarray, groups=None) -> dict:
    """mse, r2, spearman, max_relative_error (and spearman_by_group when groups are given)."""
    if not np.all(np.isfinite(pred)):
        raise MorphError(f"the fitted law predicts a non-finite loss for {int((~np.isfinite(pred)).sum())} of "
                         f"{len(pred)} rows: a degenerate fit that cannot be evaluated there")
    resid = pred - actual
    ss_tot = float(((actual - actual.mean()) ** 2).sum())
    out = {
        "n": int(len(actual)),
        "mse": float(np.mean(resid ** 2)),
        "r2": 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else None,
        "spearman": _spearman(pred, actual),
        "max_relative_error": float(np.max(np.abs(resid) / actual)),
    }
    if groups is not None:
        groups = np.asarray(groups)
        out["spearman_by_group"] = {
            _group_key(g): _spearman(pred[groups == g], actual[groups == g]) for g in sorted(set(groups.tolist()))
        }
    return out


def evaluate(result: dict, df, by_group: bool) -> dict:
    """Metrics of a fitted law on a validated table; groups are `group`, else each distinct params value."""
    groups = None
    if by_group:
        groups = df["group"].to_numpy() if "group" in df.columns else df["params"].to_numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        pred = predict_frame(result["coefficients"], df)
    return metrics(pred, df["loss"].to_numpy(), groups)


# -- the fitted law as a consumer reads it -------------------------------------------------------------
def load_law(law_json, expect_law: str | None = None) -> dict:
    """A fitted-law JSON (path or dict), checked: its law, tie and coefficients."""
    from morph.core.io import read_json

    src = str(law_json) if isinstance(law_json, (str, Path)) else "law JSON"
    data = read_json(law_json) if isinstance(law_json, (str, Path)) else law_json
    if not isinstance(data, dict) or data.get("law") not in LAWS or "coefficients" not in data:
        raise MorphError(f"{src}: not a fitted-law file (expected keys 'law' and 'coefficients'; "
                         "write one with `morph fit`)")
    if expect_law is not None and data["law"] != expect_law:
        raise MorphError(f"{src}: holds the {data['law']} law, but {expect_law} was expected")
    if not any(set(data["coefficients"]) == set(Law(data["law"], dropped=d).names) for d in droppable(data["law"])):
        optional = " (less any optional term's)" if droppable(data["law"]) != [()] else ""
        raise MorphError(f"{src}: coefficients {sorted(data['coefficients'])} do not match the {data['law']} law's "
                         f"{list(COEFFICIENTS[data['law']])}{optional}")
    return data


def predict_loss(law_json, params, tokens, d_model=None, n_layers=None, ratio=None, expect_law: str | None = None):
    """Predicted loss from a fitted-law JSON (path or dict) for arrays or scalars of N, D and shape; `ratio`
    (mlp_attention_ratio) is needed only by a conditional law fitted with its ratio factor."""
    data = load_law(law_json, expect_law)
    law = law_of(data["coefficients"])
    given = {"d_model": d_model, "n_layers": n_layers, RATIO_COLUMN: ratio}
    lacking = [c for c in needed_columns(law) if c in given and given[c] is None]
    if lacking:
        raise MorphError(f"predict_loss: the {data['law']} law needs {' and '.join(lacking)}")
    out = predict(data["coefficients"], params, tokens, d_model, n_layers, ratio)
    return float(out) if np.ndim(out) == 0 else out
