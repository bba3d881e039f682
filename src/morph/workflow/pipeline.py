"""The workflow graph as data: every node's command, inputs, outputs and the params it reads.

Both orchestrators read this one table: the rules in `rules/*.smk` take their commands, inputs,
outputs and params from it, and `morph dvc-yaml` writes dvc.yaml from `all_nodes(...)`. A
stage's code inputs are derived from its entry module's imports (`code_deps`), never listed.
"""
from __future__ import annotations

import glob
import shlex
from dataclasses import dataclass, field

from morph.law.names import AUTO
from morph.workflow import code_deps
from morph.workflow import paths as P
from morph.workflow.commands import COMMANDS
from morph.workflow.experiment import Experiment

# What training reads: meta.json names every token shard and the tokenizer with their sha256, so depending on
# it (and not on the shards or the tokenizer directory, which Snakemake judges by modification time alone)
# reruns training when their content changes, but not when a damaged one is rebuilt to the same bytes.
TOKEN_OUTS = (P.TOKENS_META,)
TASKS = "src/morph/evaluate/tasks"  # lm-eval task YAMLs and their helpers: the evaluate stage's data-as-code
TRAIN_PARAMS = ("seed", "tokenizer", "model", "train")


@dataclass(frozen=True)
class Node:
    stage: str  # the rule / stage family, e.g. "train"
    key: str  # the instance within the family ("" for singletons), e.g. a run id
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]  # params.yaml sections whose change must rerun this node
    metrics: tuple[str, ...] = field(default=())
    directories: tuple[str, ...] = field(default=())  # the outs that are folders

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.key}" if self.key else self.stage


def command(*words: str) -> str:
    """A shell command line with every word quoted where it needs it: paths and experiment files may hold
    spaces, quotes or any other character, and both tools run the line through a shell."""
    return " ".join(shlex.quote(str(w)) for w in words)


def code(command: str) -> tuple[str, ...]:
    """The source files `morph <command>` runs."""
    return code_deps.files(COMMANDS[command])


def _check(lookup, key: str) -> None:
    # Rules build their output templates with the wildcard itself as the key ("{run_id}").
    if not key.startswith("{"):
        lookup(key)  # a clear KeyError for an id the experiment does not hold


def sample(exp: Experiment, p: str) -> Node:
    # Globs are expanded: both tools track files. A glob matching nothing is refused before any job (preflight).
    sources = () if exp.data.source == "hub" else tuple(sorted(f for pat in exp.data.paths for f in glob.glob(pat)))
    return Node("sample", "", command("morph", "sample", "--params", p, "--out", P.SAMPLE),
                deps=(*code("sample"), *sources),
                outs=(P.SAMPLE_MANIFEST, *(P.sample_shard(s) for s in exp.sample_shards)), params=("seed", "data"))


def tokenizer(exp: Experiment, p: str) -> Node:
    train_shards = (P.sample_shard(s) for s in exp.sample_shards if s.startswith("train-"))
    return Node("tokenizer", "",
                command("morph", "tokenizer", "--params", p, "--sample", P.SAMPLE, "--out", P.TOKENIZER),
                deps=(*code("tokenizer"), P.SAMPLE_MANIFEST, *train_shards), outs=(P.TOKENIZER,),
                params=("seed", "tokenizer"), directories=(P.TOKENIZER,))


def _sample_shard(exp: Experiment, shard: str) -> None:
    if shard not in exp.sample_shards:
        raise KeyError(f"shard {shard!r} is not one of the experiment's sample shards (data.shard_mb sets them)")


def tokenize_shard(exp: Experiment, p: str, shard: str) -> Node:
    _check(lambda s: _sample_shard(exp, s), shard)
    out, summary = P.token_shard(shard), P.token_shard_summary(shard)
    return Node("tokenize_shard", shard,
                command("morph", "tokenize-shard", "--params", p, "--tokenizer", P.TOKENIZER,
                        "--shard", P.sample_shard(shard), "--out", out, "--summary", summary),
                deps=(*code("tokenize-shard"), P.TOKENIZER, P.sample_shard(shard)), outs=(out, summary),
                params=("tokenizer",))


def tokenize_gather(exp: Experiment, p: str) -> Node:
    return Node("tokenize_gather", "",
                command("morph", "tokenize-gather", "--params", p, "--sample", P.SAMPLE, "--tokens", P.TOKENS),
                deps=(*code("tokenize-gather"), P.SAMPLE_MANIFEST, P.TOKENIZER,
                      *(P.token_shard_summary(s) for s in exp.sample_shards)),
                outs=(P.TOKENS_META,), params=("data", "tokenizer"))


def _train_outs(run: str) -> dict:
    d = P.run_dir(run)
    return {"outs": (f"{d}/model", f"{d}/metrics.json", P.loss_curve(run)), "directories": (f"{d}/model",),
            "metrics": (f"{d}/metrics.json",), "params": TRAIN_PARAMS}


def train(exp: Experiment, p: str, run_id: str) -> Node:
    _check(exp.run, run_id)
    return Node("train", run_id,
                command("morph", "train", "--params", p, "--run", run_id, "--tokens", P.TOKENS,
                        "--out", P.run_dir(run_id)),
                deps=(*code("train"), *TOKEN_OUTS), **_train_outs(run_id))


def train_slot(exp: Experiment, p: str, slot: str) -> Node:
    # After the validation runs: a slot whose shape one of them trained copies it (train/run.py reuse_twin).
    validated = tuple(f"{P.run_dir(r.run_id)}/{P.RUN_METRICS}" for r in exp.validation_runs)
    return Node("train_target", slot,
                command("morph", "train", "--params", p, "--selection", P.SELECTION, "--slot", slot,
                        "--tokens", P.TOKENS, "--out", P.run_dir(slot)),
                deps=(*code("train"), *TOKEN_OUTS, P.SELECTION, *validated), **_train_outs(slot))


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


def collect(exp: Experiment, p: str) -> Node:
    return Node("collect", "", command("morph", "collect", "--params", p, "--runs-dir", P.RUNS, "--out", P.RUNS_CSV,
                                       "--inputs-out", P.RUNS_INPUTS),
                deps=(*code("collect"), *(f"{P.run_dir(r.run_id)}/metrics.json" for r in exp.grid_runs)),
                outs=(P.RUNS_CSV, P.RUNS_INPUTS), params=("grid",))


def latency(exp: Experiment, p: str, shape_id: str) -> Node:
    _check(exp.shape, shape_id)
    out = f"{P.LATENCY_DIR}/{shape_id}.json"
    return Node("latency", shape_id, command("morph", "latency", "--params", p, "--shape", shape_id, "--out", out),
                deps=code("latency"), outs=(out,), params=("seed", "tokenizer", "model", "latency"))


def latency_collect(exp: Experiment, p: str) -> Node:
    fig = P.figure("latency_shape")
    return Node("latency_collect", "",
                command("morph", "latency-collect", "--params", p, "--latency-dir", P.LATENCY_DIR,
                        "--out", P.LATENCY_CSV, "--model-out", P.LATENCY_MODEL, "--figure", fig),
                deps=(*code("latency-collect"), *(f"{P.LATENCY_DIR}/{s.shape_id}.json" for s in exp.latency_shapes)),
                outs=(P.LATENCY_CSV, P.LATENCY_MODEL, fig), params=("latency",))


def laws(exp: Experiment, p: str) -> Node:
    figures = [P.figure(f) for f in ("loss_vs_R", "predicted_vs_actual", "loss_vs_compute", "law_zoo")]
    return Node("laws", "",
                command("morph", "laws", "--params", p, "--runs", P.RUNS_CSV, "--out-dir", P.LAW_DIR,
                        "--figures", P.FIGURES),
                deps=(*code("laws"), P.RUNS_CSV),
                outs=(*(P.law_json(law) for law in exp.fit.laws),
                      *((P.law_json(AUTO),) if exp.select.law == AUTO else ()),  # the zoo's winner, fitted
                      f"{P.LAW_DIR}/ablations.json", f"{P.LAW_DIR}/ablations.md", f"{P.LAW_DIR}/zoo.json",
                      f"{P.LAW_DIR}/zoo.md", f"{P.LAW_DIR}/{P.LAW_PREDICTIONS}", *figures),
                params=("seed", "tokenizer", "model", "fit", "grid"))


def candidates(exp: Experiment, p: str) -> Node:
    return Node("candidates", "",
                command("morph", "candidates", "--params", p, "--latency", P.LATENCY_CSV,
                        "--latency-model", P.LATENCY_MODEL, "--out", P.CANDIDATES),
                deps=(*code("candidates"), P.LATENCY_CSV, P.LATENCY_MODEL), outs=(P.CANDIDATES,), params=("select",))


def select(exp: Experiment, p: str) -> Node:
    law = P.law_json(exp.select.law)
    fig = P.figure("pareto")
    return Node("select", "",
                command("morph", "select", "--params", p, "--candidates", P.CANDIDATES, "--law", law,
                        "--out", P.SELECTION, "--figure", fig),
                deps=(*code("select"), P.CANDIDATES, law), outs=(P.SELECTION, fig), params=("select",))


def evaluate(exp: Experiment, p: str, run: str) -> Node:
    out, lm_eval_out = P.eval_json(run), P.lm_eval_out(run)
    return Node("evaluate", run,
                command("morph", "evaluate", "--params", p, "--model", f"{P.run_dir(run)}/model", "--out", out,
                        "--lm-eval-out", lm_eval_out),
                deps=(*code("evaluate"), TASKS, f"{P.run_dir(run)}/model"), outs=(out, lm_eval_out),
                # model: scored at model.seq_len, the context the model was trained at
                # Its numbers reach `dvc metrics show` through the report's flat summary.
                params=("seed", "model", "evaluate"), directories=(lm_eval_out,))


def report(exp: Experiment, p: str) -> Node:
    runs = exp.evaluated_models
    validated = tuple(r.run_id for r in exp.validation_runs)
    return Node("report", "", command("morph", "report", "--params", p, "--out", P.DECISION, "--summary", P.SUMMARY,
                                      "--runs", P.RUNS_CSV, "--latency", P.LATENCY_CSV),
                deps=(*code("report"), P.SELECTION, P.RUNS_CSV, P.LATENCY_CSV,
                      *(f"{P.run_dir(r)}/metrics.json" for r in (*runs, *validated)),
                      *(P.loss_curve(r) for r in runs), *(P.eval_json(r) for r in runs),
                      *(P.lm_eval_out(r) for r in runs)),
                outs=(P.DECISION, P.REPORT_MD, P.SUMMARY, *(P.figure(f) for f in P.REPORT_FIGURES)),
                # seed, evaluate: the bootstrap that puts intervals on the accuracies and decides ties
                # grid: which runs are knob variants of which default (the knob table)
                params=("seed", "grid", "select", "evaluate"), metrics=(P.SUMMARY,))


def all_nodes(exp: Experiment, p: str = P.PARAMS) -> list[Node]:
    nodes = [sample(exp, p), tokenizer(exp, p), *(tokenize_shard(exp, p, s) for s in exp.sample_shards),
             tokenize_gather(exp, p)]
    nodes += [train(exp, p, r.run_id) for r in (*exp.grid_runs, exp.baseline, *exp.validation_runs)]
    nodes += [collect(exp, p)]
    nodes += [latency(exp, p, s.shape_id) for s in exp.latency_shapes]
    nodes += [latency_collect(exp, p), laws(exp, p), candidates(exp, p), select(exp, p)]
    nodes += [train_slot(exp, p, slot) for slot in exp.slots]
    nodes += [evaluate(exp, p, r) for r in exp.evaluated_models]
    nodes += [report(exp, p)]
    return nodes
