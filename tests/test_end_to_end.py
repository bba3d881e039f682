"""The whole method on configs/ci.yaml, run once in a fresh copy of the repository through
Snakemake (conftest.ci_tree, shared by the session; this file works on its own copy), then
checked: the decision's content, no-op reruns, lineage, that editing one shape plans exactly
that shape's jobs and their dependents, and, in DVC, adoption of Snakemake's outputs,
run-cache restores and push/pull to a fresh clone. Tests run in file order."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import copy_tree
from graphs import REPO
from morph.core import experiment
from morph.core.artifacts.common import CAPTIONS, FIGURES, figure
from morph.core.artifacts.data import TOKENS_META, token_shard
from morph.core.artifacts.evaluate import eval_json, lm_eval_out
from morph.core.artifacts.latency import LATENCY_FIGURE
from morph.core.artifacts.law import LAW_DIR, ZOO_JSON
from morph.core.artifacts.report import DECISION, HINDSIGHT_FIGURE, LOSS_CURVES, REPORT_MD, SUMMARY
from morph.core.artifacts.select import slot
from morph.core.artifacts.train import RUN_METRICS, RUNS, RUNS_CSV, run_dir, run_metrics, run_model
from morph.workflow import snakemake_report

BIN = Path(sys.executable).parent
CI = "configs/ci.yaml"
TOP = slot(1)  # the first top-k slot's run id
pytestmark = pytest.mark.slow


def sh(args: list[str], cwd: Path, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


def fresh_copy(dest: Path) -> Path:
    """The files a fresh clone would hold (plus uncommitted, unignored ones), in a new git repo."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    for args in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "copy"]):
        subprocess.run(args, cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def tree(ci_tree, tmp_path_factory) -> Path:
    """This file's own copy of the session's CI tree (conftest.ci_tree: a fresh copy of the repository with the
    whole graph built through Snakemake): its tests edit, rebuild and adopt it, in file order."""
    return copy_tree(ci_tree, tmp_path_factory.mktemp("repo") / "tree")


def planned_jobs(root: Path, params: str = CI, target: str = DECISION) -> dict[str, int]:
    out = sh(["snakemake", "-n", target, "--configfile", params], root).stdout
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def measured_at_target(tree: Path, cfg) -> tuple[dict[str, list[float]], list[float]]:
    """Every validated shape's held-out losses at D_C in seed order, and the baseline's, read from the runs."""
    def loss(run_id: str) -> float:
        return json.loads((tree / run_metrics(run_id)).read_text())["val_loss"]

    shapes: dict[str, list[float]] = {}
    for r in cfg.validation_runs:
        shapes.setdefault(r.shape.shape_id, []).append(loss(r.run_id))
    return shapes, [loss(r.run_id) for r in cfg.baseline_runs]


def test_decision_holds_real_measured_evidence(tree):
    d = json.loads((tree / DECISION).read_text())
    cfg = experiment.load(tree / CI)
    budget = cfg.select.latency_budget_s
    chosen = d["chosen"]
    assert chosen["latency"]["median_s"] <= budget
    roles = [m["role"] for m in d["models"]]
    assert roles[-1] == "baseline" and roles.count("release") == 1 and set(roles) <= {"release", "candidate",
                                                                                        "baseline"}
    feasible = {c["shape_id"] for c in d["candidates"] if c["kept"]}
    assert {m["shape_id"] for m in d["models"][:-1]} == feasible  # every measured feasible shape is in contention
    for m in d["models"]:
        assert set(m["accuracy"]) == set(cfg.evaluate.tasks)
        assert all(0.0 <= a <= 1.0 for a in m["accuracy"].values())
        # evaluate's rule: per task acc_norm where lm-eval has one (not Winogrande), else acc
        # one metric throughout: the average is the mean of the per-task accuracies the report shows
        assert m["avg_accuracy"] == pytest.approx(sum(m["accuracy"].values()) / len(m["accuracy"]), abs=1e-9)
        lat = m["latency"]
        assert lat["source"] == "measured" and lat["p10_s"] <= lat["median_s"] <= lat["p90_s"]
        assert 0 < m["actual_loss"] < 10 and 0 < m["predicted_loss"] < 10
        assert len(m["seed_losses"]) == cfg.select.seeds and m["actual_loss"] == m["seed_losses"][0]
        assert m["eval_limit"] == cfg.evaluate.limit
    base = d["models"][-1]
    assert base["speedup_vs_baseline"] == pytest.approx(1.0)
    assert base["shape"]["n_layers"] == cfg.select.baseline.n_layers
    assert (tree / d["verdict"]["weights"] / "config.json").is_file()
    assert all(len(h) == 64 for h in d["inputs"].values())
    report = (tree / REPORT_MD).read_text()
    assert chosen["run_id"] in report
    for fig in re.findall(r"\]\(([^)]+\.png)\)", report):
        assert (tree / REPORT_MD).parent.joinpath(fig).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({os.path.relpath(figure(LOSS_CURVES), Path(REPORT_MD).parent)})" in report


def test_the_release_and_verdict_follow_from_the_losses_at_d_c(tree):
    """Recomputed from the runs' own metrics with plain numpy and scipy: the noise and its df, the release's
    bound against the baseline, the not-worse-than-best set, and that no trained feasible shape is both faster
    and lower in loss beyond delta than the release."""
    from scipy import stats

    d = json.loads((tree / DECISION).read_text())
    cfg = experiment.load(tree / CI)
    shapes, base = measured_at_target(tree, cfg)
    v = d["verdict"]
    r = cfg.select.seeds
    table = np.array([*shapes.values(), base])
    resid = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
    df = (table.shape[0] - 1) * (r - 1)
    sd = float(np.sqrt((resid ** 2).sum() / df))
    assert v["noise"]["df"] == df and v["noise"]["sd"] == pytest.approx(sd) and v["seeds"] == r
    margin = cfg.select.margin.value * np.mean(base)
    assert v["margin"] == pytest.approx(margin)
    latency = {c["shape_id"]: c["latency"]["best_s"] for c in d["candidates"]}  # speed: the best timing round
    feasible = {c["shape_id"] for c in d["candidates"] if c["kept"]}
    mean = {s: float(np.mean(x)) for s, x in shapes.items() if s in feasible}
    released = v["shape_id"]
    assert v["delta_loss"] == pytest.approx(mean[released] - np.mean(base))
    se = sd * np.sqrt(2 / r)
    half = stats.t.ppf(1 - 0.05 / len(mean), df) * se
    assert v["upper"] == pytest.approx(v["delta_loss"] + half)
    expected = "matches" if v["upper"] <= margin else "worse" if v["lower"] > margin else "inconclusive"
    assert v["kind"] == expected
    mcb = stats.t.ppf(1 - 0.05 / (len(mean) - 1), df) * se
    within = {s for s in mean if mean[s] - min(mean[o] for o in mean if o != s) + mcb <= margin}
    assert set(v["within_margin_of_best"]) == within
    if within:
        assert released in within
        assert all(latency[s] >= latency[released] or s in v["tied_in_speed"] for s in within)
    for s in mean:
        assert not (latency[s] < latency[released] and mean[s] < mean[released] - margin), s
    report = (tree / REPORT_MD).read_text()
    assert report.splitlines()[2].startswith(f"**{v['kind'].upper()} (measured)")
    for word in (f"δ = {margin:.4f}", f"df {df}", f"r = {r}", f"{v['speedup']:.2f}x"):
        assert word in report.splitlines()[2], word
    summary = json.loads((tree / SUMMARY).read_text())
    assert summary["verdict"] == v["kind"] and summary["released"] == released and summary["sigma_df"] == df
    assert all(not isinstance(x, (dict, list)) for x in summary.values())  # flat
    for m in d["models"]:
        low, high = m["avg_accuracy_interval"]
        assert low <= m["avg_accuracy"] <= high
        assert f"{m['avg_accuracy']:.4f} [{low:.4f}, {high:.4f}]" in report
        assert m["eval_max_length"] == cfg.model.seq_len


def test_every_feasible_candidate_is_trained_and_checks_the_law_in_hindsight(tree):
    d = json.loads((tree / DECISION).read_text())
    cfg = experiment.load(tree / CI)
    h = d["hindsight"]
    shapes, _ = measured_at_target(tree, cfg)
    measured = {s: float(np.mean(x)) for s, x in shapes.items()}
    feasible = [c for c in d["candidates"] if c["kept"]]
    assert h["all_feasible_trained"] and h["n_feasible_trained"] == len(feasible) >= 3
    best = min(feasible, key=lambda c: measured[c["shape_id"]])
    top1 = next(c["shape_id"] for c in d["candidates"] if c.get("slot") == "top-1")
    assert h["best"]["shape_id"] == best["shape_id"]
    assert h["regret"]["loss"] == pytest.approx(measured[top1] - measured[best["shape_id"]])
    assert h["spearman"]["n"] == len(feasible) and 0 < h["spearman"]["p_value"] <= 1
    zoo = json.loads((tree / LAW_DIR / ZOO_JSON).read_text())
    assert len(zoo["folds"]["size"]) >= 3  # leave-one-size-out over at least three sizes
    assert (tree / figure(HINDSIGHT_FIGURE)).read_bytes()[:4] == b"\x89PNG"


def test_a_validated_top_k_shape_is_copied_and_equals_a_fresh_training(tree, tmp_path):
    slot = json.loads((tree / run_metrics(TOP)).read_text())
    twin = json.loads((tree / run_metrics(slot["run_id"])).read_text())
    assert slot["reused_from"] == run_dir(slot["run_id"]) and slot["slot"] == TOP
    assert slot["model_sha256"] == twin["model_sha256"]
    second = json.loads((tree / run_metrics(f"{TOP}-r1")).read_text())  # its second seed copies the twin's
    assert second["run_id"] == f"{slot['run_id']}-r1" and second["seed"] == slot["seed"] + 1
    assert second["model_sha256"] == json.loads((tree / run_metrics(second["run_id"])).read_text())["model_sha256"]
    sh(["morph", "train", "--params", CI, "--run", slot["run_id"], "--out", str(tmp_path / "fresh")], tree)
    fresh = json.loads((tmp_path / "fresh" / RUN_METRICS).read_text())
    assert fresh["val_loss"] == slot["val_loss"] and fresh["model_sha256"] == slot["model_sha256"]


def test_plain_lm_eval_reproduces_a_trained_models_scores(tree, tmp_path):
    cfg = yaml.safe_load((tree / CI).read_text())
    ours = json.loads((tree / eval_json(TOP)).read_text())
    sh(["lm_eval", "run", "--model", "hf", "--model_args",
        f"pretrained={run_model(TOP)},dtype=float32,max_length={cfg['model']['seq_len']}",
        "--include_path", "src/morph/evaluate/tasks",
        "--tasks", ",".join(f"morph_{t}" for t in cfg["evaluate"]["tasks"]),
        "--batch_size", str(cfg["evaluate"]["batch_size"]), "--samples", f"{lm_eval_out(TOP)}/items.json",
        "--output_path", str(tmp_path)], tree, timeout=900)
    [results] = tmp_path.rglob("results_*.json")
    plain = json.loads(results.read_text())["results"]
    for task, scores in ours["tasks"].items():
        assert plain[f"morph_{task}"]["acc,none"] == scores["acc"], task


@pytest.fixture(scope="module")
def html_report(tree) -> Path:
    sh(["snakemake", "--report", "report.html", "--configfile", CI], tree, timeout=600)
    return tree / "report.html"


def test_snakemake_html_report_embeds_every_figure(tree, html_report):
    html = html_report.read_text()
    figures = sorted(p.name for p in (tree / FIGURES).glob("*.png"))
    # Every figure the graph draws and every decision file has a hand-written caption; the report embeds each.
    reported = sorted(Path(p).name for p in snakemake_report.CATEGORY)
    assert set(figures) <= set(reported)
    assert sorted(f"{Path(p).stem}.rst" for p in reported) == sorted(c.name for c in (REPO / CAPTIONS).glob("*.rst"))
    for name in reported:
        assert name in html, name


def test_a_browser_finds_the_verdict_on_the_reports_front_page(tree, html_report):
    """Headless Chromium (Debian's chromium and chromium-driver) opens the Snakemake report: its front page states
    the verdict line of morph1b.json and the release, and the menu lists the Decision category first."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("no browser: Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    verdict = json.loads((tree / DECISION).read_text())["verdict"]
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=webdriver.ChromeService(driver), options=options)
    try:
        chrome.get(html_report.as_uri())
        WebDriverWait(chrome, 60).until(lambda c: "Decision:" in c.find_element(By.TAG_NAME, "body").text)
        page = " ".join(chrome.find_element(By.TAG_NAME, "body").text.split())
        chrome.save_screenshot(str(tree / "report-front.png"))
    finally:
        chrome.quit()
    assert f"Decision: {verdict['kind'].upper()}" in page
    assert " ".join(verdict["headline"].split()) in page
    assert f"Released: {verdict['released']}" in page
    results = page.split("RESULTS", 1)[1].split()
    assert results[:5] == list(snakemake_report.CATEGORIES), results[:5]


def test_held_out_loss_falls_with_params_and_with_tokens(tree):
    """On the CI grid's real trained runs: larger N is better at a fixed multiplier (size means over
    shapes), and more tokens is better for every shape."""
    import csv
    from statistics import mean

    rows = list(csv.DictReader(open(tree / RUNS_CSV)))
    shapes = {(r["d_model"], r["n_layers"]) for r in rows}
    loss = {(r["d_model"], r["n_layers"], float(r["multiplier"])): float(r["loss"]) for r in rows}
    for d, layers in shapes:
        ms = sorted(m for (dd, ll, m) in loss if (dd, ll) == (d, layers))
        assert all(loss[d, layers, a] > loss[d, layers, b] for a, b in zip(ms, ms[1:])), (d, layers)
    for m in {float(r["multiplier"]) for r in rows}:
        by_size: dict[int, list[float]] = {}
        for r in rows:
            if float(r["multiplier"]) == m:
                by_size.setdefault(round(int(r["params"]), -4), []).append(float(r["loss"]))
        sizes = sorted(by_size)
        if len(sizes) > 1:
            assert mean(by_size[sizes[-1]]) < mean(by_size[sizes[0]]), (m, by_size)


def test_rerun_plans_nothing(tree):
    assert planned_jobs(tree) == {}


def test_a_copy_of_the_tree_by_cp_r_plans_nothing(tree, tmp_path):
    """`cp -r` gives every file and folder a new modification time, in its own order: Snakemake judges files by
    their checksums, and a folder through a file its job writes with it (a model through its metrics.json)."""
    subprocess.run(["cp", "-r", str(tree), str(tmp_path / "copy")], check=True)
    assert planned_jobs(tmp_path / "copy") == {}


def test_lineage_reaches_the_raw_shards_for_every_figure_and_the_decision(tree):
    targets = sorted((tree / FIGURES).glob("*.png")) + [tree / DECISION]
    assert len(targets) >= 7
    for target in targets:
        rel = str(target.relative_to(tree))
        out = sh(["morph", "lineage", rel, "--params", CI], tree).stdout
        assert "CHANGED" not in out, rel
        if target.name == Path(figure(LATENCY_FIGURE)).name:  # timed on random weights: no data behind it
            assert re.search(r"\] latency-d\d+-l\d+ ", out) and "sample" not in out, rel
            continue
        assert re.search(r"\] sample ", out), rel
        assert "data/raw/fixture/" in out.split("sources:")[1], rel


DATA_STAGES = {"sample", "tokenizer", "tokenize_shard", "tokenize_gather"}


def test_tokens_target_is_current_and_a_seed_change_reruns_only_the_data_stages(tree):
    assert planned_jobs(tree, target=TOKENS_META) == {}
    original = (tree / CI).read_text()
    raw = yaml.safe_load(original)
    raw["seed"] += 1
    try:
        (tree / CI).write_text(yaml.safe_dump(raw))
        plan = planned_jobs(tree, target=TOKENS_META)
    finally:
        (tree / CI).write_text(original)
    shards = len(experiment.load(tree / CI).sample_shards)
    assert plan == {"sample": 1, "tokenizer": 1, "tokenize_shard": shards, "tokenize_gather": 1}


def test_a_truncated_token_shard_keeps_finished_runs_and_its_named_command_rebuilds_it(tree, tmp_path):
    shard = tree / token_shard("train-00001")
    original = shard.read_bytes()
    with shard.open("r+b") as f:  # as `truncate -s 100000` does
        f.truncate(100_000)
    # Training reads meta.json, which lists the shard's sha256, not the shard: nothing reruns or is deleted.
    assert planned_jobs(tree) == {}
    err = sh(["morph", "train", "--params", CI, "--run", "d40-l1-t2", "--out", str(tmp_path / "run")], tree,
             check=False).stderr
    rebuild = f"snakemake -j1 --force {token_shard('train-00001')} --configfile {CI}"
    assert f"{token_shard('train-00001')}: holds 50,000 tokens" in err and rebuild in err, err
    sh(rebuild.split(), tree)
    assert shard.read_bytes() == original
    assert planned_jobs(tree) == {}


def test_editing_one_shape_plans_only_that_shape_and_its_dependents(tree):
    # Edited in place, as a user edits params.yaml (the file's path is part of every command).
    original = (tree / CI).read_text()
    raw = yaml.safe_load(original)
    raw["grid"]["sizes"][1]["depths"] = [1, 3]  # the 60k size's depth-2 shape becomes a depth-3 one
    try:
        (tree / CI).write_text(yaml.safe_dump(raw))
        plan = planned_jobs(tree)
    finally:
        (tree / CI).write_text(original)
    assert plan.get("train") == 2 and plan.get("latency") == 1, plan  # the new shape's 2 runs and 1 timing
    assert not DATA_STAGES & set(plan), plan
    assert {"collect", "laws", "latency_collect", "candidates", "select", "report"} <= set(plan)


@contextlib.contextmanager
def code_edited(root: Path, path: str):
    """Append a comment to a source file, then restore its bytes and modification time."""
    f = root / path
    original, stat = f.read_bytes(), f.stat()
    f.write_bytes(original + b"\n# edited\n")
    try:
        yield
    finally:
        f.write_bytes(original)
        os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# What an edit must rerun, from what each module does and the params' counts, not from the pipeline table:
# k slots under select.seeds seeds each, and lm-eval on the slots (seed 0).
def downstream_of_select(exp) -> dict[str, int]:
    return {"select": 1, "train_target": exp.select.k * exp.select.seeds, "evaluate": exp.select.k, "report": 1}


def target_trainings(exp) -> int:
    """The baseline and every validated shape at D_C, each under select.seeds seeds."""
    return exp.select.seeds * (1 + len({r.shape.shape_id for r in exp.validation_runs}))


def evaluations(exp) -> int:
    """lm-eval of the slots, the baseline and each validated shape."""
    return exp.select.k + 1 + len({r.shape.shape_id for r in exp.validation_runs})


def shape_edit_plan(root: Path) -> dict[str, int]:
    """Every model is built from shape.py: all training and timing, and everything after them."""
    exp = experiment.load(root / CI)
    return {**downstream_of_select(exp), "train": len(exp.grid_runs) + target_trainings(exp),
            "latency": len(exp.latency_shapes),
            "collect": 1, "latency_collect": 1, "laws": 1, "candidates": 1, "evaluate": evaluations(exp)}


def train_edit_plan(root: Path) -> dict[str, int]:
    """The train section is read by training alone: every training job, and everything after it."""
    exp = experiment.load(root / CI)
    return {**downstream_of_select(exp), "train": len(exp.grid_runs) + target_trainings(exp),
            "collect": 1, "laws": 1, "evaluate": evaluations(exp)}


# Each params section's schema is its own module: an edit reruns the stages that read that section. Each
# family's artifact names too: the evaluate stage is told its paths; the report finds its outputs by name.
EVALUATE_SECTION, TRAIN_SECTION = "src/morph/core/evaluate.py", "src/morph/core/train.py"
EVALUATE_NAMES = "src/morph/core/artifacts/evaluate.py"


def test_a_code_edit_plans_exactly_the_stages_that_run_that_code(tree):
    with code_edited(tree, "src/morph/core/shape.py"):
        assert planned_jobs(tree) == shape_edit_plan(tree)
    exp = experiment.load(tree / CI)
    with code_edited(tree, EVALUATE_SECTION):  # read by scoring and by the report's bootstrap
        assert planned_jobs(tree) == {"evaluate": evaluations(exp), "report": 1}
    with code_edited(tree, TRAIN_SECTION):
        assert planned_jobs(tree) == train_edit_plan(tree)
    with code_edited(tree, EVALUATE_NAMES):
        assert planned_jobs(tree) == {"report": 1}
    with code_edited(tree, "src/morph/report/write.py"):
        assert planned_jobs(tree) == {"report": 1}
    with code_edited(tree, "src/morph/law/solvers.py"):  # the fit, and the selection that predicts with it
        assert planned_jobs(tree) == {"laws": 1, **downstream_of_select(exp)}
    assert planned_jobs(tree) == {}


@pytest.fixture(scope="module")
def dvc_tree(tree) -> Path:
    """The finished tree adopted by DVC: dvc.yaml for the CI experiment, outputs committed, not rerun."""
    sh(["morph", "dvc-yaml", "--params", CI], tree)
    sh(["dvc", "commit", "-f", "-q"], tree, timeout=900)
    return tree


def test_dvc_adopts_the_snakemake_outputs_without_rerunning(dvc_tree):
    metrics = dvc_tree / run_metrics(TOP)
    before = metrics.stat().st_mtime_ns
    status = sh(["dvc", "status"], dvc_tree).stdout
    assert "up to date" in status, status
    repro = sh(["dvc", "repro"], dvc_tree, timeout=900).stdout
    assert "Running stage" not in repro, repro
    assert metrics.stat().st_mtime_ns == before
    assert "Running stage" not in sh(["dvc", "repro", "tokenize_gather"], dvc_tree).stdout


def test_snakemake_after_dvc_prints_the_command_that_adopts_the_tree(dvc_tree):
    out = sh(["snakemake", "-n", DECISION, "--configfile", CI], dvc_tree)
    if "Nothing to be done" not in out.stdout:
        hint = f"snakemake --touch -j1 {DECISION} --configfile {CI}"
        assert hint in out.stderr, out.stderr[-2000:]
        sh(hint.split(), dvc_tree)
    assert planned_jobs(dvc_tree) == {}
    assert "up to date" in sh(["dvc", "status"], dvc_tree).stdout


def test_dvc_metrics_and_plots_show(dvc_tree):
    metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], dvc_tree).stdout)
    files = {f: d["data"] for rev in metrics.values() for f, d in rev["data"].items()}
    assert list(files) == [SUMMARY], list(files)  # the flat summary alone, no run's metrics.json
    assert 1 + len(files[SUMMARY]) <= 12  # the table's columns: the path, then one per number
    table = sh(["dvc", "metrics", "show"], dvc_tree).stdout
    assert "verdict" in table and f"{RUNS}/" not in table, table
    plots = sh(["dvc", "plots", "show", "--json"], dvc_tree, timeout=600).stdout
    for name in ("training_loss", "latency_per_shape", "predicted_vs_actual_loss", Path(figure(LOSS_CURVES)).name):
        assert name in plots, name


def dvc_changed(root: Path) -> dict[str, int]:
    """Stage families whose own inputs changed, as `dvc status` lists them."""
    out = sh(["dvc", "status"], root).stdout
    counts: dict[str, int] = {}
    for name in re.findall(r"^(\S+):$", out, re.M):
        counts[name.split("-")[0]] = counts.get(name.split("-")[0], 0) + 1
    return counts


def test_dvc_sees_the_same_code_edits(dvc_tree):
    with code_edited(dvc_tree, "src/morph/core/shape.py"):
        changed = dvc_changed(dvc_tree)
    exp = experiment.load(dvc_tree / CI)
    assert changed["train"] == len(exp.grid_runs) + target_trainings(exp), changed
    assert changed["train_target"] == exp.select.k * exp.select.seeds, changed
    assert changed["latency"] == len(exp.latency_shapes), changed
    assert not (DATA_STAGES | {"evaluate", "report"}) & set(changed), changed
    with code_edited(dvc_tree, "src/morph/report/write.py"):
        assert dvc_changed(dvc_tree) == {"report": 1}
    with code_edited(dvc_tree, EVALUATE_SECTION):
        assert dvc_changed(dvc_tree) == {"evaluate": evaluations(exp), "report": 1}
    with code_edited(dvc_tree, TRAIN_SECTION):
        assert dvc_changed(dvc_tree) == {"train": changed["train"], "train_target": exp.select.k * exp.select.seeds}
    with code_edited(dvc_tree, EVALUATE_NAMES):
        assert dvc_changed(dvc_tree) == {"report": 1}
    with code_edited(dvc_tree, "src/morph/law/solvers.py"):
        assert dvc_changed(dvc_tree) == {"laws": 1, "select": 1}
    assert dvc_changed(dvc_tree) == {}


def test_reverting_a_param_restores_from_the_run_cache_without_training(dvc_tree):
    stage, metrics = "train-d40-l1-t2", dvc_tree / run_metrics("d40-l1-t2")
    original_params, original_metrics = (dvc_tree / CI).read_text(), metrics.read_bytes()
    raw = yaml.safe_load(original_params)
    raw["train"]["lr"] = raw["train"]["lr"] * 0.8
    try:
        (dvc_tree / CI).write_text(yaml.safe_dump(raw))
        changed = sh(["dvc", "repro", "-s", stage], dvc_tree, timeout=600).stdout
        assert f"Running stage '{stage}'" in changed, changed
        assert metrics.read_bytes() != original_metrics
    finally:
        (dvc_tree / CI).write_text(original_params)
    restored = sh(["dvc", "repro", "-s", stage], dvc_tree, timeout=600).stdout
    assert "Running stage" not in restored and f"Stage '{stage}' is cached" in restored, restored
    assert metrics.read_bytes() == original_metrics


def test_push_then_pull_on_a_fresh_clone_restores_everything_and_reruns_nothing(dvc_tree, tmp_path):
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], dvc_tree)
    sh(["dvc", "push", "-q"], dvc_tree, timeout=600)
    sh(["git", "add", "-A"], dvc_tree)
    sh(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "lock"], dvc_tree)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(dvc_tree), str(clone)], tmp_path)
    assert not (clone / RUNS).exists()
    sh(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], clone)
    sh(["dvc", "pull", "-q"], clone, timeout=600)
    assert json.loads((clone / DECISION).read_text()) == json.loads((dvc_tree / DECISION).read_text())
    assert (clone / run_model(TOP) / "config.json").exists()
    repro = sh(["dvc", "repro"], clone, timeout=600).stdout
    assert "Running stage" not in repro, repro


def experiment_ref(root: Path, name: str) -> str:
    refs = sh(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root).stdout.split()
    (ref,) = [r for r in refs if r.endswith(f"/{name}")]
    return ref


def test_a_grid_change_queued_through_dvc_runs_its_own_graph(dvc_tree):
    """`dvc exp run -S grid.…` alone meets the old grid's stages, each refusing it; `morph dvc-exp` takes the same
    override and queues an experiment holding its own dvc.yaml, which DVC then runs. The override moves the grid's
    replicate from d40-l1-t2 to the cheaper d24-l1-t2: one training leaves the graph, one joins it and trains, and
    the runs table is collected over the new grid (the target: the rest of the graph is DVC's ordinary repro)."""
    name, replicates = "moved-replicate", [{"run": "d24-l1-t2", "seeds": 2}]
    workspace = {f: (dvc_tree / f).read_bytes() for f in ("dvc.yaml", "dvc.lock", CI)}
    sh(["morph", "dvc-exp", "--params", CI, "-S", "grid.replicates=[{run:d24-l1-t2,seeds:2}]", "--queue",
        "--name", name, "collect"], dvc_tree)
    assert {f: (dvc_tree / f).read_bytes() for f in workspace} == workspace  # queued, nothing changed here
    ran = sh(["dvc", "exp", "run", "--run-all"], dvc_tree, timeout=900)
    assert "Running stage 'train-d24-l1-t2-r1'" in ran.stdout + ran.stderr, ran.stdout[-3000:]
    assert re.search(rf"{name}\s.*Success", sh(["dvc", "queue", "status"], dvc_tree).stdout)
    ref = experiment_ref(dvc_tree, name)
    stages = yaml.safe_load(sh(["git", "show", f"{ref}:dvc.yaml"], dvc_tree).stdout)["stages"]
    assert "train-d24-l1-t2-r1" in stages and "train-d40-l1-t2-r1" not in stages
    lock = yaml.safe_load(sh(["git", "show", f"{ref}:dvc.lock"], dvc_tree).stdout)["stages"]
    collected = {d["path"] for d in lock["collect"]["deps"]}
    assert run_metrics("d24-l1-t2-r1") in collected and run_metrics("d40-l1-t2-r1") not in collected
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], dvc_tree).stdout)
    (exp,) = [rev for row in shown for e in row.get("experiments") or [] for rev in e["revs"] if rev["name"] == name]
    assert exp["data"]["params"][CI]["data"]["grid"]["replicates"] == replicates


def test_a_grid_sweep_queues_one_experiment_per_point_each_with_its_graph(dvc_tree):
    sh(["morph", "dvc-exp", "--params", CI, "-S", "grid.multipliers=[2],[2,4]", "-S", "grid.replicates=[]",
        "--queue"], dvc_tree)
    queued = re.findall(r"^(\w+)\s+\S+\s+.*\bQueued\b", sh(["dvc", "queue", "status"], dvc_tree).stdout, re.M)
    try:
        assert len(queued) == 2, queued
        multipliers, stages = {}, {}
        for task in queued:
            params = yaml.safe_load(sh(["git", "show", f"{task}:{CI}"], dvc_tree).stdout)
            multipliers[task] = params["grid"]["multipliers"]
            stages[task] = set(yaml.safe_load(sh(["git", "show", f"{task}:dvc.yaml"], dvc_tree).stdout)["stages"])
        assert sorted(multipliers.values()) == [[2], [2, 4]]
        for task, points in multipliers.items():  # d40-l1 trains at the grid's multipliers, once: no replicate
            assert {s for s in stages[task] if s.startswith("train-d40-l1-")} == {f"train-d40-l1-t{m}" for m in points}
    finally:
        sh(["dvc", "queue", "remove", "--queued"], dvc_tree)
