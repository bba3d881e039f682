"""The latency stages' artifacts: one measurement per shape, and the table and cost model collected from them."""
from __future__ import annotations

LATENCY_DIR = "latency"
LATENCY_CSV = "results/latency.csv"
LATENCY_MODEL = "results/latency_model.json"
LATENCY_FIGURE = "latency_shape"


def latency_json(shape_id: str, root: str = LATENCY_DIR) -> str:
    return f"{root}/{shape_id}.json"
