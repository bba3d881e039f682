"""The evaluate stage's artifacts: morph's score summary of each model, and lm-eval's own results beside it."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.interface import IN, OUT, OUT_FOLDER, Interface, flag

EVAL_DIR = "results/eval"


def eval_json(run: str, root: str = EVAL_DIR) -> str:
    return f"{root}/{run}.json"


def lm_eval_out(run: str, root: str = EVAL_DIR) -> str:
    """lm-eval's own results, per-item samples and item ids."""
    return f"{root}/{run}"


@dataclass(frozen=True, kw_only=True)
class Evaluate(Interface):
    model: str = flag(role=IN, help="save_pretrained model directory, e.g. runs/top-1/model")
    out: str = flag(role=OUT, help="output JSON, e.g. results/eval/top-1.json")
    lm_eval_out: str | None = flag(None, role=OUT_FOLDER, help="folder for lm-eval's results, per-item samples and "
                                                                "item ids (default: --out without .json)")
