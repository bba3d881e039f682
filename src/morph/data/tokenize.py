"""Tokenize a whole sample in one process: the tokenizer, every shard, then meta.json.

The workflow runs these as separate jobs (`morph tokenizer`, one `morph tokenize-shard` per shard,
`morph tokenize-gather`) so the shards encode in parallel; this command is the same steps in order,
for a sample made by hand. Writes into --out what those jobs write into data/tokens: tokenizer/,
<shard>.bin and <shard>.json for every sample shard, and meta.json.
"""
from __future__ import annotations

from pathlib import Path

from morph.core import experiment
from morph.core.artifacts.data import META, SAMPLE, TOKENIZER_DIR, TOKENS, token_shard, token_shard_summary
from morph.core.io import atomic_dir, write_json
from morph.data import saved_tokenizer, tokenize_gather, tokenize_shard, tokenizer
from morph.data.manifest import SPLITS, checked_shard, read_manifest


def add_arguments(p):
    p.add_argument("--sample", default=SAMPLE, help="the sample stage's directory (default: %(default)s)")
    p.add_argument("--out", default=TOKENS, help="output directory (default: %(default)s)")


def run(args):
    cfg = experiment.load(args.params)
    sample, out = Path(args.sample), Path(args.out)
    manifest = read_manifest(cfg, sample)
    name = cfg.tokenizer.name
    tok = (tokenizer.load_neox(cfg) if name == "gpt-neox-20b"
           else tokenizer.train_bpe(tokenizer.subsample(cfg, sample, manifest), cfg.vocab_size))
    # Each file is written atomically and meta.json last, as the jobs do: it exists only when the
    # shards it lists are whole.
    (out / META).unlink(missing_ok=True)
    with atomic_dir(out / TOKENIZER_DIR) as tmp:
        tokenizer.save_for_transformers(tok, tmp)
    saved, dtype = saved_tokenizer.load_saved(out / TOKENIZER_DIR), saved_tokenizer.token_dtype(cfg)
    for split in SPLITS:
        for entry in manifest["splits"][split]["shards"]:
            shard = entry["file"].removesuffix(".jsonl.zst")
            path = checked_shard(sample, entry)
            summary = tokenize_shard.encode_shard(saved, dtype, path, Path(token_shard(shard, args.out)))
            write_json(token_shard_summary(shard, args.out),
                       tokenize_shard.with_inputs(summary, path, out / "tokenizer"))
    meta = tokenize_gather.gather(cfg, args.params, sample, out)
    write_json(out / META, meta)
    print(f"{name}: {meta['splits']['train']['tokens']:,} train and {meta['splits']['val']['tokens']:,} val tokens "
          f"({meta['dtype']}) into {args.out}")
    return 0
