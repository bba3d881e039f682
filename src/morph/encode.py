"""Turn documents into token ids, each document followed by the end-of-text id, as fast as the
tokenizer allows.

The `tokenizers` library spends about a CPU-second per megabyte here, mostly on per-word work
(regex splitting, building Encoding objects). Natural text repeats itself, so for a GPT-2-style
byte-level BPE (our own `bpe:<V>`) we encode each distinct piece of text once:

- a *piece* is a run of whitespace plus the run of non-whitespace after it. No GPT-2 pre-token holds
  a non-space character followed by a space, and the GPT-2 pattern has no look-behind, so cutting
  there never changes the split; a plain `re` pattern finds pieces at tens of MB/s;
- a new piece is split into GPT-2 words with the same pattern (the `regex` module speaks \\p{L});
- a new word is encoded by the tokenizer itself; BPE never merges across words.

So the ids equal those of encoding whole documents (tests check it on the fixture). Tokenizers with
a normalizer or non-special added tokens (such as GPT-NeoX-20B's runs of spaces) go through the
library's own parallel batch path instead.
"""
from __future__ import annotations

import json
import re
from itertools import chain

import numpy as np

# What the ByteLevel pre-tokenizer splits on when use_regex is true.
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Unicode White_Space, which is \s in the GPT-2 pattern; Python's re would add \x1c-\x1f.
WHITESPACE = "\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
PIECE_SPLIT = re.compile(f"[{WHITESPACE}]*[^{WHITESPACE}]+|[{WHITESPACE}]+")


def word_cache_applies(tok) -> bool:
    """True when encoding piece by piece is exact: GPT-2 byte-level splitting and nothing before it."""
    spec = json.loads(tok.to_str())
    pre = spec.get("pre_tokenizer") or {}
    plain_split = pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space")
    only_special = all(t.special for t in tok.get_added_tokens_decoder().values())
    return spec.get("normalizer") is None and plain_split and only_special and spec["model"]["type"] == "BPE"


def _with_eot(per_doc: np.ndarray, flat: np.ndarray, eot_id: int, dtype) -> np.ndarray:
    """Insert eot_id after each document's tokens (documents may be empty)."""
    return np.insert(flat.astype(dtype, copy=False), np.cumsum(per_doc), np.asarray(eot_id, dtype=dtype))


class BatchEncoder:
    """The library's own parallel batch encoding; exact for any tokenizer."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, texts: list[str], eot_id: int, dtype) -> np.ndarray:
        ids = [e.ids for e in self.tok.encode_batch_fast(texts, add_special_tokens=False)]
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(map(len, ids)))
        return _with_eot(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)), flat, eot_id, dtype)


class _Cache:
    """Token ids of distinct strings, stored flat, and the split that cuts texts into such strings."""

    def __init__(self, split, learn):
        self.split, self.learn = split, learn  # learn(new strings) -> (flat ids, ids per string)
        self.index: dict[str, int] = {}
        self.flat = self.starts = self.lengths = np.zeros(0, dtype=np.int64)

    def _add(self, strings) -> None:
        new = [s for s in strings if s not in self.index]
        if not new:
            return
        flat, lengths = self.learn(new)
        self.index.update(zip(new, range(len(self.index), len(self.index) + len(new))))
        self.flat = np.concatenate([self.flat, flat])
        self.lengths = np.concatenate([self.lengths, lengths])
        self.starts = np.cumsum(self.lengths) - self.lengths

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(all ids in order, ids per text)."""
        import pandas as pd

        parts = [self.split(t) for t in texts]
        per_text = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        codes, uniques = pd.factorize(np.fromiter(chain.from_iterable(parts), dtype=object, count=per_text.sum()))
        self._add(uniques)
        keys = np.fromiter(map(self.index.__getitem__, uniques), dtype=np.int64, count=len(uniques))[codes]
        lens = self.lengths[keys]
        # Position j of string k reads flat[starts[k] + j]: one gather for the whole batch.
        shift = np.repeat(self.starts[keys] - (np.cumsum(lens) - lens), lens)
        ids = self.flat[np.arange(lens.sum()) + shift]
        owner = np.repeat(np.arange(len(texts)), per_text)
        return ids, np.bincount(owner, weights=lens, minlength=len(texts)).astype(np.int64)


class WordCacheEncoder:
    """Pieces, then GPT-2 words, then the tokenizer; see the module docstring for why it is exact."""

    def __init__(self, tok):
        import regex

        def learn_words(words):
            ids = [e.ids for e in tok.encode_batch_fast(words, add_special_tokens=False)]
            return (np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(map(len, ids))),
                    np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)))

        self.words = _Cache(regex.compile(GPT2_SPLIT).findall, learn_words)
        self.pieces = _Cache(PIECE_SPLIT.findall, self.words.encode)

    def encode(self, texts: list[str], eot_id: int, dtype) -> np.ndarray:
        ids, per_doc = self.pieces.encode(texts)
        return _with_eot(per_doc, ids, eot_id, dtype)


def encoder_for(tok):
    return WordCacheEncoder(tok) if word_cache_applies(tok) else BatchEncoder(tok)
