"""Encode one sample shard into one token shard; one job per shard, so the shards encode in parallel
(Snakemake jobs, DVC stages, or SLURM jobs on a cluster).

Writes --out, raw token ids (uint16, or uint32 above 65,536 ids) for np.memmap with every document
followed by <|endoftext|>, and --summary: its tokens, documents, characters and sha256, and the sha256
of the sample shard it read, which `morph tokenize-gather` checks against the sample's manifest.
Memory holds one batch of text and the encoder's cache, whatever the shard's size. One thread,
unless RAYON_NUM_THREADS says otherwise: the jobs are the parallelism.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from morph.core import experiment
from morph.core.io import atomic_path, sha256_file, sha256_tree, write_json
from morph.data.encode import encoder_for, parts
from morph.data.saved_tokenizer import EOT, load_saved, token_dtype
from morph.data.shards import read_docs

BATCH_CHARS = 4_000_000  # text per encoder call: few calls, small in memory (1M is slower)


def batches(texts: Iterable[str]) -> Iterator[tuple[list[str], list[bool]]]:
    """The texts, about BATCH_CHARS at a time, in order, a long one in parts (encode.parts); with each text
    whether it ends a document."""
    batch, ends, size = [], [], 0
    for text in texts:
        cut = parts(text)
        for i, part in enumerate(cut):
            batch.append(part)
            ends.append(i == len(cut) - 1)
            size += len(part)
            if size >= BATCH_CHARS:
                yield batch, ends
                batch, ends, size = [], [], 0
    if batch:
        yield batch, ends


def encode_shard(tok, dtype, shard: Path, out: Path) -> dict:
    """Encode `shard` into `out` (atomically); returns its counts."""
    encoder, eot_id = encoder_for(tok), tok.token_to_id(EOT)
    tokens = docs = chars = 0
    with atomic_path(out) as tmp, open(tmp, "wb") as f, tqdm(desc=f"tokenize {shard.name}", unit="doc") as bar:
        for batch, ends in batches(record["text"] for _, record in read_docs(shard)):
            arr = encoder.encode(batch, eot_id, dtype, np.array(ends))
            f.write(arr.tobytes())
            tokens, docs, chars = tokens + len(arr), docs + sum(ends), chars + sum(map(len, batch))
            bar.update(sum(ends))
    return {"file": out.name, "tokens": tokens, "docs": docs, "chars": chars, "sha256": sha256_file(out),
            "sample_file": shard.name, "sample_sha256": sha256_file(shard)}


def with_inputs(summary: dict, shard: str | Path, tokenizer: str | Path) -> dict:
    """The summary with what lineage checks: the sample shard and the tokenizer the shard was encoded from."""
    return {**summary, "inputs": {str(shard): summary["sample_sha256"], str(tokenizer): sha256_tree(tokenizer)}}


def run(args):
    # One thread for the tokenizers library's pool, read when it starts: the parallelism is across jobs,
    # one core each (the rule, the SLURM profile); the pool would take every core in every job, so -j1
    # would use several and -jN oversubscribe.
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    cfg = experiment.load(args.params)
    summary = encode_shard(load_saved(args.tokenizer), token_dtype(cfg), Path(args.shard), Path(args.out))
    write_json(args.summary, with_inputs(summary, args.shard, args.tokenizer))
    print(f"{args.shard}: {summary['tokens']:,} tokens into {args.out}")
    return 0
