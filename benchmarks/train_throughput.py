"""Training throughput: `morph train`'s Lightning loop against a plain PyTorch loop, same model, same batches.

For each toy shape it times steady-state steps of
  - plain:     a hand-written loop (forward, loss, backward, clip, AdamW, schedule) over the HF model;
  - lightning: CausalLM inside the Trainer that `morph train` builds (progress bar, logger, checkpoint callback);
and prints tokens per second (on CPU per CPU second of this process, see `clock`), the ratio lightning/plain
(target >= 0.95) and MFU against the device's peak in the precision's compute dtype (on CPU an fp32 matmul peak
measured in the same run; target >= 40% for d_model >= 128). With --compile it repeats both with torch.compile.
--accelerator gpu --precision bf16-mixed times them on a GPU, by the wall clock once the device has finished.
The two loops alternate for --rounds rounds and each keeps its best round: the machine is shared and noisy.
Both run in this process under `morph train`'s malloc setting (train/memory.py), so neither pays page faults
the other does not.

    python benchmarks/train_throughput.py [--threads 2] [--steps 6] [--rounds 3] [--compile] [--accelerator gpu]

Token ids are drawn uniformly from the vocabulary: throughput does not depend on which tokens they are.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from morph.core import experiment
from morph.core.decoder import build_model
from morph.train.batches import IGNORE, TokenData, TokenStream, make_datamodule, steps_for_budget, train_batch
from morph.train.flops import PRECISION_DTYPES, device_peak, matmul_peak_flops, train_flops_per_token
from morph.train.launch import Launch
from morph.train.lm import CausalLM, Optim, lr_factor
from morph.train.memory import keep_freed_memory
from morph.train.run import make_trainer

SHAPES = ((64, 2), (128, 2), (256, 2))


def clock(launch: Launch) -> float:
    """On CPU, CPU seconds of this process, not wall seconds: on a shared machine the wall clock also counts the
    time the neighbours hold the cores, which no loop can cut; both loops run on this process's threads alone.
    On a GPU the wall clock, read once the device has run everything queued."""
    if launch.accelerator == "cpu":
        return time.process_time()
    torch.cuda.synchronize()
    return time.perf_counter()


def autocast(launch: Launch):
    """The compute precision Lightning's precision plugin gives the forward pass."""
    mixed = launch.precision.endswith("-mixed")
    return torch.autocast("cuda" if launch.accelerator == "gpu" else "cpu",
                          dtype=getattr(torch, PRECISION_DTYPES[launch.precision]), enabled=mixed)


CPU = Launch("cpu", "32-true", "auto")


def plain_loop(model, optim: Optim, batches, grad_clip: float, warmup: int, compile: bool, log_every: int,
               launch: Launch = CPU) -> float:
    """Seconds (see `clock`) for the steps after `warmup`, in the plainest loop that does the same work."""
    device = "cuda" if launch.accelerator == "gpu" else "cpu"
    model = model.to(device)
    forward = torch.compile(model.forward) if compile else model.forward
    decay = [p for p in model.parameters() if p.ndim >= 2]
    keep = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": optim.weight_decay},
                             {"params": keep, "weight_decay": 0.0}], lr=optim.lr, betas=optim.betas)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, optim))
    for step, make in enumerate(batches):
        if step == warmup:
            start = clock(launch)
        inputs, targets = (x.to(device) for x in make())
        with autocast(launch):
            logits = forward(input_ids=inputs, use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        sched.step()
        if (step + 1) % log_every == 0:
            loss.item()  # the Lightning module reads the loss every train.log_every steps (NaN guard, EMA)
    return clock(launch) - start


class StepTimer:
    """Times Lightning's steps after `warmup`, measured like the plain loop's."""

    def __new__(cls, warmup: int, launch: Launch):
        from lightning.pytorch.callbacks import Callback

        class _Timer(Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if trainer.global_step == warmup:
                    self.start = clock(launch)

            def on_train_end(self, trainer, module):
                self.seconds = clock(launch) - self.start

        return _Timer()


def lightning_loop(model, optim: Optim, data: TokenData, t, seq_len: int, budget: int, warmup: int,
                   compile: bool, launch: Launch = CPU) -> float:
    module = CausalLM(model, optim, "benchmark", compile=compile, log_every=t.log_every)
    dm = make_datamodule(data, seq_len, t, budget, 0)
    # Lightning's notes (devices found, tips, why fit stopped) would land between the table's rows.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as out:
        trainer = make_trainer(t, launch, Path(out), optim.total_steps)
        timer = StepTimer(warmup, launch)
        trainer.callbacks.append(timer)
        with contextlib.redirect_stdout(sys.stderr):  # Lightning's progress bar writes to stdout
            trainer.fit(module, datamodule=dm)
    return timer.seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml", help="experiment whose model/train settings to use")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=6, help="timed steps per loop")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time both loops with torch.compile")
    ap.add_argument("--grid", action="store_true",
                    help="instead: Lightning tokens/s of every grid shape, with the serial time of the grid")
    ap.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--precision", choices=sorted(PRECISION_DTYPES), help="default: 32-true on cpu, bf16-mixed on gpu")
    args = ap.parse_args()
    args.launch = Launch(args.accelerator, args.precision or ("bf16-mixed" if args.accelerator == "gpu" else "32-true"),
                         "auto")

    cfg = experiment.load(args.params)
    t, seq_len = cfg.train, cfg.model.seq_len
    torch.set_num_threads(args.threads)
    on_cpu = args.accelerator == "cpu"
    if on_cpu:
        keep_freed_memory()
    rules = cfg.rules
    vocab = rules.vocab_size
    tokens = np.random.default_rng(0).integers(0, vocab, size=200_000).astype(np.uint32)
    data = TokenData(Path("."), {"vocab_size": vocab}, TokenStream([tokens]), TokenStream([tokens[:10_000]]))
    steps = args.warmup + args.steps
    budget = steps * t.batch_size * seq_len
    assert steps_for_budget(budget, t.batch_size, seq_len) == steps
    optim = Optim.from_params(t, steps)
    args.batch_tokens = t.batch_size * seq_len
    tokens_timed = budget_tokens(args)
    peak = (matmul_peak_flops("cpu", "float32", seconds=1.0) if on_cpu
            else device_peak("cuda", args.launch.precision)["flops"])
    print(f"{args.launch.accelerator} {args.launch.precision}, threads {args.threads}, "
          f"batch {t.batch_size} x seq {seq_len}, vocab {vocab}, "
          f"{args.steps} timed steps after {args.warmup}, best of {args.rounds} rounds")
    if args.grid:
        return grid_table(cfg, data, t, seq_len, budget, optim, args)
    variants = [False, True] if args.compile else [False]
    rows = []
    for d_model, n_layers in SHAPES:
        shape = rules.build(d_model, n_layers)
        model = build_model(shape, cfg.model.max_position_embeddings, 0, seed=0)
        if on_cpu:
            peak = max(peak, matmul_peak_flops("cpu", "float32", seconds=1.0))  # best seen so far: the hardware's
        for compile in variants:
            batches = [lambda s=s: train_batch(tokens, s, 0, t.batch_size, seq_len, budget) for s in range(steps)]
            plain = light = 0.0
            for _ in range(args.rounds):
                plain = max(plain, tokens_timed / plain_loop(copy.deepcopy(model), optim, batches, t.grad_clip,
                                                             args.warmup, compile, t.log_every, args.launch))
                light = max(light, tokens_timed / lightning_loop(copy.deepcopy(model), optim, data, t, seq_len,
                                                                 budget, args.warmup, compile, args.launch))
            rows.append((shape, compile, plain, light))
    print(f"{'shape':<10}{'params':>10}{'compile':>9}{'plain tok/s':>13}{'lightning tok/s':>17}{'ratio':>7}"
          f"{'MFU plain':>11}{'MFU light.':>11}")
    for shape, compile, plain, light in rows:
        flops = train_flops_per_token(shape, seq_len)
        print(f"{shape.shape_id:<10}{shape.params():>10,}{str(compile):>9}{plain:>13,.0f}{light:>17,.0f}"
              f"{light / plain:>7.3f}{plain * flops / peak:>11.1%}{light * flops / peak:>11.1%}")
    print(f"(MFU against {'the best fp32 matmul peak seen in this run' if on_cpu else 'the datasheet peak'}: "
          f"{peak / 1e9:.1f} GFLOP/s)")


def grid_table(cfg, data, t, seq_len, budget, optim, args):
    """Lightning tokens/s of every shape the experiment trains, and the serial time its runs would take."""
    runs = (*cfg.grid_runs, cfg.baseline)
    rate = {}
    for run in runs:
        if run.shape.shape_id not in rate:
            model = build_model(run.shape, cfg.model.max_position_embeddings, 0, seed=0)
            rate[run.shape.shape_id] = max(
                budget_tokens(args) / lightning_loop(copy.deepcopy(model), optim, data, t, seq_len, budget,
                                                     args.warmup, False, args.launch) for _ in range(args.rounds))
    print(f"{'run':<16}{'params':>10}{'tokens':>12}{'tok/s':>9}{'est. s':>9}")
    total = 0.0
    for run in runs:
        seconds = run.tokens / rate[run.shape.shape_id]
        total += seconds
        print(f"{run.run_id:<16}{run.shape.params():>10,}{run.tokens:>12,}{rate[run.shape.shape_id]:>9,.0f}"
              f"{seconds:>9.0f}")
    print(f"all runs one after another: {total / 60:.1f} min at {args.threads} thread(s)")


def budget_tokens(args) -> int:
    return args.steps * args.batch_tokens

if __name__ == "__main__":
    main()
