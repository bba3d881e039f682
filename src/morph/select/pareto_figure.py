"""The selection as a picture: every candidate's predicted loss against each cost a budget reads,
with the frontier and the budget drawn, kept candidates filled and dropped ones hollow. The report draws it
again with the losses measured at D_C beside the predicted ones and the released shape ringed."""
from __future__ import annotations

from pathlib import Path

from morph.core.artifacts.select import Selection
from morph.core.figures import pareto, pyplot, save_png

# cost key in a candidate -> (axis label, whether more is better, budget key in the selection's budgets)
COSTS = {
    "latency_s": ("latency at batch 1 (s)", False, "latency_s"),
    "throughput_tokens_per_s": ("throughput (tokens/s)", True, "min_throughput"),
    "kv_cache_mib": ("KV cache (MiB)", False, "max_kv_cache"),
    "ttft_s": ("time to first token (s)", False, "max_ttft_s"),
}


def cost(c: dict, key: str) -> float:
    return c["latency"]["median_s"] if key == "latency_s" else c["serving"][key]


def budget_line(budgets: dict, key: str) -> float | None:
    b = budgets.get(COSTS[key][2])
    if isinstance(b, dict):
        return b.get("tokens_per_s", b.get("mib"))
    return b


def plot_pareto(selection: Selection, path: str | Path, measured: dict[str, tuple[float, float]] | None = None,
                released: str | None = None) -> None:
    """`measured`: shape id -> (mean measured loss, its 95% half-width), the baseline's included; `released`: the
    released shape id."""
    cands, base, measured = selection.candidates, selection.baseline, measured or {}
    keys = [k for k in COSTS if k == "latency_s" or all(k in c.get("serving", {}) for c in cands)]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        label, more_is_better, _ = COSTS[key]
        xs = [cost(c, key) for c in cands]
        ys = [c["predicted_loss"] for c in cands]
        # The frontier: no other candidate is both cheaper (or faster) and lower in predicted loss.
        front = pareto([(-x if more_is_better else x, -y) for x, y in zip(xs, ys)])
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "-", color="0.6", zorder=1, label="frontier")
        for c, x, y in zip(cands, xs, ys):
            ax.scatter(x, y, s=50, zorder=2, facecolors="C0" if c["kept"] else "none", edgecolors="C0")
            ax.annotate(c["shape_id"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        shown = list(zip(cands, xs))
        if key in ("latency_s",) or key in base.get("serving", {}):
            ax.scatter(cost(base, key), base["predicted_loss"], marker="*", s=120, color="C3", label="baseline")
            shown.append((base, cost(base, key)))
        for i, (c, x) in enumerate(m for m in shown if m[0]["shape_id"] in measured):
            mean, half = measured[c["shape_id"]]
            ax.plot([x, x], [c["predicted_loss"], mean], ":", color="0.5", lw=0.8, zorder=1)
            ax.errorbar(x, mean, yerr=half or None, fmt="D", ms=5, color="C1", capsize=2, zorder=3,
                        label="measured at D_C (mean over seeds, 95%)" if i == 0 else None)
            if c["shape_id"] == released:
                ax.scatter(x, mean, s=220, facecolors="none", edgecolors="k", linewidths=1.5, zorder=4,
                           label=f"released: {released}")
        if (limit := budget_line(selection.budgets, key)) is not None:
            ax.axvline(limit, color="C3", linestyle="--", linewidth=1, label="budget")
        ax.set_xlabel(label)
        ax.set_ylabel("loss at D_C" if measured else "predicted loss at D_C")
        ax.legend(fontsize=7)
    fig.suptitle("Candidates: " + ("predicted (circles) and measured (diamonds) loss" if measured else
                                   "predicted loss") + " against serving cost (hollow: dropped)")
    save_png(fig, path)
