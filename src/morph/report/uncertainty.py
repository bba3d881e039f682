"""How sure the accuracy numbers are: a paired bootstrap over the items every model was scored on.

Each draw resamples every task's items with replacement, the same draw for every model (the items
are paired: all models answer the same ids), and recomputes each model's average accuracy (the
mean over tasks of the headline metric). A percentile interval of a model's draws is its
interval; one of the per-draw differences between two models says whether they are apart.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from morph.core.errors import MorphError


def headline_metric(task_scores: dict) -> str:
    # The summary's rule for the average: acc_norm where the task reports it, else acc.
    return "acc_norm" if "acc_norm" in task_scores else "acc"


def item_scores(summary: dict, folder: Path) -> dict[str, dict[int, float]]:
    """Task -> item id -> headline score (0 or 1), from the lm-eval samples `morph evaluate` wrote to `folder`."""
    scores = {}
    for task, s in summary["tasks"].items():
        path = folder / s["samples"]
        if not path.is_file():
            raise MorphError(f"{path}: per-item samples not found; re-run `morph evaluate` for this model")
        metric = headline_metric(s)
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        scores[task] = {int(r["doc_id"]): float(r[metric]) for r in rows}
    return scores


def task_levels(summary: dict, folder: Path) -> dict[str, dict]:
    """Task -> its headline metric and what an accuracy must beat, from the items scored (the same for every model):
    chance, the mean over items of 1 / the number of choices, and the constant answer's rate, the share of items
    whose gold answer is the most common one (BoolQ's "yes"; None where the gold continuation is not a choice's,
    as in Winogrande's partial scoring)."""
    out = {}
    for task, s in summary["tasks"].items():
        rows = [json.loads(line) for line in (folder / s["samples"]).read_text(encoding="utf-8").splitlines()]
        gold = Counter(r["arguments"][r["target"]][1] for r in rows if isinstance(r["target"], int))
        out[task] = {"metric": headline_metric(s),
                     "chance": sum(1 / len(r["arguments"]) for r in rows) / len(rows),
                     "constant_answer": max(gold.values()) / len(rows) if gold.total() == len(rows) else None}
    return out


def paired_draws(per_model: dict[str, dict[str, dict[int, float]]], draws: int, seed: int) -> dict[str, np.ndarray]:
    """Model -> its average accuracy in each of `draws` paired resamples of the items."""
    names = list(per_model)
    first = per_model[names[0]]
    for name in names[1:]:
        for task in first:
            if per_model[name].get(task, {}).keys() != first[task].keys():
                raise MorphError(f"{name} and {names[0]} were scored on different {task} items; re-run `morph "
                                 "evaluate` for every model with the same evaluate.limit and seed")
    rng = np.random.default_rng(seed)
    totals = {name: np.zeros(draws) for name in names}
    for task, items in first.items():
        ids = sorted(items)
        picks = rng.integers(0, len(ids), size=(draws, len(ids)))
        for name in names:
            values = np.array([per_model[name][task][i] for i in ids])
            totals[name] += values[picks].mean(axis=1)
    return {name: total / len(first) for name, total in totals.items()}


def interval(values: np.ndarray, confidence: float) -> list[float]:
    """The central `confidence` percentile interval."""
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
