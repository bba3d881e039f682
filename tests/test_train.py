"""The training stage: parameter counts, exact budgets, resume after SIGKILL, determinism, bad input, collect."""
from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from morph import config, grid
from morph.errors import MorphError
from morph.shape import ShapeRules

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "text-corpus.jsonl.gz"


def build_tokens_dir(dest: Path, vocab_size: int = 512, max_chars: int = 1_500_000, val_frac: float = 0.1) -> Path:
    """A tokens directory as `morph tokenize` writes it: a real byte-level BPE over real text,
    train/val split by document, each document followed by the end-of-text token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts, chars = [], 0
    with gzip.open(CORPUS, "rt") as f:
        for i, line in enumerate(f):
            if i % 6:  # every sixth document: a mix of the corpus's sources
                continue
            texts.append(json.loads(line)["text"])
            chars += len(texts[-1])
            if chars >= max_chars:
                break
    eot = "<|endoftext|>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eot],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    eot_id = tok.token_to_id(eot)
    n_val = max(1, int(len(texts) * val_frac))
    dest.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, docs in (("train", texts[n_val:]), ("val", texts[:n_val])):
        ids = np.concatenate([np.array(e.ids + [eot_id], dtype=np.uint16) for e in tok.encode_batch(docs)])
        ids.tofile(dest / f"{split}.bin")
        counts[split] = int(len(ids))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eot, bos_token=eot).save_pretrained(dest / "tokenizer")
    meta = {"tokenizer": f"bpe:{vocab_size}", "vocab_size": vocab_size, "eot_id": eot_id, "dtype": "uint16",
            "counts": counts, "sha256": {}}
    (dest / "meta.json").write_text(json.dumps(meta))
    return dest


@pytest.fixture(scope="session")
def tokens(tmp_path_factory):
    # When conftest.py's `ci_tokens` lands, this becomes: return ci_tokens
    return build_tokens_dir(tmp_path_factory.mktemp("tokens"))
