"""The workflow graph as data: every node's command, inputs, outputs and the params it reads.

Both orchestrators read this one table. The Snakefile's rules take their commands and inputs
from `node(...)`; `morph dvc-yaml` writes dvc.yaml from `all_nodes(...)`. A test builds both
graphs and checks that they hold the same nodes, commands and edges.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field

from . import grid

FIGURES = "results/figures"
# Files, not the directory, so `snakemake data/tokens/train.bin` names a target; the tokenizer is a directory.
TOKENS = ("data/tokens/train.bin", "data/tokens/val.bin", "data/tokens/meta.json", "data/tokens/tokenizer")
LAW_DIR = "results/law"


@dataclass(frozen=True)
class Node:
    stage: str  # the rule / stage family, e.g. "train"
    key: str  # the instance within the family ("" for singletons), e.g. a run id
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    params: tuple[str, ...]  # params.yaml sections whose change must rerun this node
    metrics: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.key}" if self.key else self.stage


def module(name: str) -> str:
    """A stage's own code is one of its inputs, so editing it reruns the stage and its dependents."""
    return f"src/morph/{name}.py"


def law_path(law: str) -> str:
    return f"{LAW_DIR}/{law}.json"


def sample(cfg: dict, p: str) -> Node:
    # Globs are expanded: both tools track files. A glob matching nothing is the sample stage's error to report.
    sources = () if cfg["data"]["source"] == "hub" else tuple(
        sorted(f for pattern in cfg["data"]["paths"] for f in glob.glob(pattern))
    )
    return Node(
        "sample", "", f"morph sample --params {p} --out data/sample",
        deps=(module("sample"), module("shards"), *sources), outs=("data/sample",), params=("seed", "data"),
    )


def tokenize(cfg: dict, p: str) -> Node:
    return Node(
        "tokenize", "", f"morph tokenize --params {p} --sample data/sample --out data/tokens",
        deps=(module("tokens"), module("encode"), module("shards"), "data/sample"), outs=TOKENS, params=("tokenizer",),
    )


TRAIN_PARAMS = ("seed", "tokenizer", "model", "train")
TRAIN_CODE = tuple(module(m) for m in ("train", "lm", "batches", "model", "checkpointing", "flops"))


def train(cfg: dict, p: str, run_id: str) -> Node:
    grid.find_run(cfg, run_id)  # a clear KeyError for an id the experiment does not hold
    return Node(
        "train", run_id,
        f"morph train --params {p} --run {run_id} --tokens data/tokens --out runs/{run_id}",
        deps=(*TRAIN_CODE, *TOKENS),
        outs=(f"runs/{run_id}/model", f"runs/{run_id}/metrics.json"),
        params=TRAIN_PARAMS, metrics=(f"runs/{run_id}/metrics.json",),
    )


def train_slot(cfg: dict, p: str, slot: str) -> Node:
    return Node(
        "train_target", slot,
        f"morph train --params {p} --selection results/selection.json --slot {slot} "
        f"--tokens data/tokens --out runs/{slot}",
        deps=(*TRAIN_CODE, *TOKENS, "results/selection.json"),
        outs=(f"runs/{slot}/model", f"runs/{slot}/metrics.json"),
        params=TRAIN_PARAMS, metrics=(f"runs/{slot}/metrics.json",),
    )


def collect(cfg: dict, p: str) -> Node:
    runs = [r.run_id for r in grid.grid_runs(cfg)]
    return Node(
        "collect", "", f"morph collect --params {p} --runs-dir runs --out results/runs.csv",
        deps=(module("collect"), *(f"runs/{r}/metrics.json" for r in runs)),
        outs=("results/runs.csv",), params=("grid",),
    )


def latency(cfg: dict, p: str, shape_id: str) -> Node:
    grid.find_shape(cfg, shape_id)
    return Node(
        "latency", shape_id, f"morph latency --params {p} --shape {shape_id} --out latency/{shape_id}.json",
        deps=(module("latency"), module("latency_backends"), module("latency_stats")),
        outs=(f"latency/{shape_id}.json",),
        params=("seed", "tokenizer", "model", "latency"),
    )


def latency_collect(cfg: dict, p: str) -> Node:
    shapes = [s.shape_id for s in grid.latency_shapes(cfg)]
    return Node(
        "latency_collect", "",
        f"morph latency-collect --params {p} --latency-dir latency --out results/latency.csv "
        f"--model-out results/latency_model.json --figure {FIGURES}/latency_shape.png",
        deps=(module("latency_collect"), module("latency_model"), module("latency_figure"), module("figures"),
              *(f"latency/{s}.json" for s in shapes)),
        outs=("results/latency.csv", "results/latency_model.json", f"{FIGURES}/latency_shape.png"),
        params=("latency",),
    )


def laws(cfg: dict, p: str) -> Node:
    return Node(
        "laws", "",
        f"morph laws --params {p} --runs results/runs.csv --out-dir {LAW_DIR} --figures {FIGURES}",
        deps=(*(module(m) for m in ("laws", "law", "solvers", "fit", "law_figures", "figures")), "results/runs.csv"),
        outs=(*(law_path(law) for law in cfg["fit"]["laws"]), f"{LAW_DIR}/ablations.json",
              f"{LAW_DIR}/ablations.md", f"{FIGURES}/loss_vs_R.png", f"{FIGURES}/predicted_vs_actual.png",
              f"{FIGURES}/loss_vs_compute.png"),
        params=("seed", "tokenizer", "model", "fit", "grid"),
    )


def candidates(cfg: dict, p: str) -> Node:
    return Node(
        "candidates", "",
        f"morph candidates --params {p} --latency results/latency.csv "
        f"--latency-model results/latency_model.json --out results/candidates.json",
        deps=(module("candidates"), "results/latency.csv", "results/latency_model.json"),
        outs=("results/candidates.json",), params=("select",),
    )


def select(cfg: dict, p: str) -> Node:
    law = cfg["select"]["law"]
    return Node(
        "select", "",
        f"morph select --params {p} --candidates results/candidates.json --law {law_path(law)} "
        f"--out results/selection.json",
        deps=(module("select"), module("fit"), module("law"), "results/candidates.json", law_path(law)),
        outs=("results/selection.json",), params=("select",),
    )


def evaluated_models(cfg: dict) -> list[str]:
    """Run directories that lm-eval scores: the top-k slots and the baseline."""
    return grid.target_slots(cfg) + [grid.baseline_run(cfg).run_id]


def evaluate(cfg: dict, p: str, run: str) -> Node:
    return Node(
        "evaluate", run, f"morph evaluate --params {p} --model runs/{run}/model --out results/eval/{run}.json",
        deps=(module("evaluate"), module("eval_data"), "src/morph/tasks", f"runs/{run}/model"),
        outs=(f"results/eval/{run}.json",),
        params=("evaluate",), metrics=(f"results/eval/{run}.json",),
    )


def report(cfg: dict, p: str) -> Node:
    runs = evaluated_models(cfg)
    return Node(
        "report", "", f"morph report --params {p} --out results/morph1b.json",
        deps=(module("report"), module("figures"), "results/selection.json",
              *(f"runs/{r}/metrics.json" for r in runs), *(f"results/eval/{r}.json" for r in runs)),
        outs=("results/morph1b.json", "results/report.md", f"{FIGURES}/accuracy_vs_latency.png",
              f"{FIGURES}/loss_vs_accuracy.png"),
        params=("select",), metrics=("results/morph1b.json",),
    )


def all_nodes(cfg: dict, p: str = "params.yaml") -> list[Node]:
    nodes = [sample(cfg, p), tokenize(cfg, p)]
    nodes += [train(cfg, p, r.run_id) for r in grid.grid_runs(cfg) + [grid.baseline_run(cfg)]]
    nodes += [collect(cfg, p)]
    nodes += [latency(cfg, p, s.shape_id) for s in grid.latency_shapes(cfg)]
    nodes += [latency_collect(cfg, p), laws(cfg, p), candidates(cfg, p), select(cfg, p)]
    nodes += [train_slot(cfg, p, slot) for slot in grid.target_slots(cfg)]
    nodes += [evaluate(cfg, p, r) for r in evaluated_models(cfg)]
    nodes += [report(cfg, p)]
    return nodes
