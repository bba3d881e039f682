"""Snakemake and DVC hold the same graph, built from one table; dvc.yaml is current."""
from __future__ import annotations

import ast
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TWO_RUNS, write_params
from graphs import REPO, dvc_stages, edges, snakemake_jobs
from morph.core import experiment
from morph.core.artifacts import common, data, latency, law, report, select, train
from morph.core.artifacts.common import PARAMS
from morph.workflow import dvc_yaml, pipeline

MORPH = [sys.executable, "-m", "morph.cli"]


def test_committed_dvc_yaml_matches_params():
    out = subprocess.run(MORPH + ["dvc-yaml", "--check"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_stale_dvc_yaml_is_reported(tmp_path):
    stale = tmp_path / "dvc.yaml"
    stale.write_text("stages: {}\n")
    out = subprocess.run(MORPH + ["dvc-yaml", "--check", "--out", str(stale)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert "out of date with params.yaml" in out.stderr


def test_snakemake_and_dvc_hold_the_same_nodes_commands_and_edges():
    params = "configs/ci.yaml"
    smk = snakemake_jobs(params)
    text, count = dvc_yaml.render(experiment.load(REPO / params), params)
    dvc = dvc_stages(text)
    assert count == len(smk) == len(dvc)
    assert set(smk) == set(dvc), set(smk) ^ set(dvc)
    for outs, (rule, cmd, ins) in smk.items():
        name, dvc_cmd, deps = dvc[outs]
        assert name == rule or name.startswith(rule + "-"), (name, rule)
        assert cmd == dvc_cmd
        assert ins == deps, (name, ins ^ deps)
    assert edges(smk) == edges(dvc)
    # The whole method is one graph: every node but the report feeds some other node.
    producers = {producer for producer, _ in edges(dvc)}
    assert {cmd for _, cmd, _ in dvc.values() if not cmd.startswith("morph report")} <= producers


def test_adding_a_shape_adds_it_to_both_graphs(tmp_path):
    raw = yaml.safe_load((REPO / "configs/ci.yaml").read_text())
    raw["grid"]["shapes"] = [{"d_model": 48, "n_layers": 3}]
    params = tmp_path / "more.yaml"
    params.write_text(yaml.safe_dump(raw))
    cfg = experiment.load(params)
    before = experiment.load(REPO / "configs/ci.yaml").grid_runs
    new_runs = {r.run_id for r in cfg.grid_runs} - {r.run_id for r in before}
    assert new_runs == {"d48-l3-t2", "d48-l3-t4"}
    smk = snakemake_jobs(str(params))
    dvc = dvc_stages(dvc_yaml.render(cfg, str(params))[0])
    for rid in new_runs:
        outs = frozenset({train.run_model(rid), train.run_metrics(rid), train.loss_curve(rid)})
        assert outs in smk and outs in dvc
    latency_out = frozenset({"latency/d48-l3.json"})
    assert latency_out in smk and latency_out in dvc


SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.mark.parametrize("extra,named", [
    (["--configfile", "configs/ci.yaml", "--config", "seed=99"], "--config"),
    (["--config", "seed=99"], "--config"),
    (["--configfile", "configs/ci.yaml", PARAMS], "--configfile"),
])
def test_snakemake_overrides_are_refused_by_name(extra, named):
    out = subprocess.run([SNAKEMAKE, "-n", report.DECISION, *extra], cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0
    assert f"{named}:" in out.stdout + out.stderr and "Nothing to be done" not in out.stdout


def test_a_command_run_by_dvc_refuses_a_stale_dvc_yaml(tmp_path):
    """What `dvc exp run -S grid...` meets: params changed the graph, dvc.yaml did not. The dvc.yaml judged is the
    one in the folder DVC runs the stage in (a queued experiment's copy), not DVC_ROOT's (the tree it came from)."""
    params = tmp_path / PARAMS
    params.write_text((REPO / "configs/ci.yaml").read_text())
    with contextlib.chdir(tmp_path):  # the data globs resolve where DVC runs
        (tmp_path / "dvc.yaml").write_text(dvc_yaml.render(experiment.load(PARAMS), PARAMS)[0])
    (tmp_path / "queued-from").mkdir()  # holds no dvc.yaml: were it judged, nothing would be refused
    env = os.environ | {"DVC_STAGE": "collect", "DVC_ROOT": str(tmp_path / "queued-from")}
    cmd = MORPH + ["collect", "--params", PARAMS, "--runs-dir", "nowhere", "--out", train.RUNS_CSV]
    current = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "out of date" not in current.stderr  # past the guard: collect itself fails on the missing runs
    raw = yaml.safe_load(params.read_text())
    raw["grid"]["multipliers"] = [2, 3]
    params.write_text(yaml.safe_dump(raw))
    stale = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert stale.returncode == 2
    assert "dvc.yaml is out of date with params.yaml" in stale.stderr
    assert "morph dvc-yaml --params params.yaml" in stale.stderr and "morph dvc-exp -S" in stale.stderr
    assert not (tmp_path / train.RUNS_CSV).exists()


@pytest.mark.parametrize("overrides, extra, named", [
    (["grid.multiplier=[2]"], ["--queue"], "grid.multiplier"),  # no such key: DVC's grammar refuses a new one
    (["grid.multipliers=[0]"], ["--queue"], "grid.multipliers"),  # the experiment's schema refuses the value
    (["grid.multipliers=[2],[4]"], [], "--queue"),  # a sweep runs only from the queue
    (["grid.multipliers=[2],[4]"], ["--queue", "--name", "x"], "--name"),
])
def test_dvc_exp_refuses_bad_overrides_before_anything_is_queued(tmp_path, overrides, extra, named):
    for f in (PARAMS, "dvc.yaml"):
        (tmp_path / f).write_text((REPO / f).read_text())
    before = {f: (tmp_path / f).read_bytes() for f in (PARAMS, "dvc.yaml")}
    out = subprocess.run(MORPH + ["dvc-exp", *(a for o in overrides for a in ("-S", o)), *extra], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 2 and named in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert {f: (tmp_path / f).read_bytes() for f in before} == before


def test_each_stage_tracks_the_modules_it_runs():
    """Facts about the code, stated from what each command does, not read from the table."""
    nodes = {n.stage: n for n in pipeline.all_nodes(experiment.load(REPO / "configs/ci.yaml"), "configs/ci.yaml")}
    # Every model is built from shape.py, so a change there must reach training and timing.
    for stage in ("train", "train_target", "latency"):
        assert "src/morph/core/shape.py" in nodes[stage].deps, stage
    assert "src/morph/law/solvers.py" in nodes["select"].deps  # it predicts with the fitted law
    fitting = {f"src/morph/law/{m}.py" for m in ("forms", "solvers", "fitting")}
    assert not fitting & set(nodes["train"].deps + nodes["latency"].deps)
    assert not any(d.startswith("src/morph/report/") for n in nodes.values() if n.stage != "report" for d in n.deps)


def test_dvc_declares_flat_summary_metrics_and_the_plots_people_look_at():
    params = "configs/ci.yaml"
    cfg = experiment.load(REPO / params)
    dvc = yaml.safe_load(dvc_yaml.render(cfg, params)[0])
    assert dvc["stages"]["report"]["metrics"] == [report.SUMMARY]
    plots = {next(iter(p)) if isinstance(p, dict) else p: p for p in dvc["plots"]}
    slots = [f"top-{i}" + (f"-r{j}" if j else "") for i in (1, 2) for j in range(cfg.select.seeds)]
    runs = [r.run_id for r in (*cfg.grid_runs, *cfg.baseline_runs, *cfg.validation_runs)] + slots
    assert plots["training_loss"]["training_loss"]["y"] == {train.loss_curve(r): "train_loss" for r in runs}
    assert plots["latency_per_shape"]["latency_per_shape"]["y"] == {latency.LATENCY_CSV: "median"}
    assert plots["predicted_vs_actual_loss"]["predicted_vs_actual_loss"]["y"] == {
        f"{law.LAW_DIR}/{law.PREDICTIONS}": ["chinchilla", "inference-aware"]}
    # Every data file a plot reads is some stage's output, so DVC restores it with the rest.
    outs = {o for s in dvc["stages"].values() for o in s.get("outs", [])}
    for name in ("training_loss", "latency_per_shape", "predicted_vs_actual_loss"):
        assert set(plots[name][name]["y"]) <= outs, name
    figures = sorted(o for o in outs if o.endswith(".png"))
    assert common.figure(select.PARETO_FIGURE) in figures and set(figures) <= set(plots)


def test_every_figure_has_a_caption_for_the_snakemake_report():
    cfg = experiment.load(REPO / "configs/ci.yaml")
    figures = [o for n in pipeline.all_nodes(cfg) for o in n.outs if o.endswith(".png")]
    assert common.figure(report.LOSS_CURVES) in figures
    for fig in figures:
        assert (REPO / "report" / "captions" / f"{Path(fig).stem}.rst").read_text().strip(), fig


# Snakemake's own CLI, run in-process; afterwards, the timers that would hold the interpreter's exit.
UNTIL_EXIT = """
import sys, threading
from snakemake.cli import main
try:
    main(sys.argv[1:])
except SystemExit as end:
    code = end.code
pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.finished.is_set()]
print(f"pending timers: {len(pending)}")
sys.exit(code)
"""


def test_snakemake_ends_with_no_timer_holding_its_exit(tmp_path):
    """The rate limiter arms a 1 s non-daemon timer whenever Snakemake starts jobs. The last job here, the gather,
    takes well under a second, so without the rules' onsuccess hook its timer is still pending at the end."""
    for name in ("Snakefile", "rules", "src", "report"):
        (tmp_path / name).symlink_to(REPO / name)
    fixture = sorted((REPO / "data/raw/fixture").glob("*.jsonl.zst"))[0]
    (tmp_path / "data/raw/fixture").mkdir(parents=True)
    (tmp_path / "data/raw/fixture" / fixture.name).symlink_to(fixture)
    write_params(tmp_path / PARAMS, TWO_RUNS)
    env = os.environ | {"PATH": f"{Path(SNAKEMAKE).parent}:{os.environ['PATH']}"}  # the jobs' `morph`
    out = subprocess.run([sys.executable, "-c", UNTIL_EXIT, data.TOKENS_META, "-j1"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / data.TOKENS_META).is_file()
    assert "pending timers: 0" in out.stdout, out.stdout[-500:]


# -- every params key a stage's code reads is one its row declares ---------------------------------------------
SECTIONS = frozenset(f.name for f in __import__("dataclasses").fields(experiment.Experiment))
EXPERIMENT_NAMES = frozenset({"cfg", "exp", "experiment"})  # what stage code calls the loaded experiment


def params_reads(text: str) -> set[tuple[str, int]]:
    """(key, line) for each `cfg.<section>` and `cfg.<section>.<key>` in the source: a read the stage's row
    must declare, or a change to it would not rerun the stage. Reads inside Experiment's own methods are the
    loader's, checked by its schema."""
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in EXPERIMENT_NAMES \
                and node.attr in SECTIONS:
            found.add((node.attr, node.lineno))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and isinstance(node.value.value, ast.Name) and node.value.value.id in EXPERIMENT_NAMES \
                and node.value.attr in SECTIONS:
            found.add((f"{node.value.attr}.{node.attr}", node.lineno))
    return found


def declared(key: str, reads: tuple[str, ...]) -> bool:
    """A read of `key` is declared by the key itself, a section holding it, or (for a whole section read) a
    key inside it: `select.law` covers `cfg.select` as the row that reads only the law spells it."""
    return any(key == r or key.startswith(r + ".") or r.startswith(key + ".") for r in reads)


def test_every_params_key_a_stages_code_reads_is_declared_by_its_row():
    from morph.core import source

    undeclared = []
    for stage in pipeline.STAGES:
        for module in source.closure(stage.module):
            if module.startswith(("morph.core", "morph.workflow")):
                continue  # the loader and the graph, not the stage
            path = source.module_file(module)
            undeclared += [f"{stage.name} ({', '.join(stage.reads)}): {module}:{line} reads {key}"
                           for key, line in sorted(params_reads(path.read_text(encoding="utf-8")))
                           if not declared(key, stage.reads)]
    assert not undeclared, "declare these in the stage's row of pipeline.STAGES:\n" + "\n".join(undeclared)


def test_the_params_read_scan_sees_sections_and_keys_read_through_the_experiment():
    text = "def f(cfg, exp):\n    a = cfg.data.paths\n    b = exp.seed\n    c = other.data.paths\n"
    assert params_reads(text) == {("data", 2), ("data.paths", 2), ("seed", 3)}
    assert declared("data.paths", ("data",)) and declared("select", ("select.law",))
    assert not declared("data.paths", ("seed", "tokenizer"))


@pytest.mark.parametrize("params", [PARAMS, "configs/ci.yaml", "configs/paper.yaml"])
def test_every_command_the_table_builds_parses_with_its_stages_own_flags(params):
    """The builder's flags and the stage's add_arguments are two declarations of one interface: each node's
    command must parse with the CLI exactly (no unknown flag, every required one given)."""
    import shlex

    from morph import cli

    for node in pipeline.all_nodes(experiment.load(REPO / params), params):
        argv = shlex.split(node.cmd)[1:]  # past `morph`
        try:
            args = cli.build_parser(only=argv[0]).parse_args(argv)
        except SystemExit:
            pytest.fail(f"{node.name}: `{node.cmd}` does not parse with morph {argv[0]}'s flags")
        assert args.params == params and args.command == argv[0]


@pytest.mark.parametrize("params", [PARAMS, "configs/ci.yaml", "configs/paper.yaml"])
def test_a_stages_cli_flags_are_its_builders(params):
    """One declaration per stage interface: the parser a stage command gets offers exactly its interface's flags,
    no stage module declares flags of its own, and every node's command parses back into the very interface
    value its builder made (a flag the builder sets that the CLI would read into another field, or drop, fails)."""
    import dataclasses
    import importlib
    import shlex

    from morph import cli

    for stage in pipeline.STAGES:
        assert not hasattr(importlib.import_module(stage.module), "add_arguments"), stage.module
        parser = cli.build_parser(only=stage.command)
        sub = next(a for a in parser._actions if a.dest == "command").choices[stage.command]
        offered = {o for a in sub._actions for o in a.option_strings} - {"-h", "--help", "--params"}
        declared = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(stage.interface)}
        assert offered == declared, f"morph {stage.command}: CLI {sorted(offered ^ declared)} differ"
    exp = experiment.load(REPO / params)
    for stage in pipeline.STAGES:
        key = next(iter(stage.keys(exp)), None) if stage.keys else ""  # every key goes through one builder
        if key is None:
            continue
        made = stage.build(exp, key).args.under(exp.at)  # its paths inside the experiment's out_dir
        argv = shlex.split(stage.node(exp, params, key).cmd)[1:]
        parsed = stage.interface.from_namespace(cli.build_parser(only=argv[0]).parse_args(argv))
        assert parsed == made, f"{stage.name} {key}: the command parses to {parsed}, its builder made {made}"
