"""The law's ranking checked against measured losses it did not see, as the paper validates it.

Every candidate trained at D_C (the top-k slots, and the candidates `select.validate` adds) has a
measured held-out loss, the mean over its seeds. Over the feasible ones: the rank correlation of predicted
against measured loss with its exact permutation p-value (over 4-5 candidates any interval for rho spans
most of [-1, 1]; the p-value says whether the order beats chance), the law's error and interval coverage on
them, and the regret of the law's top-1 beside the regret a pick with no signal expects. The law is scored
here, never obeyed: the release comes from the measurements (decide.py).
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import t

from morph.core.artifacts.select import Selection, slot
from morph.core.figures import pyplot, save_png


def _spearman(pred: np.ndarray, actual: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(actual) == 0:
        return None
    return float(spearmanr(pred, actual).statistic)


EXACT_UP_TO = 8  # 8! = 40,320 orderings; beyond, a seeded sample of them
SAMPLED = 20_000


def spearman_p(pred: np.ndarray, actual: np.ndarray, rho: float, seed: int) -> dict:
    """The one-sided permutation p-value of rho under no association: the share of orderings of the measured
    losses whose rho is at least the observed one (every ordering up to EXACT_UP_TO candidates)."""
    from scipy.stats import rankdata

    n = len(pred)
    a, b = rankdata(pred), rankdata(actual)
    if n <= EXACT_UP_TO:
        orders, how = np.array(list(itertools.permutations(range(n)))), "exact over every ordering"
    else:
        rng = np.random.default_rng(seed)
        orders, how = np.array([rng.permutation(n) for _ in range(SAMPLED)]), f"{SAMPLED:,} sampled orderings"
    # Pearson's r of the ranks, one row per ordering at once (Spearman's rho with ties averaged)
    ranked = b[orders] - b.mean()
    rhos = ranked @ (a - a.mean()) / (np.linalg.norm(a - a.mean()) * np.linalg.norm(ranked, axis=1))
    return {"p_value": float(np.mean(rhos >= rho - 1e-12)), "method": how}


def trained_candidates(selection: Selection, measured: dict[str, dict]) -> list[dict]:
    """Each candidate with a measured loss at D_C (`measured`: shape id -> {run_id, loss})."""
    out = []
    for c in selection.candidates:
        if c["shape_id"] in measured:
            m = measured[c["shape_id"]]
            out.append({"shape_id": c["shape_id"], "run_id": m["run_id"], "feasible": c["kept"],
                        "reason": c["reason"], "rank": c.get("rank"), "slot": c.get("slot"),
                        "aspect_ratio": c["aspect_ratio"], "latency_s": c["latency"]["median_s"],
                        "predicted_loss": c["predicted_loss"], "predicted_interval": c.get("predicted_interval"),
                        "measured_loss": m["loss"]})
    return out


def check(selection: Selection, measured: dict[str, dict], noise, validate: int | str, seed: int) -> dict:
    """The hindsight section of morph1b.json: the law's ranking scored against the mean measured losses."""
    rows = trained_candidates(selection, measured)
    feasible = [r for r in rows if r["feasible"]]
    n_feasible = sum(c["kept"] for c in selection.candidates)
    pred = np.array([r["predicted_loss"] for r in feasible])
    actual = np.array([r["measured_loss"] for r in feasible])
    out = {"validate": validate, "trained": rows, "n_feasible": n_feasible, "n_feasible_trained": len(feasible),
           "all_feasible_trained": len(feasible) == n_feasible, "loss_sd": noise.sd if noise else None,
           "law_cv_rmse": selection.noise["law_cv_rmse"]}
    rho = _spearman(pred, actual)
    out["spearman"] = {"rho": rho, "n": len(feasible),
                       **(spearman_p(pred, actual, rho, seed) if rho is not None else {"p_value": None})}
    resid = pred - actual
    banded = [r for r in feasible if r["predicted_interval"]]
    out["law_error"] = {"rmse": float(np.sqrt(np.mean(resid ** 2))) if len(resid) else None,
                        "bias": float(np.mean(resid)) if len(resid) else None,
                        "covered": sum(r["predicted_interval"][0] <= r["measured_loss"] <= r["predicted_interval"][1]
                                       for r in banded),
                        "with_interval": len(banded)}
    top1 = next((r for r in feasible if r["slot"] == slot(1)), None)
    if not feasible or top1 is None:
        return out | {"regret": None, "best": None}
    best = min(feasible, key=lambda r: r["measured_loss"])
    regret = top1["measured_loss"] - best["measured_loss"]
    out["best"] = {"shape_id": best["shape_id"], "run_id": best["run_id"], "measured_loss": best["measured_loss"]}
    # A pick with no signal is any feasible candidate alike: its expected regret, and the chance of doing as well.
    out["regret"] = {"top_1": top1["shape_id"], "loss": regret, "sd": regret / noise.sd if noise else None,
                     "no_signal_expected": float(actual.mean() - actual.min()),
                     "no_signal_p": float(np.mean(actual <= top1["measured_loss"]))}
    return out


def mean_half_width(noise) -> float:
    """A seed mean's two-sided 95% half-width under the noise; 0 without a noise estimate."""
    return float(t.ppf(0.975, noise.df)) * noise.sd / noise.seeds ** 0.5 if noise else 0.0


def plot(hindsight: dict, baseline: dict, noise, path, released: str | None = None) -> None:
    """Predicted against measured mean loss for every trained candidate, with the law's interval and the noise;
    the released shape ringed. Each candidate is named in the legend, not beside its point: candidates the law
    scores alike sit on top of each other."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    z = mean_half_width(noise)
    for i, r in enumerate(hindsight["trained"]):
        x, y = r["predicted_loss"], r["measured_loss"]
        lo, hi = r["predicted_interval"] or (x, x)
        style = "o" if r["slot"] else "s"
        face = None if r["feasible"] else "none"
        tag = f"{r['shape_id']}" + (f" ({r['slot']})" if r["slot"] else "") + (
            ", released" if r["shape_id"] == released else "")
        ax.errorbar(x, y, xerr=[[x - lo], [hi - x]], yerr=z or None, fmt=style, ms=7, capsize=3,
                    mfc=face, color=f"C{i % 10}", label=tag)
        if r["shape_id"] == released:
            ax.scatter(x, y, s=260, facecolors="none", edgecolors="k", linewidths=1.5, zorder=4)
    if baseline.get("mean_loss") is not None:
        ax.axhline(baseline["mean_loss"], color="k", ls=":", lw=1, label=f"baseline {baseline['run_id']}")
    xs = [r["predicted_loss"] for r in hindsight["trained"]] + [r["measured_loss"] for r in hindsight["trained"]]
    if xs:
        ax.plot([min(xs), max(xs)], [min(xs), max(xs)], "k--", lw=0.8, label="predicted = measured")
    rho = hindsight["spearman"]["rho"]
    ax.set(xlabel="predicted loss at D_C (bars: the law's 95% interval)",
           ylabel="measured loss, seed mean (bars: 95%)",
           title="Hindsight: the law against trained candidates" + (f" (ρ = {rho:+.2f})" if rho is not None else ""))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the axes, covering no point
    fig.tight_layout()
    save_png(fig, path)
