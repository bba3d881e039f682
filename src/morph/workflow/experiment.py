"""The experiment: one loader, one typed schema, used by the CLI and both orchestrators alike.

`load(path)` returns an `Experiment`: one frozen dataclass per params section, plus the runs,
shapes and target slots it expands to, each computed once on first use.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from morph.latency.names import BACKENDS as LATENCY_BACKENDS
from morph.latency.names import FLASH_MAX_HEAD_DIM, flash_head_dim_problem
from morph.law.names import AUTO, LAWS, PAPER_LAWS, PARAMS_COUNTS, SOLVERS, TIES
from morph.shape import Shape, ShapeError, ShapeRules
from morph.workflow import grid
from morph.workflow.schema import ConfigError, build, rule, section

TOKENIZER_PATTERN = re.compile(r"^(bpe:(\d+)|gpt-neox-20b)$")
# GPT-NeoX-20B has 50277 tokens; open_lm pads the embedding to 50432, as the paper counts N.
NEOX_PADDED_VOCAB = 50432
TASKS_DIR = Path(__file__).resolve().parents[1] / "evaluate" / "tasks"
VALIDATE_WORDS = ("all", "none")
# A model no machine morph runs on could build (4 TB of fp32 weights): a typo, refused before anything runs.
MAX_PARAMS = 10**12
DEFAULT_TASKS = ("arc_easy", "arc_challenge", "boolq", "copa", "hellaswag", "piqa", "winogrande", "sciq", "openbookqa")


def _tokenizer_rule(value: str) -> str | None:
    m = TOKENIZER_PATTERN.match(value)
    if not m:
        return "is not a tokenizer; use 'bpe:<vocab_size>' or 'gpt-neox-20b'"
    if m.group(2) and not 256 < int(m.group(2)) <= 65536:
        return "has a BPE vocabulary outside 257..65536"
    return None


def _task_rule(value: str) -> str | None:
    # Each task is one YAML named after it; read as files so the experiment imports no stage code.
    known = sorted(p.stem for p in TASKS_DIR.glob("*.yaml") if not p.stem.startswith("_"))
    return None if value in known else f"is not a known task; known tasks: {', '.join(known)}"


def _validate_rule(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if value >= 1 else "must be at least 1 (or \"none\")"
    return None if value in VALIDATE_WORDS else f"must be a count or one of {', '.join(VALIDATE_WORDS)}"


@dataclass(frozen=True)
class ShapeSpec:
    d_model: int = rule(min=2)
    n_layers: int = rule(min=1)


@dataclass(frozen=True, kw_only=True)
class Knobs:
    """Architecture knobs beside the depths: each value, and each combination of them, is built at every depth
    beside the default shape (grid.sizes entries and select alike; see grid.variants)."""
    # The SwiGLU MLP's parameters over attention's, per layer; the default width gives about 2 (8/3 x 3/4).
    # Bounded so that the id's -f<ratio> stays plain decimals.
    ffn_ratios: tuple[float, ...] = rule((), each={"check": lambda v: None if 0.01 <= v <= 100 else
                                                   "must be between 0.01 and 100 (MLP over attention parameters)"})
    n_kv_heads: tuple[int, ...] = rule((), each={"min": 1})  # grouped-query attention: divisors of the heads


@dataclass(frozen=True)
class SizeSpec(Knobs):
    params: int = rule(min=1, max=MAX_PARAMS)
    depths: tuple[int, ...] = rule(min_len=1, each={"min": 1})
    # Optional per-size multipliers, as in the paper where only the smallest size is over-trained.
    multipliers: tuple[float, ...] = rule((), each={"above": 0.0})


@dataclass(frozen=True)
class Data:
    # Explicit, so that adding a shape does not resample and retrain everything; checked
    # against the largest run's budget.
    train_tokens: int = rule(min=1)
    source: str = rule("fixture", choices=("fixture", "local", "hub"))
    paths: tuple[str, ...] = rule(["data/raw/fixture/*.jsonl.zst"])
    hub_id: str = rule("mlfoundations/dclm-baseline-1.0")
    hub_timeout_s: float = rule(20.0, min=0.0)
    val_tokens: int = rule(20000, min=1)
    chars_per_token: float = rule(3.0, above=0.0)
    margin: float = rule(1.2, min=1.0)
    allow_repeat: bool = rule(False)
    # Millions of characters per sample shard. Each shard is one tokenize job, so this sets how many
    # jobs can run at once and bounds each job's memory; the count follows from the params alone.
    shard_mb: float = rule(256.0, min=0.01)


@dataclass(frozen=True)
class Tokenizer:
    name: str = rule("bpe:2048", check=_tokenizer_rule)
    # Millions of characters of the training split a BPE learns from (a seeded subsample): enough
    # for merges, and a memory bound that does not grow with the sample.
    train_mb: float = rule(64.0, min=0.01)


@dataclass(frozen=True)
class Model:
    seq_len: int = rule(128, min=1)
    max_position_embeddings: int = rule(512, min=1)
    n_heads: int | None = rule(None, min=1)
    head_dim: int | None = rule(None, min=2)
    max_head_dim: int | None = rule(None, min=8)  # with n_heads: a wider head gets more heads (256: fused kernels)
    n_kv_heads: int | None = rule(None, min=1)
    ffn_multiple: int = rule(256, min=1)
    tie_embeddings: bool = rule(False)


@dataclass(frozen=True)
class ReplicateSpec:
    """A grid run trained `seeds` times: its own seed is replicate 0, the others change init and data order."""
    run: str = rule()
    seeds: int = rule(check=lambda v: None if v >= 2 else
                      "must be at least 2: the run itself is the first seed, so 2 trains one replicate beside it")


@dataclass(frozen=True)
class Grid:
    multipliers: tuple[float, ...] = rule([20, 40, 160], min_len=1, each={"above": 0.0})
    sizes: tuple[SizeSpec, ...] = rule(())
    shapes: tuple[ShapeSpec, ...] = rule(())
    replicates: tuple[ReplicateSpec, ...] = rule(())


@dataclass(frozen=True)
class Train:
    batch_size: int = rule(16, min=1)
    lr: float = rule(3e-3, min=0.0)
    min_lr_ratio: float = rule(0.1, min=0.0, max=1.0)
    warmup_frac: float = rule(0.05, min=0.0, max=0.5)
    weight_decay: float = rule(0.1, min=0.0)
    beta1: float = rule(0.9, min=0.0, max=1.0)
    beta2: float = rule(0.95, min=0.0, max=1.0)
    grad_clip: float = rule(1.0, min=0.0)
    ema_decay: float = rule(0.98, min=0.0, max=1.0)
    val_batches: int = rule(8, min=1)
    checkpoint_every: int = rule(50, min=1)
    precision: str = rule("auto", choices=("auto", "32-true", "bf16-mixed", "16-mixed"))
    accelerator: str = rule("auto", choices=("auto", "cpu", "gpu"))
    devices: int = rule(1, min=1)  # per node; the ranks are devices x num_nodes
    num_nodes: int = rule(1, min=1)
    strategy: str = rule("auto", choices=("auto", "ddp", "fsdp"))
    # Sequences per forward pass on one rank; batch_size (the global batch) = micro x accumulation x ranks.
    # Unset: the rank's whole share of the batch in one pass.
    micro_batch_size: int | None = rule(None, min=1)
    compile: bool = rule(False)
    fused_adamw: bool = rule(False)
    log_every: int = rule(10, min=1)  # steps between reads of the loss (each read waits for the device)
    # The loss curve's CSV is always written (the graph reads it); tensorboard adds event files beside it.
    logger: str = rule("csv", choices=("csv", "tensorboard"))
    threads: int = rule(1, min=1)

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def rank_batch(self) -> int:
        return self.batch_size // self.world_size

    @property
    def micro_batch(self) -> int:
        return self.micro_batch_size or self.rank_batch

    @property
    def accumulation(self) -> int:
        """Micro batches per optimiser step on each rank."""
        return self.rank_batch // self.micro_batch


@dataclass(frozen=True)
class Latency:
    device: str = rule("cpu", choices=("cpu", "cuda"))
    dtype: str = rule("auto", choices=("auto", "float32", "bfloat16", "float16"))
    backends: tuple[str, ...] = rule(["hf"], min_len=1, each={"choices": LATENCY_BACKENDS})
    prompt_len: int = rule(128, min=1)
    new_tokens: int = rule(256, min=1)
    warmup: int = rule(1, min=0)
    repeats: int = rule(5, min=1)
    ttft: bool = rule(True)
    batch_sizes: tuple[int, ...] = rule([1], each={"min": 1})
    threads: int = rule(2, min=1)


@dataclass(frozen=True)
class Fit:
    laws: tuple[str, ...] = rule(list(PAPER_LAWS), min_len=1, each={"choices": LAWS})
    tie: str = rule("all", choices=TIES)
    solver: str = rule("lm", choices=SOLVERS)
    bootstrap: int = rule(200, min=0)
    fit_multiplier: float | None = rule(None, above=0.0)
    include_smallest_at_max: bool = rule(True)
    ablation_repeats: int = rule(5, min=1)
    # N in the law: every parameter, the non-embedding ones, or auto (the law zoo's lower cross-validated error).
    params_count: str = rule("total", choices=(*PARAMS_COUNTS, AUTO))


@dataclass(frozen=True)
class RelativeLatency:
    """T_C as a fraction of a reference shape's measured latency, so a decision travels between machines."""
    factor: float = rule(check=lambda v: None if v > 0 else "must be above 0")
    relative_to: str = rule("baseline", choices=("baseline",))


@dataclass(frozen=True)
class MinThroughput:
    batch: int = rule(min=1)
    tokens_per_s: float = rule(above=0.0)


@dataclass(frozen=True)
class MaxKVCache:
    batch: int = rule(min=1)
    context: int = rule(min=1)  # prompt plus generated tokens
    mib: float = rule(above=0.0)


@dataclass(frozen=True)
class Select(Knobs):
    params: int = rule(min=1, max=MAX_PARAMS)
    tokens: int = rule(min=1)
    # Serving budgets, each optional and checked per candidate; T_C is absolute or relative.
    latency_budget_s: float | None = rule(None, above=0.0)
    latency_budget_relative: RelativeLatency | None = rule(None)
    min_throughput: MinThroughput | None = rule(None)
    max_kv_cache: MaxKVCache | None = rule(None)
    max_ttft_s: float | None = rule(None, above=0.0)
    law: str = rule("inference-aware", choices=(*LAWS, AUTO))
    depths: tuple[int, ...] = rule((), each={"min": 1})
    shapes: tuple[ShapeSpec, ...] = rule(())
    tolerance: float = rule(0.1, min=0.0)
    baseline: ShapeSpec = section()
    latency_metric: str = rule("hf", choices=LATENCY_BACKENDS)
    latency_source: str = rule("measured", choices=("measured", "model"))
    k: int = rule(2, min=1)
    # Hindsight: candidates within the parameter tolerance also trained at D_C, so the law's ranking is checked
    # against measured losses it did not see: "all", "none", or a count spread over the depths (at one N,
    # decode latency rises with depth, so this spreads them over the latency range).
    validate: int | str = rule("none", check=_validate_rule)


@dataclass(frozen=True)
class Evaluate:
    tasks: tuple[str, ...] = rule(DEFAULT_TASKS, min_len=1, each={"check": _task_rule})
    # A seeded random subset of this many items per task (the same ids for every model); null: all.
    limit: int | None = rule(None, min=1)
    batch_size: int = rule(16, min=1)
    threads: int = rule(1, min=1)
    # Paired bootstrap over the scored items: the accuracy intervals and the noise test of the decision.
    bootstrap: int = rule(2000, min=1)
    confidence: float = rule(0.95, min=0.0, max=1.0)


@dataclass(frozen=True)
class Experiment:
    seed: int = rule(0, min=0)
    data: Data = section()
    tokenizer: Tokenizer = section()
    model: Model = section()
    grid: Grid = section()
    train: Train = section()
    latency: Latency = section()
    fit: Fit = section()
    select: Select = section(required=True)
    evaluate: Evaluate = section()

    def params(self, name: str) -> Any:
        """One top-level params key as plain data (lists, dicts), as a tool that hashes params sees it."""
        value = getattr(self, name)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    # -- what the experiment expands to, computed once ------------------------------------------
    @cached_property
    def sample_chars(self) -> dict[str, int]:
        """Characters each split draws: its token target x data.chars_per_token x data.margin."""
        d = self.data
        per_token = d.chars_per_token * d.margin
        return {"train": math.ceil(d.train_tokens * per_token), "val": math.ceil(d.val_tokens * per_token)}

    @cached_property
    def sample_shards(self) -> tuple[str, ...]:
        """Shard names (train-00000, ..., val-00000): a function of the params, so both graphs are static."""
        size = self.data.shard_mb * 1e6
        return tuple(f"{split}-{i:05d}" for split, chars in self.sample_chars.items()
                     for i in range(math.ceil(chars / size)))

    @cached_property
    def vocab_size(self) -> int:
        m = TOKENIZER_PATTERN.match(self.tokenizer.name)
        return int(m.group(2)) if m.group(2) else NEOX_PADDED_VOCAB

    @cached_property
    def rules(self) -> ShapeRules:
        m = self.model
        return ShapeRules(vocab_size=self.vocab_size, n_heads=m.n_heads, head_dim=m.head_dim,
                          n_kv_heads=m.n_kv_heads, ffn_multiple=m.ffn_multiple, tie_embeddings=m.tie_embeddings,
                          max_head_dim=m.max_head_dim)

    @cached_property
    def expansion(self) -> grid.Expansion:
        try:
            return grid.expand(self.grid, self.select, self.rules)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    @property
    def grid_runs(self) -> tuple[grid.Run, ...]:
        """The runs trained for the law, in params order, each run's seed replicates after it."""
        return self.expansion.grid_runs

    @property
    def baseline(self) -> grid.Run:
        return self.expansion.baseline

    @property
    def grid_shapes(self) -> tuple[Shape, ...]:
        return self.expansion.grid_shapes

    @property
    def latency_shapes(self) -> tuple[Shape, ...]:
        """Every shape whose latency the graph measures: the grid, the candidates and the baseline."""
        return self.expansion.latency_shapes

    @property
    def candidate_shapes(self) -> tuple[Shape, ...]:
        return self.expansion.candidate_shapes

    @property
    def validation_runs(self) -> tuple[grid.Run, ...]:
        """Candidates trained at D_C beside the top-k, to check the law's ranking in hindsight (select.validate)."""
        return self.expansion.validation_runs

    @property
    def size_targets(self) -> dict[str, int]:
        return self.expansion.size_targets

    @cached_property
    def slots(self) -> tuple[str, ...]:
        """Run directories for the top-k, filled at run time from results/selection.json."""
        return tuple(f"top-{i}" for i in range(1, self.select.k + 1))

    @cached_property
    def evaluated_models(self) -> tuple[str, ...]:
        """Run directories that lm-eval scores: the top-k slots and the baseline."""
        return (*self.slots, self.baseline.run_id)

    def run(self, run_id: str) -> grid.Run:
        """A grid or baseline run by id; a KeyError that says where to look."""
        try:
            return self.expansion.runs_by_id[run_id]
        except KeyError:
            raise KeyError(f"run id {run_id!r} is not in the experiment's grid (see `morph grid`)") from None

    def shape(self, shape_id: str) -> Shape:
        try:
            return self.expansion.shapes_by_id[shape_id]
        except KeyError:
            raise KeyError(f"shape id {shape_id!r} is not in the experiment (see `morph grid`)") from None


def _cross_checks(exp: Experiment) -> None:
    m = exp.model
    if (m.n_heads is None) == (m.head_dim is None):
        raise ConfigError("model.n_heads: set exactly one of model.n_heads and model.head_dim")
    if m.max_head_dim is not None and m.n_heads is None:
        raise ConfigError("model.max_head_dim: goes with model.n_heads (model.head_dim already fixes the width)")
    if m.n_kv_heads is not None and m.n_heads is not None and m.n_heads % m.n_kv_heads:
        raise ConfigError(f"model.n_kv_heads: {m.n_kv_heads} does not divide n_heads={m.n_heads}")
    if m.seq_len > m.max_position_embeddings:
        raise ConfigError(f"model.seq_len: {m.seq_len} exceeds "
                          f"model.max_position_embeddings={m.max_position_embeddings}")
    shaped = [(f"grid.shapes[{i}]", s) for i, s in enumerate(exp.grid.shapes)]
    shaped += [(f"select.shapes[{i}]", s) for i, s in enumerate(exp.select.shapes)]
    shaped.append(("select.baseline", exp.select.baseline))
    for path, s in shaped:
        try:
            exp.rules.build(s.d_model, s.n_layers)
        except ShapeError as err:
            raise ConfigError(f"{path}.{err}") from None
    knobbed = [(f"grid.sizes[{i}]", size.params, size) for i, size in enumerate(exp.grid.sizes)]
    for path, target, knobs in [*knobbed, ("select", exp.select.params, exp.select)]:
        for depth in knobs.depths:
            try:
                grid.variants(exp.rules, target, depth, knobs)
            except ShapeError as err:
                raise ConfigError(f"{path}.{err}") from None
    if not exp.grid.shapes and not exp.grid.sizes:
        raise ConfigError("grid: list at least one entry under grid.sizes or grid.shapes")
    if not exp.select.shapes and not exp.select.depths:
        raise ConfigError("select: list candidate depths under select.depths or shapes under select.shapes")
    _check_batch_split(exp.train)
    fm = exp.fit.fit_multiplier
    if fm is not None and fm not in exp.grid.multipliers:
        raise ConfigError(f"fit.fit_multiplier: {fm} is not one of grid.multipliers {list(exp.grid.multipliers)}")
    if exp.select.latency_metric not in exp.latency.backends:
        raise ConfigError(f"select.latency_metric: {exp.select.latency_metric!r} is not among latency.backends "
                          f"{list(exp.latency.backends)}")
    _check_budgets(exp)
    _check_attention_kernels(exp)
    largest = max((*exp.grid_runs, exp.baseline), key=lambda r: r.tokens)
    if exp.data.train_tokens < largest.tokens and not exp.data.allow_repeat:
        raise ConfigError(
            f"data.train_tokens: {exp.data.train_tokens:,} is below the largest run's budget "
            f"({largest.run_id}: {largest.tokens:,} tokens); raise it, since each run is one epoch"
        )


def kv_cache_mib(shape: Shape, budget: MaxKVCache, latency: Latency) -> float:
    """The KV cache a shape holds at the budget's batch and context, in the dtype latency is timed in."""
    dtype = latency.dtype if latency.dtype != "auto" else ("bfloat16" if latency.device == "cuda" else "float32")
    return shape.kv_cache_bytes(budget.context, budget.batch, 4 if dtype == "float32" else 2) / 2**20


def _check_serving_budgets(exp: Experiment) -> None:
    sel = exp.select
    if (sel.latency_budget_s is None) == (sel.latency_budget_relative is None):
        raise ConfigError("select.latency_budget_s: set exactly one of select.latency_budget_s (seconds) and "
                          "select.latency_budget_relative ({relative_to: baseline, factor: F})")
    if sel.min_throughput and sel.min_throughput.batch not in (1, *exp.latency.batch_sizes):
        raise ConfigError(f"select.min_throughput.batch: {sel.min_throughput.batch} is not timed; add it to "
                          f"latency.batch_sizes {list(exp.latency.batch_sizes)}")
    if sel.max_ttft_s is not None and not exp.latency.ttft:
        raise ConfigError("select.max_ttft_s: time-to-first-token is not measured; set latency.ttft: true")
    if (sel.min_throughput or sel.max_ttft_s is not None) and sel.latency_source != "measured":
        raise ConfigError("select.latency_source: throughput and time-to-first-token budgets need measured "
                          "latencies; set it to measured")
    if sel.max_kv_cache:
        smallest = min(exp.candidate_shapes, key=lambda s: kv_cache_mib(s, sel.max_kv_cache, exp.latency))
        need = kv_cache_mib(smallest, sel.max_kv_cache, exp.latency)
        if need > sel.max_kv_cache.mib:
            raise ConfigError(f"select.max_kv_cache.mib: {sel.max_kv_cache.mib:g} MiB is below the smallest "
                              f"candidate's KV cache ({smallest.shape_id}: {need:.3g} MiB at batch "
                              f"{sel.max_kv_cache.batch}, context {sel.max_kv_cache.context}); raise it")


def _check_budgets(exp: Experiment) -> None:
    """Budgets no candidate can meet fail here, with the arithmetic, not after the grid has trained."""
    _check_serving_budgets(exp)
    sel, shapes = exp.select, exp.candidate_shapes
    if sel.k > len(shapes):
        raise ConfigError(f"select.k: {sel.k} is more than the {len(shapes)} candidate shapes (select.depths "
                          f"{list(sel.depths)} and select.shapes give {', '.join(s.shape_id for s in shapes)}); "
                          f"lower k or add candidates")
    gaps = {s.shape_id: s.params() / sel.params - 1 for s in shapes}
    if all(abs(g) > sel.tolerance for g in gaps.values()):
        closest = min(gaps, key=lambda k: abs(gaps[k]))
        raise ConfigError(f"select.params: no candidate is within {sel.tolerance:.0%} of N_C={sel.params:,}; the "
                          f"closest, {closest}, has {exp.shape(closest).params():,} ({gaps[closest]:+.1%}); "
                          f"raise N_C, widen select.tolerance or change the candidate depths")


def _check_attention_kernels(exp: Experiment) -> None:
    """On a GPU no candidate, nor the baseline, may have heads wider than the fused attention kernels take: it
    would time on a slower kernel and lose the latency comparison for its head width, not its shape. (A head
    width off the kernels' multiple of 8, as at the toy sizes, is named by `morph latency` on the GPU.)"""
    if exp.latency.device != "cuda":
        return
    for shape in (*exp.candidate_shapes, exp.baseline.shape):
        if shape.head_dim > FLASH_MAX_HEAD_DIM:
            raise ConfigError(
                f"model.n_heads: {shape.shape_id} ({shape.d_model} / {shape.n_heads} heads) has a "
                f"{flash_head_dim_problem(shape.head_dim)}, so on latency.device cuda it would time on a slower "
                f"attention kernel than the other candidates; set model.max_head_dim: {FLASH_MAX_HEAD_DIM} "
                f"(more heads for the widest shapes) or model.head_dim")


def _check_batch_split(t: Train) -> None:
    ranks = f"{t.world_size} ranks (train.devices {t.devices} x train.num_nodes {t.num_nodes})"
    if t.batch_size % t.world_size:
        raise ConfigError(f"train.batch_size: {t.batch_size} sequences do not split evenly over {ranks}; "
                          f"use a multiple of {t.world_size}")
    if t.rank_batch % t.micro_batch:
        raise ConfigError(f"train.micro_batch_size: {t.micro_batch} does not divide each rank's share of the batch "
                          f"({t.batch_size} over {ranks} = {t.rank_batch}); pick a divisor of {t.rank_batch}")


def parse(raw: Any) -> Experiment:
    """Validate a raw experiment mapping, fill in defaults and check the cross-field rules."""
    if not isinstance(raw, dict):
        raise ConfigError(f"(top level): expected a mapping of sections, got {type(raw).__name__}")
    exp = build(Experiment, raw)
    _cross_checks(exp)
    return exp


def _repeated_key(node: yaml.Node, path: str = "") -> str | None:
    """The first key written twice in one mapping, with its lines: YAML would keep the last silently."""
    if isinstance(node, yaml.SequenceNode):
        return next((found for i, item in enumerate(node.value) if (found := _repeated_key(item, f"{path}[{i}]"))),
                    None)
    if not isinstance(node, yaml.MappingNode):
        return None
    lines: dict[str, int] = {}
    for key, value in node.value:
        sub = f"{path}.{key.value}" if path else str(key.value)
        line = key.start_mark.line + 1
        if key.tag != "tag:yaml.org,2002:merge" and lines.setdefault(str(key.value), line) != line:
            return (f"{sub}: written twice (lines {lines[str(key.value)]} and {line}); YAML would keep only the "
                    "last, so delete the one you do not mean")
        if found := _repeated_key(value, sub):
            return found
    return None


def read_raw(path: str | Path) -> Any:
    """The experiment file's YAML as written, or a ConfigError naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: experiment file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: is a directory, not an experiment file; pass a YAML file such as params.yaml")
    try:
        text = path.read_text(encoding="utf-8")
        if problem := _repeated_key(yaml.compose(text, Loader=yaml.SafeLoader)):
            raise ConfigError(f"{path}: {problem}")
        return yaml.safe_load(text)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None


def load(path: str | Path = "params.yaml") -> Experiment:
    raw = read_raw(path)
    try:
        return parse(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
