"""What was measured at D_C: every trained candidate's and the baseline's held-out loss under each seed, and the
noise those runs carry.

A candidate is measured through its select.validate runs or, when validation did not train its shape, through
the top-k slot the selection put it in; either way under select.seeds seeds paired with the baseline's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morph.errors import MorphError
from morph.io import read_json
from morph.report.contrasts import Noise, paired_noise
from morph.spec.artifacts.train import RUN_METRICS
from morph.spec.expand import replicate_id


def losses(runs_dir: Path, run_ids: list[str], seed: int) -> list[float]:
    """The held-out loss of each run, checked to be seed replicate j's (seed + j), so shapes pair by seed."""
    out = []
    for j, rid in enumerate(run_ids):
        m = read_json(runs_dir / rid / RUN_METRICS)
        if m.get("seed") != seed + j:
            raise MorphError(f"{runs_dir / rid / RUN_METRICS}: trained with seed {m.get('seed')!r}, but seed replicate "
                             f"{j} of the experiment's seed {seed} is {seed + j}; retrain it with the experiment's "
                             f"command (`morph lineage --check` names it)")
        out.append(float(m["val_loss"]))
    return out


def shapes(cfg, selection: dict, runs_dir: Path) -> list[dict]:
    """Each candidate trained at D_C (feasible or not), with its runs (seed order), losses and mean."""
    seeds = cfg.target_seeds
    by_shape = {c["shape_id"]: c for c in selection["candidates"]}
    runs: dict[str, list[str]] = {}
    for r in cfg.validation_runs:
        runs.setdefault(r.shape.shape_id, []).append(r.run_id)
    for c in selection["candidates"]:
        if c.get("slot") and c["shape_id"] not in runs:
            runs[c["shape_id"]] = [replicate_id(c["slot"], j) if j else c["slot"] for j in range(seeds)]
    out = []
    for shape_id, ids in runs.items():
        cand, values = by_shape[shape_id], losses(runs_dir, ids, cfg.seed)
        out.append({"shape_id": shape_id, "run_id": ids[0], "runs": ids, "losses": values,
                    "mean_loss": float(np.mean(values)), "feasible": cand["kept"], "candidate": cand})
    return out


def baseline(cfg, runs_dir: Path) -> dict:
    ids = [r.run_id for r in cfg.baseline_runs]
    values = losses(runs_dir, ids, cfg.seed)
    return {"run_id": ids[0], "runs": ids, "losses": values, "mean_loss": float(np.mean(values))}


def noise(measured: list[dict], base: dict, selection: dict) -> Noise | None:
    """The paired noise of the D_C runs when there are seeds to estimate it from; otherwise the grid replicates'
    run-to-run sd (cheaper runs, unpaired: a difference of single runs then has sd times sqrt 2)."""
    paired = paired_noise({**{m["shape_id"]: m["losses"] for m in measured}, "baseline": base["losses"]})
    if paired is not None:
        return paired
    floor = selection["noise"]
    df = sum(r["seeds"] - 1 for r in floor["replicated_runs"])
    if floor["loss_sd"] is None or df < 1:
        return None
    return Noise(floor["loss_sd"], df, 1, "the grid's seed replicates (grid.replicates), unpaired and cheaper "
                                          "than D_C: select.seeds >= 2 measures the noise where the decision is made")
