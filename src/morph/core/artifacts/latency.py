"""The latency stages' artifacts: one measurement per shape, and the table and cost model collected from them."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.artifacts.common import figure
from morph.core.interface import FOLDER, OUT, Interface, flag

LATENCY_DIR = "latency"
LATENCY_CSV = "results/latency.csv"
LATENCY_MODEL = "results/latency_model.json"
LATENCY_FIGURE = "latency_shape"
REPORTED = {figure(LATENCY_FIGURE): "Latency"}  # what `snakemake --report` shows, under which category


def latency_json(shape_id: str, root: str = LATENCY_DIR) -> str:
    return f"{root}/{shape_id}.json"


@dataclass(frozen=True, kw_only=True)
class Latency(Interface):
    shape: str = flag(help="shape id, e.g. d64-l2 (see `morph grid`)")
    out: str = flag(role=OUT, help="output JSON, e.g. latency/d64-l2.json")
    no_progress: bool = flag(False, help="hide the progress bar")


@dataclass(frozen=True, kw_only=True)
class LatencyCollect(Interface):
    latency_dir: str = flag(LATENCY_DIR, role=FOLDER, help="folder of <shape_id>.json")
    out: str = flag(LATENCY_CSV, role=OUT, help="CSV, one row per shape x backend x setting")
    model_out: str = flag(LATENCY_MODEL, role=OUT, help="fitted latency model (JSON)")
    figure: str = flag(figure(LATENCY_FIGURE), role=OUT, help="Figure 3 (PNG)")
