"""Predict, rank, select: each candidate's loss at D_C from the fitted law, budgets applied, top-k chosen."""
from __future__ import annotations

import sys

from morph.errors import MorphError
from morph.io import provenance, read_json, write_json
from morph.law.names import AUTO
from morph.shape import Shape, run_id
from morph.workflow import experiment, paths
from morph.workflow.experiment import Select


def add_arguments(p):
    p.add_argument("--params", default=paths.PARAMS, help="experiment file (default: %(default)s)")
    p.add_argument("--candidates", default=paths.CANDIDATES)
    p.add_argument("--law", required=True, help="fitted law JSON (morph laws / morph fit)")
    p.add_argument("--out", default=paths.SELECTION)


def drop_reason(c: dict, sel: Select) -> str | None:
    """Why a candidate is infeasible, or None. The parameter cap allows the params tolerance."""
    cap = sel.params * (1 + sel.tolerance)
    if c["params"] > cap:
        return f"N={c['params']:,} is over the parameter cap {cap:,.0f} (N_C={sel.params:,} + {sel.tolerance:.0%})"
    if not c["within_tolerance"]:
        return f"N={c['params']:,} is {c['params_gap']:+.1%} from N_C={sel.params:,}, outside the tolerance"
    if c["latency"]["median_s"] > sel.latency_budget_s:
        return f"latency {c['latency']['median_s']:.3f} s is over the budget T_C={sel.latency_budget_s} s"
    return None


def choose(cands: list[dict], sel: Select) -> tuple[list[dict], list[str]]:
    """Mark each candidate kept or dropped, rank the kept by predicted loss; return (top-k, warnings)."""
    kept = []
    for c in cands:
        reason = drop_reason(c, sel)
        c["kept"], c["reason"] = reason is None, reason
        if reason is None:
            kept.append(c)
    if not kept:
        listing = "\n".join(
            f"  {c['shape_id']}: N={c['params']:,}, latency={c['latency']['median_s']:.3f} s ({c['reason']})" for c in cands
        )
        raise MorphError(
            f"no candidate meets the budgets N_C={sel.params:,} (±{sel.tolerance:.0%}) and "
            f"T_C={sel.latency_budget_s} s:\n{listing}"
        )
    kept.sort(key=lambda c: (c["predicted_loss"], c["latency"]["median_s"]))
    for rank, c in enumerate(kept, 1):
        c["rank"] = rank
    warnings = []
    if sel.k > len(kept):
        warnings.append(f"k={sel.k} but only {len(kept)} candidate(s) are feasible; all feasible are taken")
    top = kept[: sel.k]
    for i, c in enumerate(top, 1):
        c["slot"] = f"top-{i}"
        c["run_id"] = run_id(Shape.from_dict(c), tokens=sel.tokens)
    return top, warnings


def run(args):
    from morph.law.fitting import predict_loss

    cfg = experiment.load(args.params)
    sel = cfg.select
    law = read_json(args.law)
    if sel.law == AUTO and "chosen_by" not in law:
        raise MorphError(f"{args.law}: select.law is auto, but this fit was not chosen by the law zoo (no 'chosen_by'); "
                         f"`morph laws` writes the chosen one to {paths.law_json(AUTO)}")
    if sel.law != AUTO and law.get("law") != sel.law:
        raise MorphError(f"{args.law}: holds a {law.get('law')!r} fit, but select.law is {sel.law!r}")
    cands = read_json(args.candidates)
    for c in cands["candidates"] + [cands["baseline"]]:
        c["predicted_loss"] = float(predict_loss(law, c["params"], sel.tokens, c["d_model"], c["n_layers"]))
    top, warnings = choose(cands["candidates"], sel)
    for w in warnings:
        print(f"morph select: warning: {w}", file=sys.stderr)
    out = {
        "budgets": {"params": sel.params, "tokens": sel.tokens, "latency_s": sel.latency_budget_s,
                    "tolerance": sel.tolerance, "k": sel.k},
        "law": sel.law,
        **({"law_choice": {"form": law["law"], **law["chosen_by"]}} if sel.law == AUTO else {}),
        "tokens": sel.tokens,
        "warnings": warnings,
        # A degenerate fit (e.g. no shape effect found) must travel with the decision it informed.
        "law_warnings": law.get("warnings", []),
        "top_k": [{k: c[k] for k in ("slot", "run_id", "shape_id", "d_model", "n_layers", "params",
                                        "predicted_loss")}
                  for c in top],
        "candidates": cands["candidates"],
        "baseline": cands["baseline"],
        **provenance([args.candidates, args.law]),
    }
    write_json(args.out, out)
    print("top-k: " + ", ".join(f"{c['slot']}={c['shape_id']} (L̂={c['predicted_loss']:.4f})" for c in top))
    return 0
