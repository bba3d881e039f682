"""The saved tokenizer as the encode jobs and the gather read it: small, so a change to how the
tokenizer is trained does not count as a change to every encode job's code."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morph.core.artifacts.data import TOKENIZER_JSON
from morph.core.errors import MorphError
from morph.core.experiment import Experiment

EOT = "<|endoftext|>"


def token_dtype(cfg: Experiment):
    return np.uint16 if cfg.vocab_size <= 1 << 16 else np.uint32


def load_saved(directory: str | Path):
    """The saved tokenizer, ready to encode documents: a literal "<|endoftext|>" inside one is text."""
    from tokenizers import Tokenizer

    path = Path(directory) / TOKENIZER_JSON
    if not path.exists():
        raise MorphError(f"{path}: missing (run `morph tokenizer` first)")
    tok = Tokenizer.from_file(str(path))
    tok.encode_special_tokens = True
    if tok.token_to_id(EOT) is None:
        raise MorphError(f"{path}: has no {EOT} token")
    return tok
