"""The law zoo: time to cross-validate every form with both solvers on ~100 runs (target < 60 s), and each
form's cross-validated error on the public run sets that carry shapes.

    python benchmarks/law_zoo.py [--sets gemstones gadre-grid chinchilla gadre-overtrain] [--solvers lm huber-log]

Timing: 96 runs from a known inference-aware law on a grid design (6 sizes from 50M to 2B, 4 depths with the
width N = 12 n_layers d^2 gives, 10/20/40/160 tokens per parameter, 0.5% noise), so there are 6
leave-one-size-out and 4 leave-one-multiplier-out folds. Each run carries one of 3 MLP-to-attention ratios,
so the conditional law is timed with its ratio factor (the largest start grid of the zoo). The baseline is
one full-data fit of every form, measured in the same run because the machine is shared and noisy; CPU
seconds are given beside wall seconds, since on a loaded machine the wall time mostly measures the other
processes.

Public sets are read from ../shared/scaling-data beside the repository (see its README.md); a missing file
is skipped with a message. Each is turned into params, tokens, d_model, n_layers, loss (and multiplier where
the set was designed with one) as its loader says.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph.core.law_names import LAWS, SOLVERS
from morph.law.fitting import design, validate
from morph.law.forms import Law, predict
from morph.law.solvers import serial_blas, solve
from morph.law.zoo import cross_validate

SHARED = ROOT.parent / "shared" / "scaling-data"
RATIOS = (1.0, 2.0, 4.0)  # the loss does not depend on them: the ratio factor is timed, not recovered
TRUE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.34, "beta": 0.37, "eps": 0.01, "gamma": 0.5}


def synthetic(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"params": n, "tokens": m * n, "multiplier": m, "d_model": np.sqrt(n / (12 * depth)), "n_layers": depth}
            for n in np.geomspace(5e7, 2e9, 6) for depth in (4, 8, 16, 32) for m in (10, 20, 40, 160)]
    df = pd.DataFrame(rows)
    df["mlp_attention_ratio"] = np.resize(RATIOS, len(df))
    loss = predict(TRUE, df["params"], df["tokens"], df["d_model"], df["n_layers"])
    return df.assign(loss=loss * np.exp(rng.normal(0.0, 0.005, len(df))))


# -- public sets: one loader each, returning the zoo's columns ----------------------------------------------
def gemstones(path: Path) -> pd.DataFrame:
    """Gemstones, the cool_end variant (the loss after each checkpoint's LR cooldown), as in tests/data."""
    g = pd.read_csv(path)
    g = g[g["variant"] == "cool_end"]
    return pd.DataFrame({"params": g["params_active_precise"], "tokens": g["tokens"], "d_model": g["width"],
                         "n_layers": g["depth"], "loss": g["final_loss"]})


def gadre_grid(path: Path) -> pd.DataFrame:
    """Gadre et al.'s shape grid: each shape's best loss over its hyperparameter search (all at 20 tokens/param)."""
    g = pd.read_csv(path)
    best = g.loc[g.groupby(["d_model", "n_layers"])["loss"].idxmin()]
    return pd.DataFrame({"params": best["params_openlm_formula"], "tokens": best["tokens"],
                         "d_model": best["d_model"], "n_layers": best["n_layers"], "loss": best["loss"]})


def chinchilla(path: Path) -> pd.DataFrame:
    """Epoch's Chinchilla points joined with the Table A9 shapes, without Epoch's 5 outliers."""
    c = pd.read_csv(path)
    c = c[c["epoch_outlier"] == 0]
    return pd.DataFrame({"params": c["model_size"], "tokens": c["training_tokens"], "d_model": c["d_model"],
                         "n_layers": c["n_layers"], "loss": c["loss"]})


def gadre_overtrain(path: Path) -> pd.DataFrame:
    """Gadre et al.'s over-training testbed on C4: C4 validation loss, with its token multipliers; the
    open_lm_1b/7b rows, which carry no shape, are left out."""
    g = pd.read_csv(path)
    g = g[(g["dataset"] == "c4_original") & g["d_model"].notna() & g["n_layers"].notna()]
    return pd.DataFrame({"params": g["params"], "tokens": g["tokens"], "d_model": g["d_model"],
                         "n_layers": g["n_layers"], "loss": g["loss_c4_val"], "multiplier": g["chinchilla_multiplier"]})


SETS = {"gemstones": ("gemstones_points.csv", gemstones), "gadre-grid": ("gadre_shape_grid.csv", gadre_grid),
        "chinchilla": ("chinchilla_epoch_with_shapes.csv", chinchilla),
        "gadre-overtrain": ("gadre_overtrain_models.csv", gadre_overtrain)}


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def cpu_timed(fn):
    """(result, wall s, CPU s of this process)."""
    c = time.process_time()
    out, wall = timed(fn)
    return out, wall, time.process_time() - c


def timing(tie: str) -> None:
    df = synthetic()
    laws = [Law(name, tie) for name in LAWS]
    warm = Law("chinchilla", "all")  # first-call costs (scipy import, BLAS probing) stay out of the table
    solve(warm, "lm", design(df, warm), df["loss"].to_numpy(), polish=1)
    print(f"{len(df)} synthetic runs, every form (tie {tie}); baseline: one full-data fit of every form; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print(f"{'solver':<11}{'folds':>6}{'fits':>6}{'baseline s':>12}{'zoo CV s':>10}{'CV CPU s':>10}{'ratio':>7}"
          "  winner")
    total, total_cpu = 0.0, 0.0
    for solver in SOLVERS:
        def full_fits(solver: str):
            with serial_blas():
                for law in laws:
                    table = validate(df, law, "synthetic", law.n_free)
                    solve(law, solver, design(table, law), table["loss"].to_numpy())

        _, base = timed(partial(full_fits, solver))
        zoo, t, cpu = cpu_timed(partial(cross_validate, df, laws, solver, "synthetic"))
        total, total_cpu = total + t, total_cpu + cpu
        folds = sum(len(v) for v in zoo["folds"].values())
        print(f"{solver:<11}{folds:>6}{folds * len(laws):>6}{base:>12.2f}{t:>10.1f}{cpu:>10.1f}{t / base:>7.0f}  "
              f"{zoo['winner']}")
    print(f"{'both':<11}{'':>6}{'':>6}{'':>12}{total:>10.1f}{total_cpu:>10.1f}  (target < 60 s)\n")


def public(sets: list[str], solvers: list[str], tie: str) -> None:
    print(f"cross-validated error (MSE, pooled held-out; mean over fold kinds) on the public sets, tie {tie}")
    print(f"{'set':<17}{'solver':<11}{'runs':>5}{'folds':>8}" + "".join(f"{n:>17}" for n in LAWS) + "  winner (margin)")
    for name in sets:
        file, load = SETS[name]
        if not (SHARED / file).exists():
            print(f"{name:<17}skipped: {SHARED / file} not found")
            continue
        df = load(SHARED / file)
        for solver in solvers:
            zoo, t = timed(partial(cross_validate, df, [Law(n, tie) for n in LAWS], solver, file))
            folds = "+".join(str(len(v)) for v in zoo["folds"].values()) or "0"
            cells = "".join(f"{zoo['forms'][n]['cv_error']:>17.4g}" if zoo["forms"][n]["cv_error"] is not None
                            else f"{'failed':>17}" for n in LAWS)
            margin = f" ({zoo['margin']:.2f}x)" if zoo["margin"] is not None else ""
            print(f"{name:<17}{solver:<11}{len(df):>5}{folds:>8}{cells}  {zoo['winner']}{margin} [{t:.0f} s]")
            for note in zoo["notes"]:
                print(f"{'':<17}note: {note}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="*", default=list(SETS), choices=list(SETS))
    p.add_argument("--solvers", nargs="+", default=list(SOLVERS), choices=SOLVERS)
    p.add_argument("--tie", default="none", help="exponent tying for every form (default: %(default)s)")
    p.add_argument("--no-timing", action="store_true", help="only the public-set table")
    args = p.parse_args()
    if not args.no_timing:
        timing(args.tie)
    public(args.sets, args.solvers, args.tie)
    return 0


if __name__ == "__main__":
    sys.exit(main())
