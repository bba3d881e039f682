"""The select stages' artifacts: the candidates, the selection, and the top-k slots it fills."""
from __future__ import annotations

CANDIDATES = "results/candidates.json"
SELECTION = "results/selection.json"
PARETO_FIGURE = "pareto"
SLOT_PATTERN = r"top-\d+(-r\d+)?"  # a run directory the selection fills at run time, under a seed replicate


def slot(i: int) -> str:
    """The i-th (1-based) top-k slot's run id."""
    return f"top-{i}"
