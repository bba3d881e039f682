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

A very long document is encoded in parts (`parts`), each cut where a whitespace run follows a
non-whitespace character: no GPT-2 pre-token, added run of spaces or NFC composition crosses such a
cut, so the ids are unchanged and memory holds one part, whatever the document's length.
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
_WHITE = frozenset(re.findall(f"[{WHITESPACE}]", "".join(map(chr, range(0x3001)))))
CUT = re.compile(f"[^{WHITESPACE}](?=[{WHITESPACE}])")
PART_CHARS = 1_000_000  # the most text of one document an encoder call holds
# How far back from PART_CHARS a cut is looked for; text with no whitespace that long is cut where it stands.
CUT_WINDOW = 65_536


def parts(text: str, limit: int | None = None) -> list[str]:
    """`text` in parts of at most `limit` (PART_CHARS) characters, cut only before a whitespace run that follows
    other text (see the module docstring), unless CUT_WINDOW characters hold no such place."""
    limit = limit or PART_CHARS
    out, start = [], 0
    while len(text) - start > limit:
        end = start + limit
        cuts = list(CUT.finditer(text, max(start, end - CUT_WINDOW), end))
        end = cuts[-1].end() if cuts else end
        out.append(text[start:end])
        start = end
    out.append(text[start:])
    return out


def word_cache_applies(tok) -> bool:
    """True when encoding piece by piece is exact: GPT-2 byte-level splitting and nothing before it."""
    spec = json.loads(tok.to_str())
    pre = spec.get("pre_tokenizer") or {}
    plain_split = pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space")
    only_special = all(t.special for t in tok.get_added_tokens_decoder().values())
    return spec.get("normalizer") is None and plain_split and only_special and spec["model"]["type"] == "BPE"


def _with_eot(per_doc: np.ndarray, flat: np.ndarray, eot_id: int, dtype, ends: np.ndarray | None) -> np.ndarray:
    """Insert eot_id after each text's tokens (texts may be empty), or only after those `ends` marks: the last
    part of a document encoded in parts."""
    where = np.cumsum(per_doc)
    return np.insert(flat.astype(dtype, copy=False), where if ends is None else where[ends],
                     np.asarray(eot_id, dtype=dtype))


class BatchEncoder:
    """The library's own parallel batch encoding; exact for any tokenizer."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, texts: list[str], eot_id: int, dtype, ends: np.ndarray | None = None) -> np.ndarray:
        ids = [e.ids for e in self.tok.encode_batch_fast(texts, add_special_tokens=False)]
        flat = np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(map(len, ids)))
        return _with_eot(np.fromiter(map(len, ids), dtype=np.int64, count=len(ids)), flat, eot_id, dtype, ends)


class _Cache:
    """Token ids of distinct strings, stored flat; `learn` encodes the strings not seen yet."""

    def __init__(self, learn):
        self.learn = learn  # learn(new strings) -> (the same strings in any order, flat ids, ids per string)
        self.index: dict[str, int] = {}
        self.flat = self.starts = self.lengths = np.zeros(0, dtype=np.int64)

    def _add(self, new: list[str]) -> None:
        """Learn strings not in the cache yet."""
        order, flat, lengths = self.learn(new)
        self.index.update(zip(order, range(len(self.index), len(self.index) + len(order))))
        self.flat = np.concatenate([self.flat, flat])
        self.lengths = np.concatenate([self.lengths, lengths])
        self.starts = np.cumsum(self.lengths) - self.lengths

    def encode(self, parts: list[str], per_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Texts given as their parts in order and the number of parts of each; returns
        (all ids in order, ids per text)."""
        # dict.fromkeys finds the distinct strings as fast as pandas.factorize did, without pandas'
        # import: half a CPU-second in every encode job.
        new = [s for s in dict.fromkeys(parts) if s not in self.index]
        if new:
            self._add(new)
        keys = np.fromiter(map(self.index.__getitem__, parts), dtype=np.int64, count=len(parts))
        lens = self.lengths[keys]
        # Position j of string k reads flat[starts[k] + j]: one gather for the whole batch.
        shift = np.repeat(self.starts[keys] - (np.cumsum(lens) - lens), lens)
        ids = self.flat[np.arange(lens.sum()) + shift]
        owner = np.repeat(np.arange(len(per_text)), per_text)
        return ids, np.bincount(owner, weights=lens, minlength=len(per_text)).astype(np.int64)


def _counts(lists) -> np.ndarray:
    return np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))


class WordCacheEncoder:
    """Pieces, then GPT-2 words, then the tokenizer; see the module docstring for why it is exact."""

    def __init__(self, tok):
        import regex

        self.tok = tok
        self.word_split = regex.compile(GPT2_SPLIT)
        self.words = _Cache(self._learn_words)
        self.pieces = _Cache(self._learn_pieces)

    def _learn_words(self, words):
        ids = [e.ids for e in self.tok.encode_batch_fast(words, add_special_tokens=False)]
        return words, np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=sum(map(len, ids))), _counts(ids)

    def _learn_pieces(self, pieces):
        # A piece of whitespace then non-whitespace splits the same alone as beside others of its
        # kind, so one regex call splits them all; the few others (a text's first or last piece) go alone.
        joinable = [p for p in pieces if p[0] in _WHITE and p[-1] not in _WHITE]
        alone = [p for p in pieces if not (p[0] in _WHITE and p[-1] not in _WHITE)]
        joined = self.word_split.findall("".join(joinable))
        word_ends, piece_ends = np.cumsum(_counts(joined)), np.cumsum(_counts(joinable))
        cut = np.searchsorted(word_ends, piece_ends, side="right")
        if len(joined) and not np.array_equal(word_ends[cut - 1], piece_ends):
            raise RuntimeError("a GPT-2 word crossed a piece boundary; the piece cache would be wrong")
        split_alone = [self.word_split.findall(p) for p in alone]
        words = joined + list(chain.from_iterable(split_alone))
        ids, per_piece = self.words.encode(words, np.concatenate([np.diff(cut, prepend=0), _counts(split_alone)]))
        return joinable + alone, ids, per_piece

    def encode(self, texts: list[str], eot_id: int, dtype, ends: np.ndarray | None = None) -> np.ndarray:
        pieces = [PIECE_SPLIT.findall(t) for t in texts]
        ids, per_doc = self.pieces.encode(list(chain.from_iterable(pieces)), _counts(pieces))
        return _with_eot(per_doc, ids, eot_id, dtype, ends)


def encoder_for(tok):
    return WordCacheEncoder(tok) if word_cache_applies(tok) else BatchEncoder(tok)
