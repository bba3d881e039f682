"""The paper's last step, with the noise in the accuracy numbers taken into account.

Of the top-k shapes (all within the budgets, ranked by predicted loss), release the most accurate
one when its lead over every other is larger than the noise of the scored items. When it is not
(the paired-bootstrap interval of a difference includes 0), accuracy does not separate those
shapes, and the faster of them is released: inference cost is what the method optimises.
"""
from __future__ import annotations

import numpy as np

from morph.report.uncertainty import interval

# The rule that decided, recorded by name in morph1b.json and report.md.
RULES = {
    "sole-candidate": "only one shape met the budgets among the top-k, so it is released",
    "most-accurate": "the most accurate top-k shape is ahead of every other beyond noise, so it is released",
    "fastest-within-noise": "the most accurate top-k shape is not ahead of some others beyond noise, "
                            "so the fastest of those within noise is released",
}


def compare(leader: dict, other: dict, draws: dict[str, np.ndarray], confidence: float) -> dict:
    """The leader's accuracy lead over `other`, with its paired-bootstrap interval."""
    low, high = interval(draws[leader["run_id"]] - draws[other["run_id"]], confidence)
    return {"leader": leader["run_id"], "other": other["run_id"],
            "difference": leader["avg_accuracy"] - other["avg_accuracy"], "interval": [low, high],
            "within_noise": low <= 0.0}


def decide(models: list[dict], draws: dict[str, np.ndarray], confidence: float) -> tuple[dict, str, str, list[dict]]:
    """(chosen model, rule name, why, comparisons) among the non-baseline models."""
    top = [m for m in models if m["role"] != "baseline"]
    leader = max(top, key=lambda m: (m["avg_accuracy"], -m["latency"]["median_s"]))
    comparisons = [compare(leader, m, draws, confidence) for m in top if m is not leader]
    level = f"{confidence:.0%} paired-bootstrap interval"
    detail = "; ".join(f"{c['leader']} - {c['other']} = {c['difference']:+.4f}, {level} "
                       f"[{c['interval'][0]:+.4f}, {c['interval'][1]:+.4f}]" for c in comparisons)
    tied = [leader] + [m for m in top if any(c["other"] == m["run_id"] and c["within_noise"] for c in comparisons)]
    if not comparisons:
        chosen, rule = leader, "sole-candidate"
        why = f"the only top-k shape meeting the budgets (average accuracy {leader['avg_accuracy']:.4f})"
    elif len(tied) == 1:
        chosen, rule = leader, "most-accurate"
        why = (f"highest average accuracy ({leader['avg_accuracy']:.4f}) among the top-{len(top)} shapes ranked by "
               f"predicted loss that meet the latency budget, ahead of each beyond noise ({detail})")
    else:
        chosen, rule = min(tied, key=lambda m: m["latency"]["median_s"]), "fastest-within-noise"
        why = (f"{', '.join(m['run_id'] for m in tied[1:])} {'is' if len(tied) == 2 else 'are'} within noise of the "
               f"most accurate, {leader['run_id']} "
               f"({detail}; an interval that includes 0 is noise), so accuracy does not separate them and the "
               f"fastest, {chosen['run_id']} ({chosen['latency']['median_s']:.3f} s), is preferred")
    return chosen, rule, why + f"; {chosen['speedup_vs_baseline']:.2f}x the baseline's decode speed", comparisons
