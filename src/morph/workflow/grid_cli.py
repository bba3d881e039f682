"""Print the experiment's expanded grid: runs, latency shapes and target slots.

With --cost, what it costs before anything runs instead: each run the graph trains with its params N, tokens D and
training FLOPs (train/flops.py: 6 x D x matmul params plus causal attention), the total, the graph's job count,
and the GPU-hours on a device at the training MFU scripts/gpu_evidence.sh measured there (benchmarks/results),
naming the file it came from. A device nothing measured is refused."""
from __future__ import annotations

import json

from morph.core import experiment


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--cost", action="store_true",
                   help="print each training run's N, D and FLOPs, the total, the job count and the GPU-hours at "
                        "the device's measured MFU")
    p.add_argument("--device", help="with --cost: the device whose measured MFU counts the GPU-hours, a part of its "
                                    "name (H200); default: the one device measured under --evidence")
    p.add_argument("--evidence", default="benchmarks/results",
                   help="with --cost: the folder of scripts/gpu_evidence.sh's results, searched at any depth "
                        "(default: %(default)s)")


def run(args):
    cfg = experiment.load(args.params)
    if args.cost:
        from morph.workflow import cost

        out = cost.report(cfg, args.params, args.evidence, args.device)
        print(json.dumps(out, indent=2) if args.json else cost.table(out))
        return 0
    out = {
        "runs": [r.to_dict() for r in cfg.grid_runs],
        "baseline": cfg.baseline.to_dict(),
        "baseline_replicates": [r.to_dict() for r in cfg.baseline_runs[1:]],
        "validation_runs": [r.to_dict() for r in cfg.validation_runs],
        "latency_shapes": [s.shape_id for s in cfg.latency_shapes],
        "target_slots": cfg.slot_runs,
        "target_seeds": cfg.target_seeds,
        "sample_token_target": cfg.data.train_tokens,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{'run':<22}{'params':>14}{'tokens':>18}{'R':>8}{'MLP:attn':>10}{'kv':>4}")
    for r in out["runs"] + [out["baseline"], *out["baseline_replicates"]] + out["validation_runs"]:
        print(f"{r['run_id']:<22}{r['params']:>14,}{r['tokens']:>18,}{r['aspect_ratio']:>8.1f}"
              f"{r['mlp_attention_ratio']:>10.2f}{r['n_kv_heads']:>4}")
    print(f"latency shapes: {', '.join(out['latency_shapes'])}")
    print(f"target slots: {', '.join(out['target_slots'])} ({out['target_seeds']} seed(s) each at D_C); "
          f"sample target: {out['sample_token_target']:,} tokens")
    if out["validation_runs"]:
        print(f"validation (select.validate: {cfg.select.validate}): "
              + ", ".join(r["run_id"] for r in out["validation_runs"]))
    return 0
