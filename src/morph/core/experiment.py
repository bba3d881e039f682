"""The experiment: one loader over the section schemas, used by the CLI and both orchestrators alike.

`load(path)` returns an `Experiment`: one frozen dataclass per params section (each declared in its own
module here, so a stage's code inputs include only the sections it reads), plus the runs, shapes and target
slots it expands to, each computed once on first use. The cross-field checks live here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from morph.core import expand
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.select import slot
from morph.core.backends import FLASH_MAX_HEAD_DIM, flash_head_dim_problem
from morph.core.data import Data
from morph.core.evaluate import Evaluate
from morph.core.fit import Fit
from morph.core.grid import Grid
from morph.core.latency import Latency
from morph.core.law_names import AUTO
from morph.core.model import Model
from morph.core.schema import ConfigError, build, rule, section
from morph.core.select import Select
from morph.core.shape import Shape, ShapeError, ShapeRules
from morph.core.tokenizer import Tokenizer
from morph.core.train import Train


def _out_dir_rule(value: str) -> str | None:
    parts = PurePosixPath(value).parts
    if not value or value.startswith("/") or ".." in parts or "\\" in value:
        return (f"must be a folder inside the checkout, written with '/', e.g. experiments/my-run (got {value!r}): "
                "both tools track the outputs by their paths there")
    return None


@dataclass(frozen=True)
class Experiment:
    seed: int = rule(0, min=0)
    # Where this experiment's data, runs, timings, results and logs go: "." is the checkout itself, so two
    # experiments with different folders live side by side.
    out_dir: str = rule(".", check=_out_dir_rule)
    data: Data = section()
    tokenizer: Tokenizer = section()
    model: Model = section()
    grid: Grid = section()
    train: Train = section()
    latency: Latency = section()
    fit: Fit = section()
    select: Select = section(required=True)
    evaluate: Evaluate = section()

    def at(self, path: str) -> str:
        """An artifact's path (as core/artifacts declares it) inside this experiment's out_dir."""
        root = PurePosixPath(self.out_dir)
        return path if root == PurePosixPath(".") else str(root / path)

    def params(self, name: str) -> Any:
        """One params key as plain data (lists, dicts), as a tool that hashes params sees it: a section
        ("select") or one key in it ("select.law")."""
        value = self
        for part in name.split("."):
            value = getattr(value, part)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    # -- what the experiment expands to, computed once ------------------------------------------
    @property
    def sample_chars(self) -> dict[str, int]:
        return self.data.sample_chars

    @cached_property
    def sample_shards(self) -> tuple[str, ...]:
        return self.data.sample_shards

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @cached_property
    def rules(self) -> ShapeRules:
        m = self.model
        return ShapeRules(vocab_size=self.vocab_size, n_heads=m.n_heads, head_dim=m.head_dim,
                          n_kv_heads=m.n_kv_heads, ffn_multiple=m.ffn_multiple, tie_embeddings=m.tie_embeddings,
                          max_head_dim=m.max_head_dim)

    @cached_property
    def expansion(self) -> expand.Expansion:
        try:
            return expand.expand(self.grid, self.select, self.rules)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    @property
    def grid_runs(self) -> tuple[expand.Run, ...]:
        """The runs trained for the law, in params order, each run's seed replicates after it."""
        return self.expansion.grid_runs

    @property
    def baseline(self) -> expand.Run:
        return self.expansion.baseline

    @property
    def baseline_runs(self) -> tuple[expand.Run, ...]:
        """The baseline at D_C under each of the target seeds."""
        return self.expansion.baseline_runs

    @property
    def target_seeds(self) -> int:
        """Seeds per shape at D_C, paired across shapes: select.seeds when select.validate trains candidates."""
        return self.expansion.target_seeds

    @property
    def target_runs(self) -> tuple[expand.Run, ...]:
        """Every run at D_C known before selection: the baseline's seeds and the validated candidates' seeds."""
        return (*self.baseline_runs, *self.validation_runs)

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
    def validation_runs(self) -> tuple[expand.Run, ...]:
        """Candidates trained at D_C beside the top-k, to check the law's ranking in hindsight (select.validate)."""
        return self.expansion.validation_runs

    @property
    def size_targets(self) -> dict[str, int]:
        return self.expansion.size_targets

    @cached_property
    def slots(self) -> tuple[str, ...]:
        """Run directories for the top-k, filled at run time from results/selection.json."""
        return tuple(slot(i) for i in range(1, self.select.k + 1))

    def slot_seeds(self, slot_name: str) -> tuple[str, ...]:
        """One slot's run directories in seed order: top-1, top-1-r1, ..."""
        return tuple(expand.replicate_id(slot_name, r) if r else slot_name for r in range(self.target_seeds))

    @cached_property
    def slot_runs(self) -> tuple[str, ...]:
        """Run directories of the top-k slots under each target seed: top-1, top-1-r1, ..., top-2, ..."""
        return tuple(run for s in self.slots for run in self.slot_seeds(s))

    @cached_property
    def evaluated_models(self) -> tuple[str, ...]:
        """Run directories that lm-eval scores, each under the experiment's seed: the top-k slots, the baseline and
        the validated candidates (the release may be any measured shape)."""
        return (*self.slots, self.baseline.run_id, *(r.run_id for r in self.validation_runs if not r.replicate))

    def run(self, run_id: str) -> expand.Run:
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
                expand.variants(exp.rules, target, depth, knobs)
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
    lat = exp.latency
    if lat.prompt_len + lat.new_tokens > m.max_position_embeddings:
        raise ConfigError(f"latency.new_tokens: prompt_len {lat.prompt_len} + new_tokens {lat.new_tokens} exceeds "
                          f"model.max_position_embeddings={m.max_position_embeddings}; raise that or time fewer")
    if exp.select.law not in (*exp.fit.laws, AUTO):
        raise ConfigError(f"select.law: {exp.select.law!r} is not fitted; add it to fit.laws "
                          f"{list(exp.fit.laws)} or choose one of them")
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
        kv, dtype = sel.max_kv_cache, exp.latency.timed_dtype
        smallest = min(exp.candidate_shapes, key=lambda s: s.kv_cache_mib(kv.batch, kv.context, dtype))
        need = smallest.kv_cache_mib(kv.batch, kv.context, dtype)
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
        where = "" if path.is_absolute() else f" in {Path.cwd()}"
        raise ConfigError(f"{path}: experiment file not found{where}; run from the folder that holds it, or give its "
                          "path (morph <command> --params FILE, snakemake --configfile FILE)")
    if not path.is_file():
        shown = sorted(str(f) for f in path.glob("*.y*ml"))[:5]
        raise ConfigError(f"{path}: is a directory, not an experiment file; pass a YAML file "
                          + (f"in it: {', '.join(shown)}" if shown else "such as params.yaml"))
    try:
        text = path.read_text(encoding="utf-8")
        if problem := _repeated_key(yaml.compose(text, Loader=yaml.SafeLoader)):
            raise ConfigError(f"{path}: {problem}")
        return yaml.safe_load(text)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None


def load(path: str | Path = PARAMS) -> Experiment:
    raw = read_raw(path)
    try:
        return parse(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
