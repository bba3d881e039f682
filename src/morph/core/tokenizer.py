"""The tokenizer section: a BPE trained on the sample, or GPT-NeoX-20B's."""
from __future__ import annotations

import re
from dataclasses import dataclass

from morph.core.schema import rule

TOKENIZER_PATTERN = re.compile(r"^(bpe:(\d+)|gpt-neox-20b)$")
# GPT-NeoX-20B has 50277 tokens; open_lm pads the embedding to 50432, as the paper counts N.
NEOX_PADDED_VOCAB = 50432


def _tokenizer_rule(value: str) -> str | None:
    m = TOKENIZER_PATTERN.match(value)
    if not m:
        return "is not a tokenizer; use 'bpe:<vocab_size>' or 'gpt-neox-20b'"
    if m.group(2) and not 256 < int(m.group(2)) <= 65536:
        return "has a BPE vocabulary outside 257..65536"
    return None


@dataclass(frozen=True)
class Tokenizer:
    name: str = rule("bpe:2048", check=_tokenizer_rule)
    # Millions of characters of the training split a BPE learns from (a seeded subsample): enough
    # for merges, and a memory bound that does not grow with the sample.
    train_mb: float = rule(64.0, min=0.01)

    @property
    def vocab_size(self) -> int:
        m = TOKENIZER_PATTERN.match(self.name)
        return int(m.group(2)) if m.group(2) else NEOX_PADDED_VOCAB
