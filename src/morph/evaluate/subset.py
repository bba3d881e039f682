"""Which items of each task are scored when `evaluate.limit` is set: a seeded random subset.

The first N items of a split are not a random sample (BoolQ's first 60 are 75% "yes"), so each
task draws its own subset from the experiment seed and the task's name. The draw depends on
nothing about the model, so every model is scored on the same item ids.
"""
from __future__ import annotations

import numpy as np


def draw(sizes: dict[str, int], limit: int | None, seed: int) -> dict[str, list[int]] | None:
    """Task -> sorted item ids (all ids where the split has at most `limit`); None scores every item."""
    if limit is None:
        return None
    ids = {}
    for task, size in sizes.items():
        # Seeded by the task's name too, so adding or reordering tasks leaves the others' draws alone.
        rng = np.random.default_rng([seed, *task.encode()])
        ids[task] = sorted(int(i) for i in rng.choice(size, size=min(limit, size), replace=False))
    return ids
