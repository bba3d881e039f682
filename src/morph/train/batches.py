"""Token batches for training: seeded random windows from train.bin, a fixed set from val.bin.

The tokens directory (the tokenize stage's output) holds train.bin and val.bin (np.memmap of
token ids, dtype in meta.json), meta.json and tokenizer/.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from morph.errors import MorphError
from morph.io import read_json

DTYPES = ("uint16", "uint32")
IGNORE = -100  # label value the loss skips (torch's cross_entropy default ignore_index)


@dataclass
class TokenData:
    root: Path
    meta: dict
    train: np.memmap
    val: np.memmap

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"


def open_tokens(root: str | Path) -> TokenData:
    """Open a tokens directory, checking it is whole before any training starts."""
    root = Path(root)
    if not root.is_dir():
        raise MorphError(f"{root}: tokens directory not found (run `morph tokenize` first)")
    meta = read_json(root / "meta.json")
    for key in ("vocab_size", "eot_id", "dtype", "splits"):
        if key not in meta:
            raise MorphError(f"{root / 'meta.json'}: missing key {key!r}")
    if meta["dtype"] not in DTYPES:
        raise MorphError(f"{root / 'meta.json'}: dtype {meta['dtype']!r} is not one of {list(DTYPES)}")
    if not (root / "tokenizer").is_dir():
        raise MorphError(f"{root / 'tokenizer'}: tokenizer directory not found")
    arrays = {}
    for split in ("train", "val"):
        path = root / f"{split}.bin"
        if not path.exists():
            raise MorphError(f"{path}: missing token file")
        expected = meta["splits"].get(split, {}).get("tokens")
        found = path.stat().st_size // np.dtype(meta["dtype"]).itemsize
        if expected != found:
            raise MorphError(f"{path}: holds {found} tokens but meta.json counts {expected} (truncated or stale?)")
        arrays[split] = np.memmap(path, dtype=meta["dtype"], mode="r")
    return TokenData(root, meta, arrays["train"], arrays["val"])


def steps_for_budget(tokens: int, batch_size: int, seq_len: int) -> int:
    """Optimiser steps whose predicted tokens cover the budget exactly; the last batch may be partial."""
    per_step = batch_size * seq_len
    if tokens < per_step:
        raise MorphError(
            f"token budget {tokens:,} is smaller than one batch (train.batch_size {batch_size} x model.seq_len "
            f"{seq_len} = {per_step:,} tokens); lower the batch size or raise the budget"
        )
    return -(-tokens // per_step)


def check_fits(tokens: np.ndarray, seq_len: int, what: str) -> None:
    if len(tokens) < seq_len + 1:
        raise MorphError(
            f"{what} holds {len(tokens):,} tokens, fewer than model.seq_len + 1 = {seq_len + 1}; "
            "lower model.seq_len or tokenize more data"
        )


def train_batch(tokens: np.ndarray, step: int, seed: int, batch_size: int, seq_len: int, budget: int,
                rows: slice = slice(None)):
    """Rows `rows` of optimiser step `step`'s batch: a pure function of (seed, step), so a resumed run sees the
    same data and each rank, taking its own rows, trains on exactly its share of the one-device batch.

    Targets beyond the token budget are masked, so tokens trained on equal the budget exactly.
    """
    import torch

    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(tokens) - seq_len, size=batch_size)  # all rows drawn: the stream is the same
    picked = range(batch_size)[rows]
    windows = np.stack([tokens[starts[i] : starts[i] + seq_len + 1] for i in picked]).astype(np.int64)
    inputs, targets = torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())
    first = step * batch_size * seq_len  # index of this batch's first target within the run
    position = first + torch.arange(batch_size * seq_len).view(batch_size, seq_len)[rows]
    targets[position >= budget] = IGNORE
    return inputs, targets


def targets_in_step(step: int, batch_size: int, seq_len: int, budget: int) -> int:
    """Unmasked targets in step `step`'s whole batch, over all ranks: the loss's denominator."""
    per_step = batch_size * seq_len
    return min(per_step, max(0, budget - step * per_step))


def val_windows(tokens: np.ndarray, seq_len: int, count: int):
    """The first `count` consecutive non-overlapping windows of val.bin: the same for every run."""
    import torch

    rows = np.stack([tokens[i * seq_len : i * seq_len + seq_len + 1] for i in range(count)]).astype(np.int64)
    return torch.from_numpy(rows[:, :-1].copy()), torch.from_numpy(rows[:, 1:].copy())


def val_count(tokens: np.ndarray, seq_len: int, val_batches: int, batch_size: int, what: str) -> int:
    """Held-out windows: val_batches x batch_size, or as many whole batches as val.bin holds, so the same
    windows split evenly over any number of ranks that divides the batch."""
    whole = (len(tokens) - 1) // seq_len // batch_size
    if whole == 0:
        raise MorphError(f"{what} holds {len(tokens):,} tokens, less than one batch of held-out windows "
                         f"(train.batch_size {batch_size} x model.seq_len {seq_len}); tokenize more held-out data "
                         "or lower train.batch_size")
    return min(val_batches, whole) * batch_size


def make_datamodule(data: TokenData, seq_len: int, t, budget: int, seed: int, start_step: int = 0):
    """A LightningDataModule for the rank its trainer runs as, of t.world_size ranks. Each training item is one
    optimiser step: this rank's rows as t.accumulation micro batches ([accumulation, micro, seq_len]) and the
    whole batch's target count; the validation set is this rank's contiguous share of the held-out windows."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, IterableDataset, TensorDataset

    check_fits(data.train, seq_len, f"{data.root / 'train.bin'}")
    check_fits(data.val, seq_len, f"{data.root / 'val.bin'}")
    batch = t.batch_size
    total = steps_for_budget(budget, batch, seq_len)
    share = val_count(data.val, seq_len, t.val_batches, batch, f"{data.root / 'val.bin'}") // t.world_size

    class TrainSteps(IterableDataset):
        # No __len__ on purpose: Lightning then ends the epoch only when this runs out,
        # which makes a resumed run continue at start_step instead of re-counting an epoch.
        def __init__(self, rank: int):
            self.rank = rank

        def __iter__(self):
            mine = slice(self.rank * t.rank_batch, (self.rank + 1) * t.rank_batch)
            for step in range(start_step, total):
                inputs, targets = train_batch(data.train, step, seed, batch, seq_len, budget, mine)
                shape = (t.accumulation, t.micro_batch, seq_len)
                yield inputs.view(shape), targets.view(shape), torch.tensor(targets_in_step(step, batch, seq_len,
                                                                                            budget))

    class Tokens(L.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(TrainSteps(self.trainer.global_rank), batch_size=None)

        def val_dataloader(self):
            inputs, targets = val_windows(data.val, seq_len, share * t.world_size)
            rank = self.trainer.global_rank
            own = slice(rank * share, (rank + 1) * share)
            return DataLoader(TensorDataset(inputs[own], targets[own]), batch_size=t.micro_batch, shuffle=False)

    return Tokens()
