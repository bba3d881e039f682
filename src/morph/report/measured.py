"""What was measured at D_C: every trained candidate's and the baseline's held-out loss under each seed, and the
noise those runs carry.

A candidate is measured through its select.validate runs or, when validation did not train its shape, through
the top-k slot the selection put it in; either way under select.seeds seeds paired with the baseline's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morph.core.artifacts.select import Selection
from morph.core.artifacts.train import RUN_METRICS, RunMetrics
from morph.core.errors import MorphError
from morph.report.contrasts import Noise, paired_noise


def losses(runs_dir: Path, run_ids: list[str], seed: int) -> list[float]:
    """The held-out loss of each run, checked to be seed replicate j's (seed + j), so shapes pair by seed."""
    out = []
    for j, rid in enumerate(run_ids):
        m = RunMetrics.read(runs_dir / rid / RUN_METRICS)
        if m.seed != seed + j:
            raise MorphError(f"{runs_dir / rid / RUN_METRICS}: trained with seed {m.seed!r}, but seed replicate "
                             f"{j} of the experiment's seed {seed} is {seed + j}; retrain it with the experiment's "
                             f"command (`morph lineage --check` names it)")
        out.append(float(m.val_loss))
    return out


def check_selection(selection: Selection, path: str) -> None:
    """The selection read back against its own budgets: a candidate marked feasible meets T_C and the parameter
    tolerance, and the top-k are feasible, so a hand-edited selection.json cannot steer the release."""
    t_c = selection.budgets["latency_s"]
    for c in selection.candidates:
        meets = c["latency"]["median_s"] <= t_c and c["within_tolerance"]
        if c["kept"] and not meets or c.get("slot") and not c["kept"]:
            raise MorphError(f"{path}: candidate {c['shape_id']} is marked {'kept' if c['kept'] else 'dropped'}"
                             f"{' and ' + c['slot'] if c.get('slot') else ''}, but its latency "
                             f"{c['latency']['median_s']:.3f} s and tolerance ({c['within_tolerance']}) against "
                             f"T_C = {t_c:.3f} s disagree; rebuild it with `morph select` (`morph lineage --check` "
                             "names what changed)")


def shapes(cfg, selection: Selection, runs_dir: Path) -> list[dict]:
    """Each candidate trained at D_C (feasible or not), with its runs (seed order), losses and mean."""
    by_shape = {c["shape_id"]: c for c in selection.candidates}
    runs: dict[str, list[str]] = {}
    for r in cfg.validation_runs:
        runs.setdefault(r.shape.shape_id, []).append(r.run_id)
    for c in selection.candidates:
        if c.get("slot") and c["shape_id"] not in runs:
            runs[c["shape_id"]] = list(cfg.slot_seeds(c["slot"]))
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


def grid_df(floor: dict) -> int:
    """The degrees of freedom of the grid replicates' pooled sd (a selection's `noise`)."""
    return sum(r["seeds"] - 1 for r in floor["replicated_runs"])


def noise(measured: list[dict], base: dict, selection: Selection) -> Noise | None:
    """The paired noise of the D_C runs when there are seeds to estimate it from; otherwise the grid replicates'
    run-to-run sd (cheaper runs, unpaired: a difference of single runs then has sd times sqrt 2)."""
    paired = paired_noise({**{m["shape_id"]: m["losses"] for m in measured}, "baseline": base["losses"]})
    if paired is not None:
        return paired
    floor = selection.noise
    df = grid_df(floor)
    if floor["loss_sd"] is None or df < 1:
        return None
    return Noise(floor["loss_sd"], df, 1, "the grid's seed replicates (grid.replicates), unpaired and cheaper "
                                          "than D_C: select.seeds >= 2 measures the noise where the decision is made")
