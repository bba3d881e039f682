"""Gather the token shards into meta.json, the one file training reads them through.

Reads each shard's summary (written by `morph tokenize-shard`), not the shards themselves, so a damaged
shard does not rerun this stage and everything trained after it; each shard's size is checked here and
again by training, and a bad one is named with the command that rebuilds it alone. Writes --tokens/meta.json:
the tokenizer, vocab sizes, eot id, dtype, and per split its tokens, documents, characters and every
shard with its token count and sha256, plus provenance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morph.core import experiment
from morph.core.artifacts.data import (
    MANIFEST,
    META,
    TOKENIZER_DIR,
    rebuild_token_shard,
    token_shard_summary,
)
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import library_versions, provenance, read_json, sha256_tree, write_json
from morph.data.manifest import SPLITS, read_manifest
from morph.data.saved_tokenizer import EOT, load_saved, token_dtype


def check_size(path: Path, tokens: int, dtype, name: str, params: str) -> None:
    """A missing or truncated shard is named with the command that rebuilds it and nothing after it."""
    found = path.stat().st_size // np.dtype(dtype).itemsize if path.exists() else None
    if found != tokens:
        state = "missing" if found is None else f"holds {found:,} tokens where {tokens:,} were written"
        raise MorphError(f"{path}: {state} (truncated or damaged); rebuild it with "
                         f"{rebuild_token_shard(name, params)}")


def gather(cfg: Experiment, params: str, sample: Path, tokens: Path) -> dict:
    manifest = read_manifest(cfg, sample)
    dtype = token_dtype(cfg)
    splits, summaries = {}, []
    for split in SPLITS:
        shards = []
        for entry in manifest["splits"][split]["shards"]:
            name = entry["file"].removesuffix(".jsonl.zst")
            summary_path = Path(token_shard_summary(name, str(tokens)))
            summary = read_json(summary_path)
            if summary["sample_sha256"] != entry["sha256"]:
                raise MorphError(f"{summary_path}: encoded from another {entry['file']} than the sample's; "
                                 f"rebuild it with {rebuild_token_shard(name, params)}")
            check_size(tokens / summary["file"], summary["tokens"], dtype, name, params)
            shards.append({k: summary[k] for k in ("file", "tokens", "docs", "chars", "sha256")})
            summaries.append(summary_path)
        n, chars = sum(s["tokens"] for s in shards), sum(s["chars"] for s in shards)
        splits[split] = {"tokens": n, "docs": sum(s["docs"] for s in shards), "chars": chars,
                         "chars_per_token": round(chars / max(n, 1), 4), "shards": shards}
    _check_counts(cfg, splits, sample)
    tok = load_saved(tokens / "tokenizer")
    return {
        "tokenizer": cfg.tokenizer.name,
        "vocab_size": cfg.vocab_size,  # the model's embedding rows (Experiment.vocab_size)
        "tokenizer_vocab_size": tok.get_vocab_size(),
        "eot_id": tok.token_to_id(EOT),
        "dtype": np.dtype(dtype).name,
        "splits": splits,
        "tokenizer_sha256": sha256_tree(tokens / "tokenizer"),
        "sample": {"seed": manifest["seed"], "repeated": manifest["repeated"]},
        **provenance([sample / MANIFEST, *summaries, tokens / TOKENIZER_DIR]),
        "library_versions": library_versions("tokenizers", "transformers", "numpy"),
    }


def _check_counts(cfg: Experiment, splits: dict, sample: Path) -> None:
    d = cfg.data
    for split, key in (("train", "train_tokens"), ("val", "val_tokens")):
        got = splits[split]["tokens"]
        if got < getattr(d, key):
            raise MorphError(
                f"{sample}: the {split} split gives {got:,} tokens, below data.{key} {getattr(d, key):,} "
                f"(measured {splits[split]['chars_per_token']} characters per token, data.chars_per_token is "
                f"{d.chars_per_token}, data.margin {d.margin}); raise data.margin or data.chars_per_token "
                "and rerun `morph sample`"
            )


def run(args):
    cfg = experiment.load(args.params)
    tokens = Path(args.tokens)
    meta = gather(cfg, args.params, Path(args.sample), tokens)
    write_json(tokens / META, meta)
    print(f"{meta['tokenizer']}: {meta['splits']['train']['tokens']:,} train and {meta['splits']['val']['tokens']:,} "
          f"val tokens ({meta['dtype']}) in {sum(len(s['shards']) for s in meta['splits'].values())} shards, "
          f"listed in {tokens / META}")
    return 0
