"""The evaluate stage's artifacts: morph's score summary of each model, and lm-eval's own results beside it."""
from __future__ import annotations

EVAL_DIR = "results/eval"


def eval_json(run: str, root: str = EVAL_DIR) -> str:
    return f"{root}/{run}.json"


def lm_eval_out(run: str, root: str = EVAL_DIR) -> str:
    """lm-eval's own results, per-item samples and item ids."""
    return f"{root}/{run}"
