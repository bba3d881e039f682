"""List the candidate shapes near the parameter target N_C, each with its latency (measured or predicted)."""
from __future__ import annotations

import csv
from pathlib import Path

from morph.errors import MorphError
from morph.io import provenance, read_json, write_json
from morph.latency.cost_model import MODEL_SETTING, predict_latency
from morph.shape import Shape
from morph.workflow import experiment, paths
from morph.workflow.experiment import Experiment


def add_arguments(p):
    p.add_argument("--params", default=paths.PARAMS, help="experiment file (default: %(default)s)")
    p.add_argument("--latency", default=paths.LATENCY_CSV, help="measured latencies (latency-collect)")
    p.add_argument("--latency-model", default=paths.LATENCY_MODEL, help="fitted latency model")
    p.add_argument("--out", default=paths.CANDIDATES)


def paper_setting_latency(latency_csv: Path, backend: str) -> dict[str, dict]:
    """shape_id -> {median, p10, p90} of the paper's setting (batch 1, full generate) for one backend."""
    if not latency_csv.exists():
        raise MorphError(f"{latency_csv}: missing latency table (run `morph latency-collect`)")
    found = {}
    with open(latency_csv) as f:
        for row in csv.DictReader(f):
            if row["backend"] == backend and row["setting"] == MODEL_SETTING:
                found[row["shape_id"]] = {f"{k}_s": float(row[k]) for k in ("median", "p10", "p90")} | {
                    "cv": float(row["cv"]) if row["cv"] else None}
    return found


def describe(shape: Shape, cfg: Experiment, measured: dict, model: dict) -> dict:
    target, tol = cfg.select.params, cfg.select.tolerance
    gap = shape.params() / target - 1
    if cfg.select.latency_source == "measured" and shape.shape_id in measured:
        latency = measured[shape.shape_id] | {"source": "measured"}
    elif cfg.select.latency_source == "measured":
        raise MorphError(f"{shape.shape_id}: no measured latency; run its latency job or set select.latency_source: model")
    else:
        latency = {"median_s": predict_latency(model, shape, backend=cfg.select.latency_metric,
                                               device=cfg.latency.device),
                   "source": "latency model"}
    return {
        "shape_id": shape.shape_id, **shape.to_dict(),
        "params_gap": gap, "within_tolerance": abs(gap) <= tol, "latency": latency,
    }


def run(args):
    cfg = experiment.load(args.params)
    backend = cfg.select.latency_metric
    measured = paper_setting_latency(Path(args.latency), backend)
    model = read_json(args.latency_model)
    shapes = cfg.candidate_shapes
    out = {
        "target_params": cfg.select.params,
        "tolerance": cfg.select.tolerance,
        "latency_backend": backend,
        "candidates": [describe(s, cfg, measured, model) for s in shapes],
        "baseline": describe(cfg.baseline.shape, cfg, measured, model),
        **provenance([args.latency, args.latency_model]),
    }
    write_json(args.out, out)
    near = sum(c["within_tolerance"] for c in out["candidates"])
    print(f"{len(shapes)} candidate shapes, {near} within {cfg.select.tolerance:.0%} of N_C")
    return 0
