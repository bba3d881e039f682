"""The report stage's artifacts: the decision, its markdown report, the flat metrics and the figures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from morph.core.artifacts.common import FIGURES, figure
from morph.core.artifacts.evaluate import EVAL_DIR
from morph.core.artifacts.latency import LATENCY_CSV
from morph.core.artifacts.select import SELECTION
from morph.core.artifacts.train import RUNS, RUNS_CSV
from morph.core.interface import FOLDER, IN, OUT, Interface, flag
from morph.core.records import Record

DECISION = "results/morph1b.json"
REPORT_MD = "results/report.md"
SUMMARY = "results/summary.json"  # flat numbers for `dvc metrics show`
MODEL_CARD = "results/model_card.md"  # the released model's card: its training card, accuracies and how it was chosen
HINDSIGHT_FIGURE = "hindsight"  # predicted against measured loss of the candidates trained at D_C
PARETO_MEASURED = "pareto_measured"  # select's Pareto view with the measured losses and the release
ACCURACY_VS_LATENCY, LOSS_VS_ACCURACY, LOSS_CURVES = "accuracy_vs_latency", "loss_vs_accuracy", "loss_curves"
# drawn by `morph report`; plot() draws all but the last two
REPORT_FIGURES = (ACCURACY_VS_LATENCY, LOSS_VS_ACCURACY, LOSS_CURVES, HINDSIGHT_FIGURE, PARETO_MEASURED)
# What `snakemake --report` shows, under which category: the decision first, each figure where a reader looks for it.
REPORTED = {**dict.fromkeys((DECISION, REPORT_MD, SUMMARY, figure(PARETO_MEASURED)), "Decision"),
            figure(ACCURACY_VS_LATENCY): "Evaluation", figure(LOSS_VS_ACCURACY): "Evaluation",
            figure(HINDSIGHT_FIGURE): "Law", figure(LOSS_CURVES): "Training"}


@dataclass(frozen=True, kw_only=True)
class Report(Interface):
    selection: str = flag(SELECTION, role=IN, help="the selection (morph select)")
    runs: str = flag(RUNS_CSV, role=IN, help="the grid's runs (morph collect), for the knob table")
    latency: str = flag(LATENCY_CSV, role=IN, help="measured latencies, for the knob table")
    runs_dir: str = flag(RUNS, role=FOLDER, help="the run folders")
    eval_dir: str = flag(EVAL_DIR, role=FOLDER, help="the models' scores (morph evaluate)")
    out: str = flag(DECISION, role=OUT, help="the decision and its evidence")
    markdown: str = flag(REPORT_MD, role=OUT, help="the report")
    summary: str = flag(SUMMARY, role=OUT, help="flat numbers for `dvc metrics show`")
    card: str = flag(MODEL_CARD, role=OUT, help="the released model's card")
    figures: str = flag(FIGURES, role=FOLDER, help="where the report's figures go")


@dataclass(frozen=True, kw_only=True)
class Decision(Record):
    """results/morph1b.json (`morph report`): the verdict, the rule that made it and its evidence."""
    WHAT: ClassVar[str] = "a decision record"
    FIX: ClassVar[str] = "rebuild it with `morph report` (snakemake -j1 --force {path})"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"law_choice", "params_read"})

    verdict: dict
    budgets: dict
    law: str
    params_count: str
    law_choice: dict | None = None
    chosen: dict  # the released model's entry in `models`
    decision_rule: dict
    hindsight: dict | None  # None when no candidate beyond the top-k was trained
    models: list[dict]
    tasks: dict  # each task's accuracy metric, chance and most common answer's rate
    noise: dict
    ranking: dict
    r_effect: dict
    candidates: list[dict]
    knobs: list[dict]
    warnings: list[str]
    law_warnings: list[str]
    inputs: dict
    params_read: dict | None = None
