"""Figures: a headless pyplot and one way to write a PNG, atomically, for every stage that draws."""
from __future__ import annotations

from pathlib import Path

from morph.io import atomic_path


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
