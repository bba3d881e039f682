"""The evaluate stage's artifacts: morph's score summary of each model, and lm-eval's own results beside it."""
from __future__ import annotations

EVAL_DIR = "results/eval"


def eval_json(run: str) -> str:
    return f"{EVAL_DIR}/{run}.json"


def lm_eval_out(run: str) -> str:
    """lm-eval's own results, per-item samples and item ids."""
    return f"{EVAL_DIR}/{run}"
