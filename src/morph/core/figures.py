"""Figures: a headless pyplot and one way to write a PNG, atomically, for every stage that draws."""
from __future__ import annotations

from pathlib import Path

from morph.core.io import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend: CI machines and cluster nodes have no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path) -> None:
    """Write `fig` to `path` atomically and release it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices on the frontier of (cost, lower is better; value, higher is better), in cost order."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
