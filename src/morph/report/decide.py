"""The release decision, made from losses measured at D_C, never from the law's ranking.

Every feasible candidate trained at D_C is in contention, whatever the law ranked it. Among them, Hsu's
multiple comparisons with the best finds the shapes shown (simultaneously, one-sided 95%) to be at most delta
worse than the best; the fastest of them is released. Speed is the best of the interleaved timing
rounds (other work only adds time), with the next-best round as its interval; shapes whose intervals
overlap are tied in speed and the lower loss wins. T_C, a budget on the latency a user sees, is judged on
the median. The release is then tested against the baseline:
`matches` when the one-sided 95% upper bound of its loss minus the baseline's is at most delta, `worse` when
the lower bound is above delta, `inconclusive` otherwise (with the seeds that would decide it). The bounds hold
simultaneously over every shape in contention (Bonferroni), since the release was picked from them. delta is
`select.margin`, fixed before any loss is seen. Accuracy is descriptive: it does not enter the verdict.
"""
from __future__ import annotations

from morph.report.contrasts import LEVEL, Noise, mcb_upper, seeds_to_show_the_best, versus

VERDICTS = ("matches", "worse", "inconclusive")
RULE = ("the fastest trained feasible shape whose loss is shown, by Hsu's multiple comparisons with the best "
        f"(one-sided {LEVEL:.0%}, Bonferroni critical value), to be at most delta above the best measured shape's; "
        "shapes whose latency intervals overlap are tied in speed and the lower loss wins")
FALLBACK_RULE = ("no shape is shown to be within delta of the best, so the lowest measured loss is released, "
                 "without that claim")


def speed(latency: dict) -> dict:
    """The statistic shapes are compared by, with its interval: the best timing round and the next best; from
    tables timed before rounds were kept, the median within p10-p90; a predicted latency has no interval."""
    if latency.get("best_s") is not None:
        return {"latency_s": latency["best_s"], "latency_low_s": latency["best_s"],
                "latency_high_s": latency.get("next_best_s") or latency["best_s"]}
    if "p10_s" in latency:
        return {"latency_s": latency["median_s"], "latency_low_s": latency["p10_s"],
                "latency_high_s": latency["p90_s"]}
    return {"latency_s": latency["median_s"]}


def _latency_band(c: dict) -> tuple[float, float]:
    return c.get("latency_low_s", c["latency_s"]), c.get("latency_high_s", c["latency_s"])


def fastest(shapes: list[dict]) -> tuple[dict, list[str]]:
    """The fastest shape by its speed statistic (`speed`), or, among the shapes whose latency interval overlaps
    its interval, the one with the lowest mean loss; with the names of those tied in speed."""
    quickest = min(shapes, key=lambda c: (c["latency_s"], c["mean_loss"]))
    low, high = _latency_band(quickest)
    tied = [c for c in shapes if _latency_band(c)[0] <= high and _latency_band(c)[1] >= low]
    return min(tied, key=lambda c: (c["mean_loss"], c["latency_s"])), [c["shape_id"] for c in tied]


def release(shapes: list[dict], noise: Noise | None, margin: float) -> dict:
    """The release among the feasible measured shapes (each: shape_id, mean_loss, latency_s and optionally
    latency_low_s/latency_high_s), with the set it came from and each shape's MCB upper bound."""
    means = {c["shape_id"]: c["mean_loss"] for c in shapes}
    upper = mcb_upper(means, noise)
    within = [c for c in shapes if upper[c["shape_id"]] is not None and upper[c["shape_id"]] <= margin]
    best = min(shapes, key=lambda c: (c["mean_loss"], c["latency_s"]))
    if within:
        pick, tied = fastest(within)
    else:
        pick, tied = best, [best["shape_id"]]
    return {"shape": pick, "within_margin_of_best": [c["shape_id"] for c in within], "best_measured": best["shape_id"],
            "mcb_upper": upper, "tied_in_speed": tied, "rule": RULE if within else FALLBACK_RULE,
            "claims_within_margin_of_best": bool(within),
            "seeds_to_show_the_best": None if within else seeds_to_show_the_best(len(shapes), noise, margin)}


def decide(shapes: list[dict], baseline: dict, noise: Noise | None, margin: float) -> dict:
    """The decision: the released shape, its verdict against the baseline (whose mean_loss and latency_s are
    given), and every measured shape against the baseline."""
    chosen = release(shapes, noise, margin)
    pick = chosen["shape"]
    against = {c["shape_id"]: versus(c["mean_loss"], baseline["mean_loss"], noise, margin, len(shapes))
               for c in shapes}
    test = against[pick["shape_id"]]
    return {**chosen, "verdict": test["verdict"], "versus_baseline": test, "all_versus_baseline": against,
            "speedup": baseline["latency_s"] / pick["latency_s"]}


PREDICTED_RULE = ("select.validate is none, so no candidate was measured with seeds at D_C: the law's top-1 is "
                  "released and judged by the law's own bootstrap interval of its predicted loss minus the baseline's")


def decide_predicted(top: dict, baseline_latency_s: float, margin: float) -> dict:
    """At paper scale: the law's top-1 (a selection candidate with `predicted_vs_baseline`), judged on the law's
    one-sided 95% bounds of its predicted loss minus the baseline's against delta."""
    gap = top.get("predicted_vs_baseline") or {}
    upper, lower = gap.get("upper"), gap.get("lower")
    verdict = ("inconclusive" if upper is None else "matches" if upper <= margin else
               "worse" if lower > margin else "inconclusive")
    test = {"delta_loss": gap.get("point"), "upper": upper, "lower": lower, "margin": margin, "verdict": verdict,
            "comparisons": 1, "better_beyond_noise": upper is not None and upper < 0, "seeds_to_decide": None}
    return {"shape": top, "within_margin_of_best": [], "best_measured": None, "mcb_upper": {}, "tied_in_speed": [],
            "seeds_to_show_the_best": None,
            "rule": PREDICTED_RULE, "claims_within_margin_of_best": False, "verdict": verdict,
            "versus_baseline": test, "all_versus_baseline": {top["shape_id"]: test},
            "speedup": baseline_latency_s / speed(top["latency"])["latency_s"]}


def per_stack(shapes: list[dict], baseline: dict, noise: Noise | None, margin: float, budget_of) -> dict:
    """The decision under each timed backend (serving stack): the same losses, each backend's latencies and its
    own T_C (`budget_of(the baseline's latency there)`). `shapes` are the measured shapes within the parameter
    budget, each with `latency_by_backend`; the baseline too."""
    out = {}
    for backend, base_lat in baseline["latency_by_backend"].items():
        t_c = budget_of(base_lat["median_s"])
        feasible = [s | speed(lat) for s in shapes
                    if (lat := s["latency_by_backend"].get(backend)) and lat["median_s"] <= t_c]
        if not feasible:
            out[backend] = {"latency_budget_s": t_c, "feasible": [], "release": None}
            continue
        base_speed = speed(base_lat)["latency_s"]
        d = decide(feasible, {"mean_loss": baseline["mean_loss"], "latency_s": base_speed}, noise, margin)
        out[backend] = {"latency_budget_s": t_c, "feasible": [s["shape_id"] for s in feasible],
                        "release": d["shape"]["shape_id"], "verdict": d["verdict"], "speedup": d["speedup"],
                        "speedups": {s["shape_id"]: base_speed / s["latency_s"] for s in feasible}}
    return out
