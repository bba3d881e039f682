"""Which items of each task are scored when `evaluate.limit` is set: a seeded random subset.

The first N items of a split are not a random sample (BoolQ's first 60 are 75% "yes"), so each
task draws its own subset of the items that can be scored at the trained context (context.py),
from the experiment seed and the task's name. The draw depends on nothing that differs between
an experiment's models, so every model is scored on the same item ids.
"""
from __future__ import annotations

import numpy as np


def draw(candidates: dict[str, list[int]], limit: int | None, seed: int) -> dict[str, list[int]]:
    """Task -> sorted item ids: `limit` of the task's candidate ids at random, or all of them."""
    ids = {}
    for task, pool in candidates.items():
        if limit is None or limit >= len(pool):
            ids[task] = sorted(pool)
            continue
        # Seeded by the task's name too, so adding or reordering tasks leaves the others' draws alone.
        rng = np.random.default_rng([seed, *task.encode()])
        ids[task] = sorted(int(i) for i in rng.choice(pool, size=limit, replace=False))
    return ids
