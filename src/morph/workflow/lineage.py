"""Print the chain of stages that produced a file: commands, params, input hashes, back to the raw shards.

By default the whole chain, every stage back to the sources with each input, code files included (thousands of
lines for a file the report writes). --depth N walks only N stages back (1: the stage that made the file, with its
direct inputs); --summary prints, instead of the chain, the stages and files per stage family, the sources at the
root, the params keys read and the direct inputs. --check always judges the whole chain, whatever --depth or
--summary shows."""
from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections import Counter
from pathlib import Path

import yaml

from morph.core import experiment, source
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import SAMPLE, TOKENS, TOKENS_META
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import PARAMS_READ, sha256_tree
from morph.workflow import pipeline

# The CLI's --params, with no default: the experiment the outputs recorded is the default.
PARAMS_FLAG = {"help": "experiment file (default: the one the outputs recorded, else params.yaml)"}


def add_arguments(p):
    p.add_argument("path", help="a file the workflow produced, e.g. results/morph1b.json or a figure")
    p.add_argument("--lock", default="dvc.lock", help="DVC's lock file, for the hashes DVC recorded (optional)")
    p.add_argument("--json", action="store_true", help="print the chain (or with --summary the summary) as JSON")
    p.add_argument("--depth", type=int, metavar="N",
                   help="walk at most N stages back from the file: 1 shows the stage that made it with its direct "
                        "inputs (default: the whole chain, back to the sources)")
    p.add_argument("--summary", action="store_true",
                   help="print a summary instead of the chain: stages and files per stage family, the sources at the "
                        "root, the params keys read and the file's direct inputs")
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


def chain(target: str, cfg: Experiment, params_path: str, lock: Path, depth: int | None = None) -> list[dict]:
    """The stages behind `target`, breadth first: each at its fewest steps back (`depth`, 0 for the stage that made
    the file), walking at most `depth` stages back when given (None: to the sources)."""
    nodes = pipeline.all_nodes(cfg, params_path)
    by_out = {out: n for n in nodes for out in n.outs}
    first = producer_of(target, by_out)
    if first is None:
        raise MorphError(f"{target}: no stage of the workflow produces this path (see `morph grid` and dvc.yaml)")
    locked = dvc_lock_hashes(lock)
    steps, seen, todo = [], set(), [(first, target, 0)]
    while todo:
        node, wanted, steps_back = todo.pop(0)
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
            if upstream and (depth is None or steps_back + 1 < depth):
                todo.append((upstream, dep, steps_back + 1))
        params = json.loads(_as_json(pipeline.params_read(cfg, node.params)))  # tuples as the records hold lists
        steps.append({
            "stage": node.name,
            "family": node.stage,
            "depth": steps_back,
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


# Above this many stages, a chain printed unasked says how to see less.
LONG_CHAIN = 10
CODE = os.path.relpath(source.PACKAGE_DIR, source.REPO)  # a source under it is code (the task YAMLs included)


SHORT_LIST = 8  # more direct inputs than this are counted per family in the summary's text


def is_code(path: str) -> bool:
    return Path(path).is_relative_to(CODE)


DATA_STAGES = frozenset(s.name for s in pipeline.STAGES if s.module.startswith("morph.data."))


def family_of(name: str) -> str:
    """The stage family of a node name (`train_target-top-1` -> train_target); "source" stays itself."""
    return name.split("-", 1)[0]  # stage names hold no hyphen; keys follow the first


def summary(steps: list[dict], target: str, params_path: str) -> dict:
    """What --summary prints: the chain counted per stage family (in graph order), its sources, the params keys
    its stages read, the direct inputs of the stage that made `target`, and the stages the walk stopped before."""
    order = [s.name for s in pipeline.STAGES]
    families: dict[str, dict] = {}
    for s in sorted(steps, key=lambda s: order.index(s["family"])):
        f = families.setdefault(s["family"], {"stages": 0, "inputs": set(), "outputs": set()})
        f["stages"] += 1
        f["inputs"].update(d["path"] for d in s["deps"])
        f["outputs"].update(s["outs"])
    sources = sorted({d["path"] for s in steps for d in s["deps"] if d["produced_by"] == "source"})
    walked = {s["stage"] for s in steps}
    first = steps[0]
    return {
        "target": target,
        "produced_by": first["stage"],
        "stages": len(steps),
        "depth": 1 + max(s["depth"] for s in steps),  # the --depth that shows them all
        "families": {name: {"stages": f["stages"], "inputs": len(f["inputs"]), "outputs": len(f["outputs"])}
                     for name, f in families.items()},
        "sources": [p for p in sources if not is_code(p)],
        "code_sources": len([p for p in sources if is_code(p)]),
        "params_read": sorted({k for s in steps for k in s["params"]}),
        "direct_inputs": [{"path": d["path"], "produced_by": d["produced_by"]} for d in first["deps"]
                          if not (d["produced_by"] == "source" and is_code(d["path"]))],
        "direct_code_inputs": len([d for d in first["deps"] if d["produced_by"] == "source" and is_code(d["path"])]),
        "not_walked": sorted({d["produced_by"] for s in steps for d in s["deps"]} - walked - {"source"}),
        "mismatches": len(mismatches(steps, params_path)),
    }


def summary_text(out: dict) -> str:
    lines = [f"{out['target']}: made by {out['produced_by']}; {out['stages']} stage(s) behind it within "
             f"--depth {out['depth']}",
             f"  {'stage family':<18}{'stages':>8}{'inputs':>8}{'outputs':>9}"]
    lines += [f"  {name:<18}{f['stages']:>8}{f['inputs']:>8}{f['outputs']:>9}" for name, f in out["families"].items()]
    lines.append(f"sources: {', '.join(out['sources']) or 'none'}; and {out['code_sources']} code file(s) under {CODE}")
    lines.append(f"params read: {', '.join(out['params_read']) or 'none'}")
    direct = out["direct_inputs"]
    if len(direct) <= SHORT_LIST:
        named = ", ".join(f"{d['path']} [{d['produced_by']}]" for d in direct)
    else:  # counted per producing stage family; --depth 1 lists them
        per = Counter(family_of(d["produced_by"]) for d in direct)
        named = f"{len(direct)} files, from " + ", ".join(f"{f} ({n})" for f, n in per.items())
    lines.append(f"direct inputs of {out['produced_by']}: {named or 'none'}; and {out['direct_code_inputs']} code "
                 "file(s)")
    if (beyond := out["not_walked"]):
        per = Counter(family_of(name) for name in beyond)
        lines.append("not walked (beyond --depth): " + (", ".join(beyond) if len(beyond) <= SHORT_LIST else
                                                        ", ".join(f"{f} ({n})" for f, n in per.items())))
    if out["mismatches"]:
        lines.append(f"{out['mismatches']} record(s) disagree with the files or the experiment: --check names them")
    return "\n".join(lines)


def run(args):
    if args.depth is not None and args.depth < 1:
        raise MorphError(f"--depth {args.depth}: must be at least 1 (1: the stage that made the file); leave it out "
                         "for the whole chain")
    params = choose_experiment(args.path, args.params)
    cfg = experiment.load(params)
    print(f"morph lineage: experiment {params}", file=sys.stderr)
    # --check judges the whole chain, whatever is shown.
    steps = chain(args.path, cfg, params, Path(args.lock), None if args.check else args.depth)
    shown = [s for s in steps if args.depth is None or s["depth"] < args.depth]
    verdict = (lambda: _verdict(steps, args.path, params)) if args.check else (lambda: 0)
    if args.summary:
        out = summary(shown, args.path, params)
        print(json.dumps(out, indent=2) if args.json else summary_text(out))
        return verdict()
    if args.json:
        print(json.dumps(shown, indent=2))
        return verdict()
    for i, s in enumerate(shown):
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
    sources = sorted({d["path"] for s in shown for d in s["deps"] if d["produced_by"] == "source"})
    print(f"sources: {', '.join(sources)}")
    if args.depth is None and len(shown) > LONG_CHAIN:
        print(f"morph lineage: {len(shown)} stages above; --summary counts them, --depth 1 shows the direct inputs",
              file=sys.stderr)
    return verdict()


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
                elif family_of(d["produced_by"]) in DATA_STAGES:
                    # meta.json as a second target: the rebuilt data, byte-identical, then reruns no training
                    out_dir = re.split(f"(?:{SAMPLE}|{TOKENS})/", d["path"])[0]
                    fix = (f"rebuild it and the tokens: `snakemake -j1 --force {shlex.quote(d['path'])} "
                           f"{out_dir}{TOKENS_META} --configfile <experiment>` or `dvc repro -f -s "
                           f"{d['produced_by']}`")
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
