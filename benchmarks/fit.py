"""Time to fit 100 runs with the full start grid (target < 2 s) and a 1000-sample bootstrap (target < 60 s).

    python benchmarks/fit.py [--runs 100] [--bootstrap 1000] [--no-exhaustive]

The runs are drawn from a known inference-aware law over the paper's range (N 50M-2B, 20/40/160 tokens
per parameter, R 16-768, 0.5% noise). For each law, tie and solver:
  - single start: one local solve from the grid's best-scoring point (the baseline, same run);
  - full grid:    the whole start grid scored, local solves from its best `POLISH` points (what morph does);
  - exhaustive:   a local solve from every grid point (Chinchilla with tied exponents only, 900 starts),
                  to check that the full-grid optimum is the one an exhaustive search finds.
Ratios are against the single start, measured in the same run because the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph.law.fitting import design, fit_law, validate
from morph.law.forms import Law, predict
from morph.law.solvers import POLISH, Objective, serial_blas, solve, start_grid

TRUE = {"E": 1.8, "A": 480.0, "B": 2100.0, "alpha": 0.34, "beta": 0.37, "eps": 0.01, "gamma": 0.5}


def runs(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(5e7), np.log(2e9), n))
    D = N * rng.choice([20, 40, 160], n)
    d_model, n_layers = rng.choice([512, 1024, 2048, 3072], n), rng.choice([4, 8, 16, 24, 32], n)
    loss = predict(TRUE, N, D, d_model, n_layers) * np.exp(rng.normal(0.0, 0.005, n))
    return pd.DataFrame({"params": N, "tokens": D, "d_model": d_model, "n_layers": n_layers, "loss": loss})


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def exhaustive(law: Law, solver: str, X, y) -> float:
    obj = Objective(law, solver, X, y)
    best = np.inf
    with serial_blas():
        for x0 in start_grid(law):
            _, value, ok = obj.local(x0, 1000)
            if ok:
                best = min(best, value)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--no-exhaustive", action="store_true", help="skip the every-start check (slow)")
    args = p.parse_args()
    df = runs(args.runs)
    warm = Law("chinchilla", "all")  # first-call costs (scipy import, BLAS probing) stay out of the table
    solve(warm, "lm", design(df, warm), df["loss"].to_numpy(), polish=1)

    print(f"{args.runs} runs; full grid = all grid points scored, {POLISH} local solves\n")
    print(f"{'law':<16}{'tie':<11}{'solver':<10}{'grid':>7}{'single s':>10}{'full s':>9}{'ratio':>7}"
          f"{'same optimum':>14}{'exhaustive s':>14}")
    for name in ("chinchilla", "inference-aware"):
        for tie in ("all", "none"):
            for solver in ("lm", "huber-log"):
                law = Law(name, tie)
                X, y = design(df, law), df["loss"].to_numpy()
                with serial_blas():
                    single, t1 = timed(lambda: solve(law, solver, X, y, polish=1))
                    full, tf = timed(lambda: solve(law, solver, X, y))
                ex_cell, same = "", ""
                if not args.no_exhaustive and name == "chinchilla" and tie == "all":
                    best, te = timed(lambda: exhaustive(law, solver, X, y))
                    ex_cell = f"{te:.1f} ({te / tf:.0f}x)"
                    same = "yes" if full.objective <= best * (1 + 1e-7) else f"no ({best:.6g})"
                print(f"{name:<16}{tie:<11}{solver:<10}{full.grid_size:>7}{t1:>10.2f}{tf:>9.2f}{tf / t1:>7.1f}"
                      f"{same:>14}{ex_cell:>14}")

    print(f"\nbootstrap: {args.bootstrap} resamples, each refit warm-started at the full-data optimum")
    print(f"{'law':<16}{'tie':<6}{'solver':<10}{'fit s':>8}{'fit+bootstrap s':>17}{'ratio':>8}{'converged':>11}")
    for name, solver in (("inference-aware", "lm"), ("inference-aware", "huber-log"), ("chinchilla", "huber-log")):
        law = Law(name, "all")
        table = validate(df, law, "benchmark", law.n_free)
        _, tf = timed(lambda: fit_law(table, law, solver, progress=False))
        res, tb = timed(lambda: fit_law(table, law, solver, bootstrap=args.bootstrap, seed=0, progress=False))
        print(f"{name:<16}{'all':<6}{solver:<10}{tf:>8.2f}{tb:>17.1f}{tb / tf:>8.0f}"
              f"{res['bootstrap']['converged']:>7}/{args.bootstrap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
