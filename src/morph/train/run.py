"""Pre-train one model (a grid run or a selected top-k slot) on the tokens, with exact token budgets.

A grid or baseline run:   morph train --run d64-l2-t4 --tokens data/tokens --out runs/d64-l2-t4
A selected slot:          morph train --selection results/selection.json --slot top-1 --tokens data/tokens \
                                      --out runs/top-1

Writes <out>/model/ (save_pretrained + tokenizer), <out>/metrics.json and a loss curve in
<out>/logs/metrics.csv. A checkpoint in <out>/ckpt/last.ckpt lets a killed run resume; it is
used only when its fingerprint (shape, budget, training settings, seed, tokens, code) matches.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from morph.core import experiment, source
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import META, TOKENIZER_CONFIG, TOKENIZER_FILES
from morph.core.artifacts.select import Selection
from morph.core.artifacts.train import LOGS, RUN_METRICS, RUN_MODEL, RunMetrics
from morph.core.errors import MorphError
from morph.core.expand import Run, seeded, split_replicate
from morph.core.experiment import Experiment
from morph.core.io import atomic_dir, library_versions, provenance, sha256_file, sha256_tree, write_json
from morph.core.train import Train
from morph.train import card, run_lock
from morph.train.card import CARD

if TYPE_CHECKING:
    from morph.train.launch import Launch

# Settings that do not change the numbers a run produces, so a checkpoint survives them.
NOT_FINGERPRINTED = ("threads", "checkpoint_every", "val_batches", "log_every")


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
    selection = Selection.read(args.selection)
    name, replicate = split_replicate(args.slot)
    if (entry := selection.slot(name)) is None:
        raise MorphError(f"{args.selection}: no entry for slot {args.slot!r} under top_k")
    if selection.tokens < 1:
        raise MorphError(f"{args.selection}: 'tokens' must be a positive token budget, got {selection.tokens!r}")
    shape = cfg.rules.build(entry.d_model, entry.n_layers, entry.ffn_ratio, entry.n_kv_heads)
    run = Run(entry.run_id, shape, selection.tokens, None)
    return seeded(run, replicate + 1)[replicate], args.slot


def fingerprint(run: Run, cfg: Experiment, tokens_meta_sha: str) -> str:
    settings = {
        "shape": run.shape.to_dict(),
        "tokens": run.tokens,
        "model": cfg.params("model"),
        "train": {k: v for k, v in cfg.params("train").items() if k not in NOT_FINGERPRINTED},
        "seed": run.seed(cfg.seed),
        "tokens_meta": tokens_meta_sha,
        # Training's own modules, as the walk finds them (its stage adds the section schemas, whose values are above).
        "code": {path: sha256_file(source.REPO / path) for path in source.files(__name__)},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def resume_point(ckpt: Path, fp: str) -> int | None:
    """The step to resume from, or None to start afresh (saying why)."""
    import torch

    if not ckpt.exists():
        return None
    try:
        # Mapped, not read: only the few values looked at here leave the disk, on every rank.
        state = torch.load(ckpt, map_location="cpu", mmap=True, weights_only=False)
    except Exception as err:  # a checkpoint from a killed writer or another torch: start over
        say(f"ignoring unreadable checkpoint {ckpt} ({type(err).__name__})")
        return None
    if state.get("morph", {}).get("fingerprint") != fp:
        say(f"ignoring checkpoint {ckpt}: it was written for a different configuration, data or code")
        return None
    return int(state["global_step"])


def reuse_twin(run: Run, fp: str, out: Path, slot: str) -> RunMetrics | None:
    """A top-k slot whose run was already trained (as a select.validate run, same shape, budget, seed, settings,
    data and code: the same fingerprint) is that run: its model and curve are copied instead of retrained, which
    gives the same bytes. None when there is no such finished twin."""
    twin = out.parent / run.run_id  # the runs folder holds both
    metrics_path = twin / RUN_METRICS
    if twin.resolve() == out.resolve() or not metrics_path.is_file():
        return None
    metrics = RunMetrics.read(metrics_path)
    if metrics.fingerprint != fp or sha256_tree(twin / RUN_MODEL) != metrics.model_sha256:
        return None
    (out / RUN_METRICS).unlink(missing_ok=True)
    for part in (RUN_MODEL, LOGS):
        with atomic_dir(out / part) as tmp:
            shutil.copytree(twin / part, tmp, dirs_exist_ok=True)
    metrics = replace(metrics, slot=slot, reused_from=str(twin))
    write_json(out / RUN_METRICS, metrics.to_json())
    say(f"{slot}: {run.run_id} is already trained in {twin} with the same fingerprint; copied")
    return metrics


def check_tokenizer(directory: Path, meta: dict, meta_path: Path, params: str) -> None:
    """The tokenizer copied into the model is the one the tokens were encoded with: meta.json records its sha256,
    and the graph tracks meta.json, not the directory."""
    recorded = meta.get("tokenizer_sha256")
    if recorded is None or (directory.is_dir() and sha256_tree(directory) == recorded):
        return
    missing = "it is missing" if not directory.is_dir() else next(
        (f"{name} is missing" for name in TOKENIZER_FILES if not (directory / name).is_file()),
        "its files changed")
    raise MorphError(f"{directory}: not the tokenizer {meta_path} was built with ({missing}); rebuild it: "
                     f"snakemake -j1 --force {directory} {meta_path} --configfile {shlex.quote(params)} (or dvc "
                     "repro -f -s tokenizer), then train again")


def save_model(model, state: dict, tokenizer_dir: Path, dest: Path, context: int, card: str) -> None:
    """save_pretrained of the module's whole `state`, the tokenizer and the model card, so AutoTokenizer and
    lm-eval's hf model load the directory. The tokenizer's model_max_length is the context the model was trained
    and is evaluated at (model.seq_len): positions up to max_position_embeddings exist but were never trained."""
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, state_dict={k.removeprefix("model."): v for k, v in state.items()})
        shutil.copytree(tokenizer_dir, tmp, dirs_exist_ok=True)
        config = tmp / TOKENIZER_CONFIG
        config.write_text(json.dumps(json.loads(config.read_text(encoding="utf-8")) | {"model_max_length": context},
                                     indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(card, encoding="utf-8")


def loggers(t: Train, out: Path) -> list:
    """The CSV curve that the graph reads, and TensorBoard event files in <out>/tb when train.logger asks."""
    from lightning.pytorch.loggers import CSVLogger

    chosen = [CSVLogger(out, name=LOGS, version="")]
    if t.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        chosen.append(TensorBoardLogger(out, name="tb", version="", default_hp_metric=False))
    return chosen


def make_trainer(t: Train, launch: Launch, out: Path, total: int):
    """The Lightning Trainer of every run (and of the benchmarks), on t.devices x t.num_nodes ranks."""
    import lightning as L

    from morph.train.checkpointing import AtomicCheckpointIO, PeriodicCheckpoint, StepProgressBar
    from morph.train.launch import lightning_strategy

    # Lightning warns that manual optimisation checkpoints the state after the step: the state a resume needs.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    return L.Trainer(
        accelerator=launch.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=lightning_strategy(launch),
        precision=launch.precision, max_steps=total, max_epochs=-1,
        # Validation is one pass after training (see train); the held-out windows are sharded by rank here.
        limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False,
        logger=loggers(t, out),
        callbacks=[PeriodicCheckpoint(dirpath=out / "ckpt", every_n_train_steps=t.checkpoint_every, save_top_k=0,
                                       save_last=True, enable_version_counter=False),
                   StepProgressBar(refresh_rate=max(1, total // 100))],
        plugins=[AtomicCheckpointIO()], enable_model_summary=False, default_root_dir=out,
    )


def steady_throughput(module, step_tokens: int, budget: int) -> dict:
    """Tokens/s past each session's warm-up steps and without checkpoint writes; a run too short to have such
    steps is timed over all of them, and says so."""
    from morph.train.lm import WARMUP_STEPS

    if module.steady_steps:
        return {"tokens_per_s": module.steady_steps * step_tokens / module.steady_s, "steps": module.steady_steps,
                "seconds": module.steady_s,
                "timed": f"steps after each session's first {WARMUP_STEPS}, checkpoint writes left out"}
    return {"tokens_per_s": budget / module.train_s, "steps": None, "seconds": module.train_s,
            "timed": "every step: the run is no longer than its warm-up"}


@dataclass
class Setup:
    """What a run trains with, once checked against this machine and the tokens."""
    launch: Launch
    data: object  # batches.TokenData
    total: int  # optimiser steps
    seed: int
    fingerprint: str


@dataclass
class Fitted:
    """A finished fit on rank 0: the module, its gathered weights and the held-out loss."""
    model: object
    module: object
    state: dict
    val_loss: float
    world_size: int
    resumed_from: int | None
    lock: object  # the run's lock on rank 0, held through the save


def setup(cfg: Experiment, run: Run, tokens_dir: str | Path, params: str) -> Setup:
    """The launch settings checked against this machine, the tokens against the experiment, and the threads set."""
    import torch

    from morph.train.batches import open_tokens, steps_for_budget
    from morph.train.launch import check, resolve, this_machine
    from morph.train.memory import keep_freed_memory

    t, m = cfg.train, cfg.model
    launch = resolve(t, torch.cuda.is_available())
    check(t, launch, this_machine(launch.accelerator), run.shape, m.seq_len)
    data = open_tokens(tokens_dir, params)
    if data.meta["vocab_size"] != run.shape.vocab_size:
        raise MorphError(
            f"{data.root / META}: vocab_size {data.meta['vocab_size']} differs from the experiment's "
            f"tokenizer ({run.shape.vocab_size}); rebuild the tokens for this experiment: "
            f"morph tokenize --params {params} --out {data.root}"
        )
    check_tokenizer(data.tokenizer_dir, data.meta, data.root / META, params)
    torch.set_num_threads(t.threads)
    if launch.accelerator == "cpu":  # on a GPU the steps' tensors live on the device; the host's memory goes back
        keep_freed_memory()
    os.environ["OMP_NUM_THREADS"] = str(t.threads)  # for ranks Lightning starts, which it would otherwise set
    return Setup(launch, data, steps_for_budget(run.tokens, t.batch_size, m.seq_len), run.seed(cfg.seed),
                 fingerprint(run, cfg, sha256_file(data.root / META)))


def fit(cfg: Experiment, run: Run, s: Setup, out: Path) -> Fitted | None:
    """Train from scratch or from the checkpoint this run left, then one pass over the held-out windows; the
    result on rank 0, None elsewhere. Rank 0 alone writes; here that is the process that starts the others,
    before it starts them."""
    import torch

    from morph.core.decoder import build_model
    from morph.train.batches import make_datamodule
    from morph.train.checkpointing import join_curve, keep_curve_before
    from morph.train.launch import global_rank, local_rank
    from morph.train.lm import CausalLM, Optim

    t, m = cfg.train, cfg.model
    ckpt = out / "ckpt" / "last.ckpt"
    start = resume_point(ckpt, s.fingerprint)
    rank_zero = global_rank(t.devices) == 0
    lock = run_lock.hold(out) if rank_zero else None
    if start is not None and rank_zero:
        say(f"resuming {run.run_id} from step {start} of {s.total} ({ckpt})")

    device = torch.device("cuda", local_rank(t.devices)) if s.launch.accelerator == "gpu" else None
    model = build_model(run.shape, m.max_position_embeddings, s.data.meta["eot_id"], s.seed, device)
    module = CausalLM(model, Optim.from_params(t, s.total), s.fingerprint, compile=t.compile,
                      log_every=min(t.log_every, s.total))
    dm = make_datamodule(s.data, m.seq_len, t, run.tokens, s.seed, start or 0)
    if rank_zero:
        keep_curve_before(out / LOGS, start)
        if start is None:
            shutil.rmtree(out / "tb", ignore_errors=True)  # a fresh run's events never mix with an old run's
    trainer = make_trainer(t, s.launch, out, s.total)
    trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt) if start is not None else None)
    if trainer.global_step != s.total:
        raise MorphError(f"training stopped at step {trainer.global_step} of {s.total}")
    trainer.limit_val_batches = 1.0  # fit validated nothing; now one pass over every rank's held-out share
    trainer.validate(module, datamodule=dm, verbose=False)
    # Gathered from every rank's shard under fsdp (so every rank takes part); the module's own weights elsewhere.
    state = trainer.strategy.lightning_module_state_dict()
    if not trainer.is_global_zero:
        return None
    join_curve(out / LOGS)
    if not torch.isfinite(torch.tensor(module.val_loss)):
        raise MorphError(f"held-out loss of {run.run_id} is {module.val_loss}; not writing metrics")
    return Fitted(model, module, state, module.val_loss, trainer.world_size, start, lock)


def record(cfg: Experiment, run: Run, s: Setup, f: Fitted, slot: str | None, inputs: list[Path],
           wall_s: float) -> RunMetrics:
    """The run's metrics.json: what was trained, its held-out loss, its speed and where its inputs came from; the
    model's sha256 is added once it is saved (save)."""
    from morph.train.flops import ATTENTION_FLOPS, device_peak, mfu, train_flops_per_token

    t, seq_len, launch = cfg.train, cfg.model.seq_len, s.launch
    peak = device_peak("cuda" if launch.accelerator == "gpu" else "cpu", launch.precision)
    throughput = steady_throughput(f.module, t.batch_size * seq_len, run.tokens)
    tokens_per_s = throughput["tokens_per_s"]
    return RunMetrics(
        run_id=run.run_id,
        slot=slot,
        fingerprint=s.fingerprint,  # a slot whose run this is already trained reuses it (reuse_twin)
        shape=run.shape.to_dict(),
        params=run.shape.params(),
        non_embedding_params=run.shape.non_embedding_params(),
        multiplier=run.multiplier,
        tokens=run.tokens,
        tokens_seen=run.tokens,  # the last batch's targets past the budget are masked out
        steps=s.total,
        batch_size=t.batch_size,
        micro_batch_size=t.micro_batch,
        world_size=f.world_size,
        seq_len=seq_len,
        data_epochs=run.tokens / len(s.data.train),
        val_loss=f.val_loss,
        val_tokens=f.module.val_count,
        train_loss_ema=f.module.train_loss_ema,
        resumed_from_step=f.resumed_from,
        wall_s=wall_s,
        train_s=f.module.train_s,
        train_cpu_s=f.module.train_cpu_s,  # rank 0's process
        tokens_per_s=tokens_per_s,
        throughput=throughput,
        train_flops_per_token=train_flops_per_token(run.shape, seq_len),
        attention_flops=ATTENTION_FLOPS,
        peak=peak,
        # Of all ranks together, against one device's peak times the ranks.
        mfu=mfu(tokens_per_s, run.shape, seq_len, peak["flops"] * t.world_size),
        seed=s.seed,
        replicate=run.replicate,
        replicate_of=run.original,
        precision=launch.precision,
        accelerator=launch.accelerator,
        strategy=launch.strategy,
        threads=t.threads,
        config={"model": cfg.params("model"), "train": cfg.params("train")},
        versions=library_versions("torch", "lightning", "transformers", "numpy", "morph"),
        provenance=provenance([s.data.root / META, *inputs], {"tokens_sha256": s.data.meta.get("sha256"),
                                                                 "tokenizer": s.data.meta.get("tokenizer")}),
        model_sha256=None,
    )


def save(s: Setup, f: Fitted, metrics: RunMetrics, out: Path, context: int) -> RunMetrics:
    """The model folder, then metrics.json naming its sha256 (the record returned). The old ones stay whole until
    the new ones are: a failed rerun leaves the old result, and a crash between the two writes leaves no
    metrics.json, never a new model beside old metrics."""
    (out / RUN_METRICS).unlink(missing_ok=True)
    save_model(f.model, f.state, s.data.tokenizer_dir, out / RUN_MODEL, context, card.render(metrics))
    # lineage checks the weights against it
    metrics = replace(metrics, model_sha256=sha256_tree(out / RUN_MODEL))
    write_json(out / RUN_METRICS, metrics.to_json())
    shutil.rmtree(out / "ckpt", ignore_errors=True)  # a finished run needs no checkpoint
    return metrics


def train(cfg: Experiment, run: Run, tokens_dir: str | Path, out: str | Path, slot: str | None = None,
          inputs: list[Path] | None = None, params: str = PARAMS) -> dict | None:
    """Train `run` and write <out>/model and <out>/metrics.json; returns metrics.json's content (RunMetrics.to_json)
    on rank 0, None elsewhere.

    With several ranks, Lightning starts the others by running this process's command again (or srun
    started them all); each trains on its rows of every batch and only rank 0 writes.
    """
    started, out = time.perf_counter(), Path(out)
    s = setup(cfg, run, tokens_dir, params)
    if slot is not None and (done := reuse_twin(run, s.fingerprint, out, slot)) is not None:
        return done.to_json()
    if (f := fit(cfg, run, s, out)) is None:
        return None
    metrics = record(cfg, run, s, f, slot, inputs or [], time.perf_counter() - started)
    metrics = save(s, f, metrics, out, cfg.model.seq_len)
    say(f"{run.run_id}: val_loss {f.val_loss:.4f}, {metrics.tokens_per_s:,.0f} tokens/s, MFU {metrics.mfu:.1%} "
        f"({metrics.peak['source']})")
    return metrics.to_json()


def run(args):
    cfg = experiment.load(args.params)
    target, slot = resolve_run(cfg, args)
    train(cfg, target, args.tokens, args.out, slot, inputs=[Path(args.selection)] if args.selection else None,
          params=args.params)
    return 0
