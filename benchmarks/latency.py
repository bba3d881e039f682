"""Benchmark the latency stage on the CI shapes (configs/ci.yaml).

For each shape: the wall time of measuring it once (hf), the CV of its samples within one
measurement, the CV of the median across --runs independent measurements, and, for the --static
shapes, the hf backend's overhead against the static-cache compiled backend measured in the same run
(ratio of medians), and for every shape the graph backend (our own decode loop) timed in the same
interleaved rounds as hf (ratio of best rounds; target: faster than hf). Then the latency model's
leave-one-out error on the hf medians. The machine's load average and each sample's process CPU time
are printed beside the wall-clock numbers: on a shared machine other work inflates wall-clock CVs,
CPU time much less.

    PYTHONPATH=src python benchmarks/latency.py [--runs 3] [--repeats 5] [--static d40-l1,d64-l1,d32-l6]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from transformers import LlamaForCausalLM  # noqa: F401  imported up front so no shape's cost includes it

from morph.core import experiment
from morph.latency.cost_model import FEATURES, features, fit, leave_one_out
from morph.latency.measure import measure

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", default=str(ROOT / "configs/ci.yaml"))
    ap.add_argument("--runs", type=int, default=3, help="independent measurements per shape (CV of the median)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement (>= 5)")
    ap.add_argument("--static", default="d40-l1,d64-l1,d32-l6",
                    help="shapes also timed with the static backend (each compiles for a minute or so on CPU)")
    args = ap.parse_args()

    base = experiment.load(args.params)
    torch.set_num_threads(base.latency.threads)
    hf_lat = replace(base.latency, backends=("hf",), repeats=args.repeats, ttft=False, batch_sizes=(1,))
    hf_cfg = replace(base, latency=hf_lat)
    static_cfg = replace(base, latency=replace(hf_lat, backends=("static",)))
    paired_cfg = replace(base, latency=replace(hf_lat, backends=("hf", "graph")))
    static_ids = {s for s in args.static.split(",") if s}
    lat = hf_cfg.latency
    print(f"# {len(base.latency_shapes)} CI shapes, batch 1, {lat.prompt_len} -> {lat.new_tokens} tokens, "
          f"{args.repeats} reps x {args.runs} runs, {lat.threads} thread(s), {os.cpu_count()} CPUs", file=sys.stderr)

    header = (f"{'shape':<8}{'params':>9}{'L':>3}{'measure_s':>10}{'hf_ms':>8}{'cv':>7}{'cv_med':>8}{'cpu_ms':>8}"
              f"{'cpu_cv':>8}{'cpu_share':>10}{'static_ms':>10}{'compile_s':>10}{'hf/static':>10}{'graph_ms':>9}"
              f"{'hf/graph':>9}{'disturbed':>10}{'load1':>10}")
    lines, x, wall, cpu = [], [], [], []
    for shape in base.latency_shapes:
        medians, cvs, cpu_medians, cpu_cvs, shares, loads = [], [], [], [], [], []
        for run in range(args.runs):
            start = time.perf_counter()
            rec = measure(hf_cfg, shape, progress=False)
            if run == 0:
                seconds = time.perf_counter() - start
            full = rec["backends"]["hf"]["settings"]["full"]
            medians.append(full["median"])
            cvs.append(full["cv"])
            cpu_medians.append(full["cpu_median"])
            cpu_cvs.append(full["cpu_cv"])
            shares.append(full["cpu_share"])
            loads += [rec["load_average"]["before"][0], rec["load_average"]["after"][0]]
        x.append(features(shape, lat.prompt_len + lat.new_tokens, rec["bytes_per_value"]))
        wall.append(statistics.median(medians))
        cpu.append(statistics.median(cpu_medians))
        cv_median = statistics.stdev(medians) / statistics.fmean(medians) if len(medians) > 1 else float("nan")
        static = ["-", "-", "-"]
        if shape.shape_id in static_ids:
            srec = measure(static_cfg, shape, progress=False)
            s = srec["backends"]["static"]
            static_s = s["settings"]["full"]["median"]
            static = [f"{static_s * 1e3:.1f}", f"{s['first_call_s']['full']:.1f}", f"{wall[-1] / static_s:.2f}"]
            loads += [srec["load_average"]["before"][0], srec["load_average"]["after"][0]]
        prec = measure(paired_cfg, shape, progress=False)
        best = {b: prec["backends"][b]["settings"]["full"]["best"] for b in ("hf", "graph")}
        disturbed = sum(r["disturbed"] for r in (rec, prec))  # of the last hf run and the paired one
        lines.append(f"{shape.shape_id:<8}{shape.params():>9,}{shape.n_layers:>3}{seconds:>10.1f}{wall[-1] * 1e3:>8.1f}"
                     f"{statistics.median(cvs):>7.1%}{cv_median:>8.1%}{cpu[-1] * 1e3:>8.1f}"
                     f"{statistics.median(cpu_cvs):>8.1%}{statistics.median(shares):>10.2f}"
                     f"{static[0]:>10}{static[1]:>10}{static[2]:>10}{best['graph'] * 1e3:>9.1f}"
                     f"{best['hf'] / best['graph']:>9.2f}{f'{disturbed}/2':>10}"
                     f"{f'{min(loads):.1f}-{max(loads):.1f}':>10}")
        print(lines[-1], file=sys.stderr)

    print(header)
    print("\n".join(lines))
    for name, y in (("wall-clock", wall), ("process CPU time", cpu)):
        loo = leave_one_out(x, y)
        c = fit(x, y)
        print(f"latency model on hf {name} medians: LOO mean {statistics.fmean(loo):.1%}, max {max(loo):.1%} "
              f"(target 15%); " + ", ".join(f"{k}={v:.3g}" for k, v in zip(FEATURES, c)))
    print("measure_s: one measurement (model build, warm-up, reps); cv: CV of one run's samples (median over runs); "
          "cv_med: CV of the median across runs; cpu_*: the same in process CPU time; cpu_share: CPU / wall time "
          "(1.0 = never waited for a core); compile_s: the static backend's first call; graph_ms, hf/graph: best "
          "rounds of the two timed in the same interleaved rounds; disturbed: records judged disturbed "
          "(latency.on_disturbed); load1: 1-minute load average")
    return 0


if __name__ == "__main__":
    sys.exit(main())
