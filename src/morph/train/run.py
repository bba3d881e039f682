"""Pre-train one model (a grid run or a selected top-k slot) on the tokens, with exact token budgets.

A grid or baseline run:   morph train --run d64-l2-t4 --tokens data/tokens --out runs/d64-l2-t4
A selected slot:          morph train --selection results/selection.json --slot top-1 --tokens data/tokens --out runs/top-1

Writes <out>/model/ (save_pretrained + tokenizer), <out>/metrics.json and a loss curve in
<out>/logs/metrics.csv. A checkpoint in <out>/ckpt/last.ckpt lets a killed run resume; it is
used only when its fingerprint (shape, budget, training settings, seed, tokens, code) matches.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from morph.errors import MorphError
from morph.io import atomic_dir, library_versions, provenance, read_json, sha256_file, write_json
from morph.shape import run_id as make_run_id
from morph.workflow import code_deps, experiment, paths
from morph.workflow.experiment import Experiment, Train
from morph.workflow.grid import Run

# Settings that do not change the numbers a run produces, so a checkpoint survives them.
NOT_FINGERPRINTED = ("threads", "checkpoint_every", "val_batches")


def add_arguments(p):
    p.add_argument("--params", default=paths.PARAMS, help="experiment file (default: %(default)s)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="a grid or baseline run id (see `morph grid`)")
    which.add_argument("--selection", help="results/selection.json, with --slot")
    p.add_argument("--slot", help="the target slot to train, e.g. top-1 (with --selection)")
    p.add_argument("--tokens", default=paths.TOKENS, help="tokens directory (default: %(default)s)")
    p.add_argument("--out", required=True, help="run directory, e.g. runs/<run_id>")


def say(message: str) -> None:
    print(f"morph train: {message}", file=sys.stderr, flush=True)


def resolve_run(cfg: Experiment, args) -> tuple[Run, str | None]:
    """The Run to train and, for a target slot, its slot name. Both kinds then share one code path."""
    if args.run:
        if args.slot:
            raise MorphError("--slot goes with --selection, not with --run")
        try:
            return cfg.run(args.run), None
        except KeyError as err:
            raise MorphError(f"{args.params}: {err.args[0]}") from None
    if not args.slot:
        raise MorphError("--selection needs --slot (one of " + ", ".join(cfg.slots) + ")")
    selection = read_json(args.selection)
    entries = [e for e in selection.get("top_k", []) if e.get("slot") == args.slot]
    if not entries:
        raise MorphError(f"{args.selection}: no entry for slot {args.slot!r} under top_k")
    entry, tokens = entries[0], selection.get("tokens")
    if not isinstance(tokens, int) or tokens < 1:
        raise MorphError(f"{args.selection}: 'tokens' must be a positive integer token budget, got {tokens!r}")
    try:
        shape = cfg.rules.build(int(entry["d_model"]), int(entry["n_layers"]))
    except KeyError as err:
        raise MorphError(f"{args.selection}: slot {args.slot!r} lacks {err.args[0]!r}") from None
    return Run(entry.get("run_id") or make_run_id(shape, tokens=tokens), shape, tokens, None), args.slot


def fingerprint(run: Run, cfg: Experiment, tokens_meta_sha: str) -> str:
    settings = {
        "shape": run.shape.to_dict(),
        "tokens": run.tokens,
        "model": cfg.params("model"),
        "train": {k: v for k, v in cfg.params("train").items() if k not in NOT_FINGERPRINTED},
        "seed": cfg.seed,
        "tokens_meta": tokens_meta_sha,
        # The same derived list both orchestrators track for this stage.
        "code": {path: sha256_file(code_deps.REPO / path) for path in code_deps.files(__name__)},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def resume_point(ckpt: Path, fp: str) -> int | None:
    """The step to resume from, or None to start afresh (saying why)."""
    import torch

    if not ckpt.exists():
        return None
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as err:  # a checkpoint from a killed writer or another torch: start over
        say(f"ignoring unreadable checkpoint {ckpt} ({type(err).__name__})")
        return None
    if state.get("morph", {}).get("fingerprint") != fp:
        say(f"ignoring checkpoint {ckpt}: it was written for a different configuration, data or code")
        return None
    return int(state["global_step"])


def resolve_device(train: Train) -> tuple[str, str]:
    import torch

    accelerator = train.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    precision = train.precision
    if precision == "auto":
        precision = "bf16-mixed" if accelerator == "gpu" else "32-true"
    return accelerator, precision


def save_model(model, tokenizer_dir: Path, dest: Path) -> None:
    """save_pretrained plus the tokenizer, so AutoTokenizer and lm-eval's hf model load the directory."""
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp)
        shutil.copytree(tokenizer_dir, tmp, dirs_exist_ok=True)


def make_trainer(t: Train, accelerator: str, precision: str, out: Path, total: int):
    """The Lightning Trainer of every run (and of benchmarks/train_throughput.py)."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from morph.train.checkpointing import AtomicCheckpointIO, StepProgressBar

    return L.Trainer(
        accelerator=accelerator, devices=t.devices, strategy=t.strategy, precision=precision,
        max_steps=total, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
        gradient_clip_val=t.grad_clip or None, gradient_clip_algorithm="norm",
        logger=CSVLogger(out, name="logs", version=""),
        callbacks=[ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=t.checkpoint_every, save_top_k=0,
                                   save_last=True, enable_version_counter=False),
                   StepProgressBar(refresh_rate=max(1, total // 100))],
        plugins=[AtomicCheckpointIO()], enable_model_summary=False, default_root_dir=out,
    )


def train(cfg: Experiment, run: Run, tokens_dir: str | Path, out: str | Path, slot: str | None = None,
          inputs: list[Path] | None = None, params: str = paths.PARAMS) -> dict:
    """Train `run` and write <out>/model and <out>/metrics.json; returns the metrics."""
    import lightning as L
    import torch

    from morph.model import build_model
    from morph.train.batches import make_datamodule, open_tokens, steps_for_budget
    from morph.train.checkpointing import join_curve, keep_curve_before
    from morph.train.flops import matmul_peak_flops, mfu, train_flops_per_token
    from morph.train.lm import CausalLM, Optim

    started = time.perf_counter()
    out = Path(out)
    t, m, seed = cfg.train, cfg.model, cfg.seed
    if t.devices > 1:
        # Every rank would draw the same batches (batches.TrainSteps is not sharded), breaking the budget.
        raise MorphError(f"train.devices: {t.devices} devices are not supported yet; use 1")
    data = open_tokens(tokens_dir, params)
    if data.meta["vocab_size"] != run.shape.vocab_size:
        raise MorphError(
            f"{data.root / 'meta.json'}: vocab_size {data.meta['vocab_size']} differs from the experiment's "
            f"tokenizer ({run.shape.vocab_size}); re-run `morph tokenize` with this params file"
        )
    seq_len, batch = m.seq_len, t.batch_size
    total = steps_for_budget(run.tokens, batch, seq_len)
    torch.set_num_threads(t.threads)
    accelerator, precision = resolve_device(t)
    meta_sha = sha256_file(data.root / "meta.json")
    fp = fingerprint(run, cfg, meta_sha)
    ckpt = out / "ckpt" / "last.ckpt"
    start = resume_point(ckpt, fp)
    if start is not None:
        say(f"resuming {run.run_id} from step {start} of {total} ({ckpt})")

    model = build_model(run.shape, m.max_position_embeddings, data.meta["eot_id"], seed)
    module = CausalLM(model, Optim.from_params(t, total), fp, compile=t.compile, log_every=min(10, total))
    dm = make_datamodule(data, seq_len, batch, t.val_batches, seed, run.tokens, start or 0)

    (out / "metrics.json").unlink(missing_ok=True)  # present only when model/ and metrics agree
    keep_curve_before(out / "logs", start)
    trainer = make_trainer(t, accelerator, precision, out, total)
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if start is not None else None)
    if trainer.global_step != total:
        raise MorphError(f"training stopped at step {trainer.global_step} of {total}")
    join_curve(out / "logs")

    L.Trainer(accelerator=accelerator, devices=1, precision=precision, logger=False,
              enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False
              ).validate(module, datamodule=dm, verbose=False)
    val_loss = module.val_loss
    if not torch.isfinite(torch.tensor(val_loss)):
        raise MorphError(f"held-out loss of {run.run_id} is {val_loss}; not writing metrics")

    peak_dtype = "bfloat16" if precision.startswith("bf16") else "float32"
    peak = matmul_peak_flops("cuda" if accelerator == "gpu" else "cpu", peak_dtype)
    tokens_per_s = run.tokens / module.train_s
    save_model(model, data.tokenizer_dir, out / "model")
    metrics = {
        "run_id": run.run_id,
        "slot": slot,
        "shape": run.shape.to_dict(),
        "params": run.shape.params(),
        "non_embedding_params": run.shape.non_embedding_params(),
        "multiplier": run.multiplier,
        "tokens": run.tokens,
        "tokens_seen": run.tokens,  # the last batch's targets past the budget are masked out
        "steps": total,
        "batch_size": batch,
        "seq_len": seq_len,
        "data_epochs": run.tokens / len(data.train),
        "val_loss": val_loss,
        "val_tokens": module.val_count,
        "train_loss_ema": module.train_loss_ema,
        "resumed_from_step": start,
        "wall_s": time.perf_counter() - started,
        "train_s": module.train_s,
        "tokens_per_s": tokens_per_s,
        "train_flops_per_token": train_flops_per_token(run.shape, seq_len),
        "matmul_peak": {"flops": peak, "dtype": peak_dtype, "n": 1024, "threads": torch.get_num_threads()},
        "mfu": mfu(tokens_per_s, run.shape, seq_len, peak),
        "seed": seed,
        "precision": precision,
        "accelerator": accelerator,
        "threads": t.threads,
        "config": {"model": cfg.params("model"), "train": cfg.params("train")},
        "versions": library_versions("torch", "lightning", "transformers", "numpy", "morph"),
        "provenance": provenance([data.root / "meta.json", *(inputs or [])],
                                 {"tokens_sha256": data.meta.get("sha256"), "tokenizer": data.meta.get("tokenizer")}),
    }
    write_json(out / "metrics.json", metrics)
    shutil.rmtree(out / "ckpt", ignore_errors=True)  # a finished run needs no checkpoint
    say(f"{run.run_id}: val_loss {val_loss:.4f}, {tokens_per_s:,.0f} tokens/s, MFU {metrics['mfu']:.1%}")
    return metrics


def run(args):
    cfg = experiment.load(args.params)
    target, slot = resolve_run(cfg, args)
    train(cfg, target, args.tokens, args.out, slot, inputs=[Path(args.selection)] if args.selection else None,
          params=args.params)
    return 0
