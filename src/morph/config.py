"""The experiment: one loader, one schema, used by the CLI and the Snakefile alike."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .schema import ConfigError, Field, ListOf, Section, validate
from .shape import ShapeError, ShapeRules

TOKENIZER_PATTERN = re.compile(r"^(bpe:(\d+)|gpt-neox-20b)$")
# GPT-NeoX-20B has 50277 tokens; open_lm pads the embedding to 50432, as the paper counts N.
NEOX_PADDED_VOCAB = 50432
LAWS = ("chinchilla", "inference-aware")
TIES = ("none", "alpha-beta", "all")
SOLVERS = ("lm", "huber-log")
LATENCY_BACKENDS = ("hf", "static", "vllm")


def _tokenizer_rule(value: str) -> str | None:
    m = TOKENIZER_PATTERN.match(value)
    if not m:
        return "is not a tokenizer; use 'bpe:<vocab_size>' or 'gpt-neox-20b'"
    if m.group(2) and not 256 < int(m.group(2)) <= 65536:
        return "has a BPE vocabulary outside 257..65536"
    return None


def _task_rule(value: str) -> str | None:
    from .eval_data import task_folders

    known = task_folders()
    return None if value in known else f"is not a known task; known tasks: {', '.join(sorted(known))}"


def _positive(kind=int, default=None, **kw):
    return Field(kind, default=default, min=1 if kind is int else 0.0, **kw)


SHAPE = Section({"d_model": Field(int, required=True, min=2), "n_layers": Field(int, required=True, min=1)})
SIZE = Section(
    {
        "params": Field(int, required=True, min=1),
        "depths": ListOf(Field(int, min=1), min_len=1),
        # Optional per-size multipliers, as in the paper where only the smallest size is over-trained.
        "multipliers": ListOf(Field(float, min=0.0)),
    }
)

SCHEMA = Section(
    {
        "seed": Field(int, default=0, min=0),
        "data": Section(
            {
                "source": Field(str, default="fixture", choices=("fixture", "local", "hub")),
                "paths": ListOf(Field(str), default=["data/raw/fixture/*.jsonl.zst"]),
                "hub_id": Field(str, default="mlfoundations/dclm-baseline-1.0"),
                "hub_timeout_s": _positive(float, default=20.0),
                # Explicit, so that adding a shape does not resample and retrain everything;
                # validated against the largest run's budget.
                "train_tokens": Field(int, required=True, min=1),
                "val_tokens": _positive(int, default=20000),
                "chars_per_token": _positive(float, default=3.0),
                "margin": Field(float, default=1.2, min=1.0),
                "allow_repeat": Field(bool, default=False),
            }
        ),
        "tokenizer": Section({"name": Field(str, default="bpe:2048", check=_tokenizer_rule)}),
        "model": Section(
            {
                "seq_len": _positive(int, default=128),
                "max_position_embeddings": _positive(int, default=512),
                "n_heads": Field(int, nullable=True, min=1),
                "head_dim": Field(int, nullable=True, min=2),
                "n_kv_heads": Field(int, nullable=True, min=1),
                "ffn_multiple": _positive(int, default=256),
                "tie_embeddings": Field(bool, default=False),
            }
        ),
        "grid": Section(
            {
                "multipliers": ListOf(_positive(float), default=[20, 40, 160], min_len=1),
                "sizes": ListOf(SIZE),
                "shapes": ListOf(SHAPE),
            }
        ),
        "train": Section(
            {
                "batch_size": _positive(int, default=16),
                "lr": _positive(float, default=3e-3),
                "min_lr_ratio": Field(float, default=0.1, min=0.0, max=1.0),
                "warmup_frac": Field(float, default=0.05, min=0.0, max=0.5),
                "weight_decay": Field(float, default=0.1, min=0.0),
                "beta1": Field(float, default=0.9, min=0.0, max=1.0),
                "beta2": Field(float, default=0.95, min=0.0, max=1.0),
                "grad_clip": Field(float, default=1.0, min=0.0),
                "ema_decay": Field(float, default=0.98, min=0.0, max=1.0),
                "val_batches": _positive(int, default=8),
                "checkpoint_every": _positive(int, default=50),
                "precision": Field(str, default="auto", choices=("auto", "32-true", "bf16-mixed", "16-mixed")),
                "accelerator": Field(str, default="auto", choices=("auto", "cpu", "gpu")),
                "devices": _positive(int, default=1),
                "strategy": Field(str, default="auto", choices=("auto", "ddp", "fsdp")),
                "compile": Field(bool, default=False),
                "threads": _positive(int, default=1),
            }
        ),
        "latency": Section(
            {
                "device": Field(str, default="cpu", choices=("cpu", "cuda")),
                "dtype": Field(str, default="auto", choices=("auto", "float32", "bfloat16", "float16")),
                "backends": ListOf(Field(str, choices=LATENCY_BACKENDS), default=["hf"], min_len=1),
                "prompt_len": _positive(int, default=128),
                "new_tokens": _positive(int, default=256),
                "warmup": Field(int, default=1, min=0),
                "repeats": Field(int, default=5, min=1),
                "ttft": Field(bool, default=True),
                "batch_sizes": ListOf(_positive(int), default=[1]),
                "threads": _positive(int, default=2),
            }
        ),
        "fit": Section(
            {
                "laws": ListOf(Field(str, choices=LAWS), default=list(LAWS), min_len=1),
                "tie": Field(str, default="all", choices=TIES),
                "solver": Field(str, default="lm", choices=SOLVERS),
                "bootstrap": Field(int, default=200, min=0),
                "fit_multiplier": Field(float, nullable=True, min=0.0),
                "include_smallest_at_max": Field(bool, default=True),
                "ablation_repeats": Field(int, default=5, min=1),
            }
        ),
        "select": Section(
            {
                "law": Field(str, default="inference-aware", choices=LAWS),
                "params": Field(int, required=True, min=1),
                "depths": ListOf(Field(int, min=1)),
                "shapes": ListOf(SHAPE),
                "tolerance": Field(float, default=0.1, min=0.0),
                "baseline": SHAPE,
                "tokens": Field(int, required=True, min=1),
                "latency_budget_s": _positive(float, required=True),
                "latency_metric": Field(str, default="hf", choices=LATENCY_BACKENDS),
                "latency_source": Field(str, default="measured", choices=("measured", "model")),
                "k": _positive(int, default=2),
            },
            required=True,
        ),
        "evaluate": Section(
            {
                "tasks": ListOf(Field(str, check=_task_rule), default=["arc_easy", "arc_challenge", "boolq", "copa", "hellaswag",
                                                     "piqa", "winogrande", "sciq", "openbookqa"], min_len=1),
                "limit": Field(int, nullable=True, min=1),
                "batch_size": _positive(int, default=16),
                "threads": _positive(int, default=1),
            }
        ),
    }
)


def vocab_size(tokenizer_name: str) -> int:
    m = TOKENIZER_PATTERN.match(tokenizer_name)
    return int(m.group(2)) if m.group(2) else NEOX_PADDED_VOCAB


def shape_rules(cfg: dict) -> ShapeRules:
    m = cfg["model"]
    return ShapeRules(
        vocab_size=vocab_size(cfg["tokenizer"]["name"]),
        n_heads=m["n_heads"],
        head_dim=m["head_dim"],
        n_kv_heads=m["n_kv_heads"],
        ffn_multiple=m["ffn_multiple"],
        tie_embeddings=m["tie_embeddings"],
    )


def _cross_checks(cfg: dict) -> None:
    m = cfg["model"]
    if (m["n_heads"] is None) == (m["head_dim"] is None):
        raise ConfigError("model.n_heads: set exactly one of model.n_heads and model.head_dim")
    if m["n_kv_heads"] is not None and m["n_heads"] is not None and m["n_heads"] % m["n_kv_heads"]:
        raise ConfigError(f"model.n_kv_heads: {m['n_kv_heads']} does not divide n_heads={m['n_heads']}")
    if m["seq_len"] > m["max_position_embeddings"]:
        raise ConfigError(
            f"model.seq_len: {m['seq_len']} exceeds model.max_position_embeddings={m['max_position_embeddings']}"
        )
    rules = shape_rules(cfg)
    shaped = [(f"grid.shapes[{i}]", s) for i, s in enumerate(cfg["grid"]["shapes"])]
    shaped += [(f"select.shapes[{i}]", s) for i, s in enumerate(cfg["select"]["shapes"])]
    shaped.append(("select.baseline", cfg["select"]["baseline"]))
    for path, s in shaped:
        try:
            rules.build(s["d_model"], s["n_layers"])
        except ShapeError as err:
            raise ConfigError(f"{path}.{err}") from None
    if not cfg["grid"]["shapes"] and not cfg["grid"]["sizes"]:
        raise ConfigError("grid: list at least one entry under grid.sizes or grid.shapes")
    if not cfg["select"]["shapes"] and not cfg["select"]["depths"]:
        raise ConfigError("select: list candidate depths under select.depths or shapes under select.shapes")
    fm = cfg["fit"]["fit_multiplier"]
    if fm is not None and fm not in cfg["grid"]["multipliers"]:
        raise ConfigError(f"fit.fit_multiplier: {fm} is not one of grid.multipliers {cfg['grid']['multipliers']}")
    if cfg["select"]["latency_metric"] not in cfg["latency"]["backends"]:
        raise ConfigError(
            f"select.latency_metric: {cfg['select']['latency_metric']!r} is not among latency.backends "
            f"{cfg['latency']['backends']}"
        )


def _check_data_size(cfg: dict) -> None:
    from .grid import baseline_run, grid_runs  # grid imports this module


    largest = max(grid_runs(cfg) + [baseline_run(cfg)], key=lambda r: r.tokens)
    if cfg["data"]["train_tokens"] < largest.tokens and not cfg["data"]["allow_repeat"]:
        raise ConfigError(
            f"data.train_tokens: {cfg['data']['train_tokens']:,} is below the largest run's budget "
            f"({largest.run_id}: {largest.tokens:,} tokens); raise it, since each run is one epoch"
        )


def parse(raw: Any) -> dict:
    """Validate a raw experiment mapping and fill in defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"(top level): expected a mapping of sections, got {type(raw).__name__}")
    cfg = validate(raw, SCHEMA, "")
    _cross_checks(cfg)
    _check_data_size(cfg)
    return cfg


def load(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: experiment file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    try:
        return parse(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
