"""Print the chain of stages that produced a file: commands, params, input hashes, back to the raw shards."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import yaml

from morph.errors import MorphError
from morph.io import PARAMS_READ, sha256_tree
from morph.spec import experiment
from morph.spec.artifacts.common import PARAMS
from morph.spec.artifacts.data import SAMPLE, TOKENS, TOKENS_META
from morph.spec.experiment import Experiment
from morph.workflow import pipeline

# The CLI's --params, with no default: the experiment the outputs recorded is the default.
PARAMS_FLAG = {"help": "experiment file (default: the one the outputs recorded, else params.yaml)"}


def add_arguments(p):
    p.add_argument("path", help="a file the workflow produced, e.g. results/morph1b.json or a figure")
    p.add_argument("--lock", default="dvc.lock", help="DVC's lock file, for the hashes DVC recorded (optional)")
    p.add_argument("--json", action="store_true", help="print the chain as JSON")
    p.add_argument("--check", action="store_true",
                   help="exit 1, naming each file, if any input differs from the hash an output recorded or an "
                        "output was made under other params than the experiment's")


def producer_of(path: str, by_out: dict[str, pipeline.Node]) -> pipeline.Node | None:
    """The node whose output is `path` or a directory holding it."""
    p = Path(path)
    for candidate in (p, *p.parents):
        if str(candidate) in by_out:
            return by_out[str(candidate)]
    return None


def recorded(path: str, field: str) -> dict:
    """One field of the provenance a JSON output wrote about itself (io.provenance), or {}."""
    p = Path(path)
    if p.suffix != ".json" or not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # damaged: the stage that reads it refuses it by name
        return {}
    if not isinstance(data, dict):
        return {}
    # Stages record their provenance at the top level or inside their "provenance" block.
    nested = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
    return {**(nested.get(field) or {}), **(data.get(field) or {})}


def recorded_inputs(path: str) -> dict[str, str]:
    """The input hashes a JSON output recorded, if any."""
    return recorded(path, "inputs")


def _as_json(value) -> str:
    return json.dumps(value, sort_keys=True)


def changed_params(old, new, key: str) -> list[str]:
    """Each params key whose value differs, down to the leaves where both sides are sections."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for k in sorted({*old, *new}) for line in changed_params(old.get(k), new.get(k), f"{key}.{k}")]
    return [] if _as_json(old) == _as_json(new) else [f"{key} was {_as_json(old)}, now {_as_json(new)}"]


def stale_record(node: pipeline.Node, params: dict) -> dict | None:
    """The node's first output that records the params it was made under, with the keys that differ from `params`
    (the experiment's values of the keys the node reads); None if they agree or no output records them."""
    for out in node.outs:
        made = recorded(out, PARAMS_READ)
        if made:
            changed = [line for k in params for line in changed_params(made.get(k), params[k], k)]
            return {"record": out, "changed": changed} if changed else None
    return None


def dvc_lock_hashes(lock: Path) -> dict[str, dict[str, str]]:
    """stage name -> {path: md5} of the deps DVC recorded when it last ran the stage."""
    if not lock.exists():
        return {}
    stages = yaml.safe_load(lock.read_text(encoding="utf-8")).get("stages", {})
    return {name: {d["path"]: d.get("md5", "") for d in s.get("deps", [])} for name, s in stages.items()}


def chain(target: str, cfg: Experiment, params_path: str, lock: Path) -> list[dict]:
    nodes = pipeline.all_nodes(cfg, params_path)
    by_out = {out: n for n in nodes for out in n.outs}
    first = producer_of(target, by_out)
    if first is None:
        raise MorphError(f"{target}: no stage of the workflow produces this path (see `morph grid` and dvc.yaml)")
    locked = dvc_lock_hashes(lock)
    steps, seen, todo = [], set(), [(first, target)]
    while todo:
        node, wanted = todo.pop(0)
        if node.name in seen:
            continue
        seen.add(node.name)
        recorded = {k: v for o in node.outs for k, v in recorded_inputs(o).items()}
        deps = []
        for dep in node.deps:
            upstream = producer_of(dep, by_out)
            current = sha256_tree(dep) if Path(dep).exists() else None
            deps.append({
                "path": dep,
                "sha256": current,
                "recorded_sha256": recorded.get(dep),
                "dvc_md5": locked.get(node.name, {}).get(dep),
                "produced_by": upstream.name if upstream else "source",
            })
            if upstream:
                todo.append((upstream, dep))
        params = json.loads(_as_json(pipeline.params_read(cfg, node.params)))  # tuples as the records hold lists
        steps.append({
            "stage": node.name,
            "for": wanted,
            "cmd": node.cmd,
            "params": params,
            "stale": stale_record(node, params),
            "deps": deps,
            "outs": list(node.outs),
        })
    return steps


def recorded_experiment(target: str) -> str | None:
    """The experiment file the outputs behind `target` were made with, found through their recorded inputs."""
    todo, seen = [target], set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        inputs = recorded_inputs(path)
        for p in inputs:
            if Path(p).suffix in (".yaml", ".yml") and Path(p).is_file():
                return p
        todo += [p for p in inputs if p.endswith(".json")]
    return None


def choose_experiment(target: str, asked: str | None) -> str:
    """--params if given (warning when the outputs say otherwise), else what the outputs recorded."""
    recorded = recorded_experiment(target)
    if asked and recorded and Path(asked).resolve() != Path(recorded).resolve():
        print(f"morph lineage: warning: {target} was made with {recorded}, not {asked}; hashes and params below "
              f"are {asked}'s", file=sys.stderr)
    return asked or recorded or PARAMS


def run(args):
    params = choose_experiment(args.path, args.params)
    cfg = experiment.load(params)
    print(f"morph lineage: experiment {params}", file=sys.stderr)
    steps = chain(args.path, cfg, params, Path(args.lock))
    if args.json:
        print(json.dumps(steps, indent=2))
        return _verdict(steps, args.path, params) if args.check else 0
    for i, s in enumerate(steps):
        print(f"[{i}] {s['stage']}  (produces {s['for']})")
        if s["stale"]:
            print(f"    STALE: {s['stale']['record']} was made under {'; '.join(s['stale']['changed'])}")
        print(f"    cmd: {s['cmd']}")
        for key, value in s["params"].items():
            print(f"    param {key}: {json.dumps(value, sort_keys=True)}")
        for d in s["deps"]:
            note = "" if d["recorded_sha256"] in (None, d["sha256"]) else "  CHANGED since the output recorded it"
            digest = (d["sha256"] or "missing")[:16]
            print(f"    <- {d['path']}  sha256:{digest}  [{d['produced_by']}]{note}")
    sources = sorted({d["path"] for s in steps for d in s["deps"] if d["produced_by"] == "source"})
    print(f"sources: {', '.join(sources)}")
    return _verdict(steps, args.path, params) if args.check else 0


def mismatches(steps: list[dict], params_path: str) -> list[str]:
    """Each input whose current hash differs from what the output that read it recorded, and each output made
    under other params than the experiment's."""
    found = []
    for s in steps:
        if s["stale"]:
            record = s["stale"]["record"]
            found.append(f"{record}: made under other params than {params_path} holds now "
                         f"({'; '.join(s['stale']['changed'])}); rerun it: `snakemake -j1 "
                         f"{shlex.quote(record)} --configfile {shlex.quote(params_path)}` or `dvc repro {s['stage']}`")
        for d in s["deps"]:
            if d["recorded_sha256"] is not None and d["recorded_sha256"] != d["sha256"]:
                now = "missing" if d["sha256"] is None else "changed"
                if d["produced_by"] == "source":
                    fix = "restore it, or rerun the graph from it"
                elif d["path"].startswith((f"{SAMPLE}/", f"{TOKENS}/")):
                    # meta.json as a second target: the rebuilt data, byte-identical, then reruns no training
                    fix = (f"rebuild it and the tokens: `snakemake -j1 --force {shlex.quote(d['path'])} "
                           f"{TOKENS_META} --configfile <experiment>` or `dvc repro -f -s {d['produced_by']}`")
                else:
                    fix = f"rebuild it: `snakemake -R {d['path']} <target>` or `dvc repro -f {d['produced_by']}`"
                found.append(f"{d['path']}: {now} since {s['stage']} read it; {fix}")
    return found


def _verdict(steps: list[dict], target: str, params_path: str) -> int:
    found = mismatches(steps, params_path)
    for line in found:
        print(f"morph lineage: mismatch: {line}", file=sys.stderr)
    if found:
        print(f"morph lineage: {target} is stale: {len(found)} record(s) behind it disagree with the experiment or "
              f"the files (above); follow each fix, then `snakemake -j1 {shlex.quote(target)} --configfile "
              f"{shlex.quote(params_path)}` (or `dvc repro`) brings it up to date", file=sys.stderr)
    return 1 if found else 0
