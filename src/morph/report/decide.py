"""The paper's last step, with the noise in the accuracy numbers taken into account.

Of the top-k shapes (all within the budgets, ranked by predicted loss), release the most accurate
one when its lead over every other is larger than the noise of the scored items. When it is not
(the paired-bootstrap interval of a difference includes 0), accuracy does not separate those
shapes, and the faster of them is released: inference cost is what the method optimises. A shape
whose held-out loss trails the best of those by more than two runs' difference can be by chance (from
the replicates' run-to-run sd) is not among them: a few hundred scored items cannot see a loss gap that
the held-out set measures plainly.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from morph.report.uncertainty import interval

# The rule that decided, recorded by name in morph1b.json and report.md.
RULES = {
    "sole-candidate": "only one shape met the budgets among the top-k, so it is released",
    "most-accurate": "the most accurate top-k shape is ahead of every other beyond noise, so it is released",
    "fastest-within-noise": "the most accurate top-k shape is not ahead of some others beyond noise, "
                            "so the fastest of those within noise, in accuracy and in held-out loss, is released",
}


def compare(leader: dict, other: dict, draws: dict[str, np.ndarray], confidence: float) -> dict:
    """The leader's accuracy lead over `other`, with its paired-bootstrap interval."""
    low, high = interval(draws[leader["run_id"]] - draws[other["run_id"]], confidence)
    return {"leader": leader["run_id"], "other": other["run_id"],
            "difference": leader["avg_accuracy"] - other["avg_accuracy"], "interval": [low, high],
            "within_noise": low <= 0.0}


def loss_margin(loss_sd: float, confidence: float) -> float:
    """How far apart two runs' held-out losses can fall by chance, each with run-to-run sd `loss_sd`."""
    return NormalDist().inv_cdf((1 + confidence) / 2) * loss_sd * 2 ** 0.5


def apart_in_loss(tied: list[dict], loss_sd: float | None, confidence: float) -> tuple[list[dict], list[str]]:
    """(the tied shapes whose held-out loss is within noise of the best of them, why each other is left out)."""
    if loss_sd is None:
        return tied, []
    best = min(tied, key=lambda m: m["actual_loss"])
    margin = loss_margin(loss_sd, confidence)
    kept = [m for m in tied if m["actual_loss"] - best["actual_loss"] <= margin]
    return kept, [f"{m['run_id']} is left out: its held-out loss {m['actual_loss']:.4f} is "
                  f"{m['actual_loss'] - best['actual_loss']:.4f} above {best['run_id']}'s {best['actual_loss']:.4f}, "
                  f"beyond the {confidence:.0%} noise of two runs' difference ({margin:.4f}, from the run-to-run sd "
                  f"{loss_sd:.4f})" for m in tied if m not in kept]


def decide(models: list[dict], draws: dict[str, np.ndarray], confidence: float,
           loss_sd: float | None) -> tuple[dict, str, str, list[dict]]:
    """(chosen model, rule name, why, comparisons) among the non-baseline models; `loss_sd` is the run-to-run
    sd of the held-out loss, None without replicates (held-out losses are then not compared)."""
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
        kept, left_out = apart_in_loss(tied, loss_sd, confidence)
        chosen, rule = min(kept, key=lambda m: m["latency"]["median_s"]), "fastest-within-noise"
        loss_note = ("; held-out losses are not compared: no replicated runs give their noise" if loss_sd is None
                     else "".join(f"; {w}" for w in left_out))
        why = (f"{', '.join(m['run_id'] for m in tied[1:])} {'is' if len(tied) == 2 else 'are'} within noise of the "
               f"most accurate, {leader['run_id']} "
               f"({detail}; an interval that includes 0 is noise), so accuracy does not separate them{loss_note}; "
               f"the fastest, {chosen['run_id']} ({chosen['latency']['median_s']:.3f} s), is preferred")
    return chosen, rule, why + f"; {chosen['speedup_vs_baseline']:.2f}x the baseline's decode speed", comparisons
