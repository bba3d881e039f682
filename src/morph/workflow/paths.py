"""Where each artifact lives: the pipeline table builds its nodes from these, and every stage's
CLI takes its default paths from them."""
from __future__ import annotations

import shlex

PARAMS = "params.yaml"
SAMPLE = "data/sample"
SAMPLE_MANIFEST = f"{SAMPLE}/manifest.json"
TOKENS = "data/tokens"
TOKENIZER = f"{TOKENS}/tokenizer"
TOKENS_META = f"{TOKENS}/meta.json"
# What save_pretrained writes for a fast tokenizer; training copies them into every model directory.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
RUNS = "runs"
RUN_METRICS = "metrics.json"  # in a run directory: held-out loss and the run's numbers
LOSS_CURVE = "logs/metrics.csv"  # in a run directory: what Lightning's CSVLogger(out, name="logs", version="") writes
RUNS_CSV = "results/runs.csv"
RUNS_INPUTS = "results/runs.inputs.json"  # the sha256 of every metrics.json collect read, for lineage
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
HINDSIGHT_FIGURE = "hindsight"  # predicted against measured loss of the candidates trained at D_C
REPORT_FIGURES = ("accuracy_vs_latency", "loss_vs_accuracy", "loss_curves", HINDSIGHT_FIGURE)  # drawn by `morph report`
CAPTIONS = "report/captions"  # <figure name>.rst: each figure's caption in `snakemake --report`


# Shards are files, not a directory, so each tokenize job reads and writes its own.
def sample_shard(name: str, root: str = SAMPLE) -> str:
    return f"{root}/{name}.jsonl.zst"


def token_shard(name: str, root: str = TOKENS) -> str:
    return f"{root}/{name}.bin"


def token_shard_summary(name: str, root: str = TOKENS) -> str:
    """Count and sha256 of one token shard, written beside it by the job that encodes it."""
    return f"{root}/{name}.json"


def rebuild_token_shard(name: str, params: str) -> str:
    """The commands that re-encode one token shard and nothing downstream of it, in either tool."""
    return (f"`snakemake -j1 --force {token_shard(name)} --configfile {shlex.quote(params)}` "
            f"or `dvc repro -s tokenize_shard-{name}`")


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
