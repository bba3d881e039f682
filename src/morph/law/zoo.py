"""The law zoo: every form scored by cross-validated held-out error, so held-out prediction picks the law.

Two kinds of fold, each holding out whole groups of runs:
  - leave-one-size-out: all runs of one size (the grid size in `morph laws`, else params clustered within
    10%), which asks whether a form carries to a size it never saw;
  - leave-one-multiplier-out: all runs of one tokens-per-parameter multiplier (the `multiplier` column),
    only where the data has two or more.
A fold is used only if its training runs can predict the held-out ones with every form (enough rows and
shapes; more than one size, and more than one tokens-per-parameter ratio, unless the held-out runs share
them), so all forms face the same folds. A form's error for one kind is the MSE pooled over every held-out
run of that kind; its CV error is the mean over the kinds the data has. A form whose solver fails on a used
fold has no CV error and ranks last, so no form wins by skipping the folds it fails. Data with a single
tokens-per-parameter ratio (D = r*N on every run) cannot separate N's exponent from D's, so there the
untied forms are fitted with beta tied to alpha, and the notes say so. An optional term (the conditional
law's ratio factor) is kept or dropped once, on the whole table (fitting.settle), so a form is the same law on
every fold; a fold whose training runs cannot identify a kept term is skipped like any other.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from morph.core.errors import MorphError
from morph.law.fitting import cluster, design, dropped_terms, needed_columns, predict_frame, settle, validate
from morph.law.forms import Law
from morph.law.solvers import serial_blas, solve

SIZE_TOLERANCE = 0.10
# CV errors below this MSE (an RMS error of 1e-6 nats) are exact up to the solvers' tolerances, and tie:
# on noise-free data every form that nests the truth reaches it, and the one with fewer coefficients ranks first.
EXACT_MSE = 1e-12
KINDS = {"size": "leave-one-size-out", "multiplier": "leave-one-multiplier-out"}


def multipliers(df, source: str) -> np.ndarray:
    """The `multiplier` column as numbers; an empty cell is a run never held out, anything else not a
    positive number is an error naming its line."""
    import pandas as pd

    raw = df["multiplier"]
    m = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = raw.notna().to_numpy() & ~(np.isfinite(m) & (m > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise MorphError(f"{source}: line {i + 2}: column 'multiplier' is {raw.iloc[i]!r}; a multiplier (tokens per "
                         f"parameter the run was designed for) must be a positive number, or empty")
    return m


def fold_labels(df, source: str, sizes=None) -> tuple[dict[str, np.ndarray], list[str]]:
    """{kind: each run's held-out group (NaN: never held out)} for the kinds the data has, and notes on the rest."""
    folds = {"size": np.asarray(sizes, dtype=float) if sizes is not None else cluster(df["params"], SIZE_TOLERANCE)}
    notes = []
    if "multiplier" not in df.columns:
        notes.append("no `multiplier` column: leave-one-multiplier-out skipped")
    else:
        m = multipliers(df, source)
        if len(np.unique(m[np.isfinite(m)])) >= 2:
            folds["multiplier"] = m
        else:
            notes.append("fewer than 2 multipliers: leave-one-multiplier-out skipped")
    if len(np.unique(folds["size"])) < 2:
        raise MorphError(f"{source}: every run is one size (params within 10%); leave-one-size-out needs "
                         "runs of at least 2 sizes")
    return folds, notes


def _label(v: float) -> str:
    """A group's name: a size as whole parameters, a multiplier as written."""
    return f"{v:.0f}" if v >= 1000 else f"{v:g}"


def _unidentifiable(df, held: np.ndarray, sizes: np.ndarray, laws) -> str | None:
    """Why the runs outside `held` cannot predict the held-out ones for some form, or None.

    One training size leaves A and alpha free, and one tokens-per-parameter ratio leaves the split between
    N's and D's terms free: either is fatal only when the held-out runs lie off it. Sizes and ratios are
    told apart at SIZE_TOLERANCE, as sizes are clustered: runs a few % apart pin an exponent no better
    than one run does.
    """
    train = df[~held]
    if len(np.unique(sizes[~held])) < 2 and not set(sizes[held]) <= set(sizes[~held]):
        return "the training runs are all one size, so A and alpha cannot be told apart from E"
    ratio = (df["tokens"] / df["params"]).to_numpy()
    lo, hi = ratio[~held].min(), ratio[~held].max()
    off = (ratio[held] < lo / (1 + SIZE_TOLERANCE)) | (ratio[held] > hi * (1 + SIZE_TOLERANCE))
    if hi <= lo * (1 + SIZE_TOLERANCE) and off.any():
        return ("every training run has the same tokens per parameter (within 10%) and the held-out runs do not, "
                "so N's and D's terms cannot be told apart")
    for law in laws:
        try:
            validate(train, law, "the training runs", min_rows=law.n_free)
        except MorphError as err:
            return str(err)
        lost = {f: why for f, why in dropped_terms(train, settle(train, law)).items() if f not in law.dropped}
        if lost:
            return f"the training runs cannot identify the {law.name} law's terms: " + "; ".join(lost.values())
    return None


def usable_folds(df, laws, labels_by_kind: dict[str, np.ndarray]) -> tuple[dict[str, list], list[dict]]:
    """({kind: [(label, held-out mask)]} for the folds every form can be fitted on, [skipped folds and why])."""
    used, skipped = {}, []
    for kind, labels in labels_by_kind.items():
        for g in np.unique(labels[np.isfinite(labels)]):
            held = labels == g
            why = _unidentifiable(df, held, labels_by_kind["size"], laws)
            if why:
                skipped.append({"kind": kind, "held_out": _label(g), "why": why})
            else:
                used.setdefault(kind, []).append((g, held))
    return used, skipped


def _held_out_errors(df, held: np.ndarray, law: Law, solver: str, max_iter: int) -> np.ndarray:
    """Squared errors on df[held] of `law` fitted to the other runs; FitError if the solver fails."""
    train = df[~held]
    sol = solve(law, solver, design(train, law), train["loss"].to_numpy(), max_iter=max_iter)
    with np.errstate(over="ignore", invalid="ignore"):
        pred = predict_frame(law.coefficients(sol.theta), df[held])
    if not np.all(np.isfinite(pred)):
        raise MorphError("the fit predicts a non-finite loss on the held-out runs")
    return (pred - df["loss"].to_numpy()[held]) ** 2


def score(df, law: Law, solver: str, folds: dict[str, list], max_iter: int = 1000) -> dict:
    """One form's held-out errors over the usable folds."""
    out = {"law": law.name, "tie": law.tie, "formula": law.formula, "cv": {}}
    for kind, held_out in folds.items():
        per_fold, squared = [], []
        for g, held in held_out:
            entry = {"held_out": _label(g), "n": int(held.sum())}
            try:
                err = _held_out_errors(df, held, law, solver, max_iter)
                squared.append(err)
                entry["mse"] = float(err.mean())
            except MorphError as e:
                entry["error"] = str(e)
            per_fold.append(entry)
        failed = sum("error" in f for f in per_fold)
        out["cv"][kind] = {"mse": float(np.concatenate(squared).mean()) if not failed else None,
                           "failed": failed, "folds": per_fold}
    mses = [c["mse"] for c in out["cv"].values()]
    out["cv_error"] = float(np.mean(mses)) if mses and all(m is not None for m in mses) else None
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
    return {"mse": ss / dof, "sd": float(np.sqrt(ss / dof)), "replicated_points": int((groups.count() > 1).sum()),
            "dof": dof}


def cross_validate(df, laws, solver: str, source: str, sizes=None, max_iter: int = 1000) -> dict:
    """Score every law in `laws` on the runs table df (checked here against each form's columns)."""
    laws = [settle(df, law) for law in laws]
    tables = {law.name: validate(df, law, source) for law in laws}  # bad input fails before any fitting
    checked = tables[max(laws, key=lambda law: len(needed_columns(law))).name]  # the one with most columns checked
    labels, notes = fold_labels(checked, source, sizes)
    ratio = (checked["tokens"] / checked["params"]).to_numpy()
    if ratio.max() <= ratio.min() * (1 + SIZE_TOLERANCE) and any(law.tie == "none" for law in laws):
        # D = r*N on every run: beta is then a second exponent of N, and untied the solvers crawl along the
        # A-B ridge until they give up, so the zoo ties it (every form alike) and says so.
        laws = [replace(law, tie="alpha-beta") if law.tie == "none" else law for law in laws]
        notes.append(f"every run has about {np.median(ratio):.3g} tokens per parameter, so N's and D's exponents "
                     "cannot be told apart: beta is tied to alpha (tie alpha-beta) in every untied form")
    for law in laws:
        notes += [f"{law.name}: {why}" for why in dropped_terms(checked, law).values()]
    folds, skipped = usable_folds(checked, laws, labels)
    notes += [f"{KINDS[s['kind']]}: {s['kind']} {s['held_out']} held out: skipped, {s['why']}" for s in skipped]
    if "size" not in folds:
        notes.append("no leave-one-size-out fold leaves runs that identify every form: no cross-validated error")
    with serial_blas():
        forms = {law.name: score(tables[law.name], law, solver, folds, max_iter) for law in laws}
    n_free = {law.name: law.n_free for law in laws}
    ranked = sorted(forms, key=lambda n: (forms[n]["cv_error"] is None, max(forms[n]["cv_error"] or 0.0, EXACT_MSE),
                                          n_free[n]))
    scored = [n for n in ranked if forms[n]["cv_error"] is not None]
    out = {"source": source, "solver": solver, "n_runs": len(df),
           "folds": {kind: [_label(g) for g, _ in held_out] for kind, held_out in folds.items()},
           "skipped_folds": skipped, "notes": notes, "forms": forms, "ranking": ranked,
           "winner": scored[0] if scored else None,
           # how much better the winner is: the runner-up's CV error over the winner's
           "margin": (max(forms[scored[1]]["cv_error"], EXACT_MSE) / max(forms[scored[0]]["cv_error"], EXACT_MSE)
                      if len(scored) > 1 else None),
           "noise": replicate_noise(df)}
    if folds and not scored:
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
    if "count_choice" in zoo:
        count = zoo["count_choice"]
        summary += f" N counts {count['chosen']} parameters ({count['rule']})."
    notes = "".join(f"- {n}\n" for n in zoo["notes"])
    return (f"# Law zoo: cross-validated held-out error\n\nRuns: {zoo['n_runs']} from `{zoo['source']}`; solver "
            f"`{zoo['solver']}`. Folds — {folds}. The MSE of each kind is pooled over all held-out runs; the CV "
            f"error is their mean.\n\n{summary}\n\n{head}" + "\n".join(lines) + "\n" + (f"\n{notes}" if notes else ""))
