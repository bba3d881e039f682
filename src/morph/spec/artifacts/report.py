"""The report stage's artifacts: the decision, its markdown report, the flat metrics and the figures."""
from __future__ import annotations

DECISION = "results/morph1b.json"
REPORT_MD = "results/report.md"
SUMMARY = "results/summary.json"  # flat numbers for `dvc metrics show`
HINDSIGHT_FIGURE = "hindsight"  # predicted against measured loss of the candidates trained at D_C
REPORT_FIGURES = ("accuracy_vs_latency", "loss_vs_accuracy", "loss_curves", HINDSIGHT_FIGURE)  # drawn by `morph report`
