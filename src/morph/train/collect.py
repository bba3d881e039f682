"""Collect every grid run's metrics.json into results/runs.csv, one row per run (the law's fit data).

Seed replicates (grid.replicates) are rows of their own; every row of a replicated run carries the spread of
its replicates' losses (sample standard deviation and range), so the run-to-run noise sits beside the losses.
"""
from __future__ import annotations

import csv
import shlex
import statistics
from pathlib import Path

from morph.core import expand, experiment
from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.train import RUN_METRICS, RUNS_COLUMNS, RunMetrics
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import atomic_path, provenance, write_json


def row(run: expand.Run, metrics: RunMetrics, path: Path) -> dict:
    if metrics.run_id != run.run_id or metrics.tokens != run.tokens:
        raise MorphError(
            f"{path}: holds run {metrics.run_id!r} at {metrics.tokens} tokens, but the experiment "
            f"expects {run.run_id!r} at {run.tokens}; retrain it"
        )
    s = run.shape
    return {"run_id": run.run_id, "d_model": s.d_model, "n_layers": s.n_layers, "n_heads": s.n_heads,
            "params": s.params(), "non_embedding_params": s.non_embedding_params(), "tokens": run.tokens,
            "multiplier": run.multiplier, "aspect_ratio": s.aspect_ratio, "loss": metrics.val_loss,
            "train_loss_ema": metrics.train_loss_ema, "wall_s": metrics.wall_s,
            "tokens_per_s": metrics.tokens_per_s, "mfu": metrics.mfu, "replicate": run.replicate,
            "replicate_of": run.original, "seed": metrics.seed,
            "shape_id": s.shape_id, "n_kv_heads": s.n_kv_heads, "ffn": s.ffn,
            "mlp_attention_ratio": s.mlp_attention_ratio}


def add_spread(rows: list[dict]) -> None:
    """Each row's replicate count and, for replicated runs, the loss's sample sd and range over the seeds."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["replicate_of"], []).append(r)
    for members in groups.values():
        losses = [m["loss"] for m in members]
        sd, span = (statistics.stdev(losses), max(losses) - min(losses)) if len(losses) > 1 else (None, None)
        for m in members:
            m.update(replicates=len(members), loss_sd=sd, loss_range=span)


def read_row(run: expand.Run, path: Path, params: str) -> dict:
    """The run's row, or an error naming its metrics.json and the command that retrains it."""
    fix = (f"retrain it: snakemake -j1 --force {shlex.quote(str(path))} --configfile {shlex.quote(params)} "
           f"(or dvc repro -f -s train-{run.run_id}), or restore the file")
    if not path.exists():
        raise MorphError(f"{path}: missing; {fix}")
    return row(run, RunMetrics.read(path, fix), path)


def collect(cfg: Experiment, runs_dir: str | Path, out: str | Path, inputs_out: str | Path,
            params: str = PARAMS) -> list[dict]:
    runs_dir = Path(runs_dir)
    files = [runs_dir / run.run_id / RUN_METRICS for run in cfg.grid_runs]
    rows = [read_row(run, path, params) for run, path in zip(cfg.grid_runs, files)]
    add_spread(rows)
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=RUNS_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    write_json(inputs_out, provenance(files))  # a CSV holds no provenance block; lineage reads this
    return rows


def run(args):
    cfg = experiment.load(args.params)
    rows = collect(cfg, args.runs_dir, args.out, args.inputs_out, args.params)
    print(f"morph collect: {len(rows)} runs -> {args.out}")
    for r in rows:
        if r["replicate"] == 0 and r["loss_sd"] is not None:
            print(f"morph collect: {r['run_id']} over {r['replicates']} seeds: loss sd {r['loss_sd']:.4g}, "
                  f"range {r['loss_range']:.4g}")
    return 0
