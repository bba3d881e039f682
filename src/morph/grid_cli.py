"""Print the experiment's expanded grid: runs, latency shapes and target slots."""
from __future__ import annotations

import json

from . import config, grid


def add_arguments(p):
    p.add_argument("--params", default="params.yaml", help="experiment file (default: params.yaml)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args):
    cfg = config.load(args.params)
    out = {
        "runs": [r.to_dict() for r in grid.grid_runs(cfg)],
        "baseline": grid.baseline_run(cfg).to_dict(),
        "latency_shapes": [s.shape_id for s in grid.latency_shapes(cfg)],
        "target_slots": grid.target_slots(cfg),
        "sample_token_target": grid.sample_token_target(cfg),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'run':<18}{'params':>16}{'tokens':>18}{'R':>8}")
    for r in out["runs"] + [out["baseline"]]:
        print(f"{r['run_id']:<18}{r['params']:>16,}{r['tokens']:>18,}{r['aspect_ratio']:>8.1f}")
    print(f"latency shapes: {', '.join(out['latency_shapes'])}")
    print(f"target slots: {', '.join(out['target_slots'])}; sample target: {out['sample_token_target']:,} tokens")
    return 0
