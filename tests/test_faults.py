"""Bad input and faults, one row each, every row checked the same four ways: the exit code; a
message naming the file or key and what to do; every file that existed before keeps its sha256;
and the recovery the message documents leaves a tree equal to the untouched one.

Each row builds its own small tree in a temporary folder (the shipped fixture and experiment files
copied in), breaks one thing, runs one `morph` command there, and then runs the recovery. The rows under
Snakemake and DVC work on a copy of the session's finished CI tree (conftest.ci_tree) instead."""
from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from conftest import CI_PARAMS, ROOT, TWO_RUNS, copy_tree, write_params
from morph import cli
from morph.core.artifacts.common import PARAMS, figure
from morph.core.artifacts.data import SAMPLE as SAMPLE_DIR
from morph.core.artifacts.data import SAMPLE_MANIFEST, TOKENIZER, TOKENIZER_JSON, TOKENS, TOKENS_META, sample_shard
from morph.core.artifacts.evaluate import eval_json
from morph.core.artifacts.latency import LATENCY_CSV, LATENCY_DIR, LATENCY_FIGURE, LATENCY_MODEL, latency_json
from morph.core.artifacts.law import law_json
from morph.core.artifacts.report import DECISION
from morph.core.artifacts.select import SELECTION, slot
from morph.core.artifacts.train import RUNS, RUNS_CSV, run_dir, run_metrics, run_model
from morph.core.io import sha256_file, write_json
from test_end_to_end import BIN, CI, fresh_copy, planned_jobs, sh

FIXTURE = sorted((ROOT / "data/raw/fixture").glob("*.jsonl.zst"))


@dataclass
class Case:
    name: str
    break_it: Callable[[Path], None]  # damages the tree in the given folder
    argv: list[str]  # the command a user runs next (cwd = the tree)
    code: int
    says: tuple[str, ...]  # the message names the file or key, and what to do
    recover: Callable[[Path], None] | None = None  # what the message tells the user to do
    recovered_argv: list[str] | None = None  # then this succeeds


def tree(root: Path) -> Path:
    """A small working tree: the CI experiment as params.yaml (PARAMS) and the fixture's first shard."""
    (root / "data/raw/fixture").mkdir(parents=True)
    shutil.copy2(FIXTURE[0], root / "data/raw/fixture" / FIXTURE[0].name)
    write_params(root / PARAMS, TWO_RUNS)
    return root


def edit_params(**dotted):
    def apply(root: Path) -> None:
        write_params(root / PARAMS, dotted, base=root / PARAMS)
    return apply


def restore_params(root: Path) -> None:
    shutil.copy2(root / ".params.good", root / PARAMS)


def write_shard(name: str, lines: list[bytes]):
    def apply(root: Path) -> None:
        (root / "data/raw/fixture" / name).write_bytes(zstandard.ZstdCompressor().compress(b"".join(lines)))
    return apply


def remove_extra_shards(root: Path) -> None:
    for f in (root / "data/raw/fixture").glob("*.jsonl.zst"):
        if f.name != FIXTURE[0].name:
            f.unlink()


def truncate(rel: str, keep: int):
    def apply(root: Path) -> None:
        f = root / rel
        f.write_bytes(f.read_bytes()[:keep])
    return apply


def raw_text(text: str):
    def apply(root: Path) -> None:
        (root / PARAMS).write_text(text)
    return apply


def append_to_params(data: bytes):
    def apply(root: Path) -> None:
        with open(root / PARAMS, "ab") as f:
            f.write(data)
    return apply


def write_runs(text: str):
    def apply(root: Path) -> None:
        (root / RUNS_CSV).parent.mkdir(parents=True, exist_ok=True)
        (root / RUNS_CSV).write_text(text)
    return apply


def make_dir(rel: str):
    def apply(root: Path) -> None:
        (root / rel).mkdir(parents=True)
        (root / rel / "inside.txt").write_text("a folder where a file belongs")
    return apply


def remove_dir(rel: str):
    return lambda root: shutil.rmtree(root / rel)


def damaged_model(root: Path) -> None:
    model = root / run_model(slot(1))
    model.mkdir(parents=True)
    for name in ("config.json", TOKENIZER_JSON):
        (model / name).write_text("{}")
    (model / "model.safetensors").write_bytes(os.urandom(4096))


def latency_records(**timing):
    """A record for every shape the experiment times, each with the given timings."""
    def apply(root: Path) -> None:
        from morph.core import experiment
        from morph.latency.collect import SHAPE_FIELDS

        for shape in experiment.load(root / PARAMS).latency_shapes:
            write_json(root / latency_json(shape.shape_id), {
                "shape_id": shape.shape_id, "shape": {k: getattr(shape, k) for k in SHAPE_FIELDS},
                "backends": {"hf": {"settings": {"decode": {"unit": "s", "batch": 1, "n": 3, **timing}}}}})
    return apply


# Chinchilla-shaped losses (E=1.7, A=400, alpha=0.34, B=410, beta=0.28) at three sizes and three budgets.
GOOD_RUNS = "params,tokens,loss\n" + "".join(
    f"{n},{d},{1.7 + 400 * n ** -0.34 + 410 * d ** -0.28}\n" for n in (1e6, 4e6, 1.6e7) for d in (2e7, 8e7, 3.2e8))
SAMPLE = ["sample", "--params", PARAMS, "--out", "out/sample"]
GRID = ["grid", "--params", PARAMS]
EVALUATE = ["evaluate", "--params", PARAMS, "--model", run_model(slot(1)), "--out", "out/eval.json"]
LATENCY_COLLECT = ["latency-collect", "--params", PARAMS, "--latency-dir", LATENCY_DIR, "--out", LATENCY_CSV,
                   "--model-out", LATENCY_MODEL, "--figure", figure(LATENCY_FIGURE)]
FIT = ["fit", "--runs", RUNS_CSV, "--law", "chinchilla", "--out", "out/fit.json"]
NESTED = b'{"text": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
CONFIG_SAYS = f"{PARAMS}: "
CASES = [
    Case("unknown key", edit_params(**{"data.shuffle": True}), SAMPLE, 2,
         (CONFIG_SAYS, "data.shuffle: unknown key", "allowed here"), restore_params, SAMPLE),
    Case("wrong type", edit_params(**{"train.lr": "fast"}), SAMPLE, 2,
         ("train.lr: expected float, got str 'fast'",), restore_params, SAMPLE),
    Case("negative budget", edit_params(**{"select.latency_budget_s": -1}), SAMPLE, 2,
         ("select.latency_budget_s: -1.0 must be above 0",), restore_params, SAMPLE),
    Case("depth 0", edit_params(**{"select.depths": [0, 2]}), SAMPLE, 2,
         ("select.depths[0]: 0 is below the minimum 1",), restore_params, SAMPLE),
    Case("d_model not divisible by n_heads", edit_params(**{"grid.shapes": [{"d_model": 33, "n_layers": 2}]}),
         SAMPLE, 2, ("grid.shapes[0].d_model: 33 is not divisible by n_heads=2",), restore_params, SAMPLE),
    Case("empty grid", edit_params(**{"grid.sizes": []}), SAMPLE, 2,
         ("grid: list at least one entry under grid.sizes or grid.shapes",), restore_params, SAMPLE),
    Case("YAML syntax error", raw_text("data: [unclosed\n"), SAMPLE, 2,
         (f"{PARAMS}: not valid YAML",), restore_params, SAMPLE),
    Case("k above the candidate set", edit_params(**{"select.k": 50}), SAMPLE, 2,
         ("select.k: 50 is more than the 3 candidate shapes", "lower k or add candidates"), restore_params, SAMPLE),
    Case("N_C no candidate reaches", edit_params(**{"select.params": 10}), SAMPLE, 2,
         ("select.params: no candidate is within 15% of N_C=10", "raise N_C"), restore_params, SAMPLE),
    Case("missing shard glob", edit_params(**{"data.paths": ["data/raw/nowhere/*.jsonl.zst"]}), SAMPLE, 2,
         ("data.paths: 'data/raw/nowhere/*.jsonl.zst' matches no file",), restore_params, SAMPLE),
    Case("truncated zstd", truncate(f"data/raw/fixture/{FIXTURE[0].name}", 5000), SAMPLE, 2,
         (FIXTURE[0].name,), lambda root: shutil.copy2(FIXTURE[0], root / "data/raw/fixture" / FIXTURE[0].name),
         SAMPLE),
    Case("a line that is not JSON", write_shard("zz-bad.jsonl.zst", [b'{"text": "fine"}\n', b"not json\n"]),
         SAMPLE, 2, ("zz-bad.jsonl.zst:2: invalid JSON",), remove_extra_shards, SAMPLE),
    Case("no text field", write_shard("zz-bad.jsonl.zst", [b'{"body": "no text here"}\n']), SAMPLE, 2,
         ("zz-bad.jsonl.zst", "text"), remove_extra_shards, SAMPLE),
    Case("corpus too small", edit_params(**{"data.train_tokens": 50_000_000}), SAMPLE, 2,
         ("data.train_tokens", "allow_repeat"), restore_params, SAMPLE),
    Case("missing model dir", lambda root: None, EVALUATE, 2, (run_model(slot(1)),)),
    Case("fit on a malformed CSV", write_runs("params,tokens,loss\n1e6,2e7,abc\n"), FIT, 2, (RUNS_CSV, "'loss'"),
         write_runs(GOOD_RUNS), FIT),
    Case("a latency record without a median", latency_records(p10=0.1, p90=0.2), LATENCY_COLLECT, 2,
         (f"{latency_json('d40-l1')}: backends.hf.settings.decode.median is None, not a number",
          "morph latency --shape")),
    Case("a latency record timed as 'fast'", latency_records(median="fast", p10=0.1, p90=0.2), LATENCY_COLLECT, 2,
         (f"{latency_json('d40-l1')}: backends.hf.settings.decode.median is 'fast', not a number",)),
    Case("random bytes in a model's weights", damaged_model, EVALUATE, 2,
         (f"{run_model(slot(1))}/model.safetensors: not readable weights",
          f"snakemake -j1 --force {run_metrics(slot(1))}")),
    # Refused when the file loads (the Snakefile loads it before any job starts), naming the key.
    Case("NaN learning rate", edit_params(**{"train.lr": float("nan")}), SAMPLE, 2,
         ("train.lr: nan is not a finite number",), restore_params, SAMPLE),
    Case("NaN tolerance", edit_params(**{"select.tolerance": float("nan")}), SAMPLE, 2,
         ("select.tolerance: nan is not a finite number",), restore_params, SAMPLE),
    Case("NaN margin, morph grid", edit_params(**{"data.margin": float("nan")}), GRID, 2,
         ("data.margin: nan is not a finite number",), restore_params, GRID),
    Case("infinite characters per token", edit_params(**{"data.chars_per_token": float("inf")}), GRID, 2,
         ("data.chars_per_token: inf is not a finite number",), restore_params, GRID),
    Case("a zero multiplier", edit_params(**{"grid.multipliers": [0, 1]}), SAMPLE, 2,
         ("grid.multipliers[0]: 0.0 must be above 0",), restore_params, SAMPLE),
    Case("a zero latency budget", edit_params(**{"select.latency_budget_s": 0}), SAMPLE, 2,
         ("select.latency_budget_s: 0.0 must be above 0",), restore_params, SAMPLE),
    Case("an absurd N_C", edit_params(**{"select.params": 10**15}), SAMPLE, 2,
         ("select.params: 1000000000000000 is above the maximum 1000000000000",), restore_params, SAMPLE),
    Case("a seed past 64 bits", edit_params(**{"seed": 1e30}), SAMPLE, 2,
         ("seed: 1e+30 does not fit in a 64-bit integer",), restore_params, SAMPLE),
    Case("a repeated key", append_to_params(b"seed: 3\n"), SAMPLE, 2,
         (CONFIG_SAYS, "seed: written twice (lines 1 and ", "delete the one you do not mean"), restore_params, SAMPLE),
    Case("a repeated section", append_to_params(b"train:\n  lr: 0.1\n"), SAMPLE, 2,
         (CONFIG_SAYS, "train: written twice"), restore_params, SAMPLE),
    Case("experiment file not UTF-8", append_to_params(b"# caf\xe9\n"), SAMPLE, 2,
         (CONFIG_SAYS, "not UTF-8 text", "save it as UTF-8"), restore_params, SAMPLE),
    Case("experiment file is a directory", make_dir("exp"), ["grid", "--params", "exp"], 2,
         ("exp: is a directory, not an experiment file",)),
    Case("a folder of experiment files as the experiment file",
         lambda root: ((root / "configs").mkdir(), shutil.copy2(root / PARAMS, root / "configs/ci.yaml")),
         ["grid", "--params", "configs"], 2,
         ("configs: is a directory, not an experiment file; pass a YAML file in it: configs/ci.yaml",),
         lambda root: None, ["grid", "--params", "configs/ci.yaml"]),
    Case("fit --runs a directory", make_dir(RUNS_CSV), FIT, 2, (f"{RUNS_CSV}: Is a directory", "check the path"),
         lambda root: (remove_dir(RUNS_CSV)(root), write_runs(GOOD_RUNS)(root)), FIT),
    Case("fit --out an existing directory",
         lambda root: (write_runs(GOOD_RUNS)(root), make_dir("out/fit.json")(root)), FIT, 2,
         ("out/fit.json: is a directory, where a file is to be written",),
         remove_dir("out/fit.json"), FIT),
    Case("a shard line nested 100k deep", write_shard("zz-bad.jsonl.zst", [NESTED]), SAMPLE, 2,
         ("zz-bad.jsonl.zst:1: JSON nested too deeply", "fix or remove the line"), remove_extra_shards, SAMPLE),
    Case("a lone surrogate in a document", write_shard("zz-bad.jsonl.zst", [b'{"text": "a\\ud800b"}\n']), SAMPLE, 2,
         ("zz-bad.jsonl.zst:1: `text` holds a lone surrogate",), remove_extra_shards, SAMPLE),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def run_morph(argv: list[str], cwd: Path, capsys) -> tuple[int, str]:
    with contextlib.chdir(cwd):
        code = cli.main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, tmp_path, capsys):
    root = tree(tmp_path / "tree")
    shutil.copy2(root / PARAMS, root / ".params.good")
    write_json(root / "out/finished.json", {"a result": 1})  # an output that must survive every case
    untouched = snapshot(root)
    case.break_it(root)
    broken = snapshot(root)
    code, err = run_morph(case.argv, root, capsys)
    assert code == case.code, err
    for text in case.says:
        assert text in err, (text, err)
    assert "Traceback" not in err
    after = snapshot(root)
    assert {k: after.get(k) for k in broken} == broken, "a file that existed before the command changed"
    assert not [k for k in after if k not in broken and "/." in f"/{k}"], "a temporary file was left behind"
    if case.recover:
        case.recover(root)
        assert {k: v for k, v in snapshot(root).items() if k in untouched} == untouched
        code, err = run_morph(case.recovered_argv, root, capsys)
        assert code == 0, err


def test_full_disk_names_the_file_and_keeps_the_old_output(tmp_path):
    """A real ENOSPC from a 64 KiB tmpfs, where this machine lets root mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and tmpfs to make a full disk")
    try:
        write_json(disk / "result.json", {"old": True})
        before = sha256_file(disk / "result.json")
        from morph.core.errors import MorphError

        with pytest.raises(MorphError) as err:
            write_json(disk / "result.json", {"big": "x" * 200_000})
        assert str(disk / "result.json") in str(err.value) and "No space left" in str(err.value)
        assert "free space" in str(err.value)
        assert sha256_file(disk / "result.json") == before
        assert [p.name for p in disk.iterdir()] == ["result.json"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_lineage_check_names_corrupt_weights_a_stage_recorded(tmp_path, capsys):
    """Truncated weights under a scored model: `morph lineage --check` exits 1 and names them."""
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "data/raw/fixture", root / "data/raw/fixture")
    shutil.copy2(CI_PARAMS, root / PARAMS)
    model = run_model(slot(1))
    weights = root / model / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(os.urandom(4096))
    from morph.core.io import provenance

    with contextlib.chdir(root):
        write_json(eval_json(slot(1)), {"provenance": provenance([model])})
    code, err = run_morph(["lineage", "--check", eval_json(slot(1))], root, capsys)
    assert code == 0, err
    truncate(f"{model}/model.safetensors", 100)(root)
    code, err = run_morph(["lineage", "--check", eval_json(slot(1))], root, capsys)
    assert code == 1
    assert f"{model}: changed since evaluate-{slot(1)} read it" in err
    assert f"snakemake -R {model}" in err and f"dvc repro -f train_target-{slot(1)}" in err


def test_snakemake_without_its_experiment_file_says_which(tmp_path):
    out = subprocess.run([str(Path(os.sys.executable).with_name("snakemake")), "-n", DECISION,
                          "--configfile", str(tmp_path / "nope.yaml")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert "nope.yaml" in out.stdout + out.stderr



def test_lineage_walks_the_experiment_the_decision_recorded(tmp_path, capsys):
    """On a tree made with another experiment file, lineage without --params uses that file, and says so;
    with a different --params it warns."""
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "data/raw/fixture", root / "data/raw/fixture")
    shutil.copy2(ROOT / PARAMS, root / PARAMS)
    (root / "configs").mkdir()
    shutil.copy2(CI_PARAMS, root / "configs/ci.yaml")
    from morph.core.io import provenance

    with contextlib.chdir(root):
        write_json(law_json("inference-aware"), provenance(["configs/ci.yaml"]))
        write_json(SELECTION, provenance([law_json("inference-aware")]))
        write_json(DECISION, provenance([SELECTION]))
    code, err = run_morph(["lineage", DECISION, "--json"], root, capsys)
    assert code == 0 and "experiment configs/ci.yaml" in err and "warning" not in err
    code, err = run_morph(["lineage", DECISION, "--params", PARAMS], root, capsys)
    assert code == 0
    assert f"warning: {DECISION} was made with configs/ci.yaml, not {PARAMS}" in err


# ---- training on a tree the graph's data commands built ------------------------------------------

@pytest.fixture(scope="module")
def tokens_tree(tmp_path_factory) -> Path:
    """The small tree with the sample and the tokens made by the commands the graph runs."""
    root = tree(tmp_path_factory.mktemp("tokens") / "tree")
    with contextlib.chdir(root):
        assert cli.main(["sample", "--params", PARAMS, "--out", SAMPLE_DIR]) == 0
        assert cli.main(["tokenize", "--params", PARAMS, "--sample", SAMPLE_DIR, "--out", TOKENS]) == 0
    return root


def first_run(params: Path) -> tuple[str, list[str]]:
    """The experiment's first grid run (`params`: the file, or a tree holding PARAMS) and its train argv."""
    from morph.core import experiment

    rid = experiment.load(params if params.is_file() else params / PARAMS).grid_runs[0].run_id
    return rid, ["train", "--params", PARAMS, "--run", rid, "--out", run_dir(rid)]


def test_tokens_for_another_vocabulary_are_refused_and_the_named_command_rebuilds_them(tokens_tree, tmp_path, capsys):
    root = Path(shutil.copytree(tokens_tree, tmp_path / "tree"))
    untouched = snapshot(root)
    meta = root / TOKENS_META
    meta.write_text(meta.read_text().replace('"vocab_size": 512', '"vocab_size": 4096'))
    broken = snapshot(root)
    assert broken != untouched
    _, argv = first_run(root)
    code, err = run_morph(argv, root, capsys)
    fix = f"morph tokenize --params {PARAMS} --out {TOKENS}"
    assert code == 2 and f"{TOKENS_META}: vocab_size 4096 differs" in err and fix in err, err
    assert snapshot(root) == broken and not (root / RUNS).exists()
    code, err = run_morph(fix.split()[1:], root, capsys)
    assert code == 0, err
    assert snapshot(root) == untouched


def test_an_unreadable_checkpoint_is_named_and_the_run_starts_afresh(tokens_tree, tmp_path, capsys):
    root = Path(shutil.copytree(tokens_tree, tmp_path / "tree"))
    rid, argv = first_run(root)
    ckpt = root / run_dir(rid) / "ckpt/last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(os.urandom(4096))  # e.g. from a disk that filled while it was written
    code, err = run_morph(argv, root, capsys)
    assert code == 0 and f"ignoring unreadable checkpoint {run_dir(rid)}/ckpt/last.ckpt" in err, err
    code, err = run_morph(argv[:-1] + [run_dir("clean")], root, capsys)
    assert code == 0, err
    afresh, clean = (json.loads((root / run_metrics(r)).read_text()) for r in (rid, "clean"))
    assert afresh["val_loss"] == clean["val_loss"] and afresh["resumed_from_step"] is None


def test_a_file_size_limit_while_checkpointing_names_the_checkpoint(tokens_tree, tmp_path):
    """`ulimit -f`: torch's writer says only "unexpected pos"; the message names the checkpoint and the cause."""
    root = Path(shutil.copytree(tokens_tree, tmp_path / "tree"))
    rid, argv = first_run(root)
    out = subprocess.run(["bash", "-c", 'ulimit -f 200; exec "$0" "$@"', str(BIN / "morph"), *argv], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 2, out.stderr[-3000:]
    assert f"{run_dir(rid)}/ckpt/last.ckpt: the checkpoint could not be written whole" in out.stderr
    assert "ulimit -f" in out.stderr and "Traceback" not in out.stderr
    assert not (root / run_metrics(rid)).exists()


# ---- the graph's tools on a fresh copy of the repository -----------------------------------------

def two_run_copy(dest: Path) -> Path:
    root = fresh_copy(dest)
    write_params(root / CI, TWO_RUNS)
    return root


@pytest.mark.slow
def test_a_second_snakemake_in_a_working_tree_is_refused_and_the_first_finishes(finished, two_runs, tmp_path):
    """While the first run has a job in flight (outputs marked incomplete), the second is refused before it
    plans, naming the first's pid, not advised to pass --rerun-incomplete; the first then finishes whole. The
    first retrains two runs of a copy of the finished tree and collects them again."""
    root = copy_of(finished, tmp_path / "tree")
    target = [RUNS_CSV, "--configfile", CI]
    log = open(tmp_path / "first.log", "w")  # a file, not a pipe: a full pipe would stall the first run
    first = subprocess.Popen(["snakemake", "-j1", *target, "--forcerun", *map(run_metrics, two_runs)], cwd=root,
                             stdout=log, stderr=subprocess.STDOUT,
                             env=os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"})
    incomplete = root / ".snakemake/incomplete"
    while first.poll() is None and not (incomplete.is_dir() and any(incomplete.iterdir())):
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before a job of it could be seen in flight"
    for second in (["snakemake", "-j1", *target], ["snakemake", "-j1", "--rerun-incomplete", *target],
                   ["snakemake", "--unlock", *target]):
        out = sh(second, root, check=False)
        assert out.returncode != 0, second
        said = out.stdout + out.stderr
        assert f".snakemake/morph.lock: another Snakemake (pid {first.pid}) is running in this tree" in said, said
        assert f"kill {first.pid}" in said and "Traceback" not in said
    assert first.wait(timeout=900) == 0, (tmp_path / "first.log").read_text()[-3000:]
    log.close()
    assert (tmp_path / "first.log").read_text().count("Finished jobid:") == len(two_runs) + 1  # the runs, collect
    assert planned_jobs(root, target=RUNS_CSV) == {}


@pytest.mark.slow
def test_snakemake_after_a_fresh_clones_dvc_repro_prints_the_command_that_adopts_the_tree(tmp_path):
    """A fresh clone built by `dvc repro` has no Snakemake records, so Snakemake would retrain; it prints the
    one command that adopts DVC's outputs, which runs nothing, and then plans nothing, and DVC stays clean."""
    root = two_run_copy(tmp_path / "tree")
    # N_C at the grid's size and depths 1 and 2 make the grid's two shapes the candidates: DVC times them and the
    # baseline, not also configs/ci.yaml's larger candidates, and every stage still has an output to adopt.
    write_params(root / CI, {"select.params": TWO_RUNS["grid.sizes"][0]["params"], "select.depths": [1, 2]},
                 base=root / CI)
    stages = ["collect", "latency_collect"]
    targets = [RUNS_CSV, LATENCY_CSV]
    sh(["morph", "dvc-yaml", "--params", CI], root)
    sh(["dvc", "repro", *stages], root, timeout=900)
    built = {p: sha256_file(root / p) for p in targets + [run_metrics("d40-l1-t2")]}
    out = sh(["snakemake", "-n", *targets, "--configfile", CI], root)
    # Folders are judged through the files their jobs write with them, so DVC's build plans nothing here.
    assert "Nothing to be done" in out.stdout, out.stdout[-2000:]
    hint = f"snakemake --touch -j1 {DECISION} --configfile {CI}"
    assert hint in out.stderr, out.stderr[-2000:]
    sh(hint.split(), root)
    assert "Nothing to be done" in sh(["snakemake", "-n", *targets, "--configfile", CI], root).stdout
    assert {p: sha256_file(root / p) for p in built} == built
    assert "up to date" in sh(["dvc", "status", *stages], root).stdout


# ---- a finished result under Snakemake: a bad edit or a damaged file never costs it ------------------------
# Snakemake deletes a job's outputs as the job starts, so these faults are refused when the Snakefile loads or,
# once the plan is known, before any job starts; every row checks that no finished file changed.

@pytest.fixture(scope="module")
def finished(ci_tree) -> Path:
    """The CI experiment's whole graph built through Snakemake (conftest.ci_tree), shared by the rows here: each
    works on a copy."""
    return ci_tree


def copy_of(tree: Path, dest: Path) -> Path:
    return copy_tree(tree, dest)  # modification times kept, as Snakemake judges them


def results(root: Path) -> dict[str, str]:
    """Every file the graph made or read, without the tools' logs, records and locks (a run holds DVC's lock too)."""
    return {k: v for k, v in snapshot(root).items() if not k.startswith((".snakemake/", ".dvc/tmp/", "logs/"))}


def refused(out: subprocess.CompletedProcess, *says: str) -> None:
    said = out.stdout + out.stderr
    assert out.returncode != 0, said[-3000:]
    for text in says:
        assert text in said, (text, said[-3000:])
    assert "Traceback" not in said


def lineage_check(root: Path) -> subprocess.CompletedProcess:
    return sh(["morph", "lineage", "--check", RUNS_CSV, "--params", CI], root, check=False)


EDITS = {
    "a typo in data.paths": (lambda t: t.replace("data/raw/fixture/*", "data/raw/fixtures/*"), RUNS_CSV,
                             "data.paths: 'data/raw/fixtures/*.jsonl.zst' matches no file"),
    "train.lr: .inf": (lambda t: t.replace("lr: 0.005", "lr: .inf"), run_metrics("{run}"),
                       "train.lr: inf is not a finite number"),
    "select.tolerance: .nan": (lambda t: t.replace("tolerance: 0.15", "tolerance: .nan"), RUNS_CSV,
                               "select.tolerance: nan is not a finite number"),
    "a second seed": (lambda t: t + "seed: 3\n", RUNS_CSV, "seed: written twice"),
    "a second train section": (lambda t: t + "train:\n  lr: 0.1\n", run_metrics("{run}"),
                               "train: written twice"),
    # In range for their type, meaningless in fact: an untrained model saved as trained, Adam that never updates.
    "train.lr: 0": (lambda t: t.replace("lr: 0.005", "lr: 0"), run_metrics("{run}"),
                    "train.lr: 0.0 must be above 0"),
    "train.beta2: 1.0": (lambda t: t.replace("lr: 0.005", "lr: 0.005\n  beta2: 1.0"), run_metrics("{run}"),
                         "train.beta2: 1.0 must be below 1"),
    # Found only once the plan is known (onstart): this machine has no GPU to train on.
    "train.accelerator: gpu": (lambda t: t.replace("lr: 0.005", "lr: 0.005\n  accelerator: gpu"),
                               run_metrics("{run}"), "train.accelerator: gpu, but torch sees no CUDA device"),
    "latency.new_tokens: 1000": (lambda t: t.replace("new_tokens: 32", "new_tokens: 1000"), RUNS_CSV,
                                 "latency.new_tokens: prompt_len 16 + new_tokens 1000 exceeds"),
}


@pytest.mark.slow
@pytest.mark.parametrize("edit", EDITS)
def test_a_bad_edit_is_refused_before_snakemake_deletes_anything(edit, finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    change, target, says = EDITS[edit]
    good = (root / CI).read_text()
    (root / CI).write_text(change(good))
    assert (root / CI).read_text() != good
    before = results(root)
    rid, _ = first_run(finished / CI)
    refused(sh(["snakemake", "-j1", target.format(run=rid), "--configfile", CI], root, check=False), says)
    assert results(root) == before
    (root / CI).write_text(good)
    assert planned_jobs(root, target=RUNS_CSV) == {}


@pytest.mark.slow
def test_an_experiment_file_named_with_spaces_quotes_and_accents_runs(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    name = "my exp's \u00e9t\u00e9.yaml"
    shutil.copy2(root / CI, root / name)
    sh(["snakemake", "-j1", TOKENS_META, "--configfile", name], root)
    assert planned_jobs(root, params=name, target=TOKENS_META) == {}


@pytest.mark.slow
def test_a_truncated_sample_shard_is_refused_keeping_the_tokenizer_and_flagged_by_lineage(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    shard = sample_shard("train-00000")
    truncate(shard, 20_000)(root)
    before = results(root)
    fix = f"snakemake -j1 --force {SAMPLE_MANIFEST} {TOKENS_META} --configfile {CI}"
    refused(sh(["snakemake", "-j1", RUNS_CSV, "--configfile", CI], root, check=False),
            f"{shard}: changed since {SAMPLE_MANIFEST} recorded its sha256", fix)
    assert results(root) == before
    check = lineage_check(root)
    assert check.returncode == 1, check.stderr
    assert f"{shard}: changed since tokenize_shard-train-00000 read it" in check.stderr
    assert f"snakemake -j1 --force {shard} {TOKENS_META}" in check.stderr
    sh(fix.split(), root)
    assert planned_jobs(root, target=RUNS_CSV) == {}, "the rebuilt, byte-identical data reran training"
    assert results(root) == results(finished)
    assert lineage_check(root).returncode == 0


@pytest.mark.slow
def test_a_corrupt_metrics_file_is_refused_keeping_runs_csv_and_flagged_by_lineage(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    rid, _ = first_run(root / CI)
    metrics = root / run_metrics(rid)
    good = metrics.read_bytes()
    metrics.write_text('{"val_loss": 3.')
    before = results(root)
    fix = f"snakemake -j1 --force {run_metrics(rid)} --configfile {CI}"
    refused(sh(["snakemake", "-j1", RUNS_CSV, "--configfile", CI], root, check=False),
            f"{run_metrics(rid)}: damaged", fix)
    assert results(root) == before
    check = lineage_check(root)
    assert check.returncode == 1 and f"{run_metrics(rid)}: changed since collect read it" in check.stderr
    collect = sh(["morph", "collect", "--params", CI], root, check=False)
    assert collect.returncode == 2 and f"{run_metrics(rid)}: corrupt JSON" in collect.stderr
    assert fix in collect.stderr and "or restore the file" in collect.stderr
    assert results(root) == before
    metrics.write_bytes(good)  # restored: Snakemake finds its checksum unchanged
    assert planned_jobs(root, target=RUNS_CSV) == {}
    assert lineage_check(root).returncode == 0


@pytest.mark.slow
def test_garbage_in_runs_csv_is_refused_before_the_law_fit_starts(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    (root / RUNS_CSV).write_bytes(b'params,tokens,loss\n1,"2\n\x00garbage,,,,\n')
    before = results(root)
    fix = f"snakemake -j1 --force {RUNS_CSV} --configfile {CI}"
    refused(sh(["snakemake", "-j1", law_json("chinchilla"), "--configfile", CI], root, check=False),
            f"{RUNS_CSV}: damaged", fix)
    # the finished fit's files are all there as they were, and no other: the law fit never started
    assert results(root) == before and law_json("chinchilla") in before
    sh(fix.split(), root)
    assert (root / RUNS_CSV).read_bytes() == (finished / RUNS_CSV).read_bytes()


@pytest.mark.slow
def test_an_incomplete_tokenizer_is_refused_by_training_and_flagged_by_lineage(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    (root / TOKENIZER / TOKENIZER_JSON).unlink()
    check = lineage_check(root)
    assert check.returncode == 1 and f"{TOKENIZER}: changed since tokenize_gather read it" in check.stderr
    assert f"snakemake -j1 --force {TOKENIZER} {TOKENS_META}" in check.stderr
    rid, _ = first_run(root / CI)
    train = sh(["morph", "train", "--params", CI, "--run", rid, "--out", str(tmp_path / "run")], root, check=False)
    fix = f"snakemake -j1 --force {TOKENIZER} {TOKENS_META} --configfile {CI}"
    assert train.returncode == 2, train.stderr[-3000:]
    assert (f"{TOKENIZER}: not the tokenizer {TOKENS_META} was built with ({TOKENIZER_JSON} is "
            "missing)") in train.stderr and fix in train.stderr and "Traceback" not in train.stderr
    assert not (tmp_path / "run/model").exists()
    sh(fix.split(), root)
    assert planned_jobs(root, target=RUNS_CSV) == {}, "the rebuilt, byte-identical tokenizer reran training"
    assert lineage_check(root).returncode == 0


# ---- one tree, two tools: Snakemake and DVC agree on what is current and never run at once ------------------

@pytest.mark.slow
def test_a_byte_identical_experiment_file_under_another_name_plans_nothing(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    shutil.copyfile(root / CI, root / "renamed.yaml")
    assert planned_jobs(root, params="renamed.yaml", target=RUNS_CSV) == {}


def dvc_status(root: Path) -> set[str]:
    """The stages `dvc status` lists as changed."""
    return set(re.findall(r"^(\S+):$", sh(["dvc", "status"], root).stdout, re.M))


@pytest.mark.slow
def test_after_a_snakemake_run_dvc_sees_its_jobs_current_and_repro_runs_nothing(finished, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    sh(["morph", "dvc-yaml", "--params", CI], root)
    sh(["snakemake", "-j1", "--force", RUNS_CSV, "--configfile", CI], root)  # collect runs; the rest is current
    before = results(root)
    from morph.core import experiment

    exp = experiment.load(root / CI)
    built = {"sample", "tokenizer", "tokenize_gather", "collect", *(f"tokenize_shard-{s}" for s in exp.sample_shards),
             *(f"train-{r.run_id}" for r in exp.grid_runs)}  # the jobs behind runs.csv
    changed = dvc_status(root)
    assert changed, "the stages after runs.csv never ran: dvc status must list them"
    assert not changed & built, changed & built
    repro = sh(["dvc", "repro", "collect"], root)
    assert "Running stage" not in repro.stdout, repro.stdout
    assert {k: v for k, v in results(root).items() if not k.startswith(".dvc/")} == {
        k: v for k, v in before.items() if not k.startswith(".dvc/")}


def rwlock_pids(root: Path) -> set[int]:
    f = root / ".dvc/tmp/rwlock"
    try:
        lock = json.loads(f.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return set()
    return {i["pid"] for i in lock.get("write", {}).values()}


@pytest.mark.slow
def test_dvc_repro_while_snakemake_runs_is_refused_and_deletes_nothing(finished, two_runs, tmp_path):
    root = copy_of(finished, tmp_path / "tree")
    sh(["morph", "dvc-yaml", "--params", CI], root)
    rid = two_runs[0]
    log = open(tmp_path / "snakemake.log", "w")
    first = subprocess.Popen(["snakemake", "-j1", "--force", run_metrics(rid), "--configfile", CI],
                             cwd=root, stdout=log, stderr=subprocess.STDOUT,
                             env=os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"})
    incomplete = root / ".snakemake/incomplete"
    while first.poll() is None and not (incomplete.is_dir() and any(incomplete.iterdir())):
        time.sleep(0.05)
    assert first.poll() is None, "the run ended before a job of it could be seen in flight"
    before = {k: v for k, v in results(root).items() if not k.startswith((f"{run_dir(rid)}/", ".dvc/"))}
    repro = sh(["dvc", "repro", "-s", "collect"], root, check=False)
    assert repro.returncode != 0 and "Unable to acquire lock" in repro.stderr, repro.stdout + repro.stderr
    assert {k: v for k, v in results(root).items() if k in before} == before
    assert first.wait(timeout=900) == 0, (tmp_path / "snakemake.log").read_text()[-3000:]
    log.close()


@pytest.mark.slow
def test_snakemake_while_dvc_runs_is_refused_and_a_killed_dvc_leaves_no_stale_lock(finished, two_runs, tmp_path):
    import signal

    from dvc.lock import Lock

    root = copy_of(finished, tmp_path / "tree")
    sh(["morph", "dvc-yaml", "--params", CI], root)
    dry_run = ["snakemake", "-n", RUNS_CSV, "--configfile", CI]
    held = Lock(str(root / ".dvc/tmp/lock"))  # as `dvc repro` holds it between stages
    held.lock()
    try:
        refused(sh(dry_run, root, check=False), f".dvc/tmp/lock: a dvc command (pid {os.getpid()}) is running")
    finally:
        held.unlock()
    rid = two_runs[0]
    dvc = subprocess.Popen(["dvc", "repro", "-s", "-f", f"train-{rid}"], cwd=root, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True,
                           env=os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"})
    try:
        while dvc.poll() is None and not rwlock_pids(root):  # its stage's command runs: DVC lets go of its lock
            time.sleep(0.05)
        assert dvc.poll() is None, "dvc repro ended before its stage could be seen running"
        refused(sh(dry_run, root, check=False), ".dvc/tmp/rwlock: `", f"repro -s -f train-{rid}` (pid {dvc.pid})",
                f"kill {dvc.pid}")
    finally:
        os.killpg(dvc.pid, signal.SIGKILL)
        dvc.wait()
    assert rwlock_pids(root) == {dvc.pid}, "the killed dvc's entry stays behind"
    assert sh(dry_run, root).returncode == 0


# The bound the data stages keep at any corpus size holds for any document: one of 50 M characters trains the
# tokenizer and encodes in parts.
LONG_DOCUMENT = r"""
import resource, sys
from pathlib import Path
import numpy as np
from morph.data.shards import read_docs, write_docs
from morph.data.tokenizer import train_bpe
from morph.data.tokenize_shard import encode_shard
text = " ".join(r["text"] for _, r in read_docs(sys.argv[1]))
text = (text * (50_000_000 // len(text) + 1))[:50_000_000]
write_docs("long.jsonl.zst", [{"text": text}])
del text
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tok = train_bpe([r["text"] for _, r in read_docs("long.jsonl.zst")], 512)
tok.encode_special_tokens = True
counts = encode_shard(tok, np.uint16, Path("long.jsonl.zst"), Path("long.bin"))
print(counts["docs"], counts["chars"], base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
def test_a_50_million_character_document_trains_the_tokenizer_and_encodes_under_the_memory_bound(tmp_path):
    out = subprocess.run([os.sys.executable, "-c", LONG_DOCUMENT, str(FIXTURE[0])], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env=os.environ | {"RAYON_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    docs, chars, before, peak = map(int, out.stdout.split())
    assert (docs, chars) == (1, 50_000_000)
    assert peak * 1024 < 1.5e9, f"peak RSS {peak / 1e6:.2f} GB (the document alone took {before / 1e6:.2f})"


# Rows that need a tree another file builds (a trained run, the whole CI graph) live beside that tree;
# this index keeps the suite's rows in one place.
ELSEWHERE = {
    "kill -9 then resume": "test_train.py::test_sigkill_then_restart_resumes_to_the_same_loss",
    "kill -9 of two ranks then resume": "test_train.py::test_sigkill_of_two_ranks_then_restart_resumes",
    "a diverging rerun of a finished run": "test_train.py::test_a_failed_rerun_keeps_the_old_complete_result",
    "two trainers on one run": "test_train.py::test_a_second_trainer_on_the_same_run_is_refused_naming_the_first",
    "token ids past the vocabulary": "test_train.py::test_token_ids_past_the_vocabulary_are_named",
    "a zstd shard with no documents": "test_data.py::test_a_shard_with_no_documents_is_named_in_a_warning",
    "a truncated token shard under the graph":
        "test_end_to_end.py::test_a_truncated_token_shard_keeps_finished_runs_and_its_named_command_rebuilds_it",
    "Snakemake on a tree DVC adopted":
        "test_end_to_end.py::test_snakemake_after_dvc_prints_the_command_that_adopts_the_tree",
    "links that loop under data/raw":
        "test_sources.py::test_the_glob_rule_walks_each_folder_once_and_reads_each_file_once",
    "a symlink loop under data/raw, sampled and tracked":
        "test_sources.py::test_a_symlink_loop_under_data_raw_repeats_no_document_in_the_sample_or_the_graph",
    "a held-out document also in training":
        "test_sources.py::test_a_held_out_document_also_drawn_for_training_is_refused_by_its_text",
    "a bad extra data shard under Snakemake":
        "test_sources.py::test_a_bad_extra_shard_is_refused_before_snakemake_deletes_the_sample",
}


@pytest.mark.parametrize("row", ELSEWHERE)
def test_each_row_kept_elsewhere_exists(row):
    file, name = ELSEWHERE[row].split("::")
    defined = {n.name for n in ast.parse((Path(__file__).parent / file).read_text()).body
               if isinstance(n, ast.FunctionDef)}
    assert name in defined, f"{row}: {ELSEWHERE[row]} is gone; move the row here or point at its new place"
