"""Bad input and faults, one row each, every row checked the same four ways: the exit code; a
message naming the file or key and what to do; every file that existed before keeps its sha256;
and the recovery the message documents leaves a tree equal to the untouched one.

Each row builds its own small tree in a temporary folder (the shipped fixture and experiment files
copied in), breaks one thing, runs one `morph` command there, and then runs the recovery."""
from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import zstandard
from conftest import CI_PARAMS, ROOT, TWO_RUNS, write_params
from test_end_to_end import BIN, CI, fresh_copy, planned_jobs, sh

from morph import cli
from morph.io import sha256_file, write_json

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
    """A small working tree: the CI experiment as params.yaml and the fixture's first shard."""
    (root / "data/raw/fixture").mkdir(parents=True)
    shutil.copy2(FIXTURE[0], root / "data/raw/fixture" / FIXTURE[0].name)
    write_params(root / "params.yaml", TWO_RUNS)
    return root


def edit_params(**dotted):
    def apply(root: Path) -> None:
        write_params(root / "params.yaml", dotted, base=root / "params.yaml")
    return apply


def restore_params(root: Path) -> None:
    shutil.copy2(root / ".params.good", root / "params.yaml")


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
        (root / "params.yaml").write_text(text)
    return apply


# Chinchilla-shaped losses (E=1.7, A=400, alpha=0.34, B=410, beta=0.28) at three sizes and three budgets.
GOOD_RUNS = "params,tokens,loss\n" + "".join(
    f"{n},{d},{1.7 + 400 * n ** -0.34 + 410 * d ** -0.28}\n" for n in (1e6, 4e6, 1.6e7) for d in (2e7, 8e7, 3.2e8))
SAMPLE = ["sample", "--params", "params.yaml", "--out", "out/sample"]
CONFIG_SAYS = "params.yaml: "
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
         ("params.yaml: not valid YAML",), restore_params, SAMPLE),
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
    Case("missing model dir", lambda root: None,
         ["evaluate", "--params", "params.yaml", "--model", "runs/top-1/model", "--out", "out/eval.json"], 2,
         ("runs/top-1/model",)),
    Case("fit on a malformed CSV", lambda root: (root / "runs.csv").write_text("params,tokens,loss\n1e6,2e7,abc\n"),
         ["fit", "--runs", "runs.csv", "--law", "chinchilla", "--out", "out/fit.json"], 2,
         ("runs.csv", "'loss'"),
         lambda root: (root / "runs.csv").write_text(GOOD_RUNS),
         ["fit", "--runs", "runs.csv", "--law", "chinchilla", "--out", "out/fit.json"]),
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
    shutil.copy2(root / "params.yaml", root / ".params.good")
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
        from morph.errors import MorphError

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
    shutil.copy2(CI_PARAMS, root / "params.yaml")
    weights = root / "runs/top-1/model/model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(os.urandom(4096))
    from morph.io import provenance

    with contextlib.chdir(root):
        write_json("results/eval/top-1.json", {"provenance": provenance(["runs/top-1/model"])})
    code, err = run_morph(["lineage", "--check", "results/eval/top-1.json"], root, capsys)
    assert code == 0, err
    truncate("runs/top-1/model/model.safetensors", 100)(root)
    code, err = run_morph(["lineage", "--check", "results/eval/top-1.json"], root, capsys)
    assert code == 1
    assert "runs/top-1/model: changed since evaluate-top-1 read it" in err
    assert "snakemake -R runs/top-1/model" in err and "dvc repro -f train_target-top-1" in err


def test_snakemake_without_its_experiment_file_says_which(tmp_path):
    out = subprocess.run([str(Path(os.sys.executable).with_name("snakemake")), "-n", "results/morph1b.json",
                          "--configfile", str(tmp_path / "nope.yaml")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert "nope.yaml" in out.stdout + out.stderr



def test_lineage_walks_the_experiment_the_decision_recorded(tmp_path, capsys):
    """On a tree made with another experiment file, lineage without --params uses that file, and says so;
    with a different --params it warns."""
    root = tmp_path / "tree"
    shutil.copytree(ROOT / "data/raw/fixture", root / "data/raw/fixture")
    shutil.copy2(ROOT / "params.yaml", root / "params.yaml")
    (root / "configs").mkdir()
    shutil.copy2(CI_PARAMS, root / "configs/ci.yaml")
    from morph.io import provenance

    with contextlib.chdir(root):
        write_json("results/law/inference-aware.json", provenance(["configs/ci.yaml"]))
        write_json("results/selection.json", provenance(["results/law/inference-aware.json"]))
        write_json("results/morph1b.json", provenance(["results/selection.json"]))
    code, err = run_morph(["lineage", "results/morph1b.json", "--json"], root, capsys)
    assert code == 0 and "experiment configs/ci.yaml" in err and "warning" not in err
    code, err = run_morph(["lineage", "results/morph1b.json", "--params", "params.yaml"], root, capsys)
    assert code == 0
    assert "warning: results/morph1b.json was made with configs/ci.yaml, not params.yaml" in err


# ---- training on a tree the graph's data commands built ------------------------------------------

@pytest.fixture(scope="module")
def tokens_tree(tmp_path_factory) -> Path:
    """The small tree with data/sample and data/tokens made by the commands the graph runs."""
    root = tree(tmp_path_factory.mktemp("tokens") / "tree")
    with contextlib.chdir(root):
        assert cli.main(["sample", "--params", "params.yaml", "--out", "data/sample"]) == 0
        assert cli.main(["tokenize", "--params", "params.yaml", "--sample", "data/sample", "--out", "data/tokens"]) == 0
    return root


def first_run(root: Path) -> tuple[str, list[str]]:
    from morph.workflow import experiment

    rid = experiment.load(root / "params.yaml").grid_runs[0].run_id
    return rid, ["train", "--params", "params.yaml", "--run", rid, "--out", f"runs/{rid}"]


def test_tokens_for_another_vocabulary_are_refused_and_the_named_command_rebuilds_them(tokens_tree, tmp_path, capsys):
    root = Path(shutil.copytree(tokens_tree, tmp_path / "tree"))
    untouched = snapshot(root)
    meta = root / "data/tokens/meta.json"
    meta.write_text(meta.read_text().replace('"vocab_size": 512', '"vocab_size": 4096'))
    broken = snapshot(root)
    assert broken != untouched
    _, argv = first_run(root)
    code, err = run_morph(argv, root, capsys)
    fix = "morph tokenize --params params.yaml --out data/tokens"
    assert code == 2 and "data/tokens/meta.json: vocab_size 4096 differs" in err and fix in err, err
    assert snapshot(root) == broken and not (root / "runs").exists()
    code, err = run_morph(fix.split()[1:], root, capsys)
    assert code == 0, err
    assert snapshot(root) == untouched


def test_an_unreadable_checkpoint_is_named_and_the_run_starts_afresh(tokens_tree, tmp_path, capsys):
    root = Path(shutil.copytree(tokens_tree, tmp_path / "tree"))
    rid, argv = first_run(root)
    ckpt = root / f"runs/{rid}/ckpt/last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(os.urandom(4096))  # e.g. from a disk that filled while it was written
    code, err = run_morph(argv, root, capsys)
    assert code == 0 and f"ignoring unreadable checkpoint runs/{rid}/ckpt/last.ckpt" in err, err
    code, err = run_morph(argv[:-1] + ["runs/clean"], root, capsys)
    assert code == 0, err
    afresh, clean = (json.loads((root / d / "metrics.json").read_text()) for d in (f"runs/{rid}", "runs/clean"))
    assert afresh["val_loss"] == clean["val_loss"] and afresh["resumed_from_step"] is None


# ---- the graph's tools on a fresh copy of the repository -----------------------------------------

def two_run_copy(dest: Path) -> Path:
    root = fresh_copy(dest)
    write_params(root / CI, TWO_RUNS)
    return root


@pytest.mark.slow
def test_a_second_snakemake_in_a_working_tree_is_refused_and_the_first_finishes(tmp_path):
    """While the first run has a job in flight (outputs marked incomplete), the second is refused before it
    plans, naming the first's pid, not advised to pass --rerun-incomplete; the first then finishes whole."""
    root = two_run_copy(tmp_path / "tree")
    target = ["results/runs.csv", "--configfile", CI]
    log = open(tmp_path / "first.log", "w")  # a file, not a pipe: a full pipe would stall the first run
    first = subprocess.Popen(["snakemake", "-j1", *target], cwd=root, stdout=log, stderr=subprocess.STDOUT,
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
    assert planned_jobs(root, target="results/runs.csv") == {}


@pytest.mark.slow
def test_snakemake_after_a_fresh_clones_dvc_repro_prints_the_command_that_adopts_the_tree(tmp_path):
    """A fresh clone built by `dvc repro` has no Snakemake records, so Snakemake would retrain; it prints the
    one command that adopts DVC's outputs, which runs nothing, and then plans nothing, and DVC stays clean."""
    root = two_run_copy(tmp_path / "tree")
    stages = ["collect", "latency_collect"]
    targets = ["results/runs.csv", "results/latency.csv"]
    sh(["morph", "dvc-yaml", "--params", CI], root)
    sh(["dvc", "repro", *stages], root, timeout=900)
    built = {p: sha256_file(root / p) for p in targets + ["runs/d40-l1-t2/metrics.json"]}
    out = sh(["snakemake", "-n", *targets, "--configfile", CI], root)
    assert "Nothing to be done" not in out.stdout, "the retrain this test guards against did not show"
    hint = f"snakemake --touch -j1 results/morph1b.json --configfile {CI}"
    assert hint in out.stderr, out.stderr[-2000:]
    sh(hint.split(), root)
    assert "Nothing to be done" in sh(["snakemake", "-n", *targets, "--configfile", CI], root).stdout
    assert {p: sha256_file(root / p) for p in built} == built
    assert "up to date" in sh(["dvc", "status", *stages], root).stdout


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
    "Snakemake on a tree DVC adopted": "test_end_to_end.py::test_snakemake_after_dvc_prints_the_command_that_adopts_the_tree",
}


@pytest.mark.parametrize("row", ELSEWHERE)
def test_each_row_kept_elsewhere_exists(row):
    file, name = ELSEWHERE[row].split("::")
    defined = {n.name for n in ast.parse((Path(__file__).parent / file).read_text()).body
               if isinstance(n, ast.FunctionDef)}
    assert name in defined, f"{row}: {ELSEWHERE[row]} is gone; move the row here or point at its new place"
