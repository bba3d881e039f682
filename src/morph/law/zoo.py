"""The law zoo: every form scored by cross-validated held-out error, so held-out prediction picks the law.

Two kinds of fold, each holding out whole groups of runs:
  - leave-one-size-out: all runs of one size (a `size` label, or params clustered within 10%), which asks
    whether a form carries to a size it never saw;
  - leave-one-multiplier-out: all runs of one tokens-per-parameter multiplier (the `multiplier` column),
    only where the data has two or more.
A form's error for one kind is the MSE pooled over every held-out run of that kind; its CV error is the
mean over the kinds the data has. A form with a fold it cannot fit has no CV error and ranks last, so no
form wins by skipping the folds it fails.
"""
from __future__ import annotations

import numpy as np

from morph.errors import MorphError
from morph.law.fitting import design, predict_frame, validate
from morph.law.forms import Law
from morph.law.solvers import serial_blas, solve

SIZE_TOLERANCE = 0.10
KINDS = {"size": "leave-one-size-out", "multiplier": "leave-one-multiplier-out"}


def cluster(values) -> np.ndarray:
    """Group labels for positive values: in sorted order, a value joins the current group while it is within
    SIZE_TOLERANCE of the group's smallest, which labels the group."""
    values = np.asarray(values, dtype=float)
    labels = np.empty(len(values))
    start = None
    for i in np.argsort(values, kind="stable"):
        if start is None or values[i] > start * (1 + SIZE_TOLERANCE):
            start = values[i]
        labels[i] = start
    return labels


def fold_labels(df, sizes=None) -> tuple[dict[str, np.ndarray], list[str]]:
    """{kind: each run's held-out group (NaN: never held out)} for the kinds the data has, and notes on the rest."""
    import pandas as pd

    folds = {"size": np.asarray(sizes, dtype=float) if sizes is not None else cluster(df["params"])}
    notes = []
    if "multiplier" not in df.columns:
        notes.append("no `multiplier` column: leave-one-multiplier-out skipped")
    else:
        m = pd.to_numeric(df["multiplier"], errors="coerce").to_numpy(dtype=float)
        if len(np.unique(m[np.isfinite(m)])) >= 2:
            folds["multiplier"] = m
        else:
            notes.append("fewer than 2 multipliers: leave-one-multiplier-out skipped")
    if len(np.unique(folds["size"])) < 2:
        raise MorphError("cross-validation: every run is one size (params within 10%); leave-one-size-out needs "
                         "runs of at least 2 sizes")
    return folds, notes


def _label(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _fold(df, train: np.ndarray, law: Law, solver: str, source: str) -> np.ndarray:
    """Squared errors on df[~train] of `law` fitted to df[train]; MorphError if that fit cannot be made."""
    rows = validate(df[train], law, source, min_rows=law.n_free)
    sol = solve(law, solver, design(rows, law), rows["loss"].to_numpy())
    with np.errstate(over="ignore", invalid="ignore"):
        pred = predict_frame(law.coefficients(sol.theta), df[~train])
    if not np.all(np.isfinite(pred)):
        raise MorphError(f"{source}: the fit predicts a non-finite loss on the held-out runs")
    return (pred - df["loss"].to_numpy()[~train]) ** 2


def score(df, law: Law, solver: str, folds: dict[str, np.ndarray]) -> dict:
    """One form's held-out errors over every fold."""
    out = {"law": law.name, "tie": law.tie, "formula": law.formula, "cv": {}}
    for kind, labels in folds.items():
        per_fold, squared = [], []
        for g in np.unique(labels[np.isfinite(labels)]):
            held = labels == g
            entry = {"held_out": _label(g), "n": int(held.sum())}
            try:
                err = _fold(df, ~held, law, solver, f"{kind} {_label(g)} held out")
                squared.append(err)
                entry["mse"] = float(err.mean())
            except MorphError as e:
                entry["error"] = str(e)
            per_fold.append(entry)
        failed = sum("error" in f for f in per_fold)
        out["cv"][kind] = {"mse": float(np.concatenate(squared).mean()) if not failed else None,
                           "failed": failed, "folds": per_fold}
    mses = [c["mse"] for c in out["cv"].values()]
    out["cv_error"] = float(np.mean(mses)) if all(m is not None for m in mses) else None
    return out


def replicate_noise(df) -> dict | None:
    """Run-to-run noise where the same (params, tokens, shape) was trained more than once: the pooled
    within-replicate variance of the loss, the floor any form's held-out MSE can reach."""
    keys = [c for c in ("params", "tokens", "d_model", "n_layers") if c in df.columns]
    groups = df.groupby(keys)["loss"]
    dof = int((groups.count() - 1).clip(lower=0).sum())
    if dof == 0:
        return None
    ss = float(groups.apply(lambda s: ((s - s.mean()) ** 2).sum()).sum())
    return {"mse": ss / dof, "replicated_points": int((groups.count() > 1).sum()), "dof": dof}


def cross_validate(df, laws, solver: str, source: str, sizes=None) -> dict:
    """Score every law in `laws` on the runs table df (checked here against each form's columns)."""
    tables = {law.name: validate(df, law, source) for law in laws}  # bad input fails before any fitting
    folds, notes = fold_labels(df, sizes)
    with serial_blas():
        forms = {law.name: score(tables[law.name], law, solver, folds) for law in laws}
    ranked = sorted(forms, key=lambda n: (forms[n]["cv_error"] is None, forms[n]["cv_error"] or 0.0))
    scored = [n for n in ranked if forms[n]["cv_error"] is not None]
    out = {"source": source, "solver": solver, "n_runs": int(len(df)),
           "folds": {kind: sorted({_label(v) for v in labels[np.isfinite(labels)]}, key=float)
                     for kind, labels in folds.items()},
           "notes": notes, "forms": forms, "ranking": ranked,
           "winner": scored[0] if scored else None,
           # how much better the winner is: the runner-up's CV error over the winner's
           "margin": forms[scored[1]]["cv_error"] / forms[scored[0]]["cv_error"] if len(scored) > 1 else None,
           "noise": replicate_noise(df)}
    if not scored:
        out["notes"].append("no form fitted every fold; no winner")
    return out


def _cell(v) -> str:
    return "—" if v is None else f"{v:.4g}"


def markdown(zoo: dict) -> str:
    kinds = list(zoo["folds"])
    best = zoo["forms"][zoo["winner"]]["cv_error"] if zoo["winner"] else None
    head = ("| rank | form | " + " | ".join(f"{KINDS[k]} MSE" for k in kinds)
            + " | CV error | × best | failed folds | formula |\n|" + "---|" * (len(kinds) + 6) + "\n")
    lines = []
    for rank, name in enumerate(zoo["ranking"], 1):
        f = zoo["forms"][name]
        ratio = f"{f['cv_error'] / best:.3g}" if best and f["cv_error"] is not None else "—"
        failed = sum(f["cv"][k]["failed"] for k in kinds)
        lines.append(f"| {rank} | {name} | " + " | ".join(_cell(f["cv"][k]["mse"]) for k in kinds)
                     + f" | {_cell(f['cv_error'])} | {ratio} | {failed} | `{f['formula']}` |")
    folds = "; ".join(f"{KINDS[k]}: {len(v)} folds ({', '.join(v)})" for k, v in zoo["folds"].items())
    summary = f"Winner: **{zoo['winner']}**" if zoo["winner"] else "No winner"
    if zoo["margin"] is not None:
        summary += f", the runner-up's CV error is {zoo['margin']:.3g}× the winner's"
    noise = zoo["noise"]
    summary += (f". Run-to-run noise (pooled over {noise['replicated_points']} replicated points): MSE "
                f"{noise['mse']:.3g}." if noise else ". No replicated runs, so no run-to-run noise estimate.")
    notes = "".join(f"- {n}\n" for n in zoo["notes"])
    return (f"# Law zoo: cross-validated held-out error\n\nRuns: {zoo['n_runs']} from `{zoo['source']}`; solver "
            f"`{zoo['solver']}`. Folds — {folds}. The MSE of each kind is pooled over all held-out runs; the CV "
            f"error is their mean.\n\n{summary}\n\n{head}" + "\n".join(lines) + "\n" + (f"\n{notes}" if notes else ""))
