"""Where each artifact lives: the pipeline table builds its nodes from these, and every stage's
CLI takes its default paths from them."""
from __future__ import annotations

PARAMS = "params.yaml"
SAMPLE = "data/sample"
TOKENS = "data/tokens"
# Files, not the directory, so `snakemake data/tokens/train.bin` names a target; the tokenizer is a directory.
TOKEN_FILES = ("train.bin", "val.bin", "meta.json")
TOKENIZER = "tokenizer"
RUNS = "runs"
LOSS_CURVE = "logs/metrics.csv"  # in a run directory: what Lightning's CSVLogger(out, name="logs", version="") writes
RUNS_CSV = "results/runs.csv"
LATENCY_DIR = "latency"
LATENCY_CSV = "results/latency.csv"
LATENCY_MODEL = "results/latency_model.json"
LAW_DIR = "results/law"
LAW_PREDICTIONS = "predictions.csv"  # in LAW_DIR: each run's loss and every law's prediction of it
FIGURES = "results/figures"
CANDIDATES = "results/candidates.json"
SELECTION = "results/selection.json"
EVAL_DIR = "results/eval"
DECISION = "results/morph1b.json"
REPORT_MD = "results/report.md"
SUMMARY = "results/summary.json"  # flat numbers for `dvc metrics show`
REPORT_FIGURES = ("accuracy_vs_latency", "loss_vs_accuracy", "loss_curves")  # drawn by `morph report`
CAPTIONS = "report/captions"  # <figure name>.rst: each figure's caption in `snakemake --report`


def run_dir(run: str) -> str:
    return f"{RUNS}/{run}"


def loss_curve(run: str) -> str:
    return f"{run_dir(run)}/{LOSS_CURVE}"


def eval_json(run: str) -> str:
    """morph's score summary of one evaluated model."""
    return f"{EVAL_DIR}/{run}.json"


def lm_eval_out(run: str) -> str:
    """lm-eval's own results, per-item samples and item ids, beside the summary."""
    return f"{EVAL_DIR}/{run}"


def law_json(law: str) -> str:
    return f"{LAW_DIR}/{law}.json"


def figure(name: str) -> str:
    return f"{FIGURES}/{name}.png"
