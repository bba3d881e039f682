"""Fit a scaling law to any CSV of runs: the stand-alone face of the fitting library.

  morph fit --runs my_runs.csv --law inference-aware --tie all --solver lm --out fit.json
  morph fit --cv --runs my_runs.csv --tie all --solver lm --out zoo.json   # every form, cross-validated
"""
from __future__ import annotations

import sys

from morph.core.errors import MorphError
from morph.core.io import library_versions, provenance, write_json
from morph.law.fitting import evaluate, fit_law, read_csv, read_runs, settle, validate
from morph.law.forms import LAWS, TIES, Law
from morph.law.solvers import SOLVERS
from morph.law.zoo import cross_validate, markdown

PARAMS_FLAG = None  # fits any runs table: no experiment file, so the CLI adds no --params


def add_arguments(p):
    p.add_argument("--runs", required=True,
                   help="CSV of runs to fit: params,tokens,[d_model,n_layers,mlp_attention_ratio,]loss")
    p.add_argument("--eval", help="CSV of runs to evaluate on (same columns, optional group)")
    p.add_argument("--law", choices=LAWS, help="the form to fit (required unless --cv)")
    p.add_argument("--cv", action="store_true",
                   help="score every form by leave-one-size-out (params within 10%%) and, with a `multiplier` "
                        "column, leave-one-multiplier-out held-out error; writes the scores, not a fit")
    p.add_argument("--tie", default="none", choices=TIES, help="exponents sharing one value (default: %(default)s)")
    p.add_argument("--solver", default="lm", choices=SOLVERS, help="default: lm (the paper's)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="B", help="bootstrap resamples for CIs (default 0)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--max-iter", type=int, default=1000,
                   help="iteration cap per local solve; hitting it everywhere is a non-convergence error")
    p.add_argument("--out", required=True, help="output JSON")


def run(args):
    if args.max_iter < 1:
        raise MorphError(f"--max-iter: {args.max_iter} must be at least 1")
    if args.cv:
        return _cross_validate(args)
    if args.law is None:
        raise MorphError("--law: required unless --cv (choose one of " + ", ".join(LAWS) + ")")
    if args.bootstrap < 0:
        raise MorphError(f"--bootstrap: {args.bootstrap} must be 0 or more")
    raw = read_csv(args.runs)
    law = settle(raw, Law(args.law, args.tie))
    df = validate(raw, law, args.runs, min_rows=law.n_free)
    result = fit_law(df, law, args.solver, args.bootstrap, args.seed, args.max_iter, progress=sys.stderr.isatty())
    result["metrics"] = {"fit": evaluate(result, df, by_group=False)}
    inputs = [args.runs]
    if args.eval:
        result["metrics"]["eval"] = evaluate(result, read_runs(args.eval, law), by_group=True)
        inputs.append(args.eval)
    result.update(provenance(inputs))
    result["versions"] = library_versions("numpy", "scipy", "pandas")
    for w in result["warnings"]:
        print(f"morph fit: warning: {w}", file=sys.stderr)
    write_json(args.out, result)
    c = result["coefficients"]
    print(f"{law.name} (tie {law.tie}, {args.solver}): " + ", ".join(f"{k}={v:.4g}" for k, v in c.items())
          + f"; fit mse={result['metrics']['fit']['mse']:.3g} -> {args.out}")
    return 0


def _cross_validate(args):
    for flag, value in (("--law", args.law), ("--eval", args.eval), ("--bootstrap", args.bootstrap or None)):
        if value is not None:
            raise MorphError(f"{flag}: not used with --cv, which scores every form on --runs; drop {flag}")
    zoo = cross_validate(read_csv(args.runs), [Law(name, args.tie) for name in LAWS], args.solver, args.runs,
                         max_iter=args.max_iter)
    zoo.update(provenance([args.runs]))
    zoo["versions"] = library_versions("numpy", "scipy", "pandas")
    write_json(args.out, zoo)
    print(markdown(zoo), end="")
    print(f"winner: {zoo['winner']} -> {args.out}")
    return 0
