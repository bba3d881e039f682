"""The paper's Figure 3: latency against depth at about fixed N, and against width at fixed depth."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from morph.core.figures import pyplot, save_png

SAME_N = 0.2  # shapes within 20% of a group's smallest N count as "about equal N"


def group_by_params(rows: list[dict]) -> list[list[dict]]:
    """Greedy clusters of rows whose params lie within SAME_N of the cluster's smallest."""
    groups: list[list[dict]] = []
    for row in sorted(rows, key=lambda r: r["params"]):
        if groups and row["params"] <= groups[-1][0]["params"] * (1 + SAME_N):
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _series(ax, rows: list[dict], x_key: str, label: str, style: str) -> bool:
    rows = sorted(rows, key=lambda r: r[x_key])
    if len({r[x_key] for r in rows}) < 2:
        return False
    x = [r[x_key] for r in rows]
    y = [r["median"] for r in rows]
    err = [[r["median"] - r["p10"] for r in rows], [r["p90"] - r["median"] for r in rows]]
    ax.errorbar(x, y, yerr=err, fmt=style, capsize=3, label=label)
    return True


def plot_latency_shape(rows: list[dict], path: str | Path) -> None:
    """rows: one per shape x backend of the paper's setting (median/p10/p90 seconds)."""
    plt = pyplot()

    by_backend: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        by_backend[(r["device"], r["backend"])].append(r)
    several_devices = len({d for d, _ in by_backend}) > 1
    fig, (ax_depth, ax_width) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = [False, False]
    for i, ((device, backend), group) in enumerate(sorted(by_backend.items())):
        name = f"{device} {backend}" if several_devices else backend
        style = ["o-", "s--", "^:", "d-."][i % 4]
        for same_n in group_by_params(group):
            n = round(sum(r["params"] for r in same_n) / len(same_n), -3)
            drawn[0] |= _series(ax_depth, same_n, "n_layers", f"{name}, N≈{n / 1e3:g}k", style)
        by_depth = defaultdict(list)
        for r in group:
            by_depth[r["n_layers"]].append(r)
        for depth, same_depth in sorted(by_depth.items()):
            label = f"{name}, {depth} layer{'s' if depth > 1 else ''}"
            drawn[1] |= _series(ax_width, same_depth, "d_model", label, style)
    first = rows[0] if rows else {"prompt_len": "?", "new_tokens": "?"}
    ylabel = f"latency (s), batch 1, {first['prompt_len']} -> {first['new_tokens']} tokens"
    for ax, ok, xlabel, title, missing in (
        (ax_depth, drawn[0], "n_layers", "(a) depth at about equal N", "no two measured shapes share N"),
        (ax_width, drawn[1], "d_model", "(b) width at fixed depth", "no two measured shapes share a depth"),
    ):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ok:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, missing, ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Inference latency by shape (median, p10-p90)")
    fig.tight_layout()
    save_png(fig, path)
