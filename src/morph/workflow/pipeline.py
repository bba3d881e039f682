"""The workflow graph as data: every node's command, inputs, outputs and the params it reads.

Both orchestrators read this one table: the rules in `rules/*.smk` take their commands, inputs,
outputs and params from it, and `morph dvc-yaml` writes dvc.yaml from `all_nodes(...)`. A
stage's code inputs are derived from its entry module's imports (`code_deps`), never listed.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field

from morph.workflow import code_deps
from morph.workflow import paths as P
from morph.workflow.commands import COMMANDS
from morph.workflow.experiment import Experiment

TOKEN_OUTS = (*(f"{P.TOKENS}/{f}" for f in P.TOKEN_FILES), f"{P.TOKENS}/{P.TOKENIZER}")
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


def code(command: str) -> tuple[str, ...]:
    """The source files `morph <command>` runs."""
    return code_deps.files(COMMANDS[command])


def _check(lookup, key: str) -> None:
    # Rules build their output templates with the wildcard itself as the key ("{run_id}").
    if not key.startswith("{"):
        lookup(key)  # a clear KeyError for an id the experiment does not hold


def sample(exp: Experiment, p: str) -> Node:
    # Globs are expanded: both tools track files. A glob matching nothing is the sample stage's error to report.
    sources = () if exp.data.source == "hub" else tuple(sorted(f for pat in exp.data.paths for f in glob.glob(pat)))
    return Node("sample", "", f"morph sample --params {p} --out {P.SAMPLE}", deps=(*code("sample"), *sources),
                outs=(P.SAMPLE,), params=("seed", "data"), directories=(P.SAMPLE,))


def tokenize(exp: Experiment, p: str) -> Node:
    return Node("tokenize", "", f"morph tokenize --params {p} --sample {P.SAMPLE} --out {P.TOKENS}",
                deps=(*code("tokenize"), P.SAMPLE), outs=TOKEN_OUTS, params=("tokenizer",),
                directories=(f"{P.TOKENS}/{P.TOKENIZER}",))


def _train_outs(run: str) -> dict:
    d = P.run_dir(run)
    return {"outs": (f"{d}/model", f"{d}/metrics.json"), "directories": (f"{d}/model",),
            "metrics": (f"{d}/metrics.json",), "params": TRAIN_PARAMS}


def train(exp: Experiment, p: str, run_id: str) -> Node:
    _check(exp.run, run_id)
    return Node("train", run_id, f"morph train --params {p} --run {run_id} --tokens {P.TOKENS} --out {P.run_dir(run_id)}",
                deps=(*code("train"), *TOKEN_OUTS), **_train_outs(run_id))


def train_slot(exp: Experiment, p: str, slot: str) -> Node:
    return Node("train_target", slot,
                f"morph train --params {p} --selection {P.SELECTION} --slot {slot} --tokens {P.TOKENS} "
                f"--out {P.run_dir(slot)}",
                deps=(*code("train"), *TOKEN_OUTS, P.SELECTION), **_train_outs(slot))


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
    return Node("collect", "", f"morph collect --params {p} --runs-dir {P.RUNS} --out {P.RUNS_CSV}",
                deps=(*code("collect"), *(f"{P.run_dir(r.run_id)}/metrics.json" for r in exp.grid_runs)),
                outs=(P.RUNS_CSV,), params=("grid",))


def latency(exp: Experiment, p: str, shape_id: str) -> Node:
    _check(exp.shape, shape_id)
    out = f"{P.LATENCY_DIR}/{shape_id}.json"
    return Node("latency", shape_id, f"morph latency --params {p} --shape {shape_id} --out {out}",
                deps=code("latency"), outs=(out,), params=("seed", "tokenizer", "model", "latency"))


def latency_collect(exp: Experiment, p: str) -> Node:
    fig = P.figure("latency_shape")
    return Node("latency_collect", "",
                f"morph latency-collect --params {p} --latency-dir {P.LATENCY_DIR} --out {P.LATENCY_CSV} "
                f"--model-out {P.LATENCY_MODEL} --figure {fig}",
                deps=(*code("latency-collect"), *(f"{P.LATENCY_DIR}/{s.shape_id}.json" for s in exp.latency_shapes)),
                outs=(P.LATENCY_CSV, P.LATENCY_MODEL, fig), params=("latency",))


def laws(exp: Experiment, p: str) -> Node:
    figures = [P.figure(f) for f in ("loss_vs_R", "predicted_vs_actual", "loss_vs_compute")]
    return Node("laws", "",
                f"morph laws --params {p} --runs {P.RUNS_CSV} --out-dir {P.LAW_DIR} --figures {P.FIGURES}",
                deps=(*code("laws"), P.RUNS_CSV),
                outs=(*(P.law_json(law) for law in exp.fit.laws), f"{P.LAW_DIR}/ablations.json",
                      f"{P.LAW_DIR}/ablations.md", *figures),
                params=("seed", "tokenizer", "model", "fit", "grid"))


def candidates(exp: Experiment, p: str) -> Node:
    return Node("candidates", "",
                f"morph candidates --params {p} --latency {P.LATENCY_CSV} --latency-model {P.LATENCY_MODEL} "
                f"--out {P.CANDIDATES}",
                deps=(*code("candidates"), P.LATENCY_CSV, P.LATENCY_MODEL), outs=(P.CANDIDATES,), params=("select",))


def select(exp: Experiment, p: str) -> Node:
    law = P.law_json(exp.select.law)
    return Node("select", "", f"morph select --params {p} --candidates {P.CANDIDATES} --law {law} --out {P.SELECTION}",
                deps=(*code("select"), P.CANDIDATES, law), outs=(P.SELECTION,), params=("select",))


def evaluate(exp: Experiment, p: str, run: str) -> Node:
    out = f"{P.EVAL_DIR}/{run}.json"
    return Node("evaluate", run, f"morph evaluate --params {p} --model {P.run_dir(run)}/model --out {out}",
                deps=(*code("evaluate"), TASKS, f"{P.run_dir(run)}/model"), outs=(out,),
                params=("evaluate",), metrics=(out,))


def report(exp: Experiment, p: str) -> Node:
    runs = exp.evaluated_models
    return Node("report", "", f"morph report --params {p} --out {P.DECISION}",
                deps=(*code("report"), P.SELECTION, *(f"{P.run_dir(r)}/metrics.json" for r in runs),
                      *(f"{P.EVAL_DIR}/{r}.json" for r in runs)),
                outs=(P.DECISION, P.REPORT_MD, P.figure("accuracy_vs_latency"), P.figure("loss_vs_accuracy")),
                params=("select",), metrics=(P.DECISION,))


def all_nodes(exp: Experiment, p: str = P.PARAMS) -> list[Node]:
    nodes = [sample(exp, p), tokenize(exp, p)]
    nodes += [train(exp, p, r.run_id) for r in (*exp.grid_runs, exp.baseline)]
    nodes += [collect(exp, p)]
    nodes += [latency(exp, p, s.shape_id) for s in exp.latency_shapes]
    nodes += [latency_collect(exp, p), laws(exp, p), candidates(exp, p), select(exp, p)]
    nodes += [train_slot(exp, p, slot) for slot in exp.slots]
    nodes += [evaluate(exp, p, r) for r in exp.evaluated_models]
    nodes += [report(exp, p)]
    return nodes
