"""The law's ranking checked against measured losses it did not see, as the paper validates it.

Every candidate trained at D_C (the top-k slots, and the candidates `select.validate` adds) has a
measured held-out loss. Over the feasible ones: the rank correlation of predicted against measured
loss with a bootstrap interval, the law's error on them beside its cross-validated error and the
run-to-run noise, and the regret of the law's top-1 (its measured loss minus the best measured).
"""
from __future__ import annotations

import numpy as np

from morph.figures import pyplot, save_png
from morph.report.decide import loss_margin
from morph.report.uncertainty import interval
from morph.spec.artifacts.select import slot


def _spearman(pred: np.ndarray, actual: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(actual) == 0:
        return None
    return float(spearmanr(pred, actual).statistic)


MIN_FOR_INTERVAL = 4  # with 3 candidates every usable resample is a permutation of them: one rho, no interval


def spearman_interval(pred: np.ndarray, actual: np.ndarray, draws: int, confidence: float, seed: int):
    """A percentile interval of Spearman's rho over candidates resampled with replacement (resamples with
    fewer than 3 distinct candidates, where rho is undefined, are skipped and counted)."""
    rng = np.random.default_rng(seed)
    n, rhos = len(pred), []
    if n < MIN_FOR_INTERVAL:
        return None, 0
    for _ in range(draws):
        idx = rng.integers(0, n, n)
        if len(set(idx.tolist())) >= 3 and (rho := _spearman(pred[idx], actual[idx])) is not None:
            rhos.append(rho)
    if len(rhos) < 2:
        return None, len(rhos)
    return interval(np.array(rhos), confidence), len(rhos)


def trained_candidates(selection: dict, measured: dict[str, dict]) -> list[dict]:
    """Each candidate with a measured loss at D_C (`measured`: shape id -> {run_id, loss})."""
    out = []
    for c in selection["candidates"]:
        if c["shape_id"] in measured:
            m = measured[c["shape_id"]]
            out.append({"shape_id": c["shape_id"], "run_id": m["run_id"], "feasible": c["kept"],
                        "reason": c["reason"], "rank": c.get("rank"), "slot": c.get("slot"),
                        "aspect_ratio": c["aspect_ratio"], "latency_s": c["latency"]["median_s"],
                        "predicted_loss": c["predicted_loss"], "predicted_interval": c.get("predicted_interval"),
                        "measured_loss": m["loss"]})
    return out


def check(selection: dict, measured: dict[str, dict], loss_sd: float | None, validate: int | str,
          confidence: float, draws: int, seed: int) -> dict:
    """The hindsight section of morph1b.json."""
    rows = trained_candidates(selection, measured)
    feasible = [r for r in rows if r["feasible"]]
    n_feasible = sum(c["kept"] for c in selection["candidates"])
    pred = np.array([r["predicted_loss"] for r in feasible])
    actual = np.array([r["measured_loss"] for r in feasible])
    out = {"validate": validate, "trained": rows, "n_feasible": n_feasible, "n_feasible_trained": len(feasible),
           "all_feasible_trained": len(feasible) == n_feasible, "loss_sd": loss_sd,
           "law_cv_rmse": selection["noise"]["law_cv_rmse"]}
    rho = _spearman(pred, actual)
    interval, used = spearman_interval(pred, actual, draws, confidence, seed) if rho is not None else (None, 0)
    out["spearman"] = {"rho": rho, "interval": interval, "confidence": confidence, "resamples_used": used,
                       "n": len(feasible)}
    resid = pred - actual
    out["law_error"] = {"rmse": float(np.sqrt(np.mean(resid ** 2))) if len(resid) else None,
                        "bias": float(np.mean(resid)) if len(resid) else None}
    top1 = next((r for r in feasible if r["slot"] == slot(1)), None)
    if not feasible or top1 is None:
        return out | {"regret": None, "best": None, "top_k_has_best": None}
    best = min(feasible, key=lambda r: r["measured_loss"])
    top_best = min((r for r in feasible if r["slot"]), key=lambda r: r["measured_loss"])
    regret = top1["measured_loss"] - best["measured_loss"]
    margin = loss_margin(loss_sd, confidence) if loss_sd else None
    out["best"] = {"shape_id": best["shape_id"], "run_id": best["run_id"], "measured_loss": best["measured_loss"]}
    out["regret"] = {"top_1": top1["shape_id"], "loss": regret, "sd": regret / loss_sd if loss_sd else None,
                     "top_k_best": top_best["shape_id"],
                     "top_k_loss": top_best["measured_loss"] - best["measured_loss"]}
    gap = top_best["measured_loss"] - best["measured_loss"]
    out["top_k_has_best"] = bool(gap <= margin) if margin is not None else bool(gap <= 0)
    out["margin"] = margin
    return out


def plot(hindsight: dict, baseline: dict, loss_sd: float | None, confidence: float, path) -> None:
    """Predicted against measured loss for every trained candidate, with the law's interval and the noise."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    z = loss_margin(loss_sd, confidence) / 2 ** 0.5 if loss_sd else 0.0  # one run's half-width
    for r in hindsight["trained"]:
        x, y = r["predicted_loss"], r["measured_loss"]
        lo, hi = r["predicted_interval"] or (x, x)
        style = "o" if r["slot"] else "s"
        face = None if r["feasible"] else "none"
        ax.errorbar(x, y, xerr=[[x - lo], [hi - x]], yerr=z or None, fmt=style, ms=7, capsize=3,
                    mfc=face, label=None)
        tag = f"{r['shape_id']}" + (f" ({r['slot']})" if r["slot"] else "")
        ax.annotate(tag, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    if baseline.get("actual_loss") is not None:
        ax.axhline(baseline["actual_loss"], color="k", ls=":", lw=1, label=f"baseline {baseline['run_id']}")
    xs = [r["predicted_loss"] for r in hindsight["trained"]] + [r["measured_loss"] for r in hindsight["trained"]]
    if xs:
        ax.plot([min(xs), max(xs)], [min(xs), max(xs)], "k--", lw=0.8, label="predicted = measured")
    rho = hindsight["spearman"]["rho"]
    ax.set(xlabel=f"predicted loss at D_C (bars: the law's {confidence:.0%} bootstrap interval)",
           ylabel=f"measured held-out loss (bars: {confidence:.0%} run-to-run noise)",
           title="Hindsight: the law against trained candidates" + (f" (ρ = {rho:+.2f})" if rho is not None else ""))
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
