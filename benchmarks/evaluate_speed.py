"""How long `morph evaluate` takes, as Snakemake runs it (a fresh process per model).

Random-init models of the experiment's own shapes (a BPE tokenizer of the experiment's size,
trained here on benchmark text) are scored on the CI setting and on the default setting.
Wall time is the whole CLI process (imports, model load, lm-eval); ratios are against the
first row, measured in the same run because the machine is shared and noisy.

    python benchmarks/evaluate_speed.py [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph.core import experiment
from morph.evaluate import task_data as eval_data


def bpe_tokenizer(vocab_size: int):
    """A byte-level BPE trained on benchmark passages, wrapped as the train stage saves tokenizers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = eval_data.load_split("boolq/none")["validation"]["passage"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def save_model(cfg: dict, d_model: int, n_layers: int, out: Path) -> int:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    tok = bpe_tokenizer(cfg.vocab_size)
    shape = cfg.rules.build(d_model, n_layers)
    model = LlamaForCausalLM(shape.llama_config(cfg.model.max_position_embeddings, tok.eos_token_id))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return shape.params()


def time_cli(params: Path, model: Path, out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "morph.cli", "evaluate", "--params", str(params), "--model", str(model),
         "--out", str(out)],
        check=True, capture_output=True, env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
    )
    return time.perf_counter() - start, json.loads(out.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    ci = experiment.load(ROOT / "configs" / "ci.yaml")
    default = experiment.load(ROOT / "params.yaml")
    rules = default.rules
    mid = rules.propose(default.select.params, 4)  # a ~N_C candidate of the default experiment
    base = default.select.baseline
    ci_shape = ci.rules.propose(ci.select.params, 2)
    # (label, experiment file, experiment, d_model, n_layers)
    settings = [
        ("CI: ci.yaml evaluate", "configs/ci.yaml", ci, ci_shape.d_model, ci_shape.n_layers),
        ("1M model, ci.yaml evaluate", "configs/ci.yaml", default, mid.d_model, mid.n_layers),
        ("1M model, params.yaml evaluate", "params.yaml", default, mid.d_model, mid.n_layers),
        ("baseline, params.yaml evaluate", "params.yaml", default, base["d_model"], base["n_layers"]),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (label, params_file, model_cfg, d, n) in enumerate(settings):
            model = tmp / f"m{i}" / "model"
            n_params = save_model(model_cfg, d, n, model)
            params = ROOT / params_file
            walls, lm_walls = [], []
            for _ in range(args.repeats):
                wall, result = time_cli(params, model, tmp / f"e{i}.json")
                walls.append(wall)
                lm_walls.append(result["wall_s"])
            ev = yaml.safe_load(params.read_text())["evaluate"]
            items = sum(t["n"] for t in result["tasks"].values())
            rows.append((label, f"d{d}-l{n}", n_params, len(ev["tasks"]), ev.get("limit"), items,
                         min(walls), min(lm_walls)))
    ref = rows[0][6]
    print(f"{'setting':<32}{'shape':>10}{'params':>10}{'tasks':>6}{'limit':>6}{'items':>7}"
          f"{'wall s':>8}{'lm-eval s':>10}{'items/s':>8}{'ratio':>7}")
    for label, shape, n_params, n_tasks, limit, items, wall, lm_wall in rows:
        print(f"{label:<32}{shape:>10}{n_params:>10,}{n_tasks:>6}{str(limit):>6}{items:>7}"
              f"{wall:>8.1f}{lm_wall:>10.1f}{items / lm_wall:>8.1f}{wall / ref:>7.2f}")


if __name__ == "__main__":
    main()
