"""List the candidate shapes near the parameter target N_C, each with its latency (measured or predicted)."""
from __future__ import annotations

from pathlib import Path

from morph.core import experiment
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import provenance, read_json, write_json
from morph.core.shape import Shape
from morph.latency.cost_model import MODEL_SETTING, predict_latency
from morph.latency.table import measured_settings


def serving_costs(shape: Shape, cfg: Experiment, settings: dict[str, dict]) -> dict:
    """The costs the serving budgets read: measured throughput and TTFT, and the KV cache by arithmetic."""
    sel, costs = cfg.select, {}
    if sel.min_throughput:
        key = f"throughput_b{sel.min_throughput.batch}"
        if key not in settings:
            raise MorphError(f"{shape.shape_id}: no measured {key}; rerun its latency job with this experiment")
        costs["throughput_tokens_per_s"] = settings[key]["median"]
    if sel.max_ttft_s is not None:
        if "ttft" not in settings:
            raise MorphError(f"{shape.shape_id}: no measured ttft; rerun its latency job with latency.ttft: true")
        costs["ttft_s"] = settings["ttft"]["median"]
    if sel.max_kv_cache:
        kv = sel.max_kv_cache
        costs["kv_cache_mib"] = shape.kv_cache_mib(kv.batch, kv.context, cfg.latency.timed_dtype)
    return costs


def by_backend(shape: Shape, timed: dict[str, dict]) -> dict[str, dict]:
    """The shape's measured batch-1 latency under every timed backend (serving stack)."""
    out = {}
    for backend, measured in timed.items():
        full = measured.get(shape.shape_id, {}).get(MODEL_SETTING)
        if full is not None:
            out[backend] = {f"{k}_s": full[k] for k in ("median", "p10", "p90", "best", "next_best")}
    return out


def describe(shape: Shape, cfg: Experiment, measured: dict, model: dict, timed: dict[str, dict]) -> dict:
    target, tol = cfg.select.params, cfg.select.tolerance
    gap = shape.params() / target - 1
    settings = measured.get(shape.shape_id, {})
    if cfg.select.latency_source == "measured" and MODEL_SETTING in settings:
        full = settings[MODEL_SETTING]
        latency = {f"{k}_s": full[k] for k in ("median", "p10", "p90", "best", "next_best")} | {
            "cv": full["cv"], "disturbed": full["disturbed"], "source": "measured"}
    elif cfg.select.latency_source == "measured":
        raise MorphError(f"{shape.shape_id}: no measured latency; run its latency job or set "
                         "select.latency_source: model")
    else:
        latency = {"median_s": predict_latency(model, shape, backend=cfg.select.latency_metric,
                                               device=cfg.latency.device),
                   "source": "latency model"}
    return {
        "shape_id": shape.shape_id, **shape.to_dict(),
        "params_gap": gap, "within_tolerance": abs(gap) <= tol, "latency": latency,
        "latency_by_backend": by_backend(shape, timed),
        "serving": serving_costs(shape, cfg, settings),
    }


def run(args):
    cfg = experiment.load(args.params)
    backend = cfg.select.latency_metric
    timed = {b: measured_settings(Path(args.latency), b) for b in cfg.latency.backends}
    measured = timed[backend]
    model = read_json(args.latency_model)
    shapes = cfg.candidate_shapes
    out = {
        "target_params": cfg.select.params,
        "tolerance": cfg.select.tolerance,
        "latency_backend": backend,
        "candidates": [describe(s, cfg, measured, model, timed) for s in shapes],
        "baseline": describe(cfg.baseline.shape, cfg, measured, model, timed),
        **provenance([args.latency, args.latency_model]),
    }
    write_json(args.out, out)
    near = sum(c["within_tolerance"] for c in out["candidates"])
    print(f"{len(shapes)} candidate shapes, {near} within {cfg.select.tolerance:.0%} of N_C")
    return 0
