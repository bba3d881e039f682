"""The data stages' artifacts: the sample, the tokenizer and the token shards."""
from __future__ import annotations

import shlex
from dataclasses import dataclass

from morph.core.interface import FOLDER, IN, OUT, OUT_FOLDER, Interface, flag

MANIFEST = "manifest.json"  # in the sample folder: every shard with its sha256
META = "meta.json"  # in the tokens folder: every token shard and the tokenizer with their sha256
TOKENIZER_DIR = "tokenizer"  # in the tokens folder
SAMPLE = "data/sample"
SAMPLE_MANIFEST = f"{SAMPLE}/{MANIFEST}"
TOKENS = "data/tokens"
TOKENIZER = f"{TOKENS}/{TOKENIZER_DIR}"
TOKENS_META = f"{TOKENS}/{META}"
# The tokenizer's sha256, written with it: its readers see a rebuild through this file, which Snakemake
# checksums, where it would judge the folder by its modification time alone.
TOKENIZER_SUMMARY = f"{TOKENS}/{TOKENIZER_DIR}.summary.json"
# What save_pretrained writes for a fast tokenizer; training copies them into every model directory.
TOKENIZER_JSON, TOKENIZER_CONFIG = "tokenizer.json", "tokenizer_config.json"
TOKENIZER_FILES = (TOKENIZER_JSON, TOKENIZER_CONFIG)


# Shards are files, not a directory, so each tokenize job reads and writes its own.
def sample_shard(name: str, root: str = SAMPLE) -> str:
    return f"{root}/{name}.jsonl.zst"


def token_shard(name: str, root: str = TOKENS) -> str:
    return f"{root}/{name}.bin"


def token_shard_summary(name: str, root: str = TOKENS) -> str:
    """Count and sha256 of one token shard, written beside it by the job that encodes it."""
    return f"{root}/{name}.json"


def rebuild_token_shard(name: str, params: str) -> str:
    """The commands that re-encode one token shard and nothing downstream of it, in either tool."""
    return (f"`snakemake -j1 --force {token_shard(name)} --configfile {shlex.quote(params)}` "
            f"or `dvc repro -s tokenize_shard-{name}`")


@dataclass(frozen=True, kw_only=True)
class Sample(Interface):
    out: str = flag(SAMPLE, role=FOLDER, help="output directory")


@dataclass(frozen=True, kw_only=True)
class Tokenizer(Interface):
    sample: str = flag(SAMPLE, role=FOLDER, help="the sample stage's directory")
    out: str = flag(TOKENIZER, role=OUT_FOLDER, help="output directory")
    summary: str = flag(TOKENIZER_SUMMARY, role=OUT, help="the tokenizer's sha256")


@dataclass(frozen=True, kw_only=True)
class TokenizeShard(Interface):
    tokenizer: str = flag(TOKENIZER, role=IN, help="the tokenizer stage's directory")
    shard: str = flag(role=IN, help="a sample shard, e.g. data/sample/train-00000.jsonl.zst")
    out: str = flag(role=OUT, help="the token shard to write, e.g. data/tokens/train-00000.bin")
    summary: str = flag(role=OUT, help="its summary JSON, e.g. data/tokens/train-00000.json")


@dataclass(frozen=True, kw_only=True)
class TokenizeGather(Interface):
    sample: str = flag(SAMPLE, role=FOLDER, help="the sample stage's directory")
    tokens: str = flag(TOKENS, role=FOLDER, help="directory of the token shards, their summaries and tokenizer/; "
                                                 "meta.json goes here")
