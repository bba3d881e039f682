"""The report stage's artifacts: the decision, its markdown report, the flat metrics and the figures."""
from __future__ import annotations

DECISION = "results/morph1b.json"
REPORT_MD = "results/report.md"
SUMMARY = "results/summary.json"  # flat numbers for `dvc metrics show`
MODEL_CARD = "results/model_card.md"  # the released model's card: its training card, accuracies and how it was chosen
HINDSIGHT_FIGURE = "hindsight"  # predicted against measured loss of the candidates trained at D_C
PARETO_MEASURED = "pareto_measured"  # select's Pareto view with the measured losses and the release
ACCURACY_VS_LATENCY, LOSS_VS_ACCURACY, LOSS_CURVES = "accuracy_vs_latency", "loss_vs_accuracy", "loss_curves"
# drawn by `morph report`; plot() draws all but the last two
REPORT_FIGURES = (ACCURACY_VS_LATENCY, LOSS_VS_ACCURACY, LOSS_CURVES, HINDSIGHT_FIGURE, PARETO_MEASURED)
