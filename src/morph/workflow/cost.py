"""What an experiment's training costs before any job runs (`morph grid --cost`): each run the graph trains with its
N, D and training FLOPs (train/flops.py's count), the total, the graph's job count, and the GPU-hours that total
takes on a device at the training MFU `scripts/gpu_evidence.sh` measured there (its results files under
benchmarks/results). A device nothing measured is refused, never given an assumed MFU."""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from morph.core.errors import MorphError
from morph.core.expand import Run
from morph.core.experiment import Experiment
from morph.train.flops import ATTENTION_FLOPS, DATASHEET_PEAKS, PRECISION_DTYPES, train_flops_per_token
from morph.train.launch import resolve
from morph.workflow import pipeline

EVIDENCE = "benchmarks/results"  # where scripts/gpu_evidence.sh writes gpu-<device>-<date>.{csv,json}
EVIDENCE_SCRIPT = "scripts/gpu_evidence.sh"
# The MFU rows counted: the throughput step's Lightning loop (what `morph train` runs) on the paper's 1B-class
# shapes at their sequence length. The train step's own `mfu` row is a few steps of a tiny shape, a smoke test.
MFU_STEP, MFU_METRIC = "throughput", "lightning_mfu"
DATASHEET = "datasheet dense peak"  # how train/flops.device_peak labels a peak it did not measure
FLOPS_COUNT = ("6 x D x (non-embedding params + the output head's vocab x d_model: every matmul weight, the input "
               "embedding being a lookup) + causal attention, i.e. 3 x Shape.forward_flops_per_token per token "
               f"(train/flops.train_flops_per_token); attention: {ATTENTION_FLOPS}")
# As preflight.cost_warning counts a slot.
SLOT_NOTE = ("a top-k slot's shape is chosen at run time: counted at the baseline's size, which it matches within "
             "select.tolerance; a slot whose shape a validation run (or the baseline) trained is copied, not trained, "
             "so its count is an upper bound")


@dataclass(frozen=True)
class Cost:
    run: str  # the run directory the node trains (a run id or a slot)
    stage: str  # train or train_target
    params: int  # N
    tokens: int  # D
    flops: int
    slot: bool  # counted at the baseline's size (see SLOT_NOTE)

    def to_dict(self) -> dict:
        return {"run": self.run, "stage": self.stage, "params": self.params, "tokens": self.tokens,
                "flops": self.flops, "counted_at_baseline": self.slot}


def trained_run(exp: Experiment, node: pipeline.Node) -> Run:
    """The run a training node trains; a slot as the baseline (see SLOT_NOTE)."""
    return exp.run(node.key) if node.stage == "train" else exp.baseline


def run_flops(run: Run, seq_len: int) -> int:
    return run.tokens * train_flops_per_token(run.shape, seq_len)


def costs(exp: Experiment, nodes: list[pipeline.Node]) -> list[Cost]:
    """One row per training node of the graph, in graph order."""
    out = []
    for node in nodes:
        if node.stage in pipeline.TRAINING:
            run = trained_run(exp, node)
            out.append(Cost(node.key, node.stage, run.shape.params(), run.tokens, run_flops(run, exp.model.seq_len),
                            slot=node.stage != "train"))
    return out


@dataclass(frozen=True)
class Measured:
    """The training MFU measured on one device: the median over its measured shapes, against its peak."""
    device: str
    mfu: float  # the median
    mfu_low: float
    mfu_high: float
    shapes: tuple[str, ...]
    peak_flops: float
    peak_source: str
    precision: str
    setting: str  # what the rows were measured at, in words
    sources: tuple[str, ...]  # the results files the rows came from

    def gpu_hours(self, flops: float, mfu: float | None = None) -> float:
        return flops / ((mfu or self.mfu) * self.peak_flops) / 3600

    def to_dict(self, flops: float) -> dict:
        return {"device": self.device, "mfu": self.mfu, "mfu_range": [self.mfu_low, self.mfu_high],
                "shapes": list(self.shapes), "peak_flops": self.peak_flops, "peak_source": self.peak_source,
                "precision": self.precision, "setting": self.setting, "sources": list(self.sources),
                "gpu_hours": self.gpu_hours(flops),
                "gpu_hours_range": [self.gpu_hours(flops, self.mfu_high), self.gpu_hours(flops, self.mfu_low)]}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def mfu_rows(folder: Path) -> list[tuple[str, dict]]:
    """(results file, row) for every training-MFU row of the evidence files under `folder`, any depth."""
    rows = []
    for path in sorted(folder.rglob("gpu-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue  # a file the script was still writing, or not its own
        for row in data.get("rows", []) if isinstance(data, dict) else []:
            if isinstance(row, dict) and row.get("step") == MFU_STEP and row.get("metric") == MFU_METRIC:
                rows.append((str(path), row))
    return rows


def measured(folder: str | Path = EVIDENCE, device: str | None = None) -> Measured:
    """The training MFU measured on `device` (a part of its name, any case: H200), or on the one device measured
    when None; refused, naming the folder and the script, when nothing was measured there."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MorphError(f"{folder}: no such folder, so no training MFU measured; run {EVIDENCE_SCRIPT} on a GPU (it "
                         f"writes {EVIDENCE}/gpu-<device>-<date>.json), or name its results folder with --evidence")
    rows = mfu_rows(folder)
    devices = sorted({r["device"] for _, r in rows})
    run_it = (f"run {EVIDENCE_SCRIPT} on that device (it writes {EVIDENCE}/gpu-<device>-<date>.json), or name a "
              "measured device with --device")
    if device is None:
        if not devices:
            raise MorphError(f"{folder}: no training MFU measured there (the {MFU_STEP} step's {MFU_METRIC} rows of "
                             f"gpu-*.json); run {EVIDENCE_SCRIPT} on a GPU")
        if len(devices) > 1:
            raise MorphError(f"{folder}: training MFU measured on several devices ({', '.join(devices)}); pick one "
                             "with --device")
        device = devices[0]
    matching = [d for d in devices if _key(device) in _key(d)]
    if len(matching) != 1:
        said = (f"no training MFU measured for {device!r}" if not matching
                else f"{device!r} names several measured devices ({', '.join(matching)})")
        raise MorphError(f"{folder}: {said} (measured: {', '.join(devices) or 'none'}); {run_it}")
    name = matching[0]
    mine = [(path, r) for path, r in rows if r["device"] == name]
    settings = {json.dumps({k: v for k, v in r.get("setting", {}).items() if k not in ("warmup_steps", "timed_steps")},
                           sort_keys=True) for _, r in mine}
    if len(settings) != 1:
        raise MorphError(f"{folder}: the {name} MFU rows were measured under different settings "
                         f"({'; '.join(sorted(settings))}); keep one run's files there")
    setting = json.loads(settings.pop())
    peak_label, precision = setting.get("peak", ""), setting.get("precision", "")
    known = next((peaks for known, peaks in DATASHEET_PEAKS if known in name), None)
    if not peak_label.startswith(DATASHEET) or known is None or precision not in PRECISION_DTYPES:
        raise MorphError(f"{folder}: the {name} MFU was counted against {peak_label or 'an unrecorded peak'} at "
                         f"precision {precision or '?'}, whose FLOP/s the results do not hold; only MFU against a "
                         "datasheet peak (train/flops.DATASHEET_PEAKS) converts to GPU-hours")
    values = sorted(float(r["value"]) for _, r in mine)
    return Measured(
        device=name, mfu=statistics.median(values), mfu_low=values[0], mfu_high=values[-1],
        shapes=tuple(r["shape"] for _, r in mine), peak_flops=known[PRECISION_DTYPES[precision]],
        peak_source=f"{peak_label} {PRECISION_DTYPES[precision]}", precision=precision,
        setting=", ".join(f"{k} {v}" for k, v in setting.items() if k not in ("peak", "precision")),
        sources=tuple(dict.fromkeys(path for path, _ in mine)))


def report(exp: Experiment, params: str, evidence: str | Path = EVIDENCE, device: str | None = None) -> dict:
    """The whole cost as `morph grid --cost --json` prints it."""
    gpu = measured(evidence, device)  # first: a device nothing measured is refused before any counting
    nodes = pipeline.all_nodes(exp, params)
    rows = costs(exp, nodes)
    total = sum(c.flops for c in rows)
    return {"params": params, "flops_count": FLOPS_COUNT, "seq_len": exp.model.seq_len,
            "runs": [c.to_dict() for c in rows], "training_runs": len(rows),
            "slots": sum(c.slot for c in rows), "slot_note": SLOT_NOTE, "total_flops": total,
            "jobs": len(nodes), "experiment_precision": resolve(exp.train, cuda_available=True).precision,
            "gpu": gpu.to_dict(total)}


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 1 else f"{h:.2g}"


def table(out: dict) -> str:
    """The cost as text: one line per training run, then the totals and the GPU-hours with their source."""
    gpu = out["gpu"]
    lines = [f"training cost of {out['params']} (seq_len {out['seq_len']}); FLOPs = {out['flops_count']}",
             f"{'run':<24}{'stage':<14}{'params N':>16}{'tokens D':>20}{'FLOPs':>12}"]
    for r in out["runs"]:
        lines.append(f"{r['run']:<24}{r['stage']:<14}{r['params']:>16,}{r['tokens']:>20,}{r['flops']:>12.3e}"
                     + ("  *" if r["counted_at_baseline"] else ""))
    if out["slots"]:
        lines.append(f"* {SLOT_NOTE}")
    low, high = gpu["gpu_hours_range"]
    lines += [
        f"total: {out['total_flops']:.4g} FLOPs over {out['training_runs']} training runs "
        f"({out['slots']} of them slots); {out['jobs']} jobs in the graph",
        f"{gpu['device']}: {_hours(gpu['gpu_hours'])} GPU-hours at MFU {gpu['mfu']:.3f} (the median of "
        f"{len(gpu['shapes'])} measured shapes, {gpu['mfu_range'][0]:.3f}-{gpu['mfu_range'][1]:.3f}: "
        f"{_hours(low)}-{_hours(high)} GPU-hours) of {gpu['peak_flops'] / 1e12:,.0f} TFLOP/s ({gpu['peak_source']})",
        f"MFU source: {', '.join(gpu['sources'])} ({MFU_STEP} step, {MFU_METRIC}: {', '.join(gpu['shapes'])}; "
        f"{gpu['precision']}, {gpu['setting']})",
    ]
    if gpu["precision"] != out["experiment_precision"]:
        lines.append(f"note: the experiment trains in {out['experiment_precision']} on a GPU, the MFU was measured "
                     f"in {gpu['precision']}")
    lines.append("note: the MFU is one device's, without data-parallel communication, on the shapes above; smaller "
                 "shapes usually reach less, so their hours are a lower bound")
    return "\n".join(lines)
