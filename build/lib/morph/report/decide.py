"""The release decision: each top-k shape's measured held-out loss and accuracy against the baseline's.

A shape matches the baseline when its held-out loss is no further above the baseline's than two runs'
difference can be by chance (1.96 x sqrt(2) x the replicates' run-to-run sd) and its accuracy is not
below the baseline's beyond the paired-bootstrap noise of the scored items. The fastest top-k shape
that matches is released; when none does, the top-k shape with the lowest held-out loss is released,
and the verdict states the loss it costs in noise sds beside its speed-up. When validation shows a
feasible shape better than every top-k shape beyond noise, the law's ranking failed here and nothing
is released. A headline speed-up never travels without the loss it costs.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from morph.report.uncertainty import interval

# The rule that decided, recorded by name in morph1b.json and report.md.
RULES = {
    "matches-baseline": "the fastest top-k shape whose held-out loss is within two runs' noise of the baseline's, "
                        "and whose accuracy is not below the baseline's beyond noise, is released",
    "lowest-loss": "no top-k shape matches the baseline within noise, so the top-k shape with the lowest held-out "
                   "loss is released, with the loss it costs",
    "no-decision": "a trained feasible candidate outside the top-k is better than every top-k shape beyond noise: "
                   "the law's ranking is wrong on this experiment, so no shape is released",
}
# What the released shape is, against the baseline.
VERDICTS = ("matches", "trades", "none-matches", "no-decision")


def loss_margin(loss_sd: float, confidence: float) -> float:
    """How far apart two runs' held-out losses can fall by chance, each with run-to-run sd `loss_sd`."""
    return NormalDist().inv_cdf((1 + confidence) / 2) * loss_sd * 2 ** 0.5


def against_baseline(model: dict, base: dict, draws: dict[str, np.ndarray], confidence: float,
                     loss_sd: float | None) -> dict:
    """One top-k model against the baseline: Δ held-out loss (raw, in sd, within noise?) and Δ accuracy."""
    delta = model["actual_loss"] - base["actual_loss"]
    margin = loss_margin(loss_sd, confidence) if loss_sd else None
    low, high = interval(draws[model["run_id"]] - draws[base["run_id"]], confidence)
    acc_below = high < 0.0
    loss_ok = delta <= margin if margin is not None else delta <= 0.0
    return {"run_id": model["run_id"], "delta_loss": delta, "delta_loss_sd": delta / loss_sd if loss_sd else None,
            "loss_margin": margin, "loss_within_noise": bool(loss_ok),
            "delta_accuracy": model["avg_accuracy"] - base["avg_accuracy"], "accuracy_interval": [low, high],
            "accuracy_below_beyond_noise": bool(acc_below), "matches": bool(loss_ok and not acc_below),
            "speedup": model["speedup_vs_baseline"]}


def _cost(c: dict) -> str:
    sd = f" ({c['delta_loss_sd']:+.1f} sd)" if c["delta_loss_sd"] is not None else " (noise unknown: no replicates)"
    return f"Δ held-out loss {c['delta_loss']:+.4f}{sd} and Δ accuracy {c['delta_accuracy']:+.4f}"


def decide(models: list[dict], draws: dict[str, np.ndarray], confidence: float, loss_sd: float | None,
           hindsight: dict | None) -> dict:
    """The decision: released model (or None), rule, verdict with its statement, and each top-k model against
    the baseline. `hindsight` is report/hindsight.check's result, None when no candidate was validated."""
    base = next(m for m in models if m["role"] == "baseline")
    top = [m for m in models if m["role"] != "baseline"]
    versus = [against_baseline(m, base, draws, confidence, loss_sd) for m in top]
    by_id = {m["run_id"]: m for m in top}
    noise = (f"two runs' {confidence:.0%} noise {loss_margin(loss_sd, confidence):.4f} (run-to-run sd {loss_sd:.4f})"
             if loss_sd else "no noise estimate (no grid.replicates): only a loss at or below the baseline's matches")
    if hindsight is not None and hindsight["top_k_has_best"] is False:
        best, reg = hindsight["best"], hindsight["regret"]
        statement = (f"No decision: validation trained {best['shape_id']} ({best['run_id']}), held-out loss "
                     f"{best['measured_loss']:.4f}, better than every top-k shape beyond noise (the best of them, "
                     f"{reg['top_k_best']}, is {reg['top_k_loss']:+.4f} behind). The law's ranking does not hold "
                     f"on this experiment; widen the grid (sizes, budgets) before trusting it")
        return {"released": None, "rule": "no-decision", "verdict": "no-decision", "statement": statement,
                "versus_baseline": versus, "noise": noise}
    matching = [c for c in versus if c["matches"]]
    if matching:
        pick = max(matching, key=lambda c: c["speedup"])
        statement = (f"{pick['run_id']} matches the baseline {base['run_id']} within noise at "
                     f"{pick['speedup']:.2f}x its decode speed: {_cost(pick)}; {noise}")
        return {"released": by_id[pick["run_id"]], "rule": "matches-baseline", "verdict": "matches",
                "statement": statement, "versus_baseline": versus, "noise": noise}
    pick = min(versus, key=lambda c: by_id[c["run_id"]]["actual_loss"])
    everything = hindsight is not None and hindsight["all_feasible_trained"]
    kind = "none-matches" if everything else "trades"
    head = (f"No shape under T_C matches the baseline {base['run_id']}: every feasible candidate was trained and "
            f"none is within noise of its loss. " if everything else "")
    statement = (f"{head}{pick['run_id']} trades {_cost(pick)} for {pick['speedup']:.2f}x the baseline's decode "
                 f"speed; {noise}")
    return {"released": by_id[pick["run_id"]], "rule": "lowest-loss", "verdict": kind, "statement": statement,
            "versus_baseline": versus, "noise": noise}
