"""The law stage's artifacts: each fitted law, the zoo, the ablations, the predictions and the figures."""
from __future__ import annotations

from dataclasses import dataclass

from morph.core.artifacts.common import FIGURES, figure
from morph.core.artifacts.train import RUNS_CSV, RUNS_INPUTS
from morph.core.interface import FOLDER, IN, Interface, flag

LAW_DIR = "results/law"
PREDICTIONS = "predictions.csv"  # each run's loss and every law's prediction of it
ZOO_JSON, ZOO_MD = "zoo.json", "zoo.md"
ABLATIONS_JSON, ABLATIONS_MD = "ablations.json", "ablations.md"
TABLES = (ABLATIONS_JSON, ABLATIONS_MD, ZOO_JSON, ZOO_MD, PREDICTIONS)  # in LAW_DIR, beside each law's json
LOSS_VS_R, PREDICTED_VS_ACTUAL = "loss_vs_R", "predicted_vs_actual"
LOSS_VS_COMPUTE, LAW_ZOO = "loss_vs_compute", "law_zoo"
LAW_FIGURES = (LOSS_VS_R, PREDICTED_VS_ACTUAL, LOSS_VS_COMPUTE, LAW_ZOO)  # drawn by `morph laws`
REPORTED = {figure(f): "Law" for f in LAW_FIGURES}  # what `snakemake --report` shows, under which category


def law_json(law: str, root: str = LAW_DIR) -> str:
    return f"{root}/{law}.json"


@dataclass(frozen=True, kw_only=True)
class Laws(Interface):
    runs: str = flag(RUNS_CSV, role=IN, help="one row per trained run (morph collect)")
    runs_inputs: str | None = flag(None, role=IN, help=f"the sha256 of every metrics.json collect read into --runs, "
                                                       f"checked before the fit (default: {RUNS_INPUTS} with the "
                                                       "default --runs; none for a table made elsewhere)")
    out_dir: str = flag(LAW_DIR, role=FOLDER, help="where <law>.json and ablations.{json,md} go")
    figures: str = flag(FIGURES, role=FOLDER, help="where the law figures go")
