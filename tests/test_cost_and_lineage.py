"""`morph grid --cost` and `morph lineage --depth/--summary`, by invariants: the cost's FLOPs against the textbook
6ND from each run's N and D, a doubled multiplier doubling its run's FLOPs, GPU-hours from the evidence CSV read
here; lineage's limited walk and summary against its own full --json chain, and --check judging the whole chain
whatever is shown. No training: lineage walks the graph, so a tree needs only the experiment and a few records."""
from __future__ import annotations

import contextlib
import csv
import json
import shutil
import statistics
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import CI_PARAMS, ROOT, TWO_RUNS, write_params
from morph import cli
from morph.core import experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import SAMPLE_MANIFEST, TOKENS_META
from morph.core.artifacts.report import DECISION
from morph.core.artifacts.train import run_metrics
from morph.core.io import provenance, write_json
from morph.workflow import pipeline

EXPERIMENTS = (PARAMS, "configs/ci.yaml", "configs/paper.yaml")
EVIDENCE = ROOT / "benchmarks/results"
H200_BF16_PEAK = 989e12  # NVIDIA's H200 SXM datasheet, dense bf16


def morph(cwd: Path, capsys, *argv: str) -> tuple[int, str, str]:
    with contextlib.chdir(cwd):
        code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def cost_json(capsys, params: str | Path, *extra: str, cwd: Path = ROOT) -> dict:
    code, out, err = morph(cwd, capsys, "grid", "--cost", "--json", "--params", str(params), *extra)
    assert code == 0, err
    return json.loads(out)


# ---- morph grid --cost ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("params", EXPERIMENTS)
def test_cost_is_six_n_d_per_run_within_the_attention_term_and_sums_to_the_total(params, capsys):
    exp = experiment.load(ROOT / params)
    out = cost_json(capsys, params)
    s = exp.model.seq_len
    trained = [n for n in pipeline.all_nodes(exp, params) if n.stage in ("train", "train_target")]
    assert [r["run"] for r in out["runs"]] == [n.key for n in trained]
    assert len(trained) == len(exp.grid_runs) + len(exp.target_runs) + len(exp.slot_runs) == out["training_runs"]
    assert out["jobs"] == len(pipeline.all_nodes(exp, params))
    for r in out["runs"]:
        run = exp.baseline if r["counted_at_baseline"] else exp.run(r["run"])
        shape, n, d = run.shape, r["params"], r["tokens"]
        assert (n, d) == (shape.params(), run.tokens)
        # The textbook count: 6 FLOPs per matmul weight per token (the input embedding is a lookup, so an untied
        # model's N holds one vocab x d_model too many), plus causal attention's 6 * L * s * d_model per token.
        lookup = 0 if shape.tie_embeddings else shape.vocab_size * shape.d_model
        attention = 6 * shape.n_layers * s * shape.d_model * d
        assert r["flops"] == 6 * (n - lookup) * d + attention
        assert abs(r["flops"] - 6 * n * d) <= 6 * d * lookup + attention
    assert out["total_flops"] == sum(r["flops"] for r in out["runs"])
    assert out["slots"] == len(exp.slot_runs)


def test_doubling_a_multiplier_doubles_that_runs_flops_and_nothing_else(tmp_path, capsys):
    raw = yaml.safe_load(CI_PARAMS.read_text())
    assert raw["grid"]["sizes"][0]["multipliers"] == [2, 4, 16]
    raw["grid"]["sizes"][0]["multipliers"] = [2, 8, 16]
    doubled = tmp_path / "doubled.yaml"
    doubled.write_text(yaml.safe_dump(raw, sort_keys=False))
    before = {r["run"]: r for r in cost_json(capsys, CI_PARAMS)["runs"]}
    after = {r["run"]: r for r in cost_json(capsys, doubled)["runs"]}
    gone, new = set(before) - set(after), set(after) - set(before)
    assert len(gone) == len(new) >= 1
    for old in gone:
        twin = old.removesuffix("-t4") + "-t8"
        assert twin in new
        assert after[twin]["params"] == before[old]["params"]
        assert after[twin]["tokens"] == 2 * before[old]["tokens"]
        assert after[twin]["flops"] == 2 * before[old]["flops"]
    assert all(after[r] == before[r] for r in set(before) & set(after))


def evidence_mfus(device: str) -> tuple[list[float], set[str]]:
    """The Lightning training MFU rows for a device, read from the evidence CSVs (the command reads the JSONs)."""
    values, files = [], set()
    for path in sorted(EVIDENCE.rglob("gpu-*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["step"] == "throughput" and row["metric"] == "lightning_mfu" and device in row["device"]:
                    values.append(float(row["value"]))
                    files.add(path.with_suffix(".json").relative_to(ROOT).as_posix())
    return values, files


def test_gpu_hours_are_the_flops_at_the_measured_mfu_of_the_datasheet_peak(capsys):
    values, files = evidence_mfus("H200")
    assert values, "benchmarks/results holds the H200's training MFU"
    out = cost_json(capsys, "configs/paper.yaml")  # the one measured device is the default
    gpu = out["gpu"]
    assert gpu["device"] == "NVIDIA H200" and cost_json(capsys, "configs/paper.yaml", "--device", "h200")["gpu"] == gpu
    assert gpu["mfu"] == statistics.median(values) and gpu["mfu_range"] == [min(values), max(values)]
    assert gpu["peak_flops"] == H200_BF16_PEAK and gpu["precision"] == "bf16-mixed"
    assert set(gpu["sources"]) == files
    assert gpu["gpu_hours"] == pytest.approx(out["total_flops"] / (statistics.median(values) * H200_BF16_PEAK) / 3600)
    low, high = gpu["gpu_hours_range"]
    assert low == pytest.approx(out["total_flops"] / (max(values) * H200_BF16_PEAK) / 3600)
    assert high == pytest.approx(out["total_flops"] / (min(values) * H200_BF16_PEAK) / 3600)
    code, text, err = morph(ROOT, capsys, "grid", "--cost", "--params", "configs/paper.yaml")
    assert code == 0, err
    assert f"{out['total_flops']:.4g} FLOPs" in text and f"{out['jobs']} jobs" in text
    assert all(f in text.split("MFU source: ")[1] for f in files)
    assert len(text.splitlines()) > out["training_runs"]  # a line per run


def test_a_device_nothing_measured_is_refused_naming_the_folder_and_the_script(tmp_path, capsys):
    code, out, err = morph(ROOT, capsys, "grid", "--cost", "--params", PARAMS, "--device", "A100")
    assert code == 2 and out == ""
    assert "benchmarks/results: no training MFU measured for 'A100'" in err and "scripts/gpu_evidence.sh" in err
    assert "NVIDIA H200" in err  # what was measured
    empty = tmp_path / "nothing"
    empty.mkdir()
    code, out, err = morph(ROOT, capsys, "grid", "--cost", "--params", PARAMS, "--evidence", str(empty))
    assert code == 2 and f"{empty}: no training MFU measured there" in err and "scripts/gpu_evidence.sh" in err


def test_hours_scale_inversely_with_the_mfu_and_several_devices_need_a_choice(tmp_path, capsys):
    """Evidence written as the script writes it: halving every MFU doubles the hours; with two devices measured,
    --device picks one and no default is guessed."""
    rows = json.loads((EVIDENCE / "h200-20261204/gpu-nvidia-h200-run2.json").read_text())["rows"]
    mfu = [r for r in rows if r["metric"] == "lightning_mfu"]
    half = [{**r, "value": r["value"] / 2} for r in mfu]
    other = [{**r, "device": "NVIDIA A100-SXM4-80GB", "setting": {**r["setting"],
                                                                    "peak": "datasheet dense peak, NVIDIA A100"}}
             for r in mfu]
    (tmp_path / "full").mkdir()
    write_json(tmp_path / "full/gpu-a.json", {"rows": mfu})
    (tmp_path / "half").mkdir()
    write_json(tmp_path / "half/gpu-a.json", {"rows": half})
    full = cost_json(capsys, "configs/ci.yaml", "--evidence", str(tmp_path / "full"))["gpu"]
    halved = cost_json(capsys, "configs/ci.yaml", "--evidence", str(tmp_path / "half"))["gpu"]
    assert halved["gpu_hours"] == pytest.approx(2 * full["gpu_hours"])
    write_json(tmp_path / "full/gpu-b.json", {"rows": other})
    code, _, err = morph(ROOT, capsys, "grid", "--cost", "--params", "configs/ci.yaml", "--evidence",
                         str(tmp_path / "full"))
    assert code == 2 and "several devices" in err and "--device" in err
    a100 = cost_json(capsys, "configs/ci.yaml", "--evidence", str(tmp_path / "full"), "--device", "a100")["gpu"]
    assert a100["peak_flops"] == 312e12 and a100["sources"] == [str(tmp_path / "full/gpu-b.json")]
    assert a100["gpu_hours"] * 312e12 == pytest.approx(full["gpu_hours"] * H200_BF16_PEAK)


@pytest.mark.parametrize("params", EXPERIMENTS)
def test_grid_json_without_cost_holds_no_cost(params, capsys):
    code, out, err = morph(ROOT, capsys, "grid", "--json", "--params", params)
    assert code == 0, err
    assert set(json.loads(out)) == {"runs", "baseline", "baseline_replicates", "validation_runs", "latency_shapes",
                                    "target_slots", "target_seeds", "sample_token_target"}


# ---- morph lineage --depth / --summary -------------------------------------------------------------------------

TARGET = DECISION


@pytest.fixture
def tree(tmp_path) -> Path:
    """The CI experiment as params.yaml and the fixture's first shard, nothing built: lineage walks the graph,
    hashing what exists."""
    root = tmp_path / "tree"
    (root / "data/raw/fixture").mkdir(parents=True)
    shard = sorted((ROOT / "data/raw/fixture").glob("*.jsonl.zst"))[0]
    shutil.copy2(shard, root / "data/raw/fixture" / shard.name)
    shutil.copy2(CI_PARAMS, root / PARAMS)
    return root


def lineage(root: Path, capsys, *argv: str) -> tuple[int, str, str]:
    return morph(root, capsys, "lineage", *argv, "--params", PARAMS)


def full_chain(root: Path, capsys, target: str = TARGET) -> list[dict]:
    code, out, err = lineage(root, capsys, target, "--json")
    assert code == 0, err
    return json.loads(out)


def test_depth_shows_the_full_chains_stages_fewer_than_n_steps_back(tree, capsys):
    chain = full_chain(tree, capsys)
    deepest = max(s["depth"] for s in chain)
    assert deepest >= 2 and chain[0]["depth"] == 0
    for n in range(1, deepest + 2):
        code, out, err = lineage(tree, capsys, TARGET, "--json", "--depth", str(n))
        assert code == 0, err
        assert json.loads(out) == [s for s in chain if s["depth"] < n]


def test_depth_one_prints_only_the_direct_inputs(tree, capsys):
    producer = full_chain(tree, capsys)[0]
    code, out, err = lineage(tree, capsys, TARGET, "--depth", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert [line for line in lines if line.startswith("[")] == [f"[0] {producer['stage']}  (produces {TARGET})"]
    inputs = [line.split()[1] for line in lines if line.startswith("    <- ")]
    assert inputs == [d["path"] for d in producer["deps"]]
    code, _, err = lineage(tree, capsys, TARGET, "--depth", "0")
    assert code == 2 and "--depth 0: must be at least 1" in err


def test_summary_counts_match_the_full_json_chain(tree, capsys):
    chain = full_chain(tree, capsys)
    code, out, err = lineage(tree, capsys, TARGET, "--summary", "--json")
    assert code == 0, err
    summary = json.loads(out)
    family = {n.name: n.stage for n in pipeline.all_nodes(experiment.load(tree / PARAMS), PARAMS)}
    assert summary["stages"] == len(chain) and summary["produced_by"] == chain[0]["stage"]
    assert summary["depth"] == 1 + max(s["depth"] for s in chain)
    counted = Counter(family[s["stage"]] for s in chain)
    assert {f: c["stages"] for f, c in summary["families"].items()} == counted
    for f, c in summary["families"].items():
        mine = [s for s in chain if family[s["stage"]] == f]
        assert c["inputs"] == len({d["path"] for s in mine for d in s["deps"]})
        assert c["outputs"] == len({o for s in mine for o in s["outs"]})
    sources = {d["path"] for s in chain for d in s["deps"] if d["produced_by"] == "source"}
    code_files = {p for p in sources if p.startswith("src/morph/")}
    assert set(summary["sources"]) == sources - code_files and summary["code_sources"] == len(code_files)
    assert summary["sources"] == ["data/raw/fixture/shard_00000.jsonl.zst"]
    assert summary["params_read"] == sorted({k for s in chain for k in s["params"]})
    direct = chain[0]["deps"]
    assert len(summary["direct_inputs"]) + summary["direct_code_inputs"] == len(direct)
    assert summary["not_walked"] == [] and summary["mismatches"] == 0
    code, text, err = lineage(tree, capsys, TARGET, "--summary")
    assert code == 0, err
    assert f"{len(chain)} stage(s) behind it" in text and len(text.splitlines()) <= len(counted) + 8


def test_the_default_stays_the_whole_chain_and_says_how_to_see_less(tree, capsys):
    chain = full_chain(tree, capsys)
    code, out, err = lineage(tree, capsys, TARGET)
    assert code == 0, err
    assert sum(line.startswith("[") for line in out.splitlines()) == len(chain)
    assert f"{len(chain)} stages above; --summary" in err


def test_check_judges_the_whole_chain_whatever_depth_or_summary_shows(tree, capsys):
    """A record one stage behind what --depth 1 shows disagrees with its input: --check fails alike with or without
    --depth 1 or --summary, naming the same file, and passes alike while it agrees."""
    exp = experiment.load(tree / PARAMS)
    run = exp.grid_runs[0].run_id
    target = run_metrics(run)
    with contextlib.chdir(tree):
        Path(SAMPLE_MANIFEST).parent.mkdir(parents=True)
        Path(SAMPLE_MANIFEST).write_text("{}\n")
        write_json(TOKENS_META, provenance([SAMPLE_MANIFEST]))
    assert TOKENS_META in pipeline.STAGE["tokenize_gather"].node(exp, PARAMS).outs
    shows = ((), ("--depth", "1"), ("--summary",), ("--summary", "--depth", "1", "--json"))
    for extra in shows:
        assert lineage(tree, capsys, target, "--check", *extra)[0] == 0, extra
    (tree / SAMPLE_MANIFEST).write_text('{"changed": true}\n')
    verdicts = set()
    for extra in shows:
        code, _, err = lineage(tree, capsys, target, "--check", *extra)
        assert code == 1 and f"{SAMPLE_MANIFEST}: changed since tokenize_gather read it" in err, extra
        verdicts.add(tuple(line for line in err.splitlines() if "mismatch" in line or "is stale" in line))
    assert len(verdicts) == 1


def test_a_limited_walk_names_what_it_did_not_walk(tree, capsys):
    write_params(tree / PARAMS, TWO_RUNS, base=tree / PARAMS)
    chain = full_chain(tree, capsys, TOKENS_META)
    code, out, err = lineage(tree, capsys, TOKENS_META, "--summary", "--json", "--depth", "1")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["stages"] == 1
    assert set(summary["not_walked"]) == {s["stage"] for s in chain if s["depth"] == 1}
