"""Does a learning rate tuned per shape change the decision? Each chosen candidate trained at D_C at
train.lr times each factor, in a finished tree, beside its own run at train.lr (the baseline, same table).

    python benchmarks/lr_sensitivity.py --tree . --params params.yaml --shapes d104-l1 d80-l3 d64-l6 \
        --factors 0.5 2

Prints each shape's held-out loss at each factor, its change against the experiment's own lr, the best
factor per shape, and whether the candidates' order by their best loss differs from their order at the
shared lr (the order the decision reads). Runs go to --work, never into the tree's runs/.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph.core import experiment


def train(tree: Path, params: Path, run_id: str, out: Path) -> float:
    if not (out / "metrics.json").is_file():
        subprocess.run(["morph", "train", "--params", str(params), "--run", run_id, "--tokens",
                        str(tree / "data/tokens"), "--out", str(out)], cwd=tree, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())["val_loss"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", type=Path, default=Path("."), help="a finished experiment tree")
    ap.add_argument("--params", default="params.yaml", help="its experiment file, relative to the tree")
    ap.add_argument("--shapes", nargs="+", required=True, help="candidate shape ids trained at D_C")
    ap.add_argument("--factors", nargs="+", type=float, default=[0.5, 2.0], help="multiples of train.lr")
    ap.add_argument("--work", type=Path, default=Path("/tmp/morph-lr"), help="where the extra runs go")
    args = ap.parse_args()
    tree = args.tree.resolve()
    cfg = experiment.load(tree / args.params)
    raw = yaml.safe_load((tree / args.params).read_text())
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    by_shape = {r.shape.shape_id: r for r in cfg.validation_runs if not r.replicate}  # the seed-0 runs
    missing = [s for s in args.shapes if s not in by_shape]
    if missing:
        raise SystemExit(f"not validation runs of {args.params}: {', '.join(missing)} (select.validate trains them)")
    loss: dict[str, dict[float, float]] = {}
    for factor in args.factors:
        variant = work / f"params-lr{factor:g}.yaml"
        variant.write_text(yaml.safe_dump({**raw, "train": {**raw["train"], "lr": raw["train"]["lr"] * factor}}))
        for shape in args.shapes:
            run = by_shape[shape].run_id
            loss.setdefault(shape, {})[factor] = train(tree, variant, run, work / f"{run}-lr{factor:g}")
    for shape in args.shapes:
        run = by_shape[shape].run_id
        loss[shape][1.0] = json.loads((tree / "runs" / run / "metrics.json").read_text())["val_loss"]
    factors = sorted({1.0, *args.factors})
    print(f"| shape | {' | '.join(f'lr x{f:g}' for f in factors)} | best | best - shared lr |")
    print("|---|" + "---|" * (len(factors) + 2))
    for shape in args.shapes:
        best = min(factors, key=lambda f: loss[shape][f])
        cells = " | ".join(f"{loss[shape][f]:.4f}" for f in factors)
        print(f"| {shape} | {cells} | x{best:g} | {loss[shape][best] - loss[shape][1.0]:+.4f} |")
    shared = sorted(args.shapes, key=lambda s: loss[s][1.0])
    tuned = sorted(args.shapes, key=lambda s: min(loss[s].values()))
    print(f"\norder at the shared lr: {', '.join(shared)}\norder at each shape's best lr: {', '.join(tuned)}"
          f"\nthe order {'is the same' if shared == tuned else 'changes'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
