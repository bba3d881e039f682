"""Training throughput across ranks and loops, each ratio against a baseline measured in the same run.

1. Ranks: `morph train` on 1 CPU rank against 2 CPU ranks (ddp over gloo, 1 thread each), at d128 and d256;
   tokens/s from each run's metrics.json (the training loop alone). Target on 2 cores: >= 1.7x. Where other
   jobs hold the cores the wall ratio measures them too, so the table adds the parallel efficiency in CPU
   time (tokens per CPU second of a rank, 2 ranks against 1) and the speed-up it implies on 2 free cores.
   `ceiling` runs two independent 1-rank trainings at once: their summed tokens/s against the best 1-rank
   run is the most the cores give this shape without any all-reduce or replicated optimizer step.
2. Loops: `morph train`'s Lightning loop against a plain PyTorch loop (benchmarks/train_throughput.py's two
   loops) at the default grid's two smallest shapes and d64-l2, d128-l2, in tokens per CPU second of this
   process (the machine is shared: wall time would time the neighbours), both under `morph train`'s malloc
   setting (train/memory.py). Target: >= 0.95.

    python benchmarks/train_scaling.py [--params params.yaml] [--steps 40] [--rounds 2]

Token ids are drawn uniformly from the vocabulary: throughput does not depend on which tokens they are.
Progress bars and Lightning's messages go to a log file (--log), so only the tables reach stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from train_throughput import lightning_loop, plain_loop

from morph.core import experiment
from morph.core.decoder import build_model
from morph.core.io import sha256_file, write_json
from morph.train.batches import TokenData, TokenStream, train_batch
from morph.train.lm import Optim
from morph.train.memory import keep_freed_memory

MORPH = str(Path(sys.executable).with_name("morph"))
RANK_SHAPES = ((128, 2), (256, 2))
LOOP_SHAPES = ((64, 2), (128, 2))


def token_dir(root: Path, vocab: int, n: int) -> Path:
    """A tokens directory `morph train` accepts: one random-id shard per split, an empty tokenizer folder."""
    ids = np.random.default_rng(0).integers(0, vocab, size=n).astype(np.uint16)
    splits = {}
    for split, part in (("train", ids), ("val", ids[: n // 10])):
        shard = root / f"{split}-00000.bin"
        part.tofile(shard)
        entry = {"file": shard.name, "tokens": len(part), "sha256": sha256_file(shard)}
        splits[split] = {"tokens": len(part), "shards": [entry]}
    (root / "tokenizer").mkdir()
    write_json(root / "meta.json", {"vocab_size": vocab, "eot_id": 0, "dtype": "uint16", "splits": splits})
    return root


def start_train(root: Path, params: Path, tokens: Path, d_model: int, n_layers: int, budget: int, name: str,
                log) -> subprocess.Popen:
    selection = root / f"{name}.json"
    selection.write_text(json.dumps({"top_k": [{"slot": "top-1", "d_model": d_model, "n_layers": n_layers,
                                                "run_id": name}], "tokens": budget}))
    return subprocess.Popen([MORPH, "train", "--params", str(params), "--selection", str(selection), "--slot",
                             "top-1", "--tokens", str(tokens), "--out", str(root / name)], stdout=log, stderr=log)


def finish(root: Path, run: subprocess.Popen, name: str, log) -> dict:
    if run.wait():
        raise SystemExit(f"morph train failed for {name}; see {log.name}")
    return json.loads((root / name / "metrics.json").read_text())


def ranks_table(cfg, raw: dict, args, root: Path, log) -> None:
    t, seq_len = cfg.train, cfg.model.seq_len
    budget = args.steps * t.batch_size * seq_len
    tokens = token_dir(Path(tempfile.mkdtemp(dir=root)), cfg.rules.vocab_size, 400_000)
    params = {}
    for ranks in (1, 2):
        train = raw.setdefault("train", {}) | {"devices": ranks, "strategy": "ddp" if ranks > 1 else "auto",
                                               "accelerator": "cpu", "threads": 1,
                                               "checkpoint_every": 10 * args.steps}
        params[ranks] = root / f"params-{ranks}.yaml"
        params[ranks].write_text(yaml.safe_dump(raw | {"train": train}, sort_keys=False))
    print(f"\nRanks: batch {t.batch_size} x seq {seq_len}, {args.steps} steps, 1 thread per rank, "
          f"best of {args.rounds} rounds")
    print(f"{'shape':<10}{'1 rank tok/s':>14}{'2 ranks tok/s':>15}{'ratio':>7}{'CPU efficiency':>16}"
          f"{'2 x efficiency':>16}{'ceiling':>9}")
    for d_model, n_layers in RANK_SHAPES:
        wall, cpu = {1: 0.0, 2: 0.0}, {1: 0.0, 2: 0.0}  # best tokens/s and tokens per CPU second of a rank
        ceiling = 0.0  # two independent 1-rank runs at once against one alone: what the cores allow, with no DDP
        for r in range(args.rounds):
            for ranks in (1, 2):
                name = f"d{d_model}-l{n_layers}-{ranks}r-{r}"
                m = finish(root, start_train(root, params[ranks], tokens, d_model, n_layers, budget, name, log),
                           name, log)
                wall[ranks] = max(wall[ranks], m["tokens_per_s"])
                cpu[ranks] = max(cpu[ranks], m["tokens"] / ranks / m["train_cpu_s"])
            pair = [f"d{d_model}-l{n_layers}-pair{i}-{r}" for i in (0, 1)]
            runs = [start_train(root, params[1], tokens, d_model, n_layers, budget, name, log) for name in pair]
            both = sum(finish(root, run, name, log)["tokens_per_s"] for run, name in zip(runs, pair))
            ceiling = max(ceiling, both / wall[1])
        efficiency = cpu[2] / cpu[1]
        print(f"{f'd{d_model}-l{n_layers}':<10}{wall[1]:>14,.0f}{wall[2]:>15,.0f}{wall[2] / wall[1]:>7.2f}"
              f"{efficiency:>16.2f}{2 * efficiency:>16.2f}{ceiling:>9.2f}")


def loops_table(cfg, args, log) -> None:
    t, seq_len, rules = cfg.train, cfg.model.seq_len, cfg.rules
    steps = args.warmup + args.steps
    budget = steps * t.batch_size * seq_len
    tokens = np.random.default_rng(0).integers(0, rules.vocab_size, size=200_000).astype(np.uint32)
    data = TokenData(Path("."), {"vocab_size": rules.vocab_size}, TokenStream([tokens]),
                     TokenStream([tokens[:20_000]]))
    optim = Optim.from_params(t, steps)
    timed = args.steps * t.batch_size * seq_len
    smallest = sorted({r.shape.shape_id: r.shape for r in cfg.grid_runs}.values(), key=lambda s: s.params())[:2]
    shapes = [*smallest, *(rules.build(d, n) for d, n in LOOP_SHAPES)]
    print(f"\nLoops: batch {t.batch_size} x seq {seq_len}, {args.steps} timed steps after {args.warmup}, "
          f"1 thread, best of {args.rounds} rounds")
    print(f"{'shape':<10}{'params':>10}{'plain tok/cpu-s':>17}{'lightning tok/cpu-s':>21}{'ratio':>8}")
    for shape in shapes:
        model = build_model(shape, cfg.model.max_position_embeddings, 0, seed=0)
        batches = [lambda s=s: train_batch(tokens, s, 0, t.batch_size, seq_len, budget) for s in range(steps)]
        plain = light = 0.0
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):  # Lightning's bar writes to stdout
            for _ in range(args.rounds):
                plain = max(plain, timed / plain_loop(copy.deepcopy(model), optim, batches, t.grad_clip,
                                                      args.warmup, False, t.log_every))
                light = max(light, timed / lightning_loop(copy.deepcopy(model), optim, data, t, seq_len, budget,
                                                          args.warmup, False))
        print(f"{shape.shape_id:<10}{shape.params():>10,}{plain:>17,.0f}{light:>21,.0f}{light / plain:>8.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml", help="experiment whose model/train settings to use")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before the loops' timing")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--log", default="train_scaling.log", help="where progress bars and messages go")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    keep_freed_memory()
    cfg = experiment.load(args.params)
    raw = experiment.read_raw(args.params)
    with open(args.log, "w") as log, tempfile.TemporaryDirectory() as root:
        ranks_table(cfg, raw, args, Path(root), log)
        loops_table(cfg, args, log)


if __name__ == "__main__":
    main()
