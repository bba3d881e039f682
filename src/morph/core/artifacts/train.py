"""The training stages' artifacts: one folder per run, and the table collect gathers from them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from morph.core.artifacts.data import TOKENS
from morph.core.interface import FOLDER, IN, OUT, VALUE, Interface, flag
from morph.core.records import Record

RUNS = "runs"
RUN_METRICS = "metrics.json"  # in a run directory: held-out loss and the run's numbers
RUN_MODEL = "model"  # in a run directory: the weights, config and tokenizer, loadable by transformers
LOGS = "logs"  # in a run directory: where Lightning's loggers write (name=LOGS, version="")
CSV_LOG = "metrics.csv"  # the file Lightning's CSVLogger writes in its folder
LOSS_CURVE = f"{LOGS}/{CSV_LOG}"  # in a run directory: the CSV logger's loss curve, which the graph reads
RUNS_CSV = "results/runs.csv"
RUNS_INPUTS = "results/runs.inputs.json"  # the sha256 of every metrics.json collect read, for lineage
# runs.csv, one row per run: what collect writes and the law, select and report read.
KNOB_COLUMNS = ("n_kv_heads", "ffn", "mlp_attention_ratio")  # the architecture knobs as built
LAW_COLUMNS = ("run_id", "shape_id", "d_model", "n_layers", "params", "tokens", "multiplier", "loss", *KNOB_COLUMNS)
RUNS_COLUMNS = ("run_id", "d_model", "n_layers", "n_heads", "params", "non_embedding_params", "tokens",
                "multiplier", "aspect_ratio", "loss", "train_loss_ema", "wall_s", "tokens_per_s", "mfu",
                "replicate", "replicate_of", "seed", "replicates", "loss_sd", "loss_range", "shape_id", *KNOB_COLUMNS)


def run_dir(run: str) -> str:
    return f"{RUNS}/{run}"


def run_metrics(run: str) -> str:
    return f"{run_dir(run)}/{RUN_METRICS}"


def run_model(run: str) -> str:
    return f"{run_dir(run)}/{RUN_MODEL}"


def loss_curve(run: str) -> str:
    return f"{run_dir(run)}/{LOSS_CURVE}"


@dataclass(frozen=True, kw_only=True)
class Train(Interface):
    run: str | None = flag(None, role=VALUE, group="which", help="a grid or baseline run id (see `morph grid`)")
    selection: str | None = flag(None, role=IN, group="which", help="results/selection.json, with --slot")
    slot: str | None = flag(None, help="the target slot to train, e.g. top-1, or top-1-r1 for its seed replicate 1 "
                                       "(with --selection)")
    tokens: str = flag(TOKENS, role=FOLDER, help="tokens directory")
    out: str = flag(role=FOLDER, help="run directory, e.g. runs/<run_id>")


@dataclass(frozen=True, kw_only=True)
class Collect(Interface):
    runs_dir: str = flag(RUNS, role=FOLDER, help="directory holding runs/<run_id>/metrics.json")
    out: str = flag(RUNS_CSV, role=OUT, help="CSV to write")
    inputs_out: str = flag(RUNS_INPUTS, role=OUT, help="JSON recording the sha256 of every metrics.json read")


@dataclass(frozen=True, kw_only=True)
class RunMetrics(Record):
    """A training run's metrics.json (`morph train`'s record step): what was trained, its held-out loss, its speed
    and where its inputs came from."""
    WHAT: ClassVar[str] = "a training run's metrics"
    FIX: ClassVar[str] = "retrain the run with `morph train` (snakemake -j1 --force {path}), or restore the file"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"reused_from"})

    run_id: str
    slot: str | None  # the top-k slot it fills, None for a grid, baseline or validation run
    fingerprint: str  # of shape, budget, settings, seed, tokens and code: a slot reuses a twin with the same one
    shape: dict  # Shape.to_dict()
    params: int
    non_embedding_params: int
    multiplier: float | None  # tokens per parameter; None for a fixed budget
    tokens: int
    tokens_seen: int
    steps: int
    batch_size: int
    micro_batch_size: int
    world_size: int
    seq_len: int
    data_epochs: float
    val_loss: float
    val_tokens: int
    train_loss_ema: float
    resumed_from_step: int | None
    wall_s: float
    train_s: float
    train_cpu_s: float
    tokens_per_s: float
    throughput: dict  # tokens_per_s, steps, seconds and how they were timed
    train_flops_per_token: int
    attention_flops: str  # the convention the FLOPs count attention by
    peak: dict  # the peak FLOP/s MFU is against and its source
    mfu: float
    seed: int
    replicate: int
    replicate_of: str
    precision: str
    accelerator: str
    strategy: str
    threads: int
    config: dict  # the experiment's model and train sections
    versions: dict
    provenance: dict  # inputs, params_read, tokens_sha256, tokenizer
    model_sha256: str | None  # of the saved model folder; None only until the model is saved (train.run.save)
    reused_from: str | None = None  # a slot copied from a finished twin run: its directory
