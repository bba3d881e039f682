"""The workflow graph as data: one row per stage, in graph order, and each node's command, inputs, outputs
and the params it reads.

Both orchestrators read this one table: `rules/stages.smk` makes one Snakemake rule per row, `morph dvc-yaml`
writes dvc.yaml from `all_nodes(...)`, and the CLI takes each row's command. A node's code inputs are
derived, never listed: its entry module's imports (`morph.core.source`) and the schema modules of the params
sections it reads.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import shlex
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache

from morph.core import source
from morph.core.artifacts import common, data, evaluate, latency, law, report, select, train
from morph.core.data import SHARD_PATTERN, source_files
from morph.core.experiment import Experiment
from morph.core.interface import IN, OUT, OUT_FOLDER, Interface
from morph.core.law_names import AUTO
from morph.core.shape import RUN_ID_PATTERN, SHAPE_ID_PATTERN
from morph.core.tasks import TASKS_DIR

# What training reads: meta.json names every token shard and the tokenizer with their sha256, so depending on
# it (and not on the shards or the tokenizer directory, which Snakemake judges by modification time alone)
# reruns training when their content changes, but not when a damaged one is rebuilt to the same bytes.
TOKEN_OUTS = (data.TOKENS_META,)
TRAIN_READS = ("seed", "tokenizer", "model", "train")
# The task YAMLs and their helpers, evaluate's data-as-code, as files: Snakemake judges a file by its checksum
# and a folder by its modification time alone.
TASKS = tuple(sorted(os.path.relpath(f, source.REPO) for pattern in ("*.yaml", "*.py")
                     for f in glob.glob(os.path.join(TASKS_DIR, pattern))))


@dataclass(frozen=True)
class Node:
    stage: str  # the rule / stage family, e.g. "train"
    key: str  # the instance within the family ("" for singletons), e.g. a run id
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]  # params keys ("select" or "select.law") whose change must rerun this node
    metrics: tuple[str, ...] = field(default=())
    directories: tuple[str, ...] = field(default=())  # the outs that are folders

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.key}" if self.key else self.stage


@dataclass(frozen=True)
class Job:
    """What a stage's builder knows about one node: its flags (their inputs and outputs are the node's too), and
    the data inputs and outputs no flag names."""
    args: Interface
    deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # inputs no stage writes (data sources, task files): outside the out_dir
    metrics: tuple[str, ...] = ()
    directories: tuple[str, ...] = ()


def command(*words: str) -> str:
    """A shell command line with every word quoted where it needs it: paths and experiment files may hold
    spaces, quotes or any other character, and both tools run the line through a shell."""
    return " ".join(shlex.quote(str(w)) for w in words)


@cache
def section_modules(reads: tuple[str, ...]) -> tuple[str, ...]:
    """The modules declaring the params sections a stage reads ("seed" is no section)."""
    hints = typing.get_type_hints(Experiment)
    kinds = (hints[key.split(".")[0]] for key in reads)
    return tuple(kind.__module__ for kind in kinds if dataclasses.is_dataclass(kind))


def code_inputs(module: str, reads: tuple[str, ...]) -> tuple[str, ...]:
    """The source files a stage runs: its entry module's imports and the schemas of the sections it reads."""
    return source.files(module, *section_modules(reads))


@dataclass(frozen=True)
class Stage:
    """One row: a stage family, the `morph` command and module that run it, what it reads, and its nodes."""
    name: str
    command: str
    module: str
    reads: tuple[str, ...]  # params keys whose change reruns it; their schema modules are its code too
    interface: type[Interface]  # its command's flags, declared once (core/artifacts)
    build: Callable[..., Job]  # (experiment, key) -> Job; key is "" for a singleton
    keys: Callable[[Experiment], Iterable[str]] | None = None  # the instances; None: a singleton
    wildcard: tuple[str, str] = ("", "")  # Snakemake's wildcard for the key and its pattern
    threads: Callable[[Experiment], int] = lambda exp: 1
    exclusive: bool = False  # a timing job: nothing else runs beside it
    ranks: bool = False  # started on train.devices x train.num_nodes ranks

    def node(self, exp: Experiment, params: str, key: str = "") -> Node:
        job = self.build(exp, key)
        if type(job.args) is not self.interface:
            raise TypeError(f"stage {self.name}: its builder made {type(job.args).__name__}, not {self.interface}")
        a, at = job.args.under(exp.at), lambda paths: tuple(map(exp.at, paths))
        return Node(self.name, key, command("morph", self.command, common.PARAMS_FLAG, params, *a.argv()),
                    deps=(*code_inputs(self.module, self.reads), *job.sources, *a.paths(IN), *at(job.deps)),
                    outs=(*a.paths(OUT, OUT_FOLDER), *at(job.outs)), params=self.reads, metrics=at(job.metrics),
                    directories=(*a.paths(OUT_FOLDER), *at(job.directories)))

    def nodes(self, exp: Experiment, params: str) -> list[Node]:
        return [self.node(exp, params, k) for k in self.keys(exp)] if self.keys else [self.node(exp, params)]


def _check(lookup, key: str) -> None:
    # Rules build their output templates with the wildcard itself as the key ("{run_id}").
    if not key.startswith("{"):
        lookup(key)  # a clear KeyError for an id the experiment does not hold


def _sample(exp: Experiment, _key: str) -> Job:
    # Globs are expanded by the sample's own rule: both tools track the files it reads. A glob matching nothing is
    # refused before any job (preflight).
    sources = () if exp.data.source == "hub" else tuple(sorted(source_files(exp.data.paths, check=False)))
    return Job(data.Sample(), sources=sources,
               outs=(data.SAMPLE_MANIFEST, *(data.sample_shard(s) for s in exp.sample_shards)))


def _tokenizer(exp: Experiment, _key: str) -> Job:
    train_shards = (data.sample_shard(s) for s in exp.sample_shards if s.startswith("train-"))
    return Job(data.Tokenizer(), deps=(data.SAMPLE_MANIFEST, *train_shards))


def _sample_shard(exp: Experiment, shard: str) -> None:
    if shard not in exp.sample_shards:
        raise KeyError(f"shard {shard!r} is not one of the experiment's sample shards (data.shard_mb sets them)")


def _tokenize_shard(exp: Experiment, shard: str) -> Job:
    _check(lambda s: _sample_shard(exp, s), shard)
    return Job(data.TokenizeShard(shard=data.sample_shard(shard), out=data.token_shard(shard),
                                  summary=data.token_shard_summary(shard)), deps=(data.TOKENIZER_SUMMARY,))


def _tokenize_gather(exp: Experiment, _key: str) -> Job:
    return Job(data.TokenizeGather(),
               deps=(data.SAMPLE_MANIFEST, data.TOKENIZER, data.TOKENIZER_SUMMARY,
                     *(data.token_shard_summary(s) for s in exp.sample_shards)),
               outs=(data.TOKENS_META,))


def _run_outs(run: str) -> dict:
    # A run's metrics.json is an ordinary output: `dvc metrics show` lists the report's flat summary alone.
    return {"outs": (train.run_model(run), train.run_metrics(run), train.loss_curve(run)),
            "directories": (train.run_model(run),)}


def _train(exp: Experiment, run_id: str) -> Job:
    _check(exp.run, run_id)
    return Job(train.Train(run=run_id, out=train.run_dir(run_id)), deps=TOKEN_OUTS, **_run_outs(run_id))


def _train_slot(exp: Experiment, slot: str) -> Job:
    # After the validation runs: a slot whose shape one of them trained copies it (train/run.py reuse_twin).
    validated = tuple(train.run_metrics(r.run_id) for r in exp.validation_runs)
    return Job(train.Train(selection=select.SELECTION, slot=slot, out=train.run_dir(slot)),
               deps=(*TOKEN_OUTS, *validated), **_run_outs(slot))


def _collect(exp: Experiment, _key: str) -> Job:
    return Job(train.Collect(), deps=tuple(train.run_metrics(r.run_id) for r in exp.grid_runs))


def _latency(exp: Experiment, shape_id: str) -> Job:
    _check(exp.shape, shape_id)
    return Job(latency.Latency(shape=shape_id, out=latency.latency_json(shape_id)))


def _latency_collect(exp: Experiment, _key: str) -> Job:
    return Job(latency.LatencyCollect(), deps=tuple(latency.latency_json(s.shape_id) for s in exp.latency_shapes))


def _laws(exp: Experiment, _key: str) -> Job:
    fitted = (*exp.fit.laws, *((AUTO,) if exp.select.law == AUTO else ()))  # with auto: the zoo's winner, fitted
    return Job(law.Laws(runs_inputs=train.RUNS_INPUTS),
               outs=(*(law.law_json(name) for name in fitted), *(f"{law.LAW_DIR}/{t}" for t in law.TABLES),
                     *(common.figure(f) for f in law.LAW_FIGURES)))


def _candidates(exp: Experiment, _key: str) -> Job:
    return Job(select.Candidates())


def _select(exp: Experiment, _key: str) -> Job:
    return Job(select.Select(law=law.law_json(exp.select.law)))


def _evaluate(exp: Experiment, run: str) -> Job:
    # metrics.json: the model's sha256, written with it (folder_records)
    return Job(evaluate.Evaluate(model=train.run_model(run), out=evaluate.eval_json(run),
                                 lm_eval_out=evaluate.lm_eval_out(run)), sources=TASKS,
               deps=(train.run_metrics(run),))


def _report(exp: Experiment, _key: str) -> Job:
    runs = exp.evaluated_models
    measured = dict.fromkeys((*runs, *exp.slot_runs, *(r.run_id for r in exp.target_runs)))  # every seed at D_C
    return Job(report.Report(),
               deps=(*(train.run_metrics(r) for r in measured), *(train.loss_curve(r) for r in runs),
                     *(evaluate.eval_json(r) for r in runs), *(evaluate.lm_eval_out(r) for r in runs)),
               outs=tuple(common.figure(f) for f in report.REPORT_FIGURES),
               metrics=(report.SUMMARY,))  # its numbers reach `dvc metrics show` through this flat summary


STAGES = (
    Stage("sample", "sample", "morph.data.sample", ("seed", "data"), data.Sample, _sample),
    Stage("tokenizer", "tokenizer", "morph.data.tokenizer", ("seed", "data", "tokenizer"), data.Tokenizer,
          _tokenizer),
    # The scatter: one job per sample shard.
    Stage("tokenize_shard", "tokenize-shard", "morph.data.tokenize_shard", ("tokenizer",),
          data.TokenizeShard, _tokenize_shard,
          keys=lambda exp: exp.sample_shards, wildcard=("shard", SHARD_PATTERN)),
    Stage("tokenize_gather", "tokenize-gather", "morph.data.tokenize_gather", ("seed", "data", "tokenizer"),
          data.TokenizeGather, _tokenize_gather),
    Stage("train", "train", "morph.train.run", TRAIN_READS, train.Train, _train,
          keys=lambda exp: [r.run_id for r in (*exp.grid_runs, *exp.target_runs)],
          wildcard=("run_id", RUN_ID_PATTERN), threads=lambda exp: exp.train.threads, ranks=True),
    Stage("collect", "collect", "morph.train.collect", ("grid",), train.Collect, _collect),
    Stage("latency", "latency", "morph.latency.measure", ("seed", "tokenizer", "model", "latency"),
          latency.Latency, _latency,
          keys=lambda exp: [s.shape_id for s in exp.latency_shapes], wildcard=("shape_id", SHAPE_ID_PATTERN),
          threads=lambda exp: exp.latency.threads, exclusive=True),
    Stage("latency_collect", "latency-collect", "morph.latency.collect", ("latency",),
          latency.LatencyCollect, _latency_collect),
    # select.law: with auto, the zoo's winner is fitted too.
    Stage("laws", "laws", "morph.law.laws", ("seed", "tokenizer", "model", "fit", "grid", "select.law"),
          law.Laws, _laws),
    # latency: the device and dtype a KV-cache budget is counted in.
    Stage("candidates", "candidates", "morph.select.candidates", ("select", "latency"),
          select.Candidates, _candidates),
    Stage("select", "select", "morph.select.rank", ("select",), select.Select, _select),
    # The top-k slots: which shape each trains is read from the selection at run time.
    Stage("train_target", "train", "morph.train.run", TRAIN_READS, train.Train, _train_slot,
          keys=lambda exp: exp.slot_runs, wildcard=("slot", select.SLOT_PATTERN),
          threads=lambda exp: exp.train.threads, ranks=True),
    # model: scored at model.seq_len, the context the model was trained at.
    Stage("evaluate", "evaluate", "morph.evaluate.score", ("seed", "model", "evaluate"),
          evaluate.Evaluate, _evaluate,
          keys=lambda exp: exp.evaluated_models, wildcard=("model", r"[^/]+"),
          threads=lambda exp: exp.evaluate.threads),
    # seed, evaluate: the bootstrap behind the accuracy intervals; grid: the knob table; select: the verdict.
    Stage("report", "report", "morph.report.write", ("seed", "grid", "select", "evaluate"),
          report.Report, _report),
)
STAGE = {s.name: s for s in STAGES}
TRAINING = frozenset(s.name for s in STAGES if s.command == "train")  # the stages that train a model


def all_nodes(exp: Experiment, params: str = common.PARAMS) -> list[Node]:
    return [n for stage in STAGES for n in stage.nodes(exp, params)]


def folder_records(nodes: list[Node]) -> dict[str, frozenset[str]]:
    """Each folder output with the files its job writes with it. A node that reads a folder and one of those
    files sees any rebuild of the folder through the file, so Snakemake, which judges a folder by its modification
    time alone (a `cp -r` of the tree would rerun every reader), may ignore the folder's time."""
    return {d: frozenset(o for o in n.outs if o not in n.directories) for n in nodes for d in n.directories}


def params_read(exp: Experiment, keys: Iterable[str]) -> dict:
    """The values of the params keys a node reads: what both tools' rerun triggers and the records compare."""
    return {k: exp.params(k) for k in keys}


def reads_of(command: str) -> tuple[str, ...]:
    """The params keys the stage (or stages, for `train`) a `morph` command runs reads; () for a tool."""
    return tuple(dict.fromkeys(k for s in STAGES if s.command == command for k in s.reads))


@dataclass(frozen=True)
class Ranks:
    """How a training job's ranks start (Snakemake only: DVC runs every command once, on this machine)."""
    launch: str  # shell prefix before the command
    resources: dict  # for Snakemake's SLURM executor


def train_ranks(exp: Experiment) -> Ranks:
    """One rank: an ordinary job. Several: on one machine `morph train` starts them (through Lightning); inside
    a SLURM job srun starts one task per rank, and the job asks for train.num_nodes nodes x train.devices tasks
    per node (`mpi` makes the executor run the command once and leave the tasks to srun), with train.devices
    GPUs per node when train.accelerator is gpu."""
    t = exp.train
    gpus = {"gres": f"gpu:{t.devices}"} if t.accelerator == "gpu" else {}
    if t.world_size == 1:
        return Ranks("", gpus)
    # The executor's MPI jobs take tasks per node only above 1; one rank per node is then tasks = nodes.
    tasks = {"tasks_per_node": t.devices} if t.devices > 1 else {"tasks": t.world_size}
    srun = f"srun --nodes={t.num_nodes} --ntasks-per-node={t.devices} --kill-on-bad-exit=1"
    return Ranks(f"${{SLURM_JOB_ID:+{srun}}} ", {"mpi": "srun", "nodes": t.num_nodes, **tasks, **gpus})
