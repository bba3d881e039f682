"""The GPU evidence, one step per call: `scripts/gpu_evidence.sh` runs each under its own timeout.

Every step appends its rows as it makes them to <out>.csv and <out>.json; each row names the device, the library
versions and the step's settings. The steps (the plan: configs/paper.yaml's seven 1B-class shapes on a GPU, or,
with --rehearse, configs/ci.yaml's tiny candidates on CPU):

  env          the device, the libraries, and which attention kernels each shape's head width gets
  train-config an experiment for a few steps of `morph train` (the shell runs it), train-result its metrics
  throughput   Lightning training tokens/s, MFU and peak memory against the estimate per shape; a plain loop beside one
  latency      `morph latency`'s measurement, hf backend, batch 1, per shape
  static       the static backend (compiled decode step, CUDA graphs) for two shapes, graph replay confirmed
  graph        our own decode loop (one CUDA graph a step) for the same two shapes, against the weight-bytes limit
               at a device-to-device copy's bandwidth measured in the same step
  speedup      each candidate's latency against the baseline's, beside the paper's 1.8x for d3072-l12
  status       one step's outcome (ok, failed, timeout) and seconds, written by the shell

    python benchmarks/gpu_evidence.py <step> --out benchmarks/results/gpu-<device>-<date> [--rehearse]
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("step", "shape", "metric", "value", "unit", "device", "torch", "cuda", "transformers", "lightning",
           "setting")
PAPER_SPEEDUP = {"d3072-l12": 1.8}  # the paper's decode speed-up of Morph-1B over the (2048, 24) baseline

# What each plan times: the paper's shapes on a GPU, or the CI experiment's tiny ones on CPU, the same code. The
# rehearsal trains at the GPU's micro-batch, so a batch the held-out stream cannot fill fails on CPU first.
PLANS = {
    "gpu": {"params": "configs/paper.yaml", "accelerator": "gpu", "precision": "bf16-mixed", "device": "cuda",
            "dtype": "bfloat16", "micro_batch": 4, "warmup_steps": 2, "timed_steps": 4, "plain_beside": "d3072-l12",
            "prompt_len": 128, "new_tokens": 256, "repeats": 3, "static": ("d3072-l12", "d2048-l24"), "shapes": None,
            # Morph-1B, its baseline and the widest: ~17 s a shape on an H200, and the step's budget is 90 s.
            "trained": ("d3072-l12", "d2048-l24", "d4608-l4")},
    "rehearsal": {"params": "configs/ci.yaml", "accelerator": "cpu", "precision": "32-true", "device": "cpu",
                  "dtype": "float32", "micro_batch": 4, "warmup_steps": 1, "timed_steps": 1,
                  "plain_beside": "d60-l2", "prompt_len": 8, "new_tokens": 8, "repeats": 2, "static": ("d60-l2",),
                  "shapes": ("d60-l2", "d32-l6"), "trained": ("d60-l2",)},  # a candidate and the baseline
}
# The few steps of `morph train`: configs/ci.yaml's data and tokenizer, one tiny run of 12 steps.
TRAIN_GRID = {"multipliers": [0.25], "shapes": [{"d_model": 32, "n_layers": 1}]}


def environment() -> dict:
    """The device and the library versions every row carries (lightning's and transformers' from their metadata:
    importing them costs seconds)."""
    from importlib.metadata import version

    import torch

    cuda = torch.cuda.is_available()
    return {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
            "cuda": torch.version.cuda or "none", "transformers": version("transformers"),
            "lightning": version("lightning")}


def device_slug() -> str:
    """The device's name for the results file, e.g. nvidia-h100-80gb-hbm3, or cpu."""
    import torch

    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Results:
    """<out>.csv and <out>.json, appended to row by row, so a step killed by its timeout keeps what it wrote."""

    def __init__(self, out: str):
        self.csv, self.json = Path(f"{out}.csv"), Path(f"{out}.json")
        self.csv.parent.mkdir(parents=True, exist_ok=True)
        self.doc = json.loads(self.json.read_text()) if self.json.exists() else {"rows": [], "steps": {}}

    def header(self) -> dict:
        if "environment" not in self.doc:
            self.doc["environment"] = environment()
        return self.doc["environment"]

    def _save(self) -> None:
        tmp = self.json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.doc, indent=1))
        tmp.replace(self.json)

    def row(self, step: str, shape: str, metric: str, value, unit: str, setting: dict) -> None:
        row = {"step": step, "shape": shape, "metric": metric, "value": value, "unit": unit, **self.header(),
               "setting": json.dumps(setting, sort_keys=True)}
        new = not self.csv.exists()
        with open(self.csv, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.doc["rows"].append(row | {"setting": setting})
        self._save()
        print(f"{step:<11}{shape:<12}{metric:<24}{value!s:>14} {unit}", flush=True)

    def status(self, step: str, status: str, seconds: float, limit: int, rc: int) -> None:
        self.doc["steps"][step] = {"status": status, "seconds": round(seconds, 1), "limit_s": limit, "rc": rc}
        self._save()


def load(plan: dict):
    from morph.core import experiment

    cfg = experiment.load(ROOT / plan["params"])
    shapes = {s.shape_id: s for s in (*cfg.candidate_shapes, cfg.baseline.shape)}
    return cfg, {k: s for k, s in shapes.items() if plan["shapes"] is None or k in plan["shapes"]}


def step_env(res: Results, plan: dict) -> None:
    import torch

    from morph.latency.measure import attention_kernels

    env = res.header()
    res.row("env", "-", "device", env["device"], "", {"plan": plan["params"]})
    cfg, shapes = load(plan)
    device, dtype = torch.device(plan["device"]), getattr(torch, plan["dtype"])
    for sid, shape in shapes.items():
        kernels = attention_kernels(shape, device, dtype)
        usable = ",".join(k for k, ok in kernels.items() if ok) if kernels else "cpu (no GPU kernels to choose)"
        res.row("env", sid, "attention_kernels", usable or "math only", "",
                {"n_heads": shape.n_heads, "head_dim": shape.head_dim, "dtype": plan["dtype"]})


def step_train_config(plan: dict, params_out: str) -> None:
    """configs/ci.yaml with one tiny run on the plan's device and precision; its run id on stdout."""
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "ci.yaml").read_text())
    raw["grid"] = TRAIN_GRID
    raw["train"] |= {"accelerator": plan["accelerator"], "precision": plan["precision"], "devices": 1,
                     "checkpoint_every": 10}
    Path(params_out).write_text(yaml.safe_dump(raw, sort_keys=False))
    from morph.core import experiment

    print(experiment.load(params_out).grid_runs[0].run_id)


def step_train_result(res: Results, plan: dict, run_dir: str) -> None:
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    setting = {k: metrics[k] for k in ("precision", "accelerator", "steps", "batch_size", "seq_len")}
    for metric, unit in (("val_loss", "nats"), ("tokens_per_s", "tokens/s"), ("mfu", "fraction")):
        res.row("train", metrics["run_id"], metric, metrics[metric], unit,
                setting | {"peak": metrics["peak"]["source"]})


def throughput_data(cfg, plan: dict):
    """The throughput step's train settings, token ids and TokenData: random ids (throughput does not depend on
    which), enough for every step, and a held-out stream of exactly one batch of windows (each window reads
    seq_len + 1 tokens, so one batch needs batch * seq_len + 1)."""
    import numpy as np

    from morph.train.batches import TokenData, TokenStream

    seq_len, batch = cfg.model.seq_len, plan["micro_batch"]
    t = replace(cfg.train, batch_size=batch, micro_batch_size=None, devices=1, num_nodes=1, strategy="auto",
                accelerator=plan["accelerator"], precision=plan["precision"], checkpoint_every=10**9)
    steps = plan["warmup_steps"] + plan["timed_steps"]
    tokens = np.random.default_rng(0).integers(0, cfg.rules.vocab_size, size=steps * batch * (seq_len + 1) + 1)
    data = TokenData(Path("."), {"vocab_size": cfg.rules.vocab_size}, TokenStream([tokens.astype(np.uint32)]),
                     TokenStream([tokens[: batch * seq_len + 1].astype(np.uint32)]))
    return t, tokens, data


def step_throughput(res: Results, plan: dict) -> None:
    import gc

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_throughput import lightning_loop, plain_loop

    from morph.core.decoder import build_model
    from morph.train.batches import train_batch
    from morph.train.flops import device_peak, train_flops_per_token
    from morph.train.launch import GIB, Launch, train_bytes_per_device
    from morph.train.lm import Optim

    cfg, shapes = load(plan)
    launch = Launch(plan["accelerator"], plan["precision"], "auto")
    seq_len, batch = cfg.model.seq_len, plan["micro_batch"]
    t, tokens, data = throughput_data(cfg, plan)
    steps = plan["warmup_steps"] + plan["timed_steps"]
    budget, timed = steps * batch * seq_len, plan["timed_steps"] * batch * seq_len
    optim = Optim.from_params(t, steps)
    cuda = plan["accelerator"] == "gpu"
    peak = device_peak(plan["device"], plan["precision"])
    setting = {"seq_len": seq_len, "micro_batch": batch, "precision": plan["precision"],
               "warmup_steps": plan["warmup_steps"], "timed_steps": plan["timed_steps"], "peak": peak["source"]}
    device = torch.device(plan["device"])
    for sid, shape in shapes.items():
        if plan["trained"] is not None and sid not in plan["trained"]:
            continue
        flops = train_flops_per_token(shape, seq_len)
        loops = {"lightning": lambda m: lightning_loop(m, optim, data, t, seq_len, budget, plan["warmup_steps"],
                                                       False, launch)}
        if sid == plan["plain_beside"]:
            batches = [lambda s=s: train_batch(tokens, s, 0, batch, seq_len, budget) for s in range(steps)]
            loops["plain"] = lambda m: plain_loop(m, optim, batches, t.grad_clip, plan["warmup_steps"], False,
                                                  t.log_every, launch)
        for loop, run in loops.items():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            model = build_model(shape, cfg.model.max_position_embeddings, 0, seed=0, device=device)
            rate = timed / run(model)
            res.row("throughput", sid, f"{loop}_tokens_per_s", round(rate, 1), "tokens/s", setting)
            res.row("throughput", sid, f"{loop}_mfu", round(rate * flops / peak["flops"], 4), "fraction", setting)
            if cuda and loop == "lightning":
                measured = torch.cuda.max_memory_allocated() / GIB
                estimate = train_bytes_per_device(shape, seq_len, t, launch) / GIB
                res.row("throughput", sid, "peak_memory", round(measured, 2), "GiB", setting)
                res.row("throughput", sid, "memory_estimate", round(estimate, 2), "GiB", setting)
                res.row("throughput", sid, "estimate_over_measured", round(estimate / measured, 3), "ratio", setting)
            del model
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()


def copy_bandwidth(device) -> float:
    """Bytes/s a device-to-device copy moves (read plus write), the best of 5: what reading the weights once a
    token can at best cost."""
    import time

    import torch

    src = torch.empty(2**31 if device.type == "cuda" else 2**27, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(6):
        sync()
        start = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() / best


def _timed(res: Results, plan: dict, step: str, backend: str, shape_ids, bandwidth: float | None = None) -> None:
    """`morph latency`'s measurement of each shape with one backend; its record beside the results files. With a
    measured bandwidth, each shape's weight-bytes limit (weights read once a token) and the share of it reached."""
    from morph.core.io import write_json
    from morph.latency.measure import measure

    cfg, shapes = load(plan)
    lat = replace(cfg.latency, device=plan["device"], dtype=plan["dtype"], backends=(backend,),
                  prompt_len=plan["prompt_len"], new_tokens=plan["new_tokens"], repeats=plan["repeats"], warmup=1,
                  ttft=False, batch_sizes=(1,), on_disturbed="warn")  # each step has its budget: record, don't retry
    timed_cfg = replace(cfg, latency=lat)
    setting = {"backend": backend, "batch": 1, "prompt_len": lat.prompt_len, "new_tokens": lat.new_tokens,
               "repeats": lat.repeats, "dtype": plan["dtype"]}
    records = Path(f"{res.json.with_suffix('')}-{step}")
    for sid in shape_ids:
        rec = measure(timed_cfg, shapes[sid], progress=False)
        write_json(records / f"{sid}.json", rec)
        b = rec["backends"][backend]
        full = b["settings"]["full"]
        res.row(step, sid, "full_median", round(full["median"], 5), "s", setting)
        res.row(step, sid, "full_cv", round(full["cv"], 4), "fraction", setting)
        res.row(step, sid, "ms_per_token", round(1000 * full["median"] / lat.new_tokens, 3), "ms", setting)
        res.row(step, sid, "best_ms_per_token", round(1000 * full["best"] / lat.new_tokens, 3), "ms", setting)
        res.row(step, sid, "disturbed", rec["disturbed"], "", setting | {"load_action": rec["load"]["action"]})
        if bandwidth:
            limit_ms = 1000 * rec["shape"]["weight_bytes"] / bandwidth
            res.row(step, sid, "weight_bytes_limit_ms", round(limit_ms, 3), "ms", setting)
            res.row(step, sid, "share_of_weight_bytes_limit",
                    round(limit_ms / (1000 * full["median"] / lat.new_tokens), 3), "fraction", setting)
        if backend == "static":
            events = b["details"]["timed_events"]
            res.row(step, sid, "graph_replay_confirmed", not any(events.values()), "",
                    setting | {"warmup_events": b["details"]["warmup_events"], "timed_events": events})


def step_latency(res: Results, plan: dict) -> None:
    # Morph-1B and its baseline first: a step cut short by its timeout still gives the speed-up.
    shapes = load(plan)[1]
    _timed(res, plan, "latency", "hf", [*plan["static"], *(s for s in shapes if s not in plan["static"])])


def step_static(res: Results, plan: dict) -> None:
    _timed(res, plan, "static", "static", plan["static"])


def step_graph(res: Results, plan: dict) -> None:
    import torch

    bandwidth = copy_bandwidth(torch.device(plan["device"]))
    res.row("graph", "-", "copy_bandwidth", round(bandwidth / 1e12, 3), "TB/s", {"device": plan["device"]})
    _timed(res, plan, "graph", "graph", plan["static"], bandwidth)


def step_speedup(res: Results, plan: dict) -> None:
    cfg, shapes = load(plan)
    base = cfg.baseline.shape.shape_id
    for step in ("latency", "static", "graph"):
        medians = {r["shape"]: r["value"] for r in res.doc["rows"]
                   if r["step"] == step and r["metric"] == "full_median"}
        if base not in medians:
            continue
        for sid, median in medians.items():
            if sid != base:
                setting = {"backend": "hf" if step == "latency" else step, "baseline": base,
                           "paper": PAPER_SPEEDUP.get(sid)}
                res.row("speedup", sid, f"{step}_speedup_over_{base}", round(medians[base] / median, 3), "x", setting)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", choices=("name", "env", "train-config", "train-result", "throughput", "latency", "static",
                                     "graph", "speedup", "status"))
    ap.add_argument("--out", help="results path without .csv/.json")
    ap.add_argument("--rehearse", action="store_true", help="configs/ci.yaml's tiny shapes on CPU")
    ap.add_argument("--params-out", help="train-config: the experiment file to write")
    ap.add_argument("--run-dir", help="train-result: the run directory")
    ap.add_argument("--of", help="status: the step it reports")
    ap.add_argument("--status", help="status: ok, failed or timeout")
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--rc", type=int)
    args = ap.parse_args()
    if args.step == "name":
        print(device_slug())
        return 0
    plan = PLANS["rehearsal" if args.rehearse else "gpu"]
    if args.step == "train-config":
        step_train_config(plan, args.params_out)
        return 0
    res = Results(args.out)
    if args.step == "status":
        res.status(args.of, args.status, args.seconds, args.limit, args.rc)
        return 0
    steps = {"env": step_env, "throughput": step_throughput, "latency": step_latency, "static": step_static,
             "graph": step_graph, "speedup": step_speedup}
    if args.step == "train-result":
        step_train_result(res, plan, args.run_dir)
    else:
        steps[args.step](res, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
