"""Token batches for training: seeded random windows across the train shards, a fixed set from val.

The tokens directory (the tokenize stages' output) holds meta.json, which lists every split's token
shards (raw token ids, dtype in meta.json) with their counts and sha256, and tokenizer/. Each shard
is read in place through its own np.memmap; a split is never copied into one array.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morph.core.artifacts.common import PARAMS
from morph.core.artifacts.data import META, TOKENIZER_DIR, rebuild_token_shard
from morph.core.errors import MorphError
from morph.core.io import read_json, sha256_file

DTYPES = ("uint16", "uint32")
IGNORE = -100  # label value the loss skips (torch's cross_entropy default ignore_index)


class TokenStream:
    """One split as the list of its shards, addressed as windows of seq_len + 1 tokens that never
    cross a shard's end (every shard ends with a document's <|endoftext|>)."""

    def __init__(self, shards: list[np.ndarray], name: str = "tokens"):
        self.shards, self.name = shards, name
        self.lengths = np.fromiter(map(len, shards), dtype=np.int64, count=len(shards))

    def __len__(self) -> int:
        return int(self.lengths.sum())

    def window_starts(self, seq_len: int) -> np.ndarray:
        """How many windows start in each shard."""
        return np.maximum(self.lengths - seq_len, 0)

    def window(self, shard: int, start: int, seq_len: int) -> np.ndarray:
        return self.shards[shard][start : start + seq_len + 1]


def as_stream(tokens) -> TokenStream:
    """A TokenStream as is; one array as a stream of one shard."""
    return tokens if isinstance(tokens, TokenStream) else TokenStream([tokens])


@dataclass
class TokenData:
    root: Path
    meta: dict
    train: TokenStream
    val: TokenStream

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / TOKENIZER_DIR


def _open_shard(root: Path, shard: dict, dtype: str, params: str) -> np.memmap:
    """One token shard, refused by name with the command that rebuilds it when it is not what meta.json lists."""
    path = root / shard["file"]
    name = Path(shard["file"]).stem
    rebuild = f"rebuild it (and nothing after it) with {rebuild_token_shard(name, params)}"
    if not path.exists():
        raise MorphError(f"{path}: missing token shard listed in {root / META}; {rebuild}")
    found = path.stat().st_size // np.dtype(dtype).itemsize
    if found != shard["tokens"]:
        raise MorphError(f"{path}: holds {found:,} tokens but meta.json lists {shard['tokens']:,} (truncated); "
                         f"{rebuild}")
    if sha256_file(path) != shard["sha256"]:
        raise MorphError(f"{path}: its sha256 differs from meta.json's (damaged); {rebuild}")
    # A shard a very long document skipped is empty, and an empty file cannot be mapped.
    return np.memmap(path, dtype=dtype, mode="r") if found else np.zeros(0, dtype=dtype)


def open_tokens(root: str | Path, params: str = PARAMS) -> TokenData:
    """Open a tokens directory, checking every shard is whole before any training starts; `params` is
    the experiment file named in the command that rebuilds a bad shard."""
    root = Path(root)
    if not root.is_dir():
        raise MorphError(f"{root}: tokens directory not found (run `morph tokenize` first)")
    meta = read_json(root / META)
    for key in ("vocab_size", "eot_id", "dtype", "splits"):
        if key not in meta:
            raise MorphError(f"{root / META}: missing key {key!r}")
    if meta["dtype"] not in DTYPES:
        raise MorphError(f"{root / META}: dtype {meta['dtype']!r} is not one of {list(DTYPES)}")
    if not (root / TOKENIZER_DIR).is_dir():
        raise MorphError(f"{root / 'tokenizer'}: tokenizer directory not found")
    streams = {}
    for split in ("train", "val"):
        shards = meta["splits"].get(split, {}).get("shards")
        if not shards:
            raise MorphError(f"{root / META}: lists no {split} shards; rerun `morph tokenize-gather`")
        streams[split] = TokenStream([_open_shard(root, s, meta["dtype"], params) for s in shards],
                                     f"the {split} shards in {root}")
    return TokenData(root, meta, streams["train"], streams["val"])


def steps_for_budget(tokens: int, batch_size: int, seq_len: int) -> int:
    """Optimiser steps whose predicted tokens cover the budget exactly; the last batch may be partial."""
    per_step = batch_size * seq_len
    if tokens < per_step:
        raise MorphError(
            f"token budget {tokens:,} is smaller than one batch (train.batch_size {batch_size} x model.seq_len "
            f"{seq_len} = {per_step:,} tokens); lower the batch size or raise the budget"
        )
    return -(-tokens // per_step)


def check_fits(tokens: TokenStream, seq_len: int) -> None:
    if not tokens.window_starts(seq_len).any():
        raise MorphError(
            f"{tokens.name} hold at most {int(tokens.lengths.max()):,} tokens each, fewer than model.seq_len + 1 = "
            f"{seq_len + 1}; lower model.seq_len, or tokenize more data or raise data.shard_mb"
        )


def train_batch(tokens, step: int, seed: int, batch_size: int, seq_len: int, budget: int,
                rows: slice = slice(None)):
    """Rows `rows` of optimiser step `step`'s batch: a pure function of (seed, step), so a resumed run sees the
    same data and each rank, taking its own rows, trains on exactly its share of the one-device batch.

    Window starts are drawn uniformly over every shard's starts, so shards are drawn in proportion to their
    lengths (one shard draws exactly as one array would). Targets beyond the token budget are masked, so
    tokens trained on equal the budget exactly.
    """
    import torch

    tokens = as_stream(tokens)
    counts = tokens.window_starts(seq_len)
    ends = np.cumsum(counts)
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, ends[-1], size=batch_size)  # all rows drawn: the stream is the same on every rank
    shards = np.searchsorted(ends, starts, side="right")
    picked = range(batch_size)[rows]
    windows = np.stack([tokens.window(shards[i], starts[i] - (ends[shards[i]] - counts[shards[i]]), seq_len)
                        for i in picked]).astype(np.int64)
    inputs, targets = torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())
    first = step * batch_size * seq_len  # index of this batch's first target within the run
    position = first + torch.arange(batch_size * seq_len).view(batch_size, seq_len)[rows]
    targets[position >= budget] = IGNORE
    return inputs, targets


def targets_in_step(step: int, batch_size: int, seq_len: int, budget: int) -> int:
    """Unmasked targets in step `step`'s whole batch, over all ranks: the loss's denominator."""
    per_step = batch_size * seq_len
    return min(per_step, max(0, budget - step * per_step))


def val_windows(tokens, seq_len: int, count: int):
    """Up to `count` consecutive non-overlapping windows from the start of each val shard in turn:
    the same for every run."""
    import torch

    tokens = as_stream(tokens)
    rows = []
    for k, length in enumerate(tokens.lengths):
        take = min(count - len(rows), max(int(length) - 1, 0) // seq_len)
        rows += [tokens.window(k, i * seq_len, seq_len) for i in range(take)]
    rows = np.stack(rows).astype(np.int64)
    return torch.from_numpy(rows[:, :-1].copy()), torch.from_numpy(rows[:, 1:].copy())


def val_count(tokens, seq_len: int, val_batches: int, batch_size: int) -> int:
    """Held-out windows: val_batches x batch_size, or as many whole batches as the val shards hold, so the
    same windows split evenly over any number of ranks that divides the batch."""
    tokens = as_stream(tokens)
    whole = int(sum(max(int(n) - 1, 0) // seq_len for n in tokens.lengths)) // batch_size
    if whole == 0:
        raise MorphError(f"{tokens.name} hold {len(tokens):,} tokens, less than one batch of held-out windows "
                         f"(train.batch_size {batch_size} x model.seq_len {seq_len}); tokenize more held-out data "
                         "or lower train.batch_size")
    return min(val_batches, whole) * batch_size


def check_ids(inputs, targets, data: TokenData) -> None:
    """Token ids must index the embedding; an id past it is a tokenizer/experiment mismatch, named here
    rather than as an IndexError deep in the model."""
    top = max(int(inputs.max()), int(targets.max()))
    if top >= data.meta["vocab_size"]:
        raise MorphError(f"{data.root}: token id {top} is not below meta.json's vocab_size {data.meta['vocab_size']};"
                         " the shards were not made by this experiment's tokenizer: rerun `morph tokenize` "
                         "(or the graph's tokenize stages) with this params file")


def make_datamodule(data: TokenData, seq_len: int, t, budget: int, seed: int, start_step: int = 0):
    """A LightningDataModule for the rank its trainer runs as, of t.world_size ranks. Each training item is one
    optimiser step: this rank's rows as t.accumulation micro batches ([accumulation, micro, seq_len]) and the
    whole batch's target count; the validation set is this rank's contiguous share of the held-out windows."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset

    check_fits(data.train, seq_len)
    check_fits(data.val, seq_len)
    batch = t.batch_size
    total = steps_for_budget(budget, batch, seq_len)
    share = val_count(data.val, seq_len, t.val_batches, batch) // t.world_size

    class TrainSteps(IterableDataset):
        # No __len__ on purpose: Lightning then ends the epoch only when this runs out,
        # which makes a resumed run continue at start_step instead of re-counting an epoch.
        def __init__(self, rank: int):
            self.rank = rank

        def __iter__(self):
            mine = slice(self.rank * t.rank_batch, (self.rank + 1) * t.rank_batch)
            for step in range(start_step, total):
                inputs, targets = train_batch(data.train, step, seed, batch, seq_len, budget, mine)
                check_ids(inputs, targets, data)
                shape = (t.accumulation, t.micro_batch, seq_len)
                yield inputs.view(shape), targets.view(shape), torch.tensor(targets_in_step(step, batch, seq_len,
                                                                                            budget))

    class Tokens(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(TrainSteps(self.trainer.global_rank), batch_size=None)

        def val_dataloader(self):
            inputs, targets = val_windows(data.val, seq_len, share * t.world_size)
            check_ids(inputs, targets, data)
            rank = self.trainer.global_rank
            own = slice(rank * share, (rank + 1) * share)
            return DataLoader(TensorDataset(inputs[own], targets[own]), batch_size=t.micro_batch, shuffle=False)

    return Tokens()
