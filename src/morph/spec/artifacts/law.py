"""The law stage's artifacts: each fitted law, the zoo, the ablations, the predictions and the figures."""
from __future__ import annotations

LAW_DIR = "results/law"
PREDICTIONS = "predictions.csv"  # each run's loss and every law's prediction of it
ZOO_JSON, ZOO_MD = "zoo.json", "zoo.md"
ABLATIONS_JSON, ABLATIONS_MD = "ablations.json", "ablations.md"
TABLES = (ABLATIONS_JSON, ABLATIONS_MD, ZOO_JSON, ZOO_MD, PREDICTIONS)  # in LAW_DIR, beside each law's json
LOSS_VS_R, PREDICTED_VS_ACTUAL = "loss_vs_R", "predicted_vs_actual"
LOSS_VS_COMPUTE, LAW_ZOO = "loss_vs_compute", "law_zoo"
LAW_FIGURES = (LOSS_VS_R, PREDICTED_VS_ACTUAL, LOSS_VS_COMPUTE, LAW_ZOO)  # drawn by `morph laws`


def law_json(law: str, root: str = LAW_DIR) -> str:
    return f"{root}/{law}.json"
