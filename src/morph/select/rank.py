"""Predict, rank, select: each candidate's loss at D_C from the fitted law, budgets applied, top-k chosen."""
from __future__ import annotations

import sys
from dataclasses import asdict, is_dataclass

import numpy as np

from morph.core import experiment
from morph.core.artifacts.law import law_json
from morph.core.artifacts.select import SelectedSlot, Selection, slot
from morph.core.errors import MorphError
from morph.core.io import provenance, read_json, write_json
from morph.core.law_names import AUTO
from morph.core.select import Select
from morph.core.shape import Shape, run_id
from morph.select.pareto_figure import plot_pareto
from morph.select.separation import LEVEL, bracket, n_column, prediction_draws, predictive_interval, r_effect, separated

IMPLAUSIBLE = 100  # a budget this many times the slowest candidate was likely set in the wrong unit


def latency_budget(sel: Select, baseline: dict) -> tuple[float, str]:
    """T_C in seconds, and how it was set: given, or a factor of the baseline's latency on this machine."""
    base = baseline["latency"]["median_s"]
    if sel.latency_budget_s is not None:
        return sel.latency_budget_for(base), "select.latency_budget_s"
    rel = sel.latency_budget_relative
    return sel.latency_budget_for(base), f"{rel.factor:g} x the baseline {baseline['shape_id']}'s {base:.3f} s"


def drop_reason(c: dict, sel: Select, t_c: float) -> str | None:
    """Why a candidate is infeasible (every budget it breaks, each named), or None."""
    reasons = []
    if c["params"] > sel.cap:
        reasons.append(f"N={c['params']:,} is over the parameter cap {sel.cap:,.0f} "
                       f"(N_C={sel.params:,} + {sel.tolerance:.0%})")
    elif not c["within_tolerance"]:
        reasons.append(f"N={c['params']:,} is {c['params_gap']:+.1%} from N_C={sel.params:,}, outside the tolerance")
    if c["latency"]["median_s"] > t_c:
        reasons.append(f"latency {c['latency']['median_s']:.3f} s is over the budget T_C={t_c:.3f} s")
    serving = c.get("serving", {})
    if sel.min_throughput and serving["throughput_tokens_per_s"] < sel.min_throughput.tokens_per_s:
        reasons.append(f"throughput {serving['throughput_tokens_per_s']:.1f} tokens/s at batch "
                       f"{sel.min_throughput.batch} is under the budget {sel.min_throughput.tokens_per_s:g}")
    if sel.max_kv_cache and serving["kv_cache_mib"] > sel.max_kv_cache.mib:
        kv = sel.max_kv_cache
        reasons.append(f"KV cache {serving['kv_cache_mib']:.3g} MiB at batch {kv.batch}, context {kv.context} is "
                       f"over the budget {kv.mib:g} MiB")
    if sel.max_ttft_s is not None and serving["ttft_s"] > sel.max_ttft_s:
        reasons.append(f"time to first token {serving['ttft_s']:.3f} s is over the budget {sel.max_ttft_s:g} s")
    return "; ".join(reasons) or None


def order(kept: list[dict], draws, loss_sd: float | None, k: int) -> tuple[list[dict], dict]:
    """(the kept candidates ranked, how informative that ranking is). The order is the law's point prediction;
    where the law cannot separate more than k candidates from the leader (separation.py), that order says
    nothing, so the top-k is instead spread over those candidates' latency range: no end of it is favoured."""
    ranked = sorted(kept, key=lambda c: (c["predicted_loss"], c["shape_id"]))
    apart = separated(ranked, draws, loss_sd)
    tied = [c for c, sep in zip(ranked, apart) if not sep]
    names = [c["shape_id"] for c in tied]
    for c in ranked:
        c["indistinguishable_from"] = [n for n in names if n != c["shape_id"]] if c in tied else []
    basis = (f"{len(draws)} bootstrap refits of the law ({LEVEL:.0%} paired intervals)" if draws is not None
             else f"the run-to-run sd {loss_sd:.4f} (no bootstrap refits)" if loss_sd is not None
             else "the point predictions alone (no bootstrap refits, no replicated runs)")
    if len(tied) <= k:
        return ranked, {"informative": True, "basis": basis, "indistinguishable": names,
                        "statement": f"the law separates its leader {ranked[0]['shape_id']} from every candidate "
                                     f"outside the top-{k}" if len(ranked) > k else
                                     "every feasible candidate is in the top-k"}
    top = bracket(tied, k)
    rest = [c for c in ranked if c not in top]
    lat = sorted(c["latency"]["median_s"] for c in tied)
    return top + rest, {
        "informative": False, "basis": basis, "indistinguishable": names,
        "statement": f"the law cannot separate {len(tied)} candidates ({', '.join(names)}) from its leader, more than "
                     f"k={k}: their predicted order is not evidence, so the top-{k} brackets their latency range "
                     f"({lat[0]:.3f} s to {lat[-1]:.3f} s) and the measured held-out losses decide",
        "brackets": [c["shape_id"] for c in top]}


def choose(cands: list[dict], sel: Select, t_c: float, draws=None, loss_sd: float | None = None
           ) -> tuple[list[dict], list[str], dict]:
    """Mark each candidate kept or dropped, rank the kept (order), and return (top-k, warnings, ranking).
    `draws` holds the law's bootstrap predictions (refits x candidates, in `cands` order)."""
    kept = []
    for col, c in enumerate(cands):
        c["_col"] = col
        reason = drop_reason(c, sel, t_c)
        c["kept"], c["reason"] = reason is None, reason
        if reason is None:
            kept.append(c)
    if not kept:
        listing = "\n".join(
            f"  {c['shape_id']}: N={c['params']:,}, latency={c['latency']['median_s']:.3f} s ({c['reason']})"
            for c in cands
        )
        raise MorphError(
            f"no candidate meets the budgets N_C={sel.params:,} (±{sel.tolerance:.0%}) and "
            f"T_C={t_c:.3f} s:\n{listing}"
        )
    kept, ranking = order(kept, draws, loss_sd, sel.k)
    for c in cands:
        del c["_col"]
    for rank, c in enumerate(kept, 1):
        c["rank"] = rank
    warnings = []
    slowest = max(c["latency"]["median_s"] for c in cands)
    if t_c > IMPLAUSIBLE * slowest:
        warnings.append(f"T_C={t_c:g} s is over {IMPLAUSIBLE}x every candidate's measured latency (the slowest "
                        f"{slowest:.3g} s), so it rules out nothing: is select.latency_budget_s in seconds?")
    if sel.k > len(kept):
        warnings.append(f"k={sel.k} but only {len(kept)} candidate(s) are feasible; all feasible are taken")
    if not ranking["informative"]:
        warnings.append(f"ranking not informative: {ranking['statement']}")
    top = kept[: sel.k]
    for i, c in enumerate(top, 1):
        c["slot"] = slot(i)
        c["run_id"] = run_id(Shape.from_dict(c), tokens=sel.tokens)
    return top, warnings, ranking


def baseline_gap(c: dict, baseline: dict, with_base, col: int) -> dict:
    """The candidate's predicted loss minus the baseline's, with one-sided LEVEL bounds over the law's refits: the
    verdict's evidence when nothing is measured at D_C (select.validate: none)."""
    point = c["predicted_loss"] - baseline["predicted_loss"]
    if with_base is None:
        return {"point": point, "upper": None, "lower": None, "from": "no bootstrap refits of the law"}
    gaps = with_base[:, col] - with_base[:, -1]
    return {"point": point, "upper": float(np.quantile(gaps, LEVEL)), "lower": float(np.quantile(gaps, 1 - LEVEL)),
            "from": f"{len(gaps)} bootstrap refits of the law, one-sided {LEVEL:.0%} each"}


def by_backend(cands: dict, sel: Select) -> dict:
    """Every timed serving stack's own T_C, feasible candidates (by the law's predicted loss) and speed-ups over the
    baseline, so a reader who serves with another stack sees what it changes."""
    out = {}
    for backend, base in cands["baseline"].get("latency_by_backend", {}).items():
        t_c = sel.latency_budget_for(base["median_s"])
        fits = sorted((c for c in cands["candidates"] if sel.within_params(c)
                       and backend in c["latency_by_backend"] and c["latency_by_backend"][backend]["median_s"] <= t_c),
                      key=lambda c: (c["predicted_loss"], c["shape_id"]))
        out[backend] = {"latency_budget_s": t_c, "ranked": [c["shape_id"] for c in fits],
                        "speedups": {c["shape_id"]: base["median_s"] / c["latency_by_backend"][backend]["median_s"]
                                     for c in fits}}
    return out


def serving_budgets(sel: Select) -> dict:
    """The optional serving budgets as set, for the decision's record."""
    return {key: cfg if not is_dataclass(cfg) else asdict(cfg)
            for key in ("min_throughput", "max_kv_cache", "max_ttft_s")
            if (cfg := getattr(sel, key)) is not None}


def run(args):
    from morph.law.fitting import predict_loss

    cfg = experiment.load(args.params)
    sel = cfg.select
    law = read_json(args.law)
    if sel.law == AUTO and "chosen_by" not in law:
        raise MorphError(f"{args.law}: select.law is auto, but this fit was not chosen by the law zoo "
                         "(no 'chosen_by'); "
                         f"`morph laws` writes the chosen one to {law_json(AUTO)}")
    if sel.law != AUTO and law.get("law") != sel.law:
        raise MorphError(f"{args.law}: holds a {law.get('law')!r} fit, but select.law is {sel.law!r}")
    cands = read_json(args.candidates)
    for c in cands["candidates"] + [cands["baseline"]]:
        # A conditional law fitted with its ratio factor reads each candidate's MLP-to-attention ratio as built.
        c["predicted_loss"] = float(predict_loss(law, c[n_column(law)], sel.tokens, c["d_model"], c["n_layers"],
                                                 c.get("mlp_attention_ratio")))
    t_c, t_c_rule = latency_budget(sel, cands["baseline"])
    floor = law.get("noise_floor") or {}
    noise = (floor.get("run_to_run") or {}).get("sd")
    # The baseline's refits ride in the last column, so each candidate's gap to it is paired over the refits.
    with_base = prediction_draws(law, cands["candidates"] + [cands["baseline"]], sel.tokens)
    draws = with_base[:, :-1] if with_base is not None else None
    if draws is not None:  # each candidate's predicted loss with the law's own uncertainty
        for col, c in enumerate(cands["candidates"]):
            c["predicted_interval"] = predictive_interval(draws[:, col], c["predicted_loss"],
                                                          floor.get("cv_error_rmse"))
    top, warnings, ranking = choose(cands["candidates"], sel, t_c, draws, noise)
    for c in top:
        c["predicted_vs_baseline"] = baseline_gap(c, cands["baseline"], with_base, cands["candidates"].index(c))
    for w in warnings:
        print(f"morph select: warning: {w}", file=sys.stderr)
    out = Selection(
        by_backend=by_backend(cands, sel),
        budgets={"params": sel.params, "tokens": sel.tokens, "latency_s": t_c, "latency_rule": t_c_rule,
                 "tolerance": sel.tolerance, "k": sel.k, **serving_budgets(sel)},
        law=sel.law,
        params_count=law.get("params_count", "total"),
        law_choice={"form": law["law"], **law["chosen_by"]} if sel.law == AUTO else None,
        tokens=sel.tokens,
        warnings=warnings,
        # A degenerate fit (e.g. no shape effect found) must travel with the decision it informed.
        law_warnings=law.get("warnings", []),
        noise={"loss_sd": noise, "replicated_runs": floor.get("replicated_runs", []),
               "law_cv_rmse": floor.get("cv_error_rmse")},
        ranking=ranking,
        r_effect=r_effect(law, cands["candidates"], sel.tokens,
                          sel.margin.absolute(cands["baseline"]["predicted_loss"])),
        top_k=[SelectedSlot(**{k: c[k] for k in SelectedSlot.keys()}) for c in top],
        candidates=cands["candidates"],
        baseline=cands["baseline"],
        **provenance([args.candidates, args.law]),
    )
    write_json(args.out, out.to_json())
    plot_pareto(out, args.figure)
    print("top-k: " + ", ".join(f"{c['slot']}={c['shape_id']} (L̂={c['predicted_loss']:.4f})" for c in top))
    return 0
